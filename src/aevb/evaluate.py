"""Metrics of a trained model on a data split: ELBO, IWAE bound, exact log-likelihood. No training.

Every density figure is a mean in nats per datapoint with its standard error over the datapoints.
Models with discrete clusters (the GMVAE) add how their clusters match the split's labels. The
randomness (posterior draws, preprocessing noise) comes from a fixed seed, so the same model gives
the same numbers, and evaluating never disturbs the training run's random streams. The
preprocessing noise is drawn on the CPU, so a GPU scores the same test set; its posterior draws
come from its own stream, so its figures differ from a CPU's by Monte Carlo noise alone. Under
torchrun each rank evaluates every W-th batch and the values are gathered (aevb.runtime.distributed), so
every rank's metrics cover the whole split.
"""

from __future__ import annotations

import dataclasses
import math
from contextlib import contextmanager

import torch
from tqdm.auto import tqdm

from aevb import clustering
from aevb.data.containers import Data
from aevb.models.base import LatentModel
from aevb.objectives import chunk_logsumexp, component_elbos, elbo, iwae
from aevb.runtime import compiling, distributed

# Elements of x-sized tensors held at once in an IWAE chunk: cache-sized on a CPU, enough rows to
# keep a GPU's matrix units busy (docs: Results, Speed, "IWAE in chunks").
_IWAE_ELEMENTS = {"cpu": 1 << 22, "cuda": 1 << 25}
# From this many draws per datapoint IWAE chunks run compiled, on the devices where that paid; the
# draws still come from the seeded global stream, so compiled and eager estimates agree.
COMPILE_IWAE_FROM = 1000
COMPILE_IWAE_ON = ("cpu",)
# Datapoints per IWAE slice (see _iwae_in_slices).
_IWAE_SLICE = 100


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
    """ELBO (averaged over `elbo_samples` draws), IWAE_K and exact log p(x) per datapoint, each (N,),
    and for models with clusters the ELBO of each cluster, `component_elbos` (N, C).

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
    if model.has_clusters:
        out["component_elbos"] = []
    s = data.split(split)
    gen = torch.Generator().manual_seed(seed + 1)  # preprocessing noise, on the CPU on every device
    chunk_fn = chunk_logsumexp
    if iwae_samples >= COMPILE_IWAE_FROM and model.compilable and device.type in COMPILE_IWAE_ON:
        chunk_fn = compiled_chunks()
    bar = tqdm(total=len(s), unit="pt", desc=f"evaluate {split}", leave=False,
               disable=None if progress else True)  # None: only on a terminal
    world, rank = distributed.world(), distributed.rank()
    with seeded(distributed.rank_seed(seed), device):
        for i, batch in enumerate(data.batches(s, batch_size, gen)):
            if i % world != rank:  # another rank's batch (all draw its preprocessing noise)
                continue
            x, c = batch.x, model.condition(batch)
            t = model.terms(x, c, elbo_samples)
            out["elbo"].append(elbo(t))
            if model.has_clusters:
                out["component_elbos"].append(component_elbos(t).T)  # (B, C)
            if iwae_samples:  # the bar moves with every chunk of draws: K = 5000 takes minutes
                out["iwae"].append(_iwae_in_slices(model, x, c, iwae_samples, chunk_fn, bar))
            else:
                bar.update(x.shape[0])
            if model.has_exact_log_prob:
                out["log_likelihood"].append(model.exact_log_prob(x, c))
    bar.close()
    model.train(was_training)
    sizes = _batch_sizes(len(s), batch_size)
    like = torch.empty(0, device=device)
    tails = {"component_elbos": (model.n_clusters,)} if model.has_clusters else {}
    return {k: distributed.gather_batches(v, sizes, tails.get(k, ()), like).cpu() for k, v in out.items()}


def compiled_chunks():
    """`chunk_logsumexp` compiled for the CPU. Its draws come from aten's seeded generator
    (`fallback_random`), as eager ones do, not from inductor's own generator (docs: Results, Speed,
    "Random numbers in compiled code")."""
    return torch.compile(chunk_logsumexp, dynamic=False, options=compiling.cpu_options())


def _iwae_in_slices(model: LatentModel, x, c, k: int, chunk_fn, bar) -> torch.Tensor:
    """IWAE_K of a batch, (B,), in slices of _IWAE_SLICE datapoints. Every chunk of draws runs the
    encoder again, so a chunk should hold many draws: about 50 per slice, not 5 per 1000 points."""
    parts, elements = [], _IWAE_ELEMENTS.get(x.device.type, _IWAE_ELEMENTS["cpu"])
    for i in range(0, x.shape[0], _IWAE_SLICE):
        xs, cs = x[i:i + _IWAE_SLICE], None if c is None else c[i:i + _IWAE_SLICE]
        chunk = max(1, elements // (xs.shape[0] * xs[0].numel()))  # draws at once
        parts.append(iwae(model, xs, cs, k, chunk, chunk_fn=chunk_fn,
                          on_chunk=lambda f, n=xs.shape[0]: bar.update(f * n)))
    return torch.cat(parts)


def _batch_sizes(n: int, batch_size: int) -> list[int]:
    return [min(batch_size, n - i) for i in range(0, n, batch_size)]


def evaluate(model: LatentModel, data: Data, split: str = "test", batch_size: int = 1000,
             iwae_samples: int = 0, seed: int = 0, progress: bool = False,
             elbo_samples: int = 100, subset: int | None = None) -> dict:
    """Summary metrics as a JSON-ready dict: means per datapoint in nats, with standard errors;
    for a prior fitted after training also the ELBO under the trained one (`elbo_trained_prior`),
    for clusters how they match the labels (`cluster_metrics`) and the ELBO a best q(y|x) would add
    (`qy_elbo_gap`). `subset`: only the split's first that many datapoints (a quick check)."""
    if subset is not None:
        data = dataclasses.replace(data, **{split: data.split(split).head(subset)})
    values = per_datapoint(model, data, split, batch_size, iwae_samples, seed, progress,
                           elbo_samples)
    per_cluster = values.pop("component_elbos", None)
    result: dict = {"split": split, "n": len(data.split(split)), "elbo_samples": elbo_samples}
    for key, v in values.items():
        result[key], result[f"{key}_se"] = mean_se(v)
    s = data.split(split)
    if model.sequential:  # nats per sequence above; per step: the totals over the total steps
        steps = float(s.x.shape[1] * len(s) if s.lengths is None else s.lengths.sum())
        per = len(s) / steps  # 1 / (mean steps per sequence)
        for key in list(values):
            result[f"{key}_per_step"] = result[key] * per
            result[f"{key}_per_step_se"] = result[f"{key}_se"] * per
    if iwae_samples:
        result["iwae_samples"] = iwae_samples
    if model.has_fitted_prior:  # the networks alone, under the prior they trained against
        with model.trained_prior():
            alone = per_datapoint(model, data, split, batch_size, 0, seed, elbo_samples=elbo_samples)
        result["elbo_trained_prior"], result["elbo_trained_prior_se"] = mean_se(alone["elbo"])
    if model.has_clusters:
        result.update(cluster_metrics(model, data, split, batch_size, seed, per_cluster))
        # the best q(y|x), softmax_y ELBO_y, would give logsumexp_y ELBO_y: what q(y|x) leaves (>= 0)
        result["qy_elbo_gap"], result["qy_elbo_gap_se"] = mean_se(
            torch.logsumexp(per_cluster.double(), 1) - values["elbo"].double())
    return result


