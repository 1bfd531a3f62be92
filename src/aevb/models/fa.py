"""Factor Analysis trained with AEVB: section 3 of Yang (2022), arXiv 2208.07818.

Generative model, for x in R^D and z in R^Dz:

    p(z)     = N(0, I)
    p(x | z) = N(W z + mu, Psi),      Psi = diag(sigma)^2,  sigma = softplus(s)

so the evidence is Gaussian in closed form, p(x) = N(mu, W W^T + Psi), and so is the posterior,

    p(z | x) = N(Sigma W^T Psi^-1 (x - mu), Sigma),   Sigma = (I + W^T Psi^-1 W)^-1,

whose mean is linear in x and whose covariance is the same for every x. The tutorial's recognition
model has exactly that form, q(z | x) = N(V x + b, L L^T) with one lower-triangular L shared by all
x, so the best ELBO equals the exact log-likelihood: AEVB can reach the maximum-likelihood fit.
The tutorial's data is centred and its recipe has no mean (mu = 0, b = 0); for other data the mean
is learned.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Independent, MultivariateNormal, Normal

from aevb.config import option
from aevb.data.sources import SYNTHETIC
from aevb.models.base import LatentModel

_SOFTPLUS_INV_1 = math.log(math.e - 1.0)  # softplus(_SOFTPLUS_INV_1) == 1


@dataclass(frozen=True)
class FAConfig:
    latent_dim: int = option(2, "Dz, the number of factors", low=1)
    learn_mean: bool | None = option(None, "learn the means mu and b (unset: yes, unless the data is "
                                     "the tutorial's, which is centred)")
    init_scale: float = option(0.1, "std of the initial W and V entries")


class FactorAnalysis(LatentModel):
    """Linear-Gaussian factor analysis with a linear recognition model and shared covariance."""

    compilable = False  # dynamo fails on MultivariateNormal's KL; FA is tiny anyway
    figure_sets = ("fa-experiments",)  # the tutorial's two traced experiments (aevb.reports.fa_experiments)
    name = "fa"
    Config = FAConfig
    recipe = {
        "data": {"dataset": "fa-synthetic", "preprocess": "none"},
        # The tutorial trained 35 epochs; on fresh data that stops 0.03-0.09 nats short of the
        # maximum-likelihood fit, which 100 epochs (3,200 steps, seconds) reach within 0.01.
        "train": {"epochs": 100, "batch_size": 32, "lr": 1e-2},
    }
    support = "real"

    def __init__(self, cfg: FAConfig, event_shape: tuple[int, ...], n_classes: int | None = None):
        super().__init__()
        (d,) = event_shape
        dz = cfg.latent_dim
        self.cfg = cfg
        # Generative parameters of p(x | z).
        self.W = nn.Parameter(cfg.init_scale * torch.randn(d, dz))  # (D, Dz) factor loadings
        self.s = nn.Parameter(torch.full((d,), _SOFTPLUS_INV_1))  # sigma = softplus(s), starts at 1
        self.mu = nn.Parameter(torch.zeros(d)) if cfg.learn_mean else None  # (D,)
        # Inference parameters of q(z | x).
        self.V = nn.Parameter(cfg.init_scale * torch.randn(dz, d))  # (Dz, D)
        self.b = nn.Parameter(torch.zeros(dz)) if cfg.learn_mean else None  # (Dz,)
        self.L_raw = nn.Parameter(torch.eye(dz) * _SOFTPLUS_INV_1)  # L starts at I

    @classmethod
    def resolve(cls, cfg: FAConfig, dataset: str) -> FAConfig:
        """Fill options that depend on the data: the tutorial's centred data needs no mean."""
        if cfg.learn_mean is None:
            return dataclasses.replace(cfg, learn_mean=dataset != SYNTHETIC)
        return cfg

    # -- the three densities ------------------------------------------------------------------

    @property
    def sigma(self) -> torch.Tensor:
        return F.softplus(self.s)

    @property
    def scale_tril(self) -> torch.Tensor:
        """L, lower triangular with a positive diagonal, so L L^T is a valid covariance."""
        return torch.tril(self.L_raw, -1) + torch.diag(F.softplus(torch.diagonal(self.L_raw)))

    def prior(self, c=None):
        """p(z) = N(0, I)."""
        dz = self.W.shape[1]
        zero = self.W.new_zeros(dz)
        return MultivariateNormal(zero, scale_tril=torch.eye(dz, device=zero.device))

    def likelihood(self, z, c=None):
        """p(x | z) = N(W z + mu, diag(sigma)^2)."""
        mean = z @ self.W.T  # (..., D)
        if self.mu is not None:
            mean = mean + self.mu
        return Independent(Normal(mean, self.sigma), 1)

    def posterior(self, x, c=None):
        """q(z | x) = N(V x + b, L L^T)."""
        mean = x @ self.V.T  # (B, Dz)
        if self.b is not None:
            mean = mean + self.b
        return MultivariateNormal(mean, scale_tril=self.scale_tril)

    # -- closed forms, for evaluation and tests ---------------------------------------------

    def marginal(self) -> MultivariateNormal:
        """p(x) = N(mu, W W^T + Psi)."""
        cov = self.W @ self.W.T + torch.diag(self.sigma**2)
        mean = self.mu if self.mu is not None else self.W.new_zeros(self.W.shape[0])
        return MultivariateNormal(mean, covariance_matrix=cov)

    def exact_log_prob(self, x, c=None):
        """log p(x) = log N(x; mu, W W^T + Psi), (B,)."""
        return self.marginal().log_prob(x)

    def exact_posterior(self, x) -> MultivariateNormal:
        """p(z | x) = N(Sigma W^T Psi^-1 (x - mu), Sigma), Sigma = (I + W^T Psi^-1 W)^-1."""
        w_psi = self.W.T / self.sigma**2  # (Dz, D) W^T Psi^-1
        precision = torch.eye(self.W.shape[1], device=x.device) + w_psi @ self.W
        cov = torch.linalg.inv(precision)
        centred = x if self.mu is None else x - self.mu
        return MultivariateNormal(centred @ (cov @ w_psi).T, covariance_matrix=cov)

    # -- parameter roles, for the tutorial's alternating-freeze experiment ---------------------

    def generative_parameters(self) -> list[nn.Parameter]:
        return [p for p in (self.W, self.s, self.mu) if p is not None]

    def inference_parameters(self) -> list[nn.Parameter]:
        return [p for p in (self.V, self.b, self.L_raw) if p is not None]
