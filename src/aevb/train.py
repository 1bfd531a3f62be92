"""The training loop: maximise the ELBO of any LatentModel with Adam.

Nothing here knows which model it trains: it asks the model for `terms`, reduces them with
`objectives.elbo`, and evaluates, logs and checkpoints once per epoch. Every random stream (the
global one for initialisation, posterior draws and dropout; a data generator for shuffling and
preprocessing noise) is saved in the checkpoint, so a resumed run ends exactly where an
uninterrupted one does.

Faults never reach a checkpoint. A step whose loss or gradient holds a NaN or inf changes nothing
(fused Adam skips it) and is reported by step and tensor: the run stops, or with `on_nan =
"rollback"` returns to its last checkpoint with half the learning rate. Ctrl-C or SIGTERM finishes
the current step, saves a checkpoint and raises `Interrupted`.

Under torchrun (`aevb.distributed`) each rank trains on its shard of every global batch through
DistributedDataParallel; the ranks agree on faults and signals, and only rank 0 writes.
"""

from __future__ import annotations

import json
import math
import re
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch
import torch._functorch.config  # AOTAutograd's options (compiling.CPU_PARTITION_OPTIONS ...)
from tqdm.auto import tqdm

from aevb import atomic, checkpoints, compiling, distributed
from aevb.compiling import compile_from
from aevb.config import TrainConfig
from aevb.cuda_graphs import GraphedStep, unchecked
from aevb.data import Data
from aevb.devices import autocast
from aevb.errors import AevbError, Interrupted
from aevb.evaluate import epoch_metrics
from aevb.models.base import LatentModel
from aevb.objectives import elbo
from aevb.process import flush_denormals  # noqa: F401 (documented here before aevb.process)

# `on_nan = "rollback"`: each fault multiplies the learning rate by ROLLBACK_LR; a run stops after
# MAX_ROLLBACKS of them, since then the problem is not the step size.
ROLLBACK_LR = 0.5
MAX_ROLLBACKS = 5


def frozen_parameters(model: torch.nn.Module, names: str) -> list[torch.nn.Parameter]:
    """The parameters of the modules named in `names` ("qy,pz_y"); an unknown name is an error."""
    params = []
    for name in filter(None, (n.strip() for n in names.split(","))):
        try:
            params += list(model.get_submodule(name).parameters())
        except AttributeError:
            tops = ", ".join(n for n, _ in model.named_children())
            raise AevbError(f"--freeze {name!r}: {type(model).__name__} has no module of that name; "
                            f"its modules are {tops}") from None
    return params


def check_options(cfg: TrainConfig, model_cls, device: torch.device) -> None:
    """Refuse a precision or compile setting this model or device cannot take (before any file
    is written)."""
    autocast(device, cfg.precision)
    if cfg.compile and not model_cls.compilable:
        raise AevbError(f"{model_cls.name} cannot be compiled with torch.compile; drop --compile")
    if cfg.cuda_graphs and device.type != "cuda":
        raise AevbError(f"--cuda-graphs needs a CUDA device, not {device.type}; drop it or use --device cuda")
    if cfg.cuda_graphs and distributed.world() > 1:
        raise AevbError("--cuda-graphs does not work across processes (torchrun); drop it")


