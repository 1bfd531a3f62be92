"""Metrics of a trained model on a data split: ELBO, IWAE bound, exact log-likelihood. No training.

Every figure is a mean in nats per datapoint with its standard error over the datapoints. The
randomness (posterior draws, preprocessing noise) comes from a fixed seed, so the same model gives
the same numbers, and evaluating never disturbs the training run's random streams.
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import torch
from tqdm.auto import tqdm

from aevb.data import Data
from aevb.models.base import LatentModel
from aevb.objectives import elbo, iwae

# Draws of x-sized tensors held at once in an IWAE chunk: 2^24 floats (64 MB) per tensor.
_IWAE_ELEMENTS = 1 << 24


@contextmanager
def seeded(seed: int, device: torch.device):
    """Run a block under a fixed global seed and restore the caller's random state afterwards."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def mean_se(values: torch.Tensor) -> tuple[float, float]:
    """Mean and its standard error, in float64."""
    v = values.double()
    se = v.std(unbiased=True).item() / math.sqrt(v.numel()) if v.numel() > 1 else float("nan")
    return v.mean().item(), se


@torch.no_grad()
def per_datapoint(model: LatentModel, data: Data, split: str = "test", batch_size: int = 1000,
                  iwae_samples: int = 0, seed: int = 0, progress: bool = False,
                  elbo_samples: int = 1) -> dict[str, torch.Tensor]:
    """ELBO (averaged over `elbo_samples` draws), IWAE_K and exact log p(x) per datapoint, each (N,).

    More ELBO draws only reduce Monte Carlo noise: one draw is unbiased, but its noise over a
    thousand points can reach a twentieth of a nat.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out: dict[str, list[torch.Tensor]] = {"elbo": []}
    if iwae_samples:
        out["iwae"] = []
    if model.has_exact_log_prob:
        out["log_likelihood"] = []
    s = data.split(split)
    gen = torch.Generator(device=s.x.device).manual_seed(seed + 1)
    bar = tqdm(total=len(s), unit="pt", desc=f"evaluate {split}", leave=False,
               disable=None if progress else True)  # None: only on a terminal
    with seeded(seed, device):
        for x, y in data.batches(s, batch_size, gen):
            c = y if model.uses_labels else None
            out["elbo"].append(elbo(model.terms(x, c, elbo_samples)))
            if iwae_samples:
                chunk = max(1, _IWAE_ELEMENTS // (x.shape[0] * x[0].numel()))  # draws at once
                out["iwae"].append(iwae(model, x, c, iwae_samples, chunk))
            if model.has_exact_log_prob:
                out["log_likelihood"].append(model.exact_log_prob(x, c))
            bar.update(x.shape[0])
    bar.close()
    model.train(was_training)
    return {k: torch.cat(v).cpu() for k, v in out.items()}


def evaluate(model: LatentModel, data: Data, split: str = "test", batch_size: int = 1000,
             iwae_samples: int = 0, seed: int = 0, progress: bool = False,
             elbo_samples: int = 100) -> dict:
    """Summary metrics as a JSON-ready dict: means per datapoint in nats, with standard errors."""
    values = per_datapoint(model, data, split, batch_size, iwae_samples, seed, progress,
                           elbo_samples)
    result: dict = {"split": split, "n": len(data.split(split)), "elbo_samples": elbo_samples}
    for key, v in values.items():
        result[key], result[f"{key}_se"] = mean_se(v)
    if iwae_samples:
        result["iwae_samples"] = iwae_samples
    return result


def mean_elbo(model: LatentModel, data: Data, split: str = "test", batch_size: int = 1000,
              seed: int = 0, elbo_samples: int = 10) -> float:
    """The mean ELBO per datapoint of a split: the number the trainer logs every epoch."""
    values = per_datapoint(model, data, split, batch_size, 0, seed, elbo_samples=elbo_samples)
    return values["elbo"].double().mean().item()
