"""One Adam step on the negative ELBO of a batch, however it runs: eagerly or through
torch.compile, in fp32 or under bf16 autocast, replayed as a CUDA graph, or across torchrun's
processes with DistributedDataParallel. The trainer and the benchmarks see only `TrainStep`.

A step whose loss or gradient holds a NaN or inf changes nothing: fused Adam skips the whole update
when told to (`found_inf`), and the step returns its fault flags for `aevb.training.faults`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import torch
import torch._functorch.config  # AOTAutograd's options, patched around compiled steps

from aevb.config import TrainConfig
from aevb.objectives import bound
from aevb.runtime import compiling, distributed
from aevb.runtime.cuda_graphs import GraphedStep, unchecked
from aevb.runtime.devices import autocast
from aevb.training.faults import fault_flags


@dataclass(frozen=True)
class StepPlan:
    """How every training step of a run runs, decided once when the run starts (`plan`)."""

    fused_adam: bool  # one kernel for all parameters' updates, which can skip a faulty step whole
    capturable: bool  # Adam's step count on the device: what a CUDA graph needs
    ddp: bool  # gradients averaged across torchrun's processes by DistributedDataParallel
    compile_from: int | None  # the step from which steps run through torch.compile; None: never
    cuda_graphs: bool  # each step replayed as a CUDA graph (recaptured when its path changes)


def plan(model: torch.nn.Module, cfg: TrainConfig, planned_steps: int, steps_per_epoch: int) -> StepPlan:
    """Every decision about how a run's steps run, in one place; nothing else chooses a path.

        plan(model, TrainConfig(), planned_steps=3000, steps_per_epoch=600)  # compiles from step 0 on a CPU
    """
    device = next(model.parameters()).device
    world = distributed.world()
    compile_from = compiling.compile_from(cfg, model.compilable, device, planned_steps, steps_per_epoch)
    graphs = cfg.cuda_graphs if cfg.cuda_graphs is not None else (device.type == "cuda" and world == 1)
    return StepPlan(fused_adam=device.type in ("cpu", "cuda"), capturable=device.type == "cuda",
                    ddp=world > 1, compile_from=compile_from, cuda_graphs=graphs)


class TrainStep:
    """Adam on -mean ELBO of one batch per call: `step(x, c, n)` returns the batch's summed ELBO and
    its fault flags (1 + P,), both on the device, with no host synchronisation.

        step = TrainStep(model, TrainConfig(lr=1e-3), planned_steps=1000, steps_per_epoch=100)
        total, flags = step(x, c, n=0)          # n: the run's gradient steps taken so far
    """

    def __init__(self, model: torch.nn.Module, cfg: TrainConfig, planned_steps: int, steps_per_epoch: int):
        self.model, self.cfg = model, cfg
        self.plan = p = plan(model, cfg, planned_steps, steps_per_epoch)
        self.device = device = next(model.parameters()).device
        self.optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, fused=p.fused_adam,
                                          capturable=p.capturable)
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.names, self.params = [n for n, _ in named], [p for _, p in named]  # the flags' order
        self.no_grad = torch.zeros((), device=device)  # stands in for a parameter without a gradient
        self.autocast = autocast(device, cfg.precision)
        self.world = distributed.world()
        self.batch_elbo = self.elbo
        if p.ddp:  # DDP averages the gradients in the backward of a module's forward
            self.batch_elbo = torch.nn.parallel.DistributedDataParallel(_BatchElbo(model, self.elbo))
        self.compile_from = p.compile_from
        # dynamic=False: each batch shape (an epoch's last, smaller batch) gets a graph of its own,
        # and a trainer's compile does not depend on another's in the same process
        options = compiling.cpu_options() if self.compile_from is not None and device.type == "cpu" else None
        self.compiled = (torch.compile(self.batch_elbo, options=options, dynamic=False)
                         if self.compile_from is not None else None)
        self.aot_options = compiling.partition_options(device)
        self.compiling = False  # whether steps now run `compiled` (from step compile_from on)
        self.warmed_up = False  # whether this process has run a forward pass of the model
        # every step after the first two replays a CUDA graph of itself
        self.graphed = GraphedStep(self._device_step) if p.cuda_graphs else None
        self.set_lr(cfg.lr)
        # --kl-warmup: the KL term's weight, a device tensor filled in place (no recompiles)
        self.warmup_steps = cfg.kl_warmup * steps_per_epoch
        self.beta = torch.ones((), device=device) if self.warmup_steps else None

    def elbo(self, x: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        """The training objective of each datapoint, (B,): the ELBO, or IWAE_K with `--objective
        iwae`; run it under `self.autocast`."""
        return bound(self.model.terms(x, c, self.cfg.train_samples), self.cfg.objective, self.beta)

    def __call__(self, x: torch.Tensor, c: torch.Tensor | None, n: int,
                 global_batch: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Step number n + 1 (n: steps taken before it); under torchrun x is this rank's shard of a
        batch of `global_batch` rows. Returns (summed ELBO of the batch, fault flags)."""
        self.model.train()
        if self.beta is not None and n <= self.warmup_steps:  # 0 at the first step, 1 from the warm-up's end
            self.beta.fill_(min(1.0, n / self.warmup_steps))
        if not self.compiling and self.compile_from is not None and n >= self.compile_from:
            self.compiling = True
            self.reset()  # a captured graph holds the eager step: capture the compiled one
        # a graphed step runs no Python when replayed, so every step of it goes without the checks
        with unchecked() if self.graphed else nullcontext():
            if self.compiling and not self.warmed_up:
                # One eager forward fills torch.distributions' cache of KL formulas, whose lookup
                # dynamo cannot trace; under fork_rng, so a resumed run draws what an unbroken one does.
                devices = [self.device] if self.device.type == "cuda" else []
                with torch.no_grad(), torch.random.fork_rng(devices=devices), self.autocast:
                    self.elbo(x, c)
            self.warmed_up = True
            if self.graphed is not None:
                return self.graphed(x, c)
            return self._device_step(x, c, global_batch)

    def _device_step(self, x: torch.Tensor, c: torch.Tensor | None,
                     global_batch: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The step's work on the device, which a CUDA graph can capture."""
        global_batch = global_batch or len(x)
        forward = self.compiled if self.compiling else self.batch_elbo
        # autocast is entered outside the compiled function, where AOTAutograd's cache accepts it
        aot = (torch._functorch.config.patch(self.aot_options) if self.compiling and self.aot_options
               else nullcontext())
        with self.autocast, aot:
            batch_elbo = forward(x, c)  # (B,) this rank's shard
        # each rank weighs its mean by its share of the global batch: DDP's average is then the
        # gradient of the global batch's mean (a factor of 1 on one process)
        loss = -batch_elbo.mean() * (len(x) * self.world / global_batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grads = [self.no_grad if p.grad is None else p.grad for p in self.params]
        flags = fault_flags(loss, grads, self.cfg.clip_grad)  # (1 + P,) on the device: no sync
        if self.plan.fused_adam:
            self.optimizer.found_inf = flags.any().float()  # 1 skips the whole update (GradScaler's hook)
            self.optimizer.step()
        elif not flags.any():  # MPS's Adam is not fused: this reads the flag on the host
            self.optimizer.step()
        return batch_elbo.detach().sum(), flags

    def set_lr(self, lr: float) -> None:
        """Set Adam's learning rate: a float, or under CUDA graphs a device tensor filled in place."""
        for group in self.optimizer.param_groups:
            if self.graphed is None:
                group["lr"] = lr
            elif isinstance(group["lr"], torch.Tensor):
                group["lr"].fill_(lr)
            else:
                group["lr"] = torch.tensor(lr, device=self.device)

    def reset(self) -> None:
        """Capture the step afresh at its next call: the tensors it reads were replaced (a restored
        optimizer) or it takes another path (compiled now, parameters frozen or thawed)."""
        if self.graphed is not None:
            self.graphed.reset()

    @contextmanager
    def eager(self) -> Iterator[None]:
        """Run the steps inside eagerly, uncompiled and uncaptured (e.g. to count their FLOPs), and
        leave compiling to start at the next step after the block."""
        kept = self.compile_from, self.compiling, self.graphed
        self.compile_from, self.compiling, self.graphed = None, False, None
        try:
            yield
        finally:
            self.compile_from, self.compiling, self.graphed = kept


class _BatchElbo(torch.nn.Module):
    """The training ELBO per datapoint as a module's forward, for DistributedDataParallel."""

    def __init__(self, model: torch.nn.Module, fn):
        super().__init__()
        self.model = model  # registered, so DDP finds the parameters
        self.fn = fn

    def forward(self, x: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        return self.fn(x, c)
