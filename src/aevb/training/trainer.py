"""The training loop: maximise the ELBO (or IWAE_K) of any LatentModel with Adam, epoch by epoch.

Nothing here knows which model it trains: `TrainStep` asks the model for its terms and reduces them
with `objectives.bound`; the loop shuffles, steps, checks for faults, and once per epoch evaluates,
logs and checkpoints into its run directory (`aevb.runs.directory`), when it has one.

Under torchrun each rank trains on its shard of every global batch; the ranks agree on faults and
signals, and only rank 0 writes.

A checkpoint holds, as tensors plus JSON (`state`, `restore`):

    tensors   model/<name>, optim/<param index>/<key>, rng/torch[/<rank>], rng/cuda[/<rank>],
              rng/data, data/order (the current epoch's permutation, mid-epoch)
    meta      the run's meta (config, data_info, versions ...), then step, epoch, batch_in_epoch,
              world_size, elbo_sum, elbo_count, seconds, metrics, rollbacks, optimizer_groups

Every random stream is saved (each rank's global one for posterior draws and dropout, the data
generator for shuffling and preprocessing noise), so a resumed run ends where an unbroken one does.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time

import torch
from tqdm.auto import tqdm

from aevb.config import TrainConfig
from aevb.data.containers import Batch, Data
from aevb.errors import AevbError
from aevb.evaluate import epoch_metrics
from aevb.models.base import LatentModel
from aevb.objectives import name
from aevb.runtime import distributed
from aevb.training import faults
from aevb.training.step import TrainStep


class Trainer:
    """Adam on the negative ELBO, with per-epoch evaluation, metrics and checkpoints.

        trainer = Trainer(model, data, TrainConfig(epochs=3), quiet=True)
        metrics = trainer.fit()             # one record per completed epoch

    `run` is where it writes (an `aevb.runs.directory.RunDirectory`, None: nowhere), `meta` what
    its checkpoints record besides the training state, `frozen` the parameters held fixed for
    `cfg.freeze_epochs` (default: those of the modules named by `cfg.freeze`). `observers` get
    each epoch's record after it is written, with the learning rate of its last step
    (`epoch(record, lr)`, e.g. a TensorBoard log).
    """

    def __init__(self, model: LatentModel, data: Data, cfg: TrainConfig, run=None, meta: dict | None = None,
                 quiet: bool = False, frozen: list[torch.nn.Parameter] | None = None):
        self.model, self.data, self.cfg, self.run, self.meta = model, data, cfg, run, meta or {}
        self.device = next(model.parameters()).device
        self.world, self.rank = distributed.world(), distributed.rank()
        self.quiet = quiet or self.rank > 0  # one progress bar, rank 0's
        self.frozen = model.parameters_of(cfg.freeze) if frozen is None else frozen
        if self.world > 1:
            self._check_shards(len(data.train))
            # an invalid parameter on one rank must not stop it alone (the others would wait for
            # it forever): unchecked, it makes a NaN loss that every rank agrees on
            torch.distributions.Distribution.set_default_validate_args(False)
        self.steps = TrainStep(model, cfg, self.planned_steps, self.steps_per_epoch)
        if self.rank > 0:  # its own posterior draws and dropout (rank 0 goes on as one process)
            torch.manual_seed(distributed.rank_seed(cfg.seed))
        self.monitor = faults.Monitor(self.steps.names, 1 if self.device.type == "cpu" else 20)
        self.gen = torch.Generator(device=data.train.x.device).manual_seed(cfg.seed)
        self.step = 0  # gradient steps taken
        self.epoch = 0  # epochs completed
        self.batch_in_epoch = 0  # batches of the current epoch already taken
        self.order: torch.Tensor | None = None  # the current epoch's permutation of the train set
        self.elbo_sum = torch.zeros((), dtype=torch.float64, device=self.device)  # this epoch's
        self.elbo_count = 0
        self.seconds = 0.0  # training wall time, summed over resumptions
        self.metrics: list[dict] = []  # one record per completed epoch
        self.rollbacks: list[dict] = []  # faults that on_nan = "rollback" recovered from
        self.last_good: tuple[dict, dict] | None = None  # a copy of the last checkpoint, for rollback
        self.observers: list = []  # told of each logged epoch record, on the rank that writes
        self.last_record: dict | None = None  # the latest epoch record logged (a partial one too)

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.data.train) / self.cfg.batch_size)

    @property
    def planned_steps(self) -> int:
        steps = self.cfg.epochs * self.steps_per_epoch
        return steps if self.cfg.max_steps is None else min(steps, self.cfg.max_steps)

    @property
    def writes(self) -> bool:
        """Whether this process writes the run's files: it has a run directory and is rank 0."""
        return self.run is not None and self.rank == 0

    @property
    def scheduled(self) -> bool:
        """Whether the learning rate changes during the run."""
        return self.cfg.lr_decay_from is not None or self.cfg.lr_schedule != "constant"

    def learning_rate(self, step: int) -> float:
        """Adam's rate for gradient step `step` (0-based): cfg.lr; with lr_schedule "burda", cfg.lr *
        10^(-i/7) in the i-th stage of 3^i epochs; with lr_decay_from, cfg.lr until that epoch and
        then a half cosine down to 0 at the last planned step. A function of the step alone, so a
        resumed run follows the same schedule."""
        if self.cfg.lr_schedule == "burda":
            epoch, stage = step // self.steps_per_epoch, 0
            while stage < 7 and epoch >= (3 ** (stage + 1) - 1) // 2:  # stage i starts at (3^i - 1)/2
                stage += 1
            return self.cfg.lr * 10 ** (-stage / 7)
        if self.cfg.lr_decay_from is None:
            return self.cfg.lr
        start = self.cfg.lr_decay_from * self.steps_per_epoch
        span = max(1, self.planned_steps - start)
        done = min(max(step - start, 0), span) / span
        return self.cfg.lr * 0.5 * (1 + math.cos(math.pi * done))

    # -- the loop --------------------------------------------------------------------------------

    def fit(self) -> list[dict]:
        """Train until `epochs` or `max_steps`; returns the metrics of every completed epoch."""
        if self.cfg.on_nan == "rollback":
            self.last_good = _snapshot(*self.state())
        with self.monitor.catching_signals():
            while not self._done():
                self._run_epoch()
        return self.metrics

    def train_step(self, x: torch.Tensor, c: torch.Tensor | None = None,
                   global_batch: int | None = None) -> torch.Tensor:
        """One Adam step on -mean ELBO of a batch; returns its summed ELBO (no host sync)."""
        if self.scheduled:
            self.steps.set_lr(self.learning_rate(self.step))
        total, flags = self.steps(x, c, self.step, global_batch)
        self.monitor.add(self.step + 1, flags)
        return total

    def _run_epoch(self) -> None:
        """Take the rest of the current epoch's batches, then log and checkpoint; returns early
        after a rollback or a signal."""
        n, bs = len(self.data.train), self.cfg.batch_size
        self._freeze_or_thaw()
        if self.order is None:
            self.order = torch.randperm(n, generator=self.gen, device=self.gen.device)
        bar = tqdm(total=n, initial=min(n, self.batch_in_epoch * bs), unit="img",
                   desc=f"epoch {self.epoch + 1}/{self.cfg.epochs}", leave=False,
                   disable=True if self.quiet else None, dynamic_ncols=True)
        start, fault = time.perf_counter(), None
        for batch in self.data.batches(self.data.train, bs, self.gen, self.order, start=self.batch_in_epoch):
            size = len(batch.x)  # the global batch; under torchrun this rank trains on its shard
            batch = self._shard(batch)
            try:
                self.elbo_sum += self.train_step(batch.x, self.model.condition(batch), size)
            except ValueError as e:  # torch.distributions refuses NaN or degenerate parameters
                fault = faults.invalid_parameter(e, self.step + 1)
                break
            self.elbo_count += len(batch.x)
            self.step += 1
            self.batch_in_epoch += 1
            bar.update(size)
            fault = self.monitor.check()
            if fault or self.monitor.stopping:
                break
            if self.batch_in_epoch % 20 == 0 and not bar.disable:  # this rank's running ELBO
                bar.set_postfix(elbo=f"{self.elbo_sum.item() / self.elbo_count:.2f}")
            if self.cfg.max_steps is not None and self.step >= self.cfg.max_steps:
                break
        bar.close()
        self.seconds += time.perf_counter() - start
        fault = fault or self.monitor.check(now=True)
        if fault:
            return self._recover(fault)
        if self.monitor.stopping:
            self.save()  # mid-epoch: the position, the epoch's running ELBO and every RNG are saved
            raise self.monitor.interrupted(self.step, saved=self.run is not None)
        self._end_epoch()

    def _end_epoch(self) -> None:
        """Evaluate, record and checkpoint where the epoch (or the run, mid-epoch) stopped."""
        complete = self.batch_in_epoch == self.steps_per_epoch
        if complete:
            self.epoch += 1
            self.model.after_epoch(self.data, self.cfg, self.epoch)
        record = self._record(complete)
        if not (math.isfinite(record["train_elbo"]) and math.isfinite(record["test_elbo"])):
            return self._recover(f"step {self.step}: the ELBO is not finite")
        if complete:
            self.metrics.append(record)
            self.order, self.batch_in_epoch = None, 0
            self.elbo_sum.zero_()
            self.elbo_count = 0
        self._log(record)
        self.save()

    def _done(self) -> bool:
        over_steps = self.cfg.max_steps is not None and self.step >= self.cfg.max_steps
        return over_steps or self.epoch >= self.cfg.epochs

    def _freeze_or_thaw(self) -> None:
        """The `frozen` parameters get no gradient, so Adam leaves them (and their moments) alone."""
        learn = self.epoch >= self.cfg.freeze_epochs
        if any(p.requires_grad != learn for p in self.frozen):
            self.steps.reset()  # a captured step holds the other set of gradients
        for p in self.frozen:
            p.requires_grad_(learn)

    def _shard(self, batch: Batch) -> Batch:
        """This rank's rows of a global batch (the whole batch in one process)."""
        if self.world == 1:
            return batch
        rows = distributed.shard(len(batch.x))
        return Batch(*(None if t is None else t[rows] for t in batch))

    def _check_shards(self, n: int) -> None:
        """Every rank needs at least one datapoint of every batch, the last one included."""
        bs, last = self.cfg.batch_size, n % self.cfg.batch_size
        if bs < self.world or 0 < last < self.world:
            raise AevbError(f"--batch-size {bs} (the global batch) over {self.world} processes leaves "
                            f"one without data in {'every' if bs < self.world else 'the last'} batch; "
                            f"choose a batch size of at least {self.world} whose remainder of {n} "
                            "training points is 0 or at least that")

    # -- faults, records, checkpoints -----------------------------------------------------------

    def _recover(self, fault: str) -> None:
        """Roll back to the last checkpoint with a lower learning rate, or stop with the fault."""
        if self.cfg.on_nan != "rollback" or self.last_good is None:
            raise self._diverged(fault)
        if len(self.rollbacks) >= faults.MAX_ROLLBACKS:
            raise self._diverged(f"{fault}, after {faults.MAX_ROLLBACKS} rollbacks")
        # only the learning rate changes; the step reads it through set_lr (in restore), and no
        # other field of the config it was built with
        self.cfg = dataclasses.replace(self.cfg, lr=self.cfg.lr * faults.ROLLBACK_LR)
        rollbacks = self.rollbacks + [{"fault": fault, "lr": self.cfg.lr}]
        tensors, meta = self.last_good
        self.model.load_state_dict(prefixed(tensors, "model"))
        self.restore(tensors, meta)  # sets every group's learning rate to the lowered cfg.lr
        self.rollbacks = rollbacks
        self.meta.setdefault("config", {}).setdefault("train", {})["lr"] = self.cfg.lr
        if self.writes:  # a resumed run goes on with the lowered learning rate
            self.run.write_config(self.meta["config"])
        if not self.quiet:
            tqdm.write(f"{fault}; rolled back to step {self.step} with learning rate {self.cfg.lr:g}")

    def _diverged(self, fault: str) -> AevbError:
        return faults.diverged(fault, self.cfg.lr, self.run is not None and self.run.has_checkpoint())

    def _record(self, complete: bool) -> dict:
        test = epoch_metrics(self.model, self.data, "test", self.cfg.eval_batch_size, self.cfg.seed,
                             self.cfg.eval_samples)
        elbo_sum, elbo_count = self.epoch_elbo()
        record = {
            "epoch": self.epoch if complete else self.epoch + self.batch_in_epoch / self.steps_per_epoch,
            "step": self.step,
            "train_elbo": elbo_sum / max(elbo_count, 1),
            **test,  # test_elbo, and whatever else the model reports (cluster accuracy ...)
            "seconds": round(self.seconds, 3),
        }
        if not complete:
            record["partial"] = True  # the run stopped mid-epoch (--max-steps)
        if self.scheduled:
            record["lr"] = self.learning_rate(self.step - 1)  # the rate of the epoch's last step
        return record

    def _log(self, record: dict) -> None:
        self.last_record = record
        if not self.quiet:
            extra = "".join(f"  {k[5:].replace('_', ' ')} {v:.3f}" for k, v in record.items()
                            if k.startswith("test_") and k != "test_elbo")
            tqdm.write(f"epoch {record['epoch']:.4g}  step {record['step']}  "
                       f"train {name(self.cfg.objective, self.cfg.train_samples)} "
                       f"{record['train_elbo']:.3f}  test ELBO {record['test_elbo']:.3f}"
                       f"{extra}  ({record['seconds']:.1f} s elapsed)")
        if self.writes:
            self.run.append_metrics(record)
            for observer in self.observers:
                observer.epoch(record, self.learning_rate(max(self.step - 1, 0)))

    def state(self) -> tuple[dict[str, torch.Tensor], dict]:
        """Everything a resumed run needs, as tensors plus JSON (sharing the trainer's tensors)."""
        tensors = {f"model/{k}": v for k, v in self.model.state_dict().items()}
        opt = self.steps.optimizer.state_dict()
        for i, s in opt["state"].items():
            tensors.update({f"optim/{i}/{k}": v for k, v in s.items()})
        # each rank's global stream: rank 0's under rng/torch, rank r's under rng/torch/r
        streams = {"rng/torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            streams["rng/cuda"] = torch.cuda.get_rng_state(self.device)
        for key, stream in streams.items():
            for r, s in enumerate(distributed.gather_states(stream)):
                tensors[key if r == 0 else f"{key}/{r}"] = s
        tensors["rng/data"] = self.gen.get_state()  # the same on every rank
        if self.order is not None:
            tensors["data/order"] = self.order
        elbo_sum, elbo_count = self.epoch_elbo()
        meta = {**self.meta, "step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                "world_size": self.world, "elbo_sum": elbo_sum, "elbo_count": elbo_count,
                "seconds": self.seconds, "metrics": self.metrics, "rollbacks": self.rollbacks,
                "optimizer_groups": [{**g, "lr": float(g["lr"])} for g in opt["param_groups"]]}
        return tensors, meta

    def save(self) -> None:
        """Checkpoint the run (and keep a copy for rollback); a model holding a NaN is never saved."""
        params = [p.detach() for p in self.model.parameters()]
        if not torch.stack(torch._foreach_norm(params)).isfinite().all():
            raise self._diverged(f"step {self.step}: a parameter is not finite")
        tensors, meta = self.state()
        if self.cfg.on_nan == "rollback":
            self.last_good = _snapshot(tensors, meta)
        if self.writes:
            self.run.save_checkpoint(tensors, meta)

    def restore(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        """Continue from a checkpoint written by `save` (the model's tensors are loaded already);
        the run's metrics drop the lines of a partial epoch that this run will finish."""
        states = {}
        for key, v in prefixed(tensors, "optim").items():
            i, name = key.split("/", 1)
            states.setdefault(int(i), {})[name] = v.to(self.device) if name != "step" else v
        # capturable is this device's choice, not the saved run's (a CPU run may resume on a GPU)
        capturable = self.steps.optimizer.defaults["capturable"]
        groups = [{**g, "capturable": capturable} for g in meta["optimizer_groups"]]
        self.steps.optimizer.load_state_dict({"state": states, "param_groups": groups})
        self.steps.set_lr(self.cfg.lr)  # a resumed run may not change the learning rate silently
        self.steps.reset()  # the optimizer's tensors are new
        suffix = "" if self.rank == 0 else f"/{self.rank}"
        if f"rng/torch{suffix}" in tensors:
            torch.set_rng_state(tensors[f"rng/torch{suffix}"])
        else:  # a run resumed on more processes than it had: this rank starts a fresh stream
            torch.manual_seed(distributed.rank_seed(self.cfg.seed) + meta["step"])
        if f"rng/cuda{suffix}" in tensors and self.device.type == "cuda":
            torch.cuda.set_rng_state(tensors[f"rng/cuda{suffix}"], self.device)
        self.gen.set_state(tensors["rng/data"])
        order = tensors.get("data/order")
        self.order = None if order is None else order.to(self.gen.device)
        self.step, self.epoch, self.batch_in_epoch = meta["step"], meta["epoch"], meta["batch_in_epoch"]
        # the epoch's running sums over every rank, held by rank 0 (the others count from zero)
        self.elbo_sum.fill_(meta["elbo_sum"] if self.rank == 0 else 0.0)
        self.elbo_count = meta["elbo_count"] if self.rank == 0 else 0
        self.seconds, self.metrics = meta["seconds"], list(meta["metrics"])
        self.rollbacks = list(meta.get("rollbacks", []))
        self.monitor.clear()
        if self.writes:
            self.run.write_metrics(self.metrics)

    def epoch_elbo(self) -> tuple[float, int]:
        """The summed training ELBO and the datapoint count of the epoch so far, over all ranks."""
        both = torch.stack([self.elbo_sum, torch.tensor(float(self.elbo_count), dtype=torch.float64,
                                                        device=self.device)])
        total, count = distributed.all_sum(both).tolist()
        return total, int(count)


def prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint under `prefix/` (model/, optim/ ...), with the prefix removed."""
    n = len(prefix) + 1
    return {k[n:]: v for k, v in tensors.items() if k.startswith(prefix + "/")}


def _snapshot(tensors: dict[str, torch.Tensor], meta: dict) -> tuple[dict, dict]:
    """A copy of a trainer's state that later steps cannot change (for rollback)."""
    return {k: v.detach().clone() for k, v in tensors.items()}, json.loads(json.dumps(meta))
