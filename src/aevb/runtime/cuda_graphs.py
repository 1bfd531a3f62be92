"""A training step captured once as a CUDA graph and replayed for every later batch of its shape.

At the recipes' small batches a GPU step is a few hundred kernels of a few microseconds' work
each, and the host's time to launch them is the step's time (docs: Results, Speed, "On a GPU"). A graph
launches them all at once. A replay runs no Python, so the captured step must not read a tensor
on the host and must use the same tensors every time: the batch is copied into buffers the graph
owns, Adam keeps its step count (and a scheduled learning rate) on the device (`capturable`), and
torch.distributions' argument checks, which read a tensor on the host, are off (`unchecked`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch.distributions import Distribution

from aevb.errors import AevbError

Step = Callable[[torch.Tensor, "torch.Tensor | None"], tuple[torch.Tensor, torch.Tensor]]


@contextmanager
def unchecked() -> Iterator[None]:
    """torch.distributions without argument checks: a NaN parameter then shows as a NaN loss,
    which the trainer's fault flags catch, instead of a ValueError read on the host."""
    kept = Distribution._validate_args
    Distribution.set_default_validate_args(False)
    try:
        yield
    finally:
        Distribution.set_default_validate_args(kept)


class GraphedStep:
    """Runs `step(x, c) -> (summed ELBO, fault flags)`: eagerly for the first `warmup` calls (on a
    side stream, as CUDA graph capture asks), then captured at the next call's batch shape and
    replayed for every batch of that shape; a batch of another shape (an epoch's last) runs
    eagerly. Call `reset` when the tensors the step reads are replaced (a restored optimizer) or
    it would take another path (parameters frozen or thawed)."""

    def __init__(self, step: Step, warmup: int = 2):
        self.step, self.warmup = step, warmup
        self.stream = torch.cuda.Stream()
        self.reset()

    def reset(self) -> None:
        self.graph: torch.cuda.CUDAGraph | None = None  # freed with its memory pool
        self.inputs: tuple[torch.Tensor, torch.Tensor | None] | None = None  # the graph's batch buffers
        self.outputs: tuple[torch.Tensor, torch.Tensor] | None = None  # what the graph writes each replay
        self.eager_left = self.warmup

    def __call__(self, x: torch.Tensor, c: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        if self.graph is None and self.eager_left == 0:
            self._capture(x, c)
        if self.graph is not None and self._fits(x, c):
            for buffer, value in zip(self.inputs, (x, c), strict=True):
                if buffer is not None:
                    buffer.copy_(value)
            self.graph.replay()
            # copies: the next replay overwrites the outputs, and a caller may keep them longer
            return tuple(t.clone() for t in self.outputs)
        if self.graph is not None:
            return self.step(x, c)  # another shape: eager, on the current stream
        self.eager_left -= 1
        return self._on_side_stream(x, c)

    def _fits(self, x: torch.Tensor, c: torch.Tensor | None) -> bool:
        bx, bc = self.inputs
        return x.shape == bx.shape and (c is None) == (bc is None) and (c is None or c.shape == bc.shape)

    def _on_side_stream(self, x: torch.Tensor, c: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        # Warm-up runs on the stream the capture will use, so that lazily made state (cuBLAS
        # workspaces, Adam's moments, compiled kernels) belongs to it (PyTorch's CUDA graph notes).
        self.stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.stream):
            out = self.step(x, c)
        torch.cuda.current_stream().wait_stream(self.stream)
        return out

    def _capture(self, x: torch.Tensor, c: torch.Tensor | None) -> None:
        self.inputs = (x.clone(), None if c is None else c.clone())
        graph = torch.cuda.CUDAGraph()
        # Capture only records the kernels; the caller's replay then takes this step for real.
        try:
            with torch.cuda.graph(graph, stream=self.stream):
                self.outputs = self.step(*self.inputs)
        except RuntimeError as e:  # e.g. a model whose terms read a tensor on the host (.item())
            why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise AevbError(f"the training step could not be captured as a CUDA graph ({why}); "
                            "train with --no-cuda-graphs") from e
        self.graph = graph
