"""What stops a run, and how it is reported: a NaN or inf in a step's loss or gradients, an invalid
distribution parameter, SIGINT or SIGTERM. Faults never reach a checkpoint: a faulty step changes
nothing, and the run stops or, with `on_nan = "rollback"`, returns to its last checkpoint with a
lower learning rate.
"""

from __future__ import annotations

import re
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from aevb.errors import AevbError, Interrupted
from aevb.runtime import distributed

# `on_nan = "rollback"`: each fault multiplies the learning rate by ROLLBACK_LR; a run stops after
# MAX_ROLLBACKS of them, since then the problem is not the step size.
ROLLBACK_LR = 0.5
MAX_ROLLBACKS = 5


def fault_flags(loss: torch.Tensor, grads: list[torch.Tensor], clip_grad: float | None) -> torch.Tensor:
    """(1 + P,) flags on the device: the loss, then each gradient, holds a NaN or inf. Clips the
    gradients to an L2 norm of `clip_grad` when asked, reusing the per-tensor norms (cheaper than
    GradScaler's in-place check: docs: Results, Speed, "Fault flags")."""
    norms = torch.stack(torch._foreach_norm(grads))  # (P,) L2 norm of each gradient
    if clip_grad is not None:  # torch.nn.utils.clip_grad_norm_, reusing the norms
        scale = clip_grad / (torch.linalg.vector_norm(norms) + 1e-6)
        torch._foreach_mul_(grads, scale.clamp(max=1.0))
    return torch.cat([loss.detach().view(1), norms]).isfinite().logical_not()


def invalid_parameter(error: ValueError, step: int) -> str:
    """A fault from torch.distributions' refusal of a NaN or degenerate parameter."""
    found = re.search(r"parameter (\w+) .* of distribution (\w+)", str(error))
    why = f"{found[2]} got an invalid {found[1]}" if found else str(error).splitlines()[0]
    return f"step {step}: {why}"


def diverged(fault: str, lr: float, kept: bool) -> AevbError:
    """The error that ends a run at a fault, with what to change."""
    saved = "; the last good checkpoint is kept" if kept else ""
    return AevbError(f"training diverged at {fault}{saved}; lower --lr (now {lr:g}), "
                     "pass --clip-grad or --on-nan rollback, or check the data for outliers")


class Monitor:
    """Reads the fault flags of the steps not yet checked, and watches for SIGINT and SIGTERM.

    The host reads the flags every `check_every` steps (every step on a CPU, where reading is free;
    every 20 on an accelerator, where it waits for the device). Under torchrun one collective per
    check agrees on faults and signals, so every rank stops together.
    """

    def __init__(self, names: list[str], check_every: int):
        self.names, self.check_every = names, check_every  # the parameters, in the flags' order
        self.unchecked: list[tuple[int, torch.Tensor]] = []  # (step, flags of fault_flags)
        self.signal: int | None = None  # SIGINT or SIGTERM, once received
        self.stopping = False  # whether to save and stop: under torchrun, once every rank agrees

    def add(self, step: int, flags: torch.Tensor) -> None:
        self.unchecked.append((step, flags))

    def clear(self) -> None:
        self.unchecked = []

    def check(self, now: bool = False) -> str | None:
        """The first fault among the steps not yet checked ("step 12: the gradient of W is not
        finite"), or None; also decides `stopping`."""
        world = distributed.world()
        if world == 1:
            self.stopping = self.signal is not None
        if not self.unchecked or (len(self.unchecked) < self.check_every and not now):
            return None
        steps, self.unchecked = self.unchecked, []
        bad = torch.stack([flags.any() for _, flags in steps])  # (S,)
        if world > 1:  # one collective: a fault, or a signal, on any rank stops every rank
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
        what = "the loss" if first == 0 else f"the gradient of {self.names[first - 1]}"
        return f"step {step}: {what} is not finite"

    def interrupted(self, step: int, saved: bool) -> Interrupted:
        stopped = f"{signal.Signals(self.signal).name}: training stopped at step {step}"
        return Interrupted(f"{stopped} and saved" if saved else stopped)

    @contextmanager
    def catching_signals(self) -> Iterator[None]:
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
