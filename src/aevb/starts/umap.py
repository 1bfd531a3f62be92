"""The GMVAE's pretrained start (`init = "autoencoder-umap"`): its clusters begin as a clustering of
an autoencoder's codes instead of random weights.

An unsupervised GMVAE finds clusters only as good as where it starts (docs: Results, "The GMVAE's
clusters", measures how much). VaDE (Jiang et al.
2017) starts its mixture from a GMM fitted to a pretrained autoencoder's codes; N2D (McConville et
al. 2020) found that such codes cluster far better once UMAP has embedded them. `autoencoder-umap`
gives aevb's GMVAE both, without looking at a label:

1. q(z|x,y)'s mean without y (`GMVAE.code`) and p(x|z) are trained as an autoencoder on the
   reconstruction log-likelihood log p(x | z = code(x)), for `init_epochs` epochs.
2. UMAP embeds the training codes in UMAP_DIMS dimensions, and a full-covariance GMM with C
   components clusters the embedding: its responsibilities r (N, C) are the start's clusters.
3. p(z|y=c) starts at the r-weighted mean and std of the codes, and q(z|x,y) at the code with a
   tenth of the clusters' std (`GMVAE.set_components`).
4. q(y|x) is fitted to r by cross-entropy, for at least QY_STEPS steps (6 epochs of MNIST).

The recipes then hold q(y|x) fixed (`freeze`) while p(z|y), q(z|x,y) and p(x|z) settle on these
clusters: `configs/gmvae.toml` for the whole run, `configs/gmvae-umap.toml` for 20 epochs before
q(y|x) learns from the ELBO too (docs: Results, "The GMVAE's clusters").
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from aevb.data.containers import Data
from aevb.errors import AevbError
from aevb.runtime.devices import autocast

UMAP_DIMS, UMAP_NEIGHBOURS = 10, 20  # N2D's settings for MNIST (with min_dist 0)
BATCH, LR = 256, 1e-3  # autoencoder and q(y|x) fitting: Adam at this batch size
QY_STEPS = 1200  # rounded up to whole epochs: 6 of MNIST's 235 batches of 256
# The mixture's random starts, the best by likelihood kept: too few keep mixtures that merge two
# digits (docs: Results, "The GMVAE's clusters").
GMM_INITS = 10
POSTERIOR_STD = 0.1  # q(z|x,y)'s starting std, as a fraction of the clusters' mean std


def check_available() -> None:
    """Refuse the start when umap-learn is missing, before anything is written."""
    try:
        import umap  # noqa: F401
    except ImportError:
        raise AevbError("init = 'autoencoder-umap' needs umap-learn, a dependency of aevb that this "
                        "install lacks; install it with pip install umap-learn") from None


def start(model, data: Data, train_cfg, quiet: bool = False) -> dict:
    """Start `model` (a GMVAE) from an autoencoder's clustered codes, as the steps above; returns
    what the start measured, for the run's metadata."""
    began = time.perf_counter()
    needed = max(UMAP_DIMS + 2, model.n_clusters)  # UMAP's spectral layout, then one point a component
    if len(data.train) < needed:
        raise AevbError(f"the autoencoder-umap start needs at least {needed} training points to embed "
                        f"and cluster, and {data.name} has {len(data.train)}; use --init random")
    device = next(model.parameters()).device
    cast = autocast(device, train_cfg.precision)
    gen = torch.Generator(device=data.train.x.device).manual_seed(train_cfg.seed)
    say = (lambda s: None) if quiet else tqdm.write

    def reconstruction(x, rows):  # -log p(x | z = code(x)), (B,)
        return -model.likelihood(model.code(x)).log_prob(x)

    limit = train_cfg.max_steps  # --max-steps bounds each of the start's fits as it bounds training
    nll = _fit(model.parameters(), reconstruction, model, data, model.cfg.init_epochs, gen, cast,
               lambda e, v: say(f"start: autoencoder epoch {e}, reconstruction {v:.2f} nats"), limit)
    codes = _map(model.code, data, gen, cast)  # (N, Dz), in the training split's order
    r = clusters(codes.numpy(), model.n_clusters, train_cfg.seed)  # (N, C)
    sizes = np.bincount(r.argmax(1), minlength=model.n_clusters).tolist()  # images per cluster
    say(f"start: UMAP and a GMM put the codes in clusters of {sizes} "
        f"({time.perf_counter() - began:.0f} s)")
    w = torch.as_tensor(r / r.sum(0), dtype=torch.float32)  # (N, C), each column sums to 1
    means = w.T @ codes  # (C, Dz)
    stds = (w.T @ codes.square() - means.square()).clamp(min=1e-4).sqrt()
    model.set_components(means.to(device), stds.to(device), POSTERIOR_STD * stds.mean().item())
    targets = torch.as_tensor(r, dtype=torch.float32, device=data.train.x.device)

    def cross_entropy(x, rows):  # -sum_c r_c log q(y=c | x), (B,)
        return -(targets[rows] * model.cluster_log_probs(x)).sum(-1)

    qy_epochs = math.ceil(QY_STEPS / math.ceil(len(data.train) / BATCH))
    ce = _fit(model.qy.parameters(), cross_entropy, model, data, qy_epochs, gen, cast,
              lambda e, v: say(f"start: q(y|x) epoch {e}, cross-entropy {v:.3f} nats"), limit)
    return {"init": "autoencoder-umap", "seconds": round(time.perf_counter() - began, 3),
            "reconstruction_nats": nll, "qy_cross_entropy_nats": ce,
            "cluster_sizes": sizes}


