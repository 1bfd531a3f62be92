"""The variational auto-encoder: Kingma & Welling (2014), section 4 of Yang (2022), arXiv 2208.07818.

    p(z)     = N(0, I)
    p(x | z) = CB(x; lambda(z))        continuous Bernoulli (Loaiza-Ganem & Cunningham 2019),
                                      or Bernoulli, or a Gaussian with learned diagonal variance
    q(z | x) = N(mu(x), diag(sigma(x))^2)

with lambda, mu and sigma neural networks. The tutorial's recipe: z = 20, 784-500-500 ReLU
networks with dropout 0.1, a softplus std head, dequantized MNIST, Adam 3e-4 at batch 32.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.distributions import Independent, Normal

from aevb.models.base import LatentModel
from aevb.models.nets import GaussianHead, LikelihoodHead, likelihood_support, mlp


@dataclass
class VAEConfig:
    latent_dim: int = 20  # Dz
    hidden: int = 500  # H, the width of every hidden layer
    layers: int = 2  # hidden layers in the encoder and in the decoder
    dropout: float = 0.1  # after every hidden activation
    likelihood: str = "continuous-bernoulli"  # continuous-bernoulli | bernoulli | gaussian
    activation: str = "relu"  # relu | tanh (tanh: Burda et al. 2015's benchmark architecture)


def check_likelihood(cfg) -> None:
    likelihood_support(cfg.likelihood)  # raises for an unknown kind


class VAE(LatentModel):
    """Variational auto-encoder with MLP encoder q(z|x) and decoder p(x|z)."""

    name = "vae"
    Config = VAEConfig
    recipe = {
        "data": {"dataset": "mnist", "preprocess": "dequantize"},
        "train": {"epochs": 46, "batch_size": 32, "lr": 3e-4, "precision": "auto"},
    }

    def __init__(self, cfg: VAEConfig, event_shape: tuple[int, ...], n_classes: int | None = None):
        super().__init__()
        check_likelihood(cfg)
        (d,) = event_shape
        self.cfg = cfg
        self.encoder = mlp(d, cfg.hidden, cfg.layers, cfg.dropout, cfg.activation)
        self.q_head = GaussianHead(cfg.hidden, cfg.latent_dim)
        self.decoder = mlp(cfg.latent_dim, cfg.hidden, cfg.layers, cfg.dropout, cfg.activation)
        self.px_head = LikelihoodHead(cfg.hidden, d, cfg.likelihood)
        self.register_buffer("zero", torch.zeros(cfg.latent_dim), persistent=False)

    def prior(self, c=None):
        """p(z) = N(0, I)."""
        return Independent(Normal(self.zero, torch.ones_like(self.zero)), 1)

    def likelihood(self, z, c=None):
        """p(x | z), batched over the leading dims of z: (K, B, Dz) -> (K, B) events of D."""
        return self.px_head(self.decoder(z))

    def posterior(self, x, c=None):
        """q(z | x) = N(mu(x), diag(sigma(x))^2)."""
        return self.q_head(self.encoder(x))
