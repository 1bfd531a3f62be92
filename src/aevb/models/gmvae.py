"""The Gaussian-mixture VAE of Rui Shu (2016), section 6 of Yang (2022), arXiv 2208.07818.

Generative model, with C components (the tutorial's K):

    p(y)     = 1/C                                   uniform over components
    p(z | y) = N(A y, diag(softplus(B y))^2)         y one-hot
    p(x | z) = Bernoulli(x; f(z))

Inference: q(y | x) q(z | x, y). In training the discrete y is summed out exactly, never sampled:
`terms` scores z_c ~ q(z | x, y=c) for every c at once, with a component axis C, and
`aevb.objectives` weights the per-component ELBOs by q(y | x). The IWAE bound (`iwae_terms`) draws
y ~ q(y|x) instead and sums y out of the densities, one decoder pass per draw. The first layer of
q(z | x, y) acts on [x, y], so it is W_x x + W_y y: W_x x is computed once and shared by all C
values of y.

Where training starts decides the clusters. The tutorial's recipe starts from random weights
(`configs/gmvae-tutorial.toml`); `aevb train gmvae` (`configs/gmvae.toml`) starts from UMAP clusters
of an autoencoder's codes (`aevb.starts.umap`, which uses `code`, `set_components` and
`cluster_log_probs` below) and keeps q(y|x) there, because the ELBO
prefers components that are Gaussian in z to the digit classes and, let loose, trades cluster
accuracy for it (docs: Results, "The GMVAE's clusters").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Categorical, Normal, kl_divergence

from aevb.config import option
from aevb.data.support import LIKELIHOODS
from aevb.models.base import LatentModel, Terms
from aevb.models.nets import (
    ConvDecoder,
    ConvEncoder,
    GaussianHead,
    LikelihoodHead,
    LocationLikelihood,
    mlp,
)
from aevb.models.vae import ARCHS


@dataclass(frozen=True)
class GMVAEConfig:
    components: int = option(10, "C, the mixture components (clusters); the tutorial's K", low=1)
    latent_dim: int = option(64, "Dz, the dimensions of z", low=1)
    hidden: int = option(512, "H, the width of every hidden layer", low=1)
    layers: int = option(2, "hidden layers in each network", low=1)
    likelihood: str = option("bernoulli", "p(x|z): Bernoulli for binary data, continuous Bernoulli for "
                             "values in [0, 1], Gaussian for real values", choices=LIKELIHOODS,
                             noun="likelihood")
    init: str = option("random", "where training starts: random weights, or clusters of an "
                       "autoencoder's codes embedded by UMAP (needs umap-learn)",
                       choices=("random", "autoencoder-umap"), noun="init")
    init_epochs: int = option(20, "autoencoder-umap: epochs of autoencoder pretraining", low=1)
    arch: str = option("mlp", "the networks: mlp, fully connected (the tutorial's); conv, convolutions "
                       "for images of any size (--layers halvings, --hidden units)", choices=ARCHS,
                       noun="--arch")


class GMVAE(LatentModel):
    """Gaussian-mixture VAE with q(y|x) summed out exactly."""

    name = "gmvae"
    Config = GMVAEConfig
    recipe = {  # configs/gmvae.toml: the tutorial's model, started from UMAP clusters of its codes
        "model_config": {"init": "autoencoder-umap", "init_epochs": 20},
        "data": {"dataset": "mnist", "preprocess": "binarize-threshold"},
        # One z per component in the per-epoch test ELBO: summing over the C components already
        # averages C draws, and ten more would cost half an epoch's training time.
        "train": {"epochs": 40, "batch_size": 100, "lr": 1e-3, "eval_samples": 1, "freeze": "qy",
                  "freeze_epochs": 40, "lr_decay_from": 20, "precision": "auto"},
    }

    def __init__(self, cfg: GMVAEConfig, event_shape: tuple[int, ...], n_classes: int | None = None):
        super().__init__()
        c, h, dz = cfg.components, cfg.hidden, cfg.latent_dim
        self.cfg = cfg
        conv = cfg.arch == "conv"  # x (B, C, H, W): convolutional features where the tutorial has layers
        d = None if conv else event_shape[0]
        # registered in this order, which fixes the parameters' order (Adam's state is saved by it)
        features = ConvEncoder(event_shape, h, cfg.layers) if conv else mlp(d, h, cfg.layers, 0.0)
        self.qy = nn.Sequential(features, nn.Linear(h, c))  # logits of q(y|x)
        # first layer of q(z|x,y): the x part (computed once for all y), then the y part
        self.qz_x = ConvEncoder(event_shape, h, cfg.layers, activate=False) if conv else nn.Linear(d, h)
        self.qz_y = nn.Linear(c, h, bias=False)
        self.qz_rest = mlp(h, h, 0 if conv else cfg.layers - 1, 0.0)
        self.qz_head = GaussianHead(h, dz)
        self.pz_y = GaussianHead(c, dz)  # p(z|y): linear mean, softplus-linear std of one-hot y
        self.decoder = ConvDecoder(dz, event_shape, h, cfg.layers) if conv else mlp(dz, h, cfg.layers, 0.0)
        self.px_head = (LocationLikelihood(event_shape, cfg.likelihood) if conv
                        else LikelihoodHead(h, d, cfg.likelihood))
        for m in self.modules():  # the tutorial's initialisation: Xavier-normal weights, zero biases
            if isinstance(m, nn.Linear):
                nn.init.xavier_normal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    @property
    def n_clusters(self) -> int:
        return self.cfg.components

    @property
    def log_py(self) -> float:
        return -math.log(self.cfg.components)  # log p(y), uniform

    def prior(self, c=None):
        """p(z | y): for the components in c (n,), or for every component, batch (C, 1)."""
        eye = torch.eye(self.cfg.components, device=self.qz_y.weight.device)
        return self.pz_y(eye[c] if c is not None else eye[:, None, :])

    def likelihood(self, z, c=None):
        """p(x | z), batched over the leading dims of z."""
        return self.px_head(self.decoder(z))

    def posterior(self, x, c=None):
        """q(z | x, y) for every y at once: batch (C, B)."""
        hx = self.qz_x(x)  # (B, H), shared by all components
        hy = self.qz_y.weight.T[:, None, :]  # (C, 1, H): W_y y for each one-hot y
        return self.qz_head(self.qz_rest(F.relu(hx + hy)))  # (C, B, H) -> batch (C, B)

    def posterior_mean(self, x, c=None):
        """E_q[z | x] under the mixture q(z|x) = sum_y q(y|x) q(z|x,y), (B, Dz)."""
        qy = self.cluster_log_probs(x).exp().T[..., None]  # (C, B, 1)
        return (qy * self.posterior(x).mean).sum(0)

    def code(self, x) -> torch.Tensor:
        """q(z | x, y)'s mean without y's part: a deterministic encoder, for pretraining, (B, Dz)."""
        return self.qz_head.mean(self.qz_rest(F.relu(self.qz_x(x))))

    @torch.no_grad()
    def set_components(self, means: torch.Tensor, stds: torch.Tensor, posterior_std: float) -> None:
        """Start p(z | y=c) at N(means[c], diag(stds[c])^2), both (C, Dz), and q(z | x, y) at the
        code's mean for every y with std `posterior_std` (y's part and the std's weights zero)."""
        self.pz_y.mean.weight.copy_(means.T)  # one-hot y picks a column: the mean is A y
        self.pz_y.mean.bias.zero_()
        self.pz_y.std.weight.copy_(torch.log(torch.expm1(stds)).T)  # softplus^-1
        self.pz_y.std.bias.zero_()
        self.qz_y.weight.zero_()
        self.qz_head.std.weight.zero_()
        self.qz_head.std.bias.fill_(math.log(math.expm1(posterior_std)))

    def cluster_log_probs(self, x) -> torch.Tensor:
        """log q(y | x), (B, C)."""
        return F.log_softmax(self.qy(x).float(), dim=-1)  # fp32 under bf16 autocast too

    def terms(self, x, c=None, k: int = 1) -> Terms:
        log_qy = self.cluster_log_probs(x).T  # (C, B)
        qz, pz = self.posterior(x), self.prior()  # batch (C, B) and (C, 1)
        z = qz.rsample((k,))  # (K, C, B, Dz)
        px = self.likelihood(z)  # batch (K, C, B)
        return Terms(
            log_px=px.log_prob(x),  # (K, C, B)
            log_pz=pz.log_prob(z) + self.log_py,  # log p(y) + log p(z | y)
            log_qz=qz.log_prob(z),
            kl=kl_divergence(qz, pz) - self.log_py,  # (C, B) E_q[log q(z|x,y) - log p(y, z)]
            log_qy=log_qy,
        )

    def iwae_terms(self, x, c=None, k: int = 1) -> Terms:
        """Terms of z alone, y summed out of both densities, at K draws z ~ q(z|x), (K, B) each.

            q(z | x) = sum_y q(y|x) q(z|x,y)       draw y ~ q(y|x), then z ~ q(z|x,y)
            p(z)     = sum_y p(y) p(z|y)

        p(x, z) / q(z | x) is an importance weight with one decoder pass per draw, where `terms`
        spends C (one z per component). For a trained model, whose q(y|x) is mostly sure, K such
        draws gave a bound as tight as K / C draws per component or tighter (README, Log-likelihood).
        """
        log_qy = self.cluster_log_probs(x)  # (B, C)
        qz, pz = self.posterior(x), self.prior()  # batch (C, B) and (C, 1)
        y = Categorical(logits=log_qy).sample((k,))  # (K, B)
        b = torch.arange(x.shape[0], device=x.device)
        picked = Normal(qz.base_dist.loc[y, b], qz.base_dist.scale[y, b])  # (K, B, Dz): q(z|x,y)
        z = picked.rsample()  # rsample's aten normal_: torch.compile keeps the seeded stream
        every = z[:, None]  # (K, 1, B, Dz): scored under all C components at once
        log_qz = torch.logsumexp(qz.log_prob(every) + log_qy.T, dim=1)  # (K, B)
        log_pz = torch.logsumexp(pz.log_prob(every), dim=1) + self.log_py
        return Terms(log_px=self.likelihood(z).log_prob(x), log_pz=log_pz, log_qz=log_qz)

    @torch.no_grad()
    def sample(self, n: int, c: torch.Tensor | None = None, mode: str = "sample") -> torch.Tensor:
        """n draws from p(x), or from p(x | y) for the components in c (n,)."""
        if c is None:
            c = torch.randint(self.cfg.components, (n,), device=self.qz_y.weight.device)
        return super().sample(n, c, mode)
