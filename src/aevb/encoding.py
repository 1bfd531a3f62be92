"""Latent codes of data under a trained model: the posterior means E_q[z | x], and for a model with
clusters q(y | x) and each point's most probable cluster. What `aevb encode` writes and
`aevb.Run.encode` returns.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from aevb import atomic
from aevb.data.containers import Data
from aevb.errors import AevbError
from aevb.evaluate import seeded
from aevb.models.base import LatentModel

FORMATS = (".npy", ".npz", ".csv")


@torch.no_grad()
def encode(model: LatentModel, data: Data, split: str = "test", batch_size: int = 1000,
           seed: int = 0) -> dict[str, np.ndarray]:
    """{"z": (N, Dz) posterior means} of a split, in its order, plus for a model with clusters
    "q_y" (N, C) = q(y | x) and "cluster" (N,) = argmax_y q(y | x). A sequential model's z is
    (N, T, Dz), one mean per step (zero past a sequence's length is not guaranteed: mask with it).

        >>> codes = encode(model, data)   # model, data from aevb.runs.open_run
    """
    was_training = model.training
    model.eval()
    s = data.split(split)
    device = next(model.parameters()).device
    gen = torch.Generator(device=s.x.device).manual_seed(seed + 1)  # preprocessing noise
    z, q = [], []
    with seeded(seed, device):  # a sequential model's means follow one drawn trajectory
        for b in data.batches(s, batch_size, gen):  # in the split's order
            z.append(model.posterior_mean(b.x, model.condition(b)).float().cpu())
            if model.has_clusters:
                q.append(model.cluster_log_probs(b.x).exp().float().cpu())
    model.train(was_training)
    codes = {"z": torch.cat(z).numpy()}
    if model.sequential:  # (N, T*Dz) -> (N, T, Dz)
        codes["z"] = codes["z"].reshape(len(s), s.x.shape[1], -1)
    if q:
        codes["q_y"] = torch.cat(q).numpy()
        codes["cluster"] = codes["q_y"].argmax(1)
    return codes


def check_out(out: str | Path) -> Path:
    """The output file of `aevb encode`, refused before any work if its format is unknown."""
    out = Path(out)
    if out.suffix not in FORMATS:
        raise AevbError(f"--out {out}: unknown format {out.suffix or '(none)'!r}; use a .npy file "
                        "(the means), .npz (every array) or .csv (one row per datapoint)")
    return out


def write(codes: dict[str, np.ndarray], out: str | Path) -> Path:
    """Write codes as .npy (z only), .npz (every array by name) or .csv (z_0.., q_y_0.., cluster
    columns, one row per datapoint); atomically, so a failed write leaves nothing."""
    out = check_out(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic.atomic_path(out) as tmp:
        if out.suffix == ".npy":
            with open(tmp, "wb") as f:
                np.save(f, codes["z"])
        elif out.suffix == ".npz":
            with open(tmp, "wb") as f:
                np.savez(f, **codes)
        else:
            columns, names = [], []
            for key, a in codes.items():
                a = a.reshape(len(a), -1)
                columns.append(a)
                names += [key] if a.shape[1] == 1 and key == "cluster" else [f"{key}_{i}" for i in
                                                                              range(a.shape[1])]
            np.savetxt(tmp, np.concatenate([c.astype(np.float64) for c in columns], 1), delimiter=",",
                       header=",".join(names), comments="", fmt="%.7g")
    return out
