"""The tutorial's Factor Analysis experiments: short training runs traced step by step.

Experiment 1 follows the test ELBO and the learned model's exact test evidence over the first
gradient steps. Experiment 2 alternately freezes the generative parameters (so only q(z|x) learns,
like an E-step) and the inference parameters (only p(x|z) learns, like an M-step), which turns
AEVB's smooth climb into EM's staircase. Both retrain from the run's config and seed.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from aevb.checkpoints import build_model
from aevb.config import RunConfig
from aevb.data import Batch, Data
from aevb.evaluate import per_datapoint, seeded
from aevb.models.fa import FactorAnalysis
from aevb.train import Trainer


def _endless(trainer: Trainer) -> Iterator[Batch]:
    """Shuffled training batches, epoch after epoch."""
    data = trainer.data
    while True:
        order = torch.randperm(len(data.train), generator=trainer.gen, device=trainer.gen.device)
        yield from data.batches(data.train, trainer.cfg.batch_size, trainer.gen, order)


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


def trace(cfg: RunConfig, data: Data, steps: int, eval_every: int = 10,
          freeze_every: int | None = None, snapshot_steps: tuple[int, ...] = ()) -> dict:
    """Train a fresh model for `steps` steps, recording test ELBO and exact log p(x) as it goes."""
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg, {"event_shape": list(data.event_shape)})
    if not isinstance(model, FactorAnalysis):
        raise TypeError("the traced experiments are defined for factor analysis")
    model.to(data.train.x.device)
    trainer = Trainer(model, data, cfg.train, quiet=True)
    batches = _endless(trainer)
    out: dict = {"step": [], "elbo": [], "evidence": [], "snapshots": {}}
    for step in range(steps + 1):
        if step % eval_every == 0 or step == steps:
            values = per_datapoint(model, data, "test", cfg.train.eval_batch_size,
                                   seed=cfg.train.seed, elbo_samples=cfg.train.eval_samples)
            out["step"].append(step)
            out["elbo"].append(values["elbo"].double().mean().item())
            out["evidence"].append(values["log_likelihood"].double().mean().item())
        if step in snapshot_steps:
            with seeded(cfg.train.seed, data.test.x.device):
                out["snapshots"][step] = model.sample(len(data.test)).cpu().numpy()
        if step == steps:
            break
        if freeze_every:  # even phases: only q(z|x) learns; odd phases: only p(x|z) learns
            learn_inference = (step // freeze_every) % 2 == 0
            for p in model.inference_parameters():
                p.requires_grad_(learn_inference)
            for p in model.generative_parameters():
                p.requires_grad_(not learn_inference)
        x = next(batches).x
        trainer.train_step(x)
    out = {k: np.asarray(v) if isinstance(v, list) else v for k, v in out.items()}
    out["references"] = references(data)
    out["test_x"] = data.test.x.cpu().numpy()
    out["freeze_every"] = freeze_every
    return out


def experiment_1(cfg: RunConfig, data: Data, steps: int = 1000) -> dict:
    return trace(cfg, data, steps, eval_every=5, snapshot_steps=(0, steps // 10, steps))


def experiment_2(cfg: RunConfig, data: Data, phase_steps: int = 1000, phases: int = 6) -> dict:
    return trace(cfg, data, phase_steps * phases, eval_every=20, freeze_every=phase_steps)
