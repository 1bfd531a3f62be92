"""Datasets in memory: a `Data` holds raw train and test tensors (uint8 pixels or float values) with
labels, and one preprocessing mode that `Data.batches` applies per batch, so noise is fresh every
epoch and no Python runs per sample. Shapes: N datapoints, B batch, D... a datapoint's dims.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch

from aevb.data.support import PREPROCESS
from aevb.errors import AevbError


def preprocess(x: torch.Tensor, mode: str, generator: torch.Generator | None = None) -> torch.Tensor:
    """Turn a batch of raw values into model input (float32). Pixel modes expect bytes in 0..255.

        >>> preprocess(torch.tensor([0, 255], dtype=torch.uint8), "unit")
        tensor([0., 1.])
    """
    if mode == "none":
        return x.float()
    if mode == "unit":
        return x.float() / 255.0
    if mode == "dequantize":  # (pixel + U(0,1)) / 256, a density on [0,1]^D
        return (x.float() + _uniform(x, generator)) / 256.0
    if mode == "binarize-threshold":
        # The tutorial's (pixel + U(0,1))/256 >= 0.5 holds exactly when pixel >= 128: no noise needed.
        return (x >= 128).float()
    if mode == "binarize-dynamic":  # a fresh Bernoulli(pixel/255) draw every batch
        return (_uniform(x, generator) < x.float() / 255.0).float()
    raise AevbError(f"unknown preprocessing {mode!r}; choose one of {', '.join(PREPROCESS)}")


def _uniform(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """U(0,1) noise shaped like x, drawn on the generator's device and moved to x's: with a CPU
    generator (as `aevb.evaluate` uses), a GPU sees the same noise, so the same test set."""
    where = x.device if generator is None else generator.device
    return torch.rand(x.shape, generator=generator, device=where).to(x.device)


def chw(image_shape) -> tuple[int, int, int]:
    """An image shape as (C, H, W): runs before colour images recorded (H, W) for grey ones.

        >>> chw([28, 28]), chw((3, 32, 32))
        ((1, 28, 28), (3, 32, 32))
    """
    shape = tuple(int(s) for s in image_shape)
    return (1, *shape) if len(shape) == 2 else shape


def as_hwc(x, image_shape) -> np.ndarray:
    """Images as a numpy (n, H, W, C), for drawing: from the channels-first (n, C, H, W) that a
    convolutional model gives, or from the flat (n, D) or (n, H, W...) rows of the data, whose
    pixels lie in row, column, channel order (how aevb stores images)."""
    c, h, w = chw(image_shape)
    x = np.asarray(x)
    if x.ndim == 4 and x.shape[1:] == (c, h, w) and (c, h, w) != (h, w, c):
        return x.transpose(0, 2, 3, 1)
    return x.reshape(len(x), h, w, c)


@dataclass
class Split:
    x: torch.Tensor  # (N, D...) raw values: uint8 pixels, or floats for user and synthetic data
    y: torch.Tensor | None = None  # (N,) int64 labels
    lengths: torch.Tensor | None = None  # (N,) int64 steps of each sequence x (N, T, D); None: all T

    def __len__(self) -> int:
        return self.x.shape[0]

    def to(self, device) -> Split:
        def move(t):
            return None if t is None else t.to(device)

        return Split(self.x.to(device), move(self.y), move(self.lengths))

    def head(self, n: int) -> Split:
        """The first n datapoints."""
        return Split(self.x[:n], None if self.y is None else self.y[:n],
                     None if self.lengths is None else self.lengths[:n])


class Batch(NamedTuple):
    """A preprocessed minibatch: x (B, D...), labels y (B,) and sequence lengths (B,) if any."""

    x: torch.Tensor
    y: torch.Tensor | None
    lengths: torch.Tensor | None


@dataclass
class Data:
    """A dataset's train and test splits, how to preprocess them, and how to show a datapoint."""

    name: str
    train: Split
    test: Split
    preprocess: str = "none"
    # (C, H, W) when the datapoints are images, stored pixel by pixel in row, column, channel order
    image_shape: tuple[int, int, int] | None = None
    classes: tuple[str, ...] | None = None  # label names, when there are labels
    extra: dict = field(default_factory=dict)  # e.g. the true parameters of synthetic data
    note: str = ""

    @property
    def event_shape(self) -> tuple[int, ...]:
        return tuple(self.train.x.shape[1:])

    def split(self, name: str) -> Split:
        if name not in ("train", "test"):
            raise AevbError(f"unknown split {name!r}; use train or test")
        return getattr(self, name)

    def to(self, device) -> Data:
        return Data(self.name, self.train.to(device), self.test.to(device), self.preprocess,
                    self.image_shape, self.classes, self.extra, self.note)

    def batches(self, split: str | Split, batch_size: int, generator: torch.Generator,
                order: torch.Tensor | None = None, start: int = 0) -> Iterator[Batch]:
        """Yield preprocessed batches over `order` (default: the split in order).

        Indexing whole tensors keeps per-sample Python out; `start` skips batches already seen.
        """
        s = self.split(split) if isinstance(split, str) else split
        n = len(s) if order is None else len(order)  # an order may pick a subset
        for i in range(start * batch_size, n, batch_size):
            idx = slice(i, i + batch_size) if order is None else order[i : i + batch_size]
            x = preprocess(s.x[idx], self.preprocess, generator).contiguous()  # (B, C, H, W) of a view
            yield Batch(x, None if s.y is None else s.y[idx],
                        None if s.lengths is None else s.lengths[idx])
