"""TensorBoard logging of a run (`--tensorboard`): each epoch's ELBOs and other test metrics, the
learning rate, and a grid of samples, written into RUN/tensorboard with `torch.utils.tensorboard`.

The x axis is the gradient step, as in Lightning; a resumed run drops whatever the stopped one
logged after its checkpoint (TensorBoard's purge_step), so no step appears twice.

    tensorboard --logdir runs/mine/tensorboard
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from aevb.data.containers import as_hwc, chw
from aevb.errors import AevbError
from aevb.evaluate import seeded

GRID = 16  # samples shown each epoch, a 4 x 4 grid
EXTRA = "pip install tensorboard"
NOT_SCALARS = ("epoch", "step", "seconds", "partial", "lr")


def check_installed() -> None:
    """Refuse --tensorboard before anything is written when the tensorboard package is missing."""
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        raise AevbError(f"--tensorboard needs the tensorboard package; install it with {EXTRA}") from None


class TensorBoardLog:
    """Writes one run's curves and samples; `epoch(record)` after each logged epoch.

        log = TensorBoardLog("runs/mine/tensorboard", model, {"image_shape": [28, 28]}, seed=0)
        log.epoch({"step": 1875, "train_elbo": -110.2, "test_elbo": -108.9}, lr=1e-3)
    """

    def __init__(self, folder: str | Path, model, data_info: dict, seed: int,
                 resumed_from: int | None = None):
        from torch.utils.tensorboard import SummaryWriter

        purge = None if resumed_from is None else resumed_from + 1
        self.writer = SummaryWriter(str(folder), purge_step=purge)
        self.model, self.seed = model, seed
        self.image_shape = data_info.get("image_shape")
        self.n_classes = data_info.get("n_classes") or 0

    def epoch(self, record: dict, lr: float) -> None:
        step = record["step"]
        for key, value in record.items():
            if key not in NOT_SCALARS and isinstance(value, int | float) and math.isfinite(value):
                self.writer.add_scalar(_tag(key), value, step)
        self.writer.add_scalar("lr", lr, step)
        images = self._samples()
        if images is not None:
            self.writer.add_images("samples", images, step, dataformats="NCHW")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()

    @torch.no_grad()
    def _samples(self) -> torch.Tensor | None:
        """GRID decoder parameters of z ~ p(z), as (GRID, C, H, W) in [0, 1]; None for data that are
        not images. The draws use their own seed, so logging changes no training number."""
        if self.image_shape is None:
            return None
        device = next(self.model.parameters()).device
        c = None
        if self.model.uses_labels and self.n_classes:
            c = torch.arange(GRID, device=device) % self.n_classes
        was_training = self.model.training
        self.model.eval()
        with seeded(self.seed, device):
            x = self.model.sample(GRID, c, "param").float().cpu()
        self.model.train(was_training)
        c, h, w = chw(self.image_shape)
        if x[0].numel() != c * h * w:
            return None
        return torch.from_numpy(as_hwc(x.numpy(), self.image_shape)).permute(0, 3, 1, 2).clamp(0, 1)


def _tag(key: str) -> str:
    """train_elbo -> elbo/train, test_elbo -> elbo/test, test_cluster_accuracy -> test/cluster_accuracy."""
    for split in ("train", "test"):
        if key == f"{split}_elbo":
            return f"elbo/{split}"
        if key.startswith(f"{split}_"):
            return f"{split}/{key[len(split) + 1:]}"
    return key