def clusters(codes: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Responsibilities (N, n) of a full-covariance GMM fitted to a UMAP embedding of `codes`."""
    import umap
    from sklearn.mixture import GaussianMixture

    with warnings.catch_warnings():  # a seeded UMAP runs on one thread, and says so each time
        warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
        emb = umap.UMAP(n_components=UMAP_DIMS, n_neighbors=min(UMAP_NEIGHBOURS, len(codes) - 1),
                        min_dist=0.0, random_state=seed).fit_transform(codes)
    gmm = GaussianMixture(n, covariance_type="full", n_init=GMM_INITS, random_state=seed).fit(emb)
    return gmm.predict_proba(emb)


def _fit(params, loss_fn: Callable, model, data: Data, epochs: int, gen: torch.Generator,
         cast, report: Callable, max_steps: int | None = None) -> float:
    """Adam on the mean of loss_fn(x, rows) (B,) over shuffled training batches, for `epochs` or
    `max_steps` steps, whichever ends first; returns the last epoch's mean loss. Its own loop, not
    the Trainer's: it minimises a reconstruction or a cross-entropy, not the model's bound."""
    model.train()
    params = list(params)
    opt = torch.optim.Adam(params, lr=LR, fused=params[0].device.type in ("cpu", "cuda"))
    mean, steps = float("nan"), 0
    for epoch in range(1, epochs + 1):
        order = torch.randperm(len(data.train), generator=gen, device=gen.device)
        total = torch.zeros((), dtype=torch.float64, device=params[0].device)
        seen = 0
        for rows, batch in zip(order.split(BATCH), data.batches(data.train, BATCH, gen, order),
                               strict=True):
            with cast:
                loss = loss_fn(batch.x, rows)  # (B,)
            opt.zero_grad(set_to_none=True)
            loss.mean().backward()
            opt.step()
            total += loss.detach().sum()
            seen, steps = seen + len(rows), steps + 1
            if max_steps is not None and steps >= max_steps:
                break
        mean = total.item() / seen
        if not np.isfinite(mean):
            raise AevbError(f"the start diverged in its epoch {epoch} (loss {mean}); lower --lr or "
                            "use init = 'random'")
        report(epoch, mean)
        if max_steps is not None and steps >= max_steps:
            break
    return mean


@torch.no_grad()
def _map(fn: Callable, data: Data, gen: torch.Generator, cast) -> torch.Tensor:
    """fn over the whole training split in order, in fp32 on the CPU, (N, ...)."""
    out = []
    for batch in data.batches(data.train, 1000, gen):
        with cast:
            out.append(fn(batch.x).float().cpu())
    return torch.cat(out)