class Trainer:
    """Adam on the negative ELBO, with per-epoch evaluation, metrics.jsonl and checkpoints."""

    def __init__(self, model: LatentModel, data: Data, cfg: TrainConfig,
                 run_dir: Path | None = None, meta: dict | None = None, quiet: bool = False):
        self.model, self.data, self.cfg = model, data, cfg
        self.run_dir, self.meta, self.quiet = run_dir, meta or {}, quiet
        self.device = next(model.parameters()).device
        # fused: one kernel for every parameter's update instead of a dozen ops per tensor; it also
        # skips a whole update on request (`found_inf`), which is how a faulty step changes nothing
        self.fused = self.device.type in ("cpu", "cuda")
        # capturable: Adam's step count stays on the device, so a CUDA graph can replay the update
        self.opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, fused=self.fused,
                                    capturable=self.device.type == "cuda")
        self.named_params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.frozen = frozen_parameters(model, cfg.freeze)  # held fixed for cfg.freeze_epochs
        self.no_grad = torch.zeros((), device=self.device)  # stands in for a parameter without one
        self.rng_devices = [self.device] if self.device.type == "cuda" else []  # for fork_rng
        check_options(cfg, type(model), self.device)
        self.autocast = autocast(self.device, cfg.precision)
        self.world, self.rank = distributed.world(), distributed.rank()
        self.quiet = quiet or self.rank > 0  # one progress bar, rank 0's
        self.batch_elbo = self._batch_elbo
        if self.world > 1:
            self._check_shards(len(data.train))
            # an invalid distribution parameter on one rank must not stop it alone (the others would
            # wait for it forever): unchecked, it makes a NaN loss that every rank agrees on
            torch.distributions.Distribution.set_default_validate_args(False)
            # DDP hooks the backward pass to average the gradients over the ranks; it must see the
            # forward, so the ELBO is computed by calling a module that wraps the model
            self.batch_elbo = torch.nn.parallel.DistributedDataParallel(_BatchElbo(self))
            if self.rank > 0:  # its own posterior draws and dropout (rank 0 goes on as one process)
                torch.manual_seed(distributed.rank_seed(cfg.seed))
        self.compile_from = compile_from(cfg, model.compilable, self.device, self.planned_steps,
                                         self.steps_per_epoch)
        options = ({**compiling.CPU_COMPILE_OPTIONS, **compiling.isa_options()}
                   if self.compile_from is not None and self.device.type == "cpu" else None)
        # dynamic=False: each batch shape (an epoch's last, smaller batch) gets a graph of its own.
        # By default dynamo recompiles a second shape with a symbolic batch size, and remembers
        # that per function, so a model compiled later in the same process (the benchmarks build
        # several trainers) would start symbolic. On the VRNN the two ran at the same speed
        # (518 against 502 img/s); static graphs make each trainer's compile independent of others.
        self.compiler = (torch.compile(self.batch_elbo, options=options, dynamic=False)
                         if self.compile_from is not None else None)
        # what the steps run: self.compiler from step self.compile_from on (train_step), else None
        self.compiled = self.compiler if self.compile_from == 0 else None
        # AOTAutograd's options around compiled steps: its cache, and on the CPU how it partitions
        self.partition_options = {**compiling.AOT_CACHE_OPTIONS, **(
            compiling.CPU_PARTITION_OPTIONS if self.device.type == "cpu" else {})}
        # On a GPU in one process, each step after the first two replays a CUDA graph of itself
        # (aevb.cuda_graphs); its learning rate then lives on the device, where a replay reads it.
        graphs = cfg.cuda_graphs if cfg.cuda_graphs is not None else (
            self.device.type == "cuda" and self.world == 1)
        self.graphed = GraphedStep(self._step) if graphs else None
        self._set_lr(cfg.lr)
        self.warmed_up = False  # whether this process has run its first, eager, step
        self.gen = torch.Generator(device=data.train.x.device).manual_seed(cfg.seed)
        self.step = 0  # gradient steps taken
        self.epoch = 0  # epochs completed
        self.batch_in_epoch = 0  # batches of the current epoch already taken
        self.order: torch.Tensor | None = None  # the current epoch's permutation of the train set
        self.elbo_sum = torch.zeros((), dtype=torch.float64, device=self.device)  # this epoch's
        self.elbo_count = 0
        self.seconds = 0.0  # training wall time, summed over resumptions
        self.metrics: list[dict] = []  # one record per completed epoch
        # Each step's finite flags wait here until the host reads them: every step on the CPU,
        # where reading is free, and every 20 on an accelerator, where it waits for the device.
        self.unchecked: list[tuple[int, torch.Tensor]] = []  # (step, flags from _faults)
        self.check_every = 1 if self.device.type == "cpu" else 20
        self.rollbacks: list[dict] = []  # faults that on_nan = "rollback" recovered from
        self.last_good: tuple[dict, dict] | None = None  # a copy of the last checkpoint, for rollback
        self.signal: int | None = None  # SIGINT or SIGTERM, once received
        self.stopping = False  # whether to save and stop: under torchrun, once every rank agrees

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.data.train) / self.cfg.batch_size)

    @property
    def planned_steps(self) -> int:
        steps = self.cfg.epochs * self.steps_per_epoch
        return steps if self.cfg.max_steps is None else min(steps, self.cfg.max_steps)

    def learning_rate(self, step: int) -> float:
        """Adam's rate for gradient step `step` (0-based): cfg.lr, or with lr_decay_from set, cfg.lr
        until that epoch and then a half cosine down to 0 at the last planned step. A function of
        the step alone, so a resumed run follows the same schedule."""
        if self.cfg.lr_decay_from is None:
            return self.cfg.lr
        start = self.cfg.lr_decay_from * self.steps_per_epoch
        span = max(1, self.planned_steps - start)
        done = min(max(step - start, 0), span) / span
        return self.cfg.lr * 0.5 * (1 + math.cos(math.pi * done))

    def _batch_elbo(self, x: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        """The training ELBO of each datapoint, (B,); run it under `self.autocast`."""
        return elbo(self.model.terms(x, c, self.cfg.train_samples))

    def _check_shards(self, n: int) -> None:
        """Every rank needs at least one datapoint of every batch, the last one included."""
        bs, last = self.cfg.batch_size, n % self.cfg.batch_size
        if bs < self.world or 0 < last < self.world:
            raise AevbError(f"--batch-size {bs} (the global batch) over {self.world} processes leaves "
                            f"one without data in {'every' if bs < self.world else 'the last'} batch; "
                            f"choose a batch size of at least {self.world} whose remainder of {n} "
                            "training points is 0 or at least that")

    def train_step(self, x: torch.Tensor, c: torch.Tensor | None = None,
                   global_batch: int | None = None) -> torch.Tensor:
        """One Adam step on -mean ELBO of a batch; returns the batch's summed ELBO (no sync).
        Under torchrun, `x` is this rank's shard of a batch of `global_batch` rows.

        A NaN or inf in the loss or a gradient makes the step change nothing; `check_faults`
        reports it.
        """
        self.model.train()
        if self.cfg.lr_decay_from is not None:
            self._set_lr(self.learning_rate(self.step))
        if self.compiled is None and self.compile_from is not None and self.step >= self.compile_from:
            self.compiled = self.compiler
            if self.graphed is not None:
                self.graphed.reset()  # the graph holds the eager step: capture the compiled one
        # a graphed step runs no Python when replayed, so every step of it goes without the checks
        with unchecked() if self.graphed else nullcontext():
            if self.compiled is not None and not self.warmed_up:
                # One eager forward fills torch.distributions' cache of KL formulas, whose lookup
                # dynamo cannot trace (it would split the graph in three). It draws under fork_rng,
                # so a resumed run draws exactly what an uninterrupted one does.
                with torch.no_grad(), torch.random.fork_rng(devices=self.rng_devices), self.autocast:
                    self._batch_elbo(x, c)
            self.warmed_up = True
            if self.graphed is not None:
                total, bad = self.graphed(x, c)
            else:
                total, bad = self._step(x, c, global_batch)
        self.unchecked.append((self.step + 1, bad))
        return total

    def _step(self, x: torch.Tensor, c: torch.Tensor | None,
              global_batch: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The device's part of `train_step`, which a CUDA graph can capture: returns the batch's
        summed ELBO and the fault flags of `_faults`."""
        global_batch = global_batch or len(x)
        step_fn = self.batch_elbo if self.compiled is None else self.compiled
        # Autocast is entered here, outside the compiled function: entered inside it, AOTAutograd's
        # cache refuses the graph, and every new process traces the joint graph again (10 s of
        # the VRNN's 22 s of compilation with a warm cache).
        partition = (torch._functorch.config.patch(self.partition_options)
                     if self.compiled is not None and self.partition_options else nullcontext())
        with self.autocast, partition:
            batch_elbo = step_fn(x, c)  # (B,) this rank's shard
        # DDP averages the ranks' gradients, so each rank weighs its mean by its share of the
        # global batch: the result is the gradient of the global batch's mean (a factor of 1 on
        # one process)
        loss = -batch_elbo.mean() * (len(x) * self.world / global_batch)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        bad = self._faults(loss)  # (1 + P,) on the device: no sync
        if self.fused:
            self.opt.found_inf = bad.any().float()  # 1 skips the whole update (GradScaler's hook)
            self.opt.step()
        elif not bad.any():  # MPS's Adam is not fused: this reads the flag on the host
            self.opt.step()
        return batch_elbo.detach().sum(), bad

    def _set_lr(self, lr: float) -> None:
        """Set Adam's learning rate: a float, or under CUDA graphs a device tensor filled in place."""
        for group in self.opt.param_groups:
            if self.graphed is None:
                group["lr"] = lr
            elif isinstance(group["lr"], torch.Tensor):
                group["lr"].fill_(lr)
            else:
                group["lr"] = torch.tensor(lr, device=self.device)

    def _faults(self, loss: torch.Tensor) -> torch.Tensor:
        """(1 + P,) flags: the loss, then each parameter's gradient, holds a NaN or inf. Clips the
        gradient to an L2 norm of `clip_grad` when asked.

        The per-tensor norms cost about 2% of a VAE step; GradScaler's in-place check of the same
        gradients measured 8%, since it writes them back."""
        grads = [self.no_grad if p.grad is None else p.grad for _, p in self.named_params]
        norms = torch.stack(torch._foreach_norm(grads))  # (P,) L2 norm of each gradient
        if self.cfg.clip_grad is not None:  # torch.nn.utils.clip_grad_norm_, reusing the norms
            scale = self.cfg.clip_grad / (torch.linalg.vector_norm(norms) + 1e-6)
            torch._foreach_mul_(grads, scale.clamp(max=1.0))
        return torch.cat([loss.detach().view(1), norms]).isfinite().logical_not()

    def check_faults(self, now: bool = False) -> str | None:
        """The first fault among the steps not yet checked ("step 12: the gradient of W is not
        finite"), or None; reads the flags on the host every `check_every` steps, or `now`."""
        if self.world == 1:
            self.stopping = self.signal is not None
        if not self.unchecked or (len(self.unchecked) < self.check_every and not now):
            return None
        steps, self.unchecked = self.unchecked, []
        bad = torch.stack([flags.any() for _, flags in steps])  # (S,)
        if self.world > 1:  # one collective: a fault, or a signal, on any rank stops every rank
            signalled = torch.tensor([self.signal is not None], device=bad.device)
            *bad, self.stopping = distributed.any_rank(torch.cat([bad, signalled]))
            if self.stopping and self.signal is None:
                self.signal = signal.SIGTERM  # another rank was told to stop
        else:
            bad = bad.tolist()  # one sync
        if not any(bad):
            return None
        step, flags = steps[bad.index(True)]
        if not flags.any():
            return f"step {step}: a fault on another process"
        first = flags.tolist().index(True)
        what = "the loss" if first == 0 else f"the gradient of {self.named_params[first - 1][0]}"
        return f"step {step}: {what} is not finite"

    def _done(self) -> bool:
        over_steps = self.cfg.max_steps is not None and self.step >= self.cfg.max_steps
        return over_steps or self.epoch >= self.cfg.epochs

    def fit(self) -> list[dict]:
        """Train until `epochs` or `max_steps`; returns the metrics of every completed epoch."""
        if self.cfg.on_nan == "rollback":
            self.last_good = self._snapshot()
        with self._catch_signals():
            while not self._done():
                self._run_epoch()
        return self.metrics

    def _run_epoch(self) -> None:
        """Take the rest of the current epoch's batches, then log and checkpoint; returns early
        after a rollback or a signal."""
        n, bs = len(self.data.train), self.cfg.batch_size
        for p in self.frozen:  # no gradient, so Adam leaves them (and their moments) alone
            if p.requires_grad != (self.epoch >= self.cfg.freeze_epochs) and self.graphed is not None:
                self.graphed.reset()  # the graph was captured with the other set of gradients
            p.requires_grad_(self.epoch >= self.cfg.freeze_epochs)
        if self.order is None:
            self.order = torch.randperm(n, generator=self.gen, device=self.gen.device)
        bar = tqdm(total=n, initial=min(n, self.batch_in_epoch * bs), unit="img",
                   desc=f"epoch {self.epoch + 1}/{self.cfg.epochs}", leave=False,
                   disable=True if self.quiet else None, dynamic_ncols=True)
        start = time.perf_counter()
        fault = None
        for batch in self.data.batches(self.data.train, bs, self.gen, self.order,
                                       start=self.batch_in_epoch):
            size = len(batch.x)  # the global batch; under torchrun this rank trains on its shard
            if self.world > 1:
                batch = type(batch)(*(None if t is None else t[distributed.shard(size)] for t in batch))
            try:
                self.elbo_sum += self.train_step(batch.x, self.model.condition(batch), size)
            except ValueError as e:  # torch.distributions refuses NaN or degenerate parameters
                found = re.search(r"parameter (\w+) .* of distribution (\w+)", str(e))
                why = f"{found[2]} got an invalid {found[1]}" if found else str(e).splitlines()[0]
                fault = f"step {self.step + 1}: {why}"
                break
            self.elbo_count += len(batch.x)
            self.step += 1
            self.batch_in_epoch += 1
            bar.update(size)
            fault = self.check_faults()
            if fault or self.stopping:
                break
            if self.batch_in_epoch % 20 == 0 and not bar.disable:  # this rank's running ELBO
                bar.set_postfix(elbo=f"{self.elbo_sum.item() / self.elbo_count:.2f}")
            if self.cfg.max_steps is not None and self.step >= self.cfg.max_steps:
                break
        bar.close()
        self.seconds += time.perf_counter() - start
        fault = fault or self.check_faults(now=True)
        if fault:
            return self._recover(fault)
        if self.stopping:
            self.save()  # mid-epoch: the position, the epoch's running ELBO and every RNG are saved
            raise self._interrupted()
        complete = self.batch_in_epoch == self.steps_per_epoch
        if complete:
            self.epoch += 1
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

    def _recover(self, fault: str) -> None:
        """Roll back to the last checkpoint with a lower learning rate, or stop with the fault."""
        if self.cfg.on_nan != "rollback" or self.last_good is None:
            raise self._diverged(fault)
        if len(self.rollbacks) >= MAX_ROLLBACKS:
            raise self._diverged(f"{fault}, after {MAX_ROLLBACKS} rollbacks")
        rollbacks = self.rollbacks + [{"fault": fault, "lr": self.cfg.lr * ROLLBACK_LR}]
        self.cfg.lr *= ROLLBACK_LR
        tensors, meta = self.last_good
        self.model.load_state_dict(checkpoints.prefixed(tensors, "model"))
        self.restore(tensors, meta)  # sets every group's learning rate to the lowered cfg.lr
        self.rollbacks = rollbacks
        self.meta.setdefault("config", {}).setdefault("train", {})["lr"] = self.cfg.lr
        if self.writes:  # a resumed run goes on with the lowered learning rate
            atomic.write_text(self.run_dir / "config.json", json.dumps(self.meta["config"], indent=2) + "\n")
        if not self.quiet:
            tqdm.write(f"{fault}; rolled back to step {self.step} with learning rate {self.cfg.lr:g}")

    def _diverged(self, fault: str) -> AevbError:
        kept = self.run_dir is not None and (self.run_dir / checkpoints.CHECKPOINT).exists()
        saved = "; the last good checkpoint is kept" if kept else ""
        return AevbError(f"training diverged at {fault}{saved}; lower --lr (now {self.cfg.lr:g}), "
                         "pass --clip-grad or --on-nan rollback, or check the data for outliers")

    def _interrupted(self) -> Interrupted:
        stopped = f"{signal.Signals(self.signal).name}: training stopped at step {self.step}"
        if self.run_dir is None:
            return Interrupted(stopped)
        return Interrupted(f"{stopped} and saved",
                           f"aevb train {self.meta.get('model', 'MODEL')} --resume --out {self.run_dir}")

    @contextmanager
    def _catch_signals(self) -> Iterator[None]:
        """The first SIGINT or SIGTERM asks the loop to save and stop after the current step; a
        second SIGINT stops at once (the last checkpoint on disk is still whole)."""
        if threading.current_thread() is not threading.main_thread():
            yield  # signal handlers can only be set from the main thread
            return

        def handler(signum, frame):
            if self.signal is not None and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self.signal = signum

        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)

    def _record(self, complete: bool) -> dict:
        test = epoch_metrics(self.model, self.data, "test", self.cfg.eval_batch_size, self.cfg.seed,
                             self.cfg.eval_samples)
        elbo_sum, elbo_count = self._epoch_elbo()
        record = {
            "epoch": self.epoch if complete else self.epoch + self.batch_in_epoch / self.steps_per_epoch,
            "step": self.step,
            "train_elbo": elbo_sum / max(elbo_count, 1),
            **test,  # test_elbo, and whatever else the model reports (cluster accuracy ...)
            "seconds": round(self.seconds, 3),
        }
        if not complete:
            record["partial"] = True  # the run stopped mid-epoch (--max-steps)
        if self.cfg.lr_decay_from is not None:
            record["lr"] = self.learning_rate(self.step - 1)  # the rate of the epoch's last step
        return record

    def _log(self, record: dict) -> None:
        if not self.quiet:
            extra = "".join(f"  {k[5:].replace('_', ' ')} {v:.3f}" for k, v in record.items()
                            if k.startswith("test_") and k != "test_elbo")
            tqdm.write(f"epoch {record['epoch']:g}  step {record['step']}  "
                       f"train ELBO {record['train_elbo']:.3f}  test ELBO {record['test_elbo']:.3f}"
                       f"{extra}  ({record['seconds']:.1f}s)")
        if self.writes:
            with open(self.run_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")

    # -- checkpoints ----------------------------------------------------------------------------

    def state(self) -> tuple[dict[str, torch.Tensor], dict]:
        """Everything a resumed run needs, as tensors plus JSON."""
        tensors = {f"model/{k}": v for k, v in self.model.state_dict().items()}
        opt = self.opt.state_dict()
        for i, s in opt["state"].items():
            tensors.update({f"optim/{i}/{k}": v for k, v in s.items()})
        # each rank's global stream (posterior draws, dropout): rank 0's under rng/torch, rank r's
        # under rng/torch/r; the data generator is the same on every rank
        streams = {"rng/torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            streams["rng/cuda"] = torch.cuda.get_rng_state(self.device)
        for key, state in streams.items():
            for r, s in enumerate(distributed.gather_states(state)):
                tensors[key if r == 0 else f"{key}/{r}"] = s
        tensors["rng/data"] = self.gen.get_state()
        if self.order is not None:
            tensors["data/order"] = self.order
        elbo_sum, elbo_count = self._epoch_elbo()
        meta = {
            **self.meta,
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "world_size": self.world,
            "elbo_sum": elbo_sum,
            "elbo_count": elbo_count,
            "seconds": self.seconds,
            "metrics": self.metrics,
            "rollbacks": self.rollbacks,
            "optimizer_groups": [{**g, "lr": float(g["lr"])} for g in opt["param_groups"]],
        }
        return tensors, meta

    def save(self) -> None:
        """Checkpoint the run (and keep a copy for rollback); a model holding a NaN is never saved."""
        params = [p.detach() for p in self.model.parameters()]
        if not torch.stack(torch._foreach_norm(params)).isfinite().all():
            raise self._diverged(f"step {self.step}: a parameter is not finite")
        tensors, meta = self.state()
        if self.cfg.on_nan == "rollback":
            self.last_good = self._snapshot(tensors, meta)
        if self.writes:
            checkpoints.save(self.run_dir / checkpoints.CHECKPOINT, tensors, meta)

    @property
    def writes(self) -> bool:
        """Whether this process writes the run's files: it has a run directory and is rank 0."""
        return self.run_dir is not None and self.rank == 0

    def _epoch_elbo(self) -> tuple[float, int]:
        """The summed training ELBO and the datapoint count of the epoch so far, over all ranks."""
        both = torch.stack([self.elbo_sum, torch.tensor(float(self.elbo_count), dtype=torch.float64,
                                                        device=self.device)])
        total, count = distributed.all_sum(both).tolist()
        return total, int(count)

    def _snapshot(self, tensors: dict | None = None, meta: dict | None = None) -> tuple[dict, dict]:
        """A copy of the state that later steps cannot change (state() shares the live tensors)."""
        if tensors is None:
            tensors, meta = self.state()
        return {k: v.detach().clone() for k, v in tensors.items()}, json.loads(json.dumps(meta))

    def restore(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        """Continue from a checkpoint written by `save` (the model's tensors are loaded already)."""
        states = {}
        for key, v in checkpoints.prefixed(tensors, "optim").items():
            i, name = key.split("/", 1)
            states.setdefault(int(i), {})[name] = v.to(self.device) if name != "step" else v
        # capturable is this device's choice, not the saved run's (a CPU run may resume on a GPU)
        groups = [{**g, "capturable": self.opt.defaults["capturable"]} for g in meta["optimizer_groups"]]
        self.opt.load_state_dict({"state": states, "param_groups": groups})
        self._set_lr(self.cfg.lr)  # a resumed run may not change the learning rate silently
        if self.graphed is not None:  # the optimizer's tensors are new: capture again
            self.graphed.reset()
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
        self.step, self.epoch = meta["step"], meta["epoch"]
        self.batch_in_epoch = meta["batch_in_epoch"]
        # the epoch's running sums over every rank, held by rank 0 (the others count from zero)
        self.elbo_sum.fill_(meta["elbo_sum"] if self.rank == 0 else 0.0)
        self.elbo_count = meta["elbo_count"] if self.rank == 0 else 0
        self.seconds, self.metrics = meta["seconds"], list(meta["metrics"])
        self.rollbacks = list(meta.get("rollbacks", []))
        self.unchecked = []
        if self.writes:  # drop lines of a partial epoch that this run will finish
            lines = "".join(json.dumps(m) + "\n" for m in self.metrics)
            atomic.write_text(self.run_dir / "metrics.jsonl", lines)


class _BatchElbo(torch.nn.Module):
    """The training ELBO per datapoint as a module's forward, for DistributedDataParallel."""

    def __init__(self, trainer: Trainer):
        super().__init__()
        self.model = trainer.model  # registered, so DDP finds the parameters
        self.fn = trainer._batch_elbo

    def forward(self, x: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        return self.fn(x, c)
