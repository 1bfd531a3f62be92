"""The tutorial's Factor Analysis experiments: short training runs traced step by step, and their
figures.

Experiment 1 follows the test ELBO and the learned model's exact test evidence over the first
gradient steps. Experiment 2 alternately freezes the generative parameters (so only q(z|x) learns,
like an E-step) and the inference parameters (only p(x|z) learns, like an M-step), which turns
AEVB's smooth climb into EM's staircase. Both retrain from the run's config and seed, in a loop
of their own: they evaluate every few steps and freeze parameters mid-epoch, which the Trainer's
per-epoch loop does not.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from aevb.config import RunConfig
from aevb.data.containers import Batch, Data
from aevb.evaluate import per_datapoint, seeded
from aevb.reports import plots
from aevb.training.step import TrainStep


def figures(model_cls, cfg: RunConfig, data: Data, out: Path) -> list[Path]:
    """Both experiments for a FactorAnalysis class, drawn into `out` as PNG and PDF."""
    written = []
    trace = experiment_1(model_cls, cfg, data)
    for suffix in (".png", ".pdf"):
        written.append(learning(trace, out / f"fa-experiment1-learning{suffix}"))
    trace = experiment_2(model_cls, cfg, data)
    for suffix in (".png", ".pdf"):
        written.append(alternating(trace, out / f"fa-experiment2-alternating{suffix}"))
    return written


def experiment_1(model_cls, cfg: RunConfig, data: Data, steps: int = 1000) -> dict:
    return trace(model_cls, cfg, data, steps, eval_every=5, snapshot_steps=(0, steps // 10, steps))


def experiment_2(model_cls, cfg: RunConfig, data: Data, phase_steps: int = 1000, phases: int = 6) -> dict:
    return trace(model_cls, cfg, data, phase_steps * phases, eval_every=20, freeze_every=phase_steps)


def _endless(data: Data, batch_size: int, gen: torch.Generator) -> Iterator[Batch]:
    """Shuffled training batches, epoch after epoch."""
    while True:
        order = torch.randperm(len(data.train), generator=gen, device=gen.device)
        yield from data.batches(data.train, batch_size, gen, order)


def references(data: Data) -> dict[str, float]:
    """Evidence lines to aim at: the maximum-likelihood fit, and the true model when known."""
    from sklearn.decomposition import FactorAnalysis as SkFA

    x_train, x_test = data.train.x.cpu().double().numpy(), data.test.x.cpu().double().numpy()
    dz = 2 if "true_W" not in data.extra else np.asarray(data.extra["true_W"]).shape[1]
    refs = {"maximum-likelihood fit": float(
        SkFA(n_components=dz, svd_method="lapack").fit(x_train).score(x_test))}
    if "true_W" in data.extra:
        w, s = np.asarray(data.extra["true_W"]), np.asarray(data.extra["true_sigma"])
        cov = w @ w.T + np.diag(s**2)
        sign, logdet = np.linalg.slogdet(2 * np.pi * cov)
        quad = np.einsum("nd,de,ne->n", x_test, np.linalg.inv(cov), x_test)
        refs["true model"] = float(np.mean(-0.5 * (logdet + quad)))
    return refs


def trace(model_cls, cfg: RunConfig, data: Data, steps: int, eval_every: int = 10,
          freeze_every: int | None = None, snapshot_steps: tuple[int, ...] = ()) -> dict:
    """Train a fresh model for `steps` steps, recording test ELBO and exact log p(x) as it goes."""
    torch.manual_seed(cfg.train.seed)
    model = model_cls(cfg.model_config, data.event_shape).to(data.train.x.device)
    step = TrainStep(model, cfg.train, planned_steps=steps, steps_per_epoch=1)
    batches = _endless(data, cfg.train.batch_size,
                       torch.Generator(device=data.train.x.device).manual_seed(cfg.train.seed))
    out: dict = {"step": [], "elbo": [], "evidence": [], "snapshots": {}}
    for n in range(steps + 1):
        if n % eval_every == 0 or n == steps:
            values = per_datapoint(model, data, "test", cfg.train.eval_batch_size,
                                   seed=cfg.train.seed, elbo_samples=cfg.train.eval_samples)
            out["step"].append(n)
            out["elbo"].append(values["elbo"].double().mean().item())
            out["evidence"].append(values["log_likelihood"].double().mean().item())
        if n in snapshot_steps:
            with seeded(cfg.train.seed, data.test.x.device):
                out["snapshots"][n] = model.sample(len(data.test)).cpu().numpy()
        if n == steps:
            break
        if freeze_every:  # even phases: only q(z|x) learns; odd phases: only p(x|z) learns
            learn_inference = (n // freeze_every) % 2 == 0
            for p in model.inference_parameters():
                p.requires_grad_(learn_inference)
            for p in model.generative_parameters():
                p.requires_grad_(not learn_inference)
        step(next(batches).x, None, n)
    out = {k: np.asarray(v) if isinstance(v, list) else v for k, v in out.items()}
    out["references"] = references(data)
    out["test_x"] = data.test.x.cpu().numpy()
    out["freeze_every"] = freeze_every
    return out


# -- the figures ---------------------------------------------------------------------------------

def _references(ax, refs: dict[str, float]) -> None:
    for k, (label, value) in enumerate(refs.items()):
        ax.axhline(value, color="k", ls=("--", ":")[k % 2], lw=1, label=f"{label} ({value:.3f})")


def learning(trace: dict, path: Path | None = None):
    """The tutorial's Experiment 1: test ELBO and exact evidence over the first steps, with insets."""
    fig = plots.figure(7.5, 4.8)
    ax = fig.subplots()
    ax.plot(trace["step"], trace["elbo"], color="C0", label="test ELBO")
    ax.plot(trace["step"], trace["evidence"], color="C3", label="test log p(x), learned model")
    _references(ax, trace["references"])
    lo = min(min(trace["references"].values()), float(np.min(trace["elbo"][len(trace["elbo"]) // 10:])))
    ax.set_ylim(lo - 3.0, max(trace["references"].values()) + 0.3)
    ax.set_xlabel("gradient step")
    ax.set_ylabel("nats per test point")
    ax.set_title("Factor analysis with AEVB: learning curve (Experiment 1)")
    fig.legend(loc="outside lower center", ncol=2, fontsize=8)
    ax.grid(alpha=0.3)
    data = trace["test_x"]
    i, j = plots.top_two_axes(data)
    for k, (step, snap) in enumerate(sorted(trace["snapshots"].items())):
        inset = ax.inset_axes([0.22 + 0.27 * k, 0.12, 0.2, 0.4])  # below the curves
        plots.scatter(inset, snap, data, i, j, size=1.5)
        inset.set_title(f"step {step}", fontsize=8)
        inset.tick_params(labelsize=6)
        inset.xaxis.label.set_size(7)
        inset.yaxis.label.set_size(7)
    return plots.save(fig, path)


def alternating(trace: dict, path: Path | None = None):
    """The tutorial's Experiment 2: freezing one side at a time makes AEVB climb like EM."""
    fig = plots.figure(7.5, 4.6)
    ax = fig.subplots()
    every = trace["freeze_every"]
    for start in range(0, int(trace["step"][-1]), every):
        if (start // every) % 2 == 1:
            ax.axvspan(start, start + every, color="C2", alpha=0.08, lw=0)
    ax.plot(trace["step"], trace["elbo"], color="C0", label="test ELBO")
    ax.plot(trace["step"], trace["evidence"], color="C3", label="test log p(x), learned model")
    _references(ax, trace["references"])
    lo = min(min(trace["references"].values()), float(np.min(trace["elbo"][len(trace["elbo"]) // 10:])))
    ax.set_ylim(lo - 1.0, max(trace["references"].values()) + 0.5)
    ax.set_xlabel("gradient step (white: only q(z|x) learns, like an E-step; "
                  "green: only p(x|z) learns, like an M-step)", fontsize=8)
    ax.set_ylabel("nats per test point")
    ax.set_title("Factor analysis: alternating updates (Experiment 2)")
    fig.legend(loc="outside lower center", ncol=2, fontsize=8)
    ax.grid(alpha=0.3)
    return plots.save(fig, path)
