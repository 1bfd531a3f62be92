"""Building blocks shared by the neural models: MLPs, Gaussian heads, and the likelihoods of x.

Shapes: B batch, K samples, D data dims, Dz latent dims, H hidden units.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Bernoulli, ContinuousBernoulli, Independent, Normal

from aevb.errors import AevbError

LIKELIHOODS = ("continuous-bernoulli", "bernoulli", "gaussian")
LIKELIHOOD_SUPPORT = {"continuous-bernoulli": "unit", "bernoulli": "binary", "gaussian": "real"}


def likelihood_support(kind: str) -> str:
    """What values a likelihood accepts: real | unit | binary; an unknown kind is an AevbError."""
    if kind not in LIKELIHOODS:
        raise AevbError(f"unknown likelihood {kind!r}; choose one of {', '.join(LIKELIHOODS)}")
    return LIKELIHOOD_SUPPORT[kind]


def mlp(d_in: int, hidden: int, layers: int, dropout: float) -> nn.Sequential:
    """`layers` blocks of Linear -> ReLU -> Dropout, d_in -> H -> ... -> H."""
    blocks: list[nn.Module] = []
    for i in range(layers):
        blocks += [nn.Linear(d_in if i == 0 else hidden, hidden), nn.ReLU()]
        if dropout > 0:
            blocks.append(nn.Dropout(dropout))
    return nn.Sequential(*blocks)


class GaussianHead(nn.Module):
    """A diagonal Gaussian over Dz from features: a linear mean and a softplus-linear std."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.mean = nn.Linear(d_in, d_out)
        self.std = nn.Linear(d_in, d_out)

    def forward(self, h: torch.Tensor) -> Independent:
        return Independent(Normal(self.mean(h), F.softplus(self.std(h)) + 1e-6), 1)


class LikelihoodHead(nn.Module):
    """p(x | features): continuous Bernoulli or Bernoulli from logits, or a Gaussian whose
    diagonal variance is a free learned parameter."""

    def __init__(self, d_in: int, d_out: int, kind: str):
        super().__init__()
        if kind not in LIKELIHOODS:
            raise ValueError(f"unknown likelihood {kind!r}")
        self.kind = kind
        self.out = nn.Linear(d_in, d_out)
        self.log_std = nn.Parameter(torch.zeros(d_out)) if kind == "gaussian" else None

    def forward(self, h: torch.Tensor):
        a = self.out(h)  # (..., D) logits, or the Gaussian mean
        if self.kind == "continuous-bernoulli":
            # logits, not probs: the normaliser stays finite for outputs near 0, 0.5 and 1
            return Independent(ContinuousBernoulli(logits=a), 1)
        if self.kind == "bernoulli":
            return Independent(Bernoulli(logits=a), 1)
        return Independent(Normal(a, self.log_std.exp().expand_as(a)), 1)
