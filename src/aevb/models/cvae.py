"""The conditional VAE: Sohn et al. (2015), section 5 of Yang (2022), arXiv 2208.07818.

For a label y (one-hot, C classes):

    p(z | y)    = N(A y, diag(softplus(B y))^2)        the tutorial's learned, label-dependent prior
                  or N(0, I) for every y                --prior standard
                  or sum_k pi_yk N(m_yk, diag(s_yk)^2)  --prior mixture: K learned components per label
    p(x | y, z) = CB(x; lambda(z, y))                   the VAE's decoder fed [z, y]
    q(z | x, y) = N(mu(x, y), diag(sigma(x, y))^2)      the VAE's encoder fed [x, y]

Under each of these priors z carries the class (at most log C nats of KL), so whether z ~ p(z|y)
decodes to digit y depends on how well p(z|y) covers that class's posterior codes; the ELBO cannot
tell (docs: Results, "The CVAE: which digit it draws"). The tutorial's recipe is the VAE's at
batch 100. Labels come from the dataset.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

from aevb.config import option
from aevb.errors import AevbError
from aevb.models.base import LatentModel
from aevb.models.nets import GaussianHead, LikelihoodHead, mlp
from aevb.models.vae import VAEConfig


@dataclass(frozen=True)
class CVAEConfig(VAEConfig):
    prior: str = option("learned", "p(z|y): learned, a Gaussian per label (the tutorial's); standard, "
                        "N(0, I) for every label; mixture, --prior-components learned Gaussians per label",
                        choices=("learned", "standard", "mixture"), noun="prior")
    prior_components: int = option(10, "--prior mixture: Gaussian components per label", low=1)


class CVAE(LatentModel):
    """Conditional VAE: label-dependent prior p(z|y), encoder q(z|x,y), decoder p(x|y,z)."""

    name = "cvae"
    Config = CVAEConfig
    uses_labels = True
    recipe = {
        "data": {"dataset": "mnist", "preprocess": "dequantize"},
        "train": {"epochs": 69, "batch_size": 100, "lr": 3e-4, "precision": "auto"},
    }

    def __init__(self, cfg: CVAEConfig, event_shape: tuple[int, ...], n_classes: int | None = None):
        super().__init__()
        if not n_classes:
            raise AevbError("cvae is conditioned on labels, but the data has none")
        (d,) = event_shape
        self.cfg, self.n_classes = cfg, n_classes
        # linear mean, softplus-linear std; none for the standard prior
        self.p_z = GaussianHead(n_classes, cfg.latent_dim) if cfg.prior == "learned" else None
        if cfg.prior == "mixture":  # per label: K means, softplus stds, mixing logits
            shape = (n_classes, cfg.prior_components, cfg.latent_dim)
            self.pz_means = nn.Parameter(torch.randn(shape))
            self.pz_stds = nn.Parameter(torch.full(shape, 0.5413))  # softplus(0.5413) = 1
            self.pz_logits = nn.Parameter(torch.zeros(shape[:2]))
        self.encoder = mlp(d + n_classes, cfg.hidden, cfg.layers, cfg.dropout, cfg.activation)
        self.q_head = GaussianHead(cfg.hidden, cfg.latent_dim)
        self.decoder = mlp(cfg.latent_dim + n_classes, cfg.hidden, cfg.layers, cfg.dropout,
                           cfg.activation)
        self.px_head = LikelihoodHead(cfg.hidden, d, cfg.likelihood)

    def one_hot(self, y: torch.Tensor) -> torch.Tensor:
        return F.one_hot(y, self.n_classes).float()  # (B, C)

    def prior(self, c):
        """p(z | y): batch (B,) for labels y (B,)."""
        if self.p_z is not None:
            return self.p_z(self.one_hot(c))
        if self.cfg.prior == "mixture":  # batch (B,): no closed-form KL, so terms() estimates it
            parts = Independent(Normal(self.pz_means[c], F.softplus(self.pz_stds[c]) + 1e-6), 1)
            return MixtureSameFamily(Categorical(logits=self.pz_logits[c]), parts)
        zeros = torch.zeros(*c.shape, self.cfg.latent_dim, device=c.device)
        return Independent(Normal(zeros, torch.ones_like(zeros)), 1)

    def likelihood(self, z, c):
        """p(x | y, z); z is (K, B, Dz) or (B, Dz), y is (B,)."""
        y = self.one_hot(c).expand(*z.shape[:-1], self.n_classes)
        return self.px_head(self.decoder(torch.cat([z, y], -1)))

    def posterior(self, x, c):
        """q(z | x, y)."""
        return self.q_head(self.encoder(torch.cat([x, self.one_hot(c)], -1)))

    @torch.no_grad()
    def sample(self, n: int, c: torch.Tensor | None = None, mode: str = "sample") -> torch.Tensor:
        """n draws from p(x | y); without labels, y cycles through the classes."""
        if c is None:
            c = torch.arange(n, device=next(self.parameters()).device) % self.n_classes
        return super().sample(n, c, mode)
