"""The estimators, written once for every model: the ELBO and the importance-weighted bound.

Both reduce `Terms` from `LatentModel.terms`; this is the only place log-weights are reduced.

    ELBO   = E_q[log p(x|z)] - KL(q(z|x) || p(z))              (analytic KL when torch has one)
           = E_q[log p(x|z) + log p(z) - log q(z|x)]           (Monte Carlo otherwise)
    IWAE_K = log (1/K) sum_k p(x, z_k) / q(z_k | x)            (Burda et al. 2015)

ELBO <= IWAE_K <= log p(x), and IWAE_K -> log p(x) as K grows. Training maximises either
(`bound`, `--objective elbo|iwae` with K = `--train-samples`); with K = 1 the two are the same
Monte Carlo estimate. KL warm-up (`--kl-warmup N`, Sønderby et al. 2016) trains on the ELBO with
every term but log p(x|z) weighted by beta, rising from 0 to 1 over the first N epochs.

With a discrete y summed out (terms with a component axis C and q(y|x) in `log_qy`):

    ELBO   = sum_y q(y|x) [ELBO_y - log q(y|x)]                ELBO_y: the above, for y = c
    IWAE_K = log (1/K) sum_k p(x, z_k) / q(z_k | x),   z_k ~ q(z|x) = sum_y q(y|x) q(z|x,y)

with y summed out of both densities, p(x, z) = p(x|z) sum_y p(y) p(z|y) (`LatentModel.iwae_terms`).
`log_weights` also takes the training terms, one draw z_ky per component: their weight
sum_y p(x, y, z_ky) / q(z_ky | x, y) sums over y inside the log and has expectation p(x) too.
q(y|x) cancels from that weight, so training the GMVAE on it leaves q(y|x) where it is.
"""

from __future__ import annotations

import math

import torch

from aevb.models.base import LatentModel, Terms


def log_weights(t: Terms) -> torch.Tensor:
    """log p(x, z_k) - log q(z_k | x), shape (K, B); a summed-out y is summed inside the log."""
    lw = t.log_px + t.log_pz - t.log_qz  # (K, B) or (K, C, B)
    return lw if t.log_qy is None else torch.logsumexp(lw, dim=1)


def component_elbos(t: Terms, analytic_kl: bool = True, beta: torch.Tensor | None = None) -> torch.Tensor:
    """ELBO_y per datapoint for every value of a summed-out y, (C, B), log p(y) included; (B,) for
    terms without y. argmax_y ELBO_y is the cluster the bound itself prefers, and logsumexp_y
    ELBO_y is the ELBO with the best q(y|x), softmax_y ELBO_y."""
    if analytic_kl and t.kl is not None:
        return t.log_px.mean(0) - (t.kl if beta is None else beta * t.kl)  # (B,) or (C, B)
    if beta is None:
        return (t.log_px + t.log_pz - t.log_qz).mean(0)
    return (t.log_px + beta * (t.log_pz - t.log_qz)).mean(0)


def elbo(t: Terms, analytic_kl: bool = True, beta: torch.Tensor | None = None) -> torch.Tensor:
    """The evidence lower bound per datapoint, (B,), averaged over the K draws. `beta` (a 0-dim
    tensor) weighs every term but log p(x|z), as KL warm-up does; None is the ELBO itself."""
    per = component_elbos(t, analytic_kl, beta)
    if t.log_qy is None:
        return per
    log_qy = t.log_qy if beta is None else beta * t.log_qy
    return (t.log_qy.exp() * (per - log_qy)).sum(0)  # sum_y q(y|x) [ELBO_y - log q(y|x)]


def iwae_bound(t: Terms) -> torch.Tensor:
    """IWAE_K per datapoint, (B,), from the K draws of `t`: log (1/K) sum_k p(x, z_k) / q(z_k | x)."""
    lw = log_weights(t)  # (K, B)
    return torch.logsumexp(lw, dim=0) - math.log(lw.shape[0])


OBJECTIVES = {"elbo": elbo, "iwae": iwae_bound}  # what `--objective` names: Terms -> (B,)


def name(objective: str, samples: int) -> str:
    """What logs and figures call a training objective.

        >>> name("iwae", 5), name("elbo", 1)
        ('IWAE_5', 'ELBO')
    """
    return f"IWAE_{samples}" if objective == "iwae" else "ELBO"


def bound(t: Terms, objective: str = "elbo", beta: torch.Tensor | None = None) -> torch.Tensor:
    """The training objective per datapoint, (B,): the ELBO, or IWAE_K over the K draws of `t`;
    `beta`, during `--kl-warmup`, weighs the ELBO's prior terms (`elbo`).

        >>> from aevb.models.fa import FAConfig, FactorAnalysis
        >>> bound(FactorAnalysis(FAConfig(), (5,)).terms(torch.zeros(3, 5), k=4), "iwae").shape
        torch.Size([3])
    """
    return OBJECTIVES[objective](t) if beta is None else elbo(t, beta=beta)


def chunk_logsumexp(model: LatentModel, x: torch.Tensor, c: torch.Tensor | None, k: int) -> torch.Tensor:
    """log sum_k p(x, z_k) / q(z_k | x) over k fresh draws, (B,): one chunk of IWAE_K."""
    return torch.logsumexp(log_weights(model.iwae_terms(x, c, k)), dim=0)


def iwae(model: LatentModel, x: torch.Tensor, c: torch.Tensor | None = None, k: int = 100,
         chunk: int | None = None, on_chunk=None, chunk_fn=chunk_logsumexp) -> torch.Tensor:
    """IWAE_K per datapoint, (B,), drawing the K samples in chunks so memory stays bounded.
    `on_chunk(fraction)` is called after each chunk with the fraction of the K draws it held;
    `chunk_fn` may be a compiled `chunk_logsumexp`.

    Each chunk's log-sum-exp is kept, and the chunks are combined with one more log-sum-exp, which
    is exact: logsumexp over all K equals logsumexp over the per-chunk logsumexps.
    """
    chunk = k if chunk is None else max(1, min(chunk, k))
    partial = []
    for start in range(0, k, chunk):
        n = min(chunk, k - start)
        partial.append(chunk_fn(model, x, c, n))  # (B,)
        if on_chunk is not None:
            on_chunk(n / k)
    return torch.logsumexp(torch.stack(partial), dim=0) - math.log(k)