@torch.no_grad()
def cluster_assignments(model: LatentModel, data: Data, split: str = "test", batch_size: int = 1000,
                        seed: int = 0) -> dict[str, torch.Tensor]:
    """Each datapoint's most probable cluster argmax_y q(y|x), the entropy of q(y|x), and q(y|x)."""
    was_training = model.training
    model.eval()
    s = data.split(split)
    gen = torch.Generator().manual_seed(seed + 1)  # preprocessing noise, as per_datapoint's
    world, rank = distributed.world(), distributed.rank()
    mine = [model.cluster_log_probs(b.x) for i, b in enumerate(data.batches(s, batch_size, gen))
            if i % world == rank]
    device = next(model.parameters()).device
    log_q = distributed.gather_batches(mine, _batch_sizes(len(s), batch_size), (model.n_clusters,),
                                       torch.empty(0, device=device)).cpu()
    model.train(was_training)
    q = log_q.exp()  # (N, C)
    return {"cluster": q.argmax(1), "entropy": -(q * log_q).sum(1), "q": q}


def cluster_metrics(model: LatentModel, data: Data, split: str = "test", batch_size: int = 1000,
                    seed: int = 0, per_cluster: torch.Tensor | None = None) -> dict:
    """cluster_accuracy (Hungarian matching), cluster_purity (many-to-one) and nmi of argmax q(y|x)
    against the split's labels, where it has them, and the mean entropy of q(y|x) in nats (0: every
    point sure of its cluster). Given the ELBO of each cluster, `per_cluster` (N, C), also the
    clusters the bound itself prefers, argmax_y ELBO_y: their accuracy and purity
    (elbo_cluster_accuracy, elbo_cluster_purity) and how often they agree with q(y|x)
    (cluster_agreement, no labels needed)."""
    a = cluster_assignments(model, data, split, batch_size, seed)
    result: dict = {}
    labels = data.split(split).y
    n_clusters = model.n_clusters
    if labels is not None:
        clusters, y = a["cluster"].numpy(), labels.cpu().numpy()
        n_labels = len(data.classes)
        result["cluster_accuracy"] = clustering.accuracy(clusters, y, n_clusters, n_labels)
        result["cluster_purity"] = clustering.purity(clusters, y, n_clusters, n_labels)
        result["nmi"] = clustering.nmi(clusters, y)
    result["qy_entropy"], result["qy_entropy_se"] = mean_se(a["entropy"])
    if per_cluster is not None:
        by_elbo = per_cluster.argmax(1)  # (N,)
        if labels is not None:
            result["elbo_cluster_accuracy"] = clustering.accuracy(by_elbo.numpy(), y, n_clusters, n_labels)
            result["elbo_cluster_purity"] = clustering.purity(by_elbo.numpy(), y, n_clusters, n_labels)
        result["cluster_agreement"] = (by_elbo == a["cluster"]).double().mean().item()
    return result


def epoch_metrics(model: LatentModel, data: Data, split: str = "test", batch_size: int = 1000,
                  seed: int = 0, elbo_samples: int = 10) -> dict[str, float]:
    """What the trainer logs after every epoch, keyed `{split}_{metric}`: the mean ELBO per
    datapoint and, for models with clusters, their accuracy, NMI and q(y|x) entropy."""
    values = per_datapoint(model, data, split, batch_size, 0, seed, elbo_samples=elbo_samples)
    out = {f"{split}_elbo": values["elbo"].double().mean().item()}
    if model.has_clusters:
        # not the bound's own clusters: from the epoch's few draws, noise flips near-ties (docs:
        # Evaluation); `evaluate` scores them from its 100 draws
        found = cluster_metrics(model, data, split, batch_size, seed)
        out.update({f"{split}_{k}": v for k, v in found.items() if not k.endswith("_se")})
    return out
