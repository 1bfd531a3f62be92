"""The conditional VAE: Sohn et al. (2015), section 5 of Yang (2022), arXiv 2208.07818.

For a label y (one-hot, C classes):

    p(z | y)    = N(A y, diag(softplus(B y))^2)        the tutorial's learned, label-dependent prior
                  or N(0, I) for every y                --prior standard
                  or sum_k pi_yk N(m_yk, diag(s_yk)^2)  --prior mixture: K learned components per label
                  or sum_k pi_yk N(m_yk, S_yk)          --prior fitted (`aevb train cvae`): K
                                                        full-covariance components per label
    p(x | y, z) = CB(x; lambda(z, y))                   the VAE's decoder fed [z, y]
    q(z | x, y) = N(mu(x, y), diag(sigma(x, y))^2)      the VAE's encoder fed [x, y]

Under each of these priors z carries the class (at most log C nats of KL; the trained decoder
ignores y), so a draw z ~ p(z|y) decodes to digit y only if it lands where q(z|x,y) puts that
label's images; elsewhere the decoder draws whatever that region resembles, often another digit.
The tutorial's diagonal Gaussian must be wide in every direction to cover codes spread along
correlated ones, and a fifth of its draws miss. For a fixed encoder the prior that maximises the
ELBO is the aggregate posterior (1/N_y) sum_{x of label y} q(z|x,y). So with `fitted` the networks
train exactly as the tutorial's, against its Gaussian (analytic KL), and after every epoch each
label's mixture is refitted by EM, a maximum-likelihood fit to one draw of q per training image of
that label; evaluation and sampling use the mixture, with the KL term estimated from the draws
(docs: Results, "The CVAE: which digit it draws"). The tutorial's recipe is the VAE's at batch 100.
Labels come from the dataset.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Categorical, Independent, MixtureSameFamily, MultivariateNormal, Normal

from aevb.config import option
from aevb.errors import AevbError
from aevb.models.base import LatentModel
from aevb.models.nets import (
    ConvDecoder,
    ConvEncoder,
    GaussianHead,
    LikelihoodHead,
    LocationLikelihood,
    OwnDecoder,
    mlp,
    own_encoder,
)
from aevb.models.vae import VAE, VAEConfig


@dataclass(frozen=True)
class CVAEConfig(VAEConfig):
    prior: str = option("learned", "p(z|y): learned, a Gaussian per label (the tutorial's); standard, "
                        "N(0, I) for every label; mixture, --prior-components learned Gaussians per "
                        "label; fitted, --prior-components full-covariance Gaussians per label fitted "
                        "by EM to the codes of that label's training images after every epoch",
                        choices=("learned", "standard", "mixture", "fitted"), noun="prior")
    prior_components: int = option(10, "--prior mixture or fitted: Gaussian components per label", low=1)


class CVAE(LatentModel):
    """Conditional VAE: label-dependent prior p(z|y), encoder q(z|x,y), decoder p(x|y,z)."""

    name = "cvae"
    Config = CVAEConfig
    uses_labels = True
    recipe = {  # configs/cvae.toml: the tutorial's recipe with the fitted prior
        "model_config": {"prior": "fitted", "prior_components": 10},
        "data": {"dataset": "mnist", "preprocess": "dequantize"},
        "train": {"epochs": 69, "batch_size": 100, "lr": 3e-4, "precision": "auto"},
    }

    def __init__(self, cfg: CVAEConfig, event_shape: tuple[int, ...], n_classes: int | None = None):
        super().__init__()
        if not n_classes:
            raise AevbError("cvae is conditioned on labels, but the data has none")
        self.cfg, self.n_classes = cfg, n_classes
        # linear mean, softplus-linear std; none for the standard prior
        self.p_z = GaussianHead(n_classes, cfg.latent_dim) if cfg.prior in ("learned", "fitted") else None
        if cfg.prior == "mixture":  # per label: K means, softplus stds, mixing logits
            shape = (n_classes, cfg.prior_components, cfg.latent_dim)
            self.pz_means = nn.Parameter(torch.randn(shape))
            self.pz_stds = nn.Parameter(torch.full(shape, 0.5413))  # softplus(0.5413) = 1
            self.pz_logits = nn.Parameter(torch.zeros(shape[:2]))
        if cfg.prior == "fitted":  # per label: K means, Cholesky factors, log weights; set by EM
            shape = (n_classes, cfg.prior_components, cfg.latent_dim)
            self.register_buffer("pz_loc", torch.zeros(shape))
            self.register_buffer("pz_tril", torch.eye(cfg.latent_dim).expand(*shape, -1).clone())
            self.register_buffer("pz_log_weights", torch.zeros(shape[:2]))
            self.register_buffer("pz_fitted", torch.tensor(False))  # until the first epoch ends
        if cfg.encoder:  # the user's own networks; y joins their features, and z at the decoder's input
            self.encoder, features = own_encoder(cfg.encoder, cfg.encoder_args, event_shape)
            self.q_head = GaussianHead(features + n_classes, cfg.latent_dim)
            self.decoder = OwnDecoder(cfg.decoder, cfg.decoder_args, cfg.latent_dim + n_classes, event_shape)
            self.px_head = LocationLikelihood(event_shape, cfg.likelihood)
        elif cfg.arch == "conv":  # y joins the image's features, and z at the decoder's input
            self.encoder = ConvEncoder(event_shape, cfg.hidden, cfg.layers)
            self.q_head = GaussianHead(cfg.hidden + n_classes, cfg.latent_dim)
            self.decoder = ConvDecoder(cfg.latent_dim + n_classes, event_shape, cfg.hidden, cfg.layers)
            self.px_head = LocationLikelihood(event_shape, cfg.likelihood)
        else:  # the tutorial's: [x, y] in, [z, y] in
            (d,) = event_shape
            self.encoder = mlp(d + n_classes, cfg.hidden, cfg.layers, cfg.dropout, cfg.activation)
            self.q_head = GaussianHead(cfg.hidden, cfg.latent_dim)
            self.decoder = mlp(cfg.latent_dim + n_classes, cfg.hidden, cfg.layers, cfg.dropout,
                               cfg.activation)
            self.px_head = LikelihoodHead(cfg.hidden, d, cfg.likelihood)

    @classmethod
    def check_config(cls, cfg: CVAEConfig) -> None:
        VAE.check_config(cfg)  # the networks of the user's own, as the VAE takes them

    def one_hot(self, y: torch.Tensor) -> torch.Tensor:
        return F.one_hot(y, self.n_classes).float()  # (B, C)

    def prior(self, c):
        """p(z | y): batch (B,) for labels y (B,). --prior fitted: the fitted mixture, except in
        training mode, where the networks learn against the tutorial's Gaussian."""
        if self.cfg.prior == "fitted" and not self.training and bool(self.pz_fitted):
            parts = MultivariateNormal(self.pz_loc[c], scale_tril=self.pz_tril[c])
            return MixtureSameFamily(Categorical(logits=self.pz_log_weights[c]), parts)
        if self.p_z is not None:
            return self.p_z(self.one_hot(c))
        if self.cfg.prior == "mixture":  # batch (B,): no closed-form KL, so terms() estimates it
            parts = Independent(Normal(self.pz_means[c], F.softplus(self.pz_stds[c]) + 1e-6), 1)
            return MixtureSameFamily(Categorical(logits=self.pz_logits[c]), parts)
        zeros = torch.zeros(*c.shape, self.cfg.latent_dim, device=c.device)
        return Independent(Normal(zeros, torch.ones_like(zeros)), 1)

    @property
    def has_fitted_prior(self) -> bool:
        return self.cfg.prior == "fitted" and bool(self.pz_fitted)

    @contextmanager
    def trained_prior(self):
        """--prior fitted: p(z|y) is the Gaussian the networks trained against while in this block,
        so the ELBO measures the networks alone and the fitted mixture's gain shows beside it.

            >>> with model.trained_prior(): ...  # doctest: +SKIP
        """
        fitted = self.pz_fitted.clone()
        self.pz_fitted.fill_(False)
        try:
            yield
        finally:
            self.pz_fitted.copy_(fitted)

    def likelihood(self, z, c):
        """p(x | y, z); z is (K, B, Dz) or (B, Dz), y is (B,)."""
        y = self.one_hot(c).expand(*z.shape[:-1], self.n_classes)
        return self.px_head(self.decoder(torch.cat([z, y], -1)))

    def posterior(self, x, c):
        """q(z | x, y)."""
        if self.cfg.arch == "conv" or self.cfg.encoder:
            return self.q_head(torch.cat([self.encoder(x), self.one_hot(c)], -1))
        return self.q_head(self.encoder(torch.cat([x, self.one_hot(c)], -1)))

    # -- the fitted prior: EM on the codes of each label's training images --------------------------

    def prepare(self, data, train_cfg) -> None:
        """--prior fitted: refuse labels with fewer training images than mixture components."""
        counts = torch.bincount(data.train.y, minlength=self.n_classes)
        if self.cfg.prior == "fitted" and counts.min() < self.cfg.prior_components:
            label = int(counts.argmin())
            raise AevbError(f"cvae --prior fitted needs at least --prior-components "
                            f"{self.cfg.prior_components} training datapoints of every label, but label "
                            f"{label} has {int(counts[label])}; lower --prior-components")

    @torch.no_grad()
    def after_epoch(self, data, train_cfg, epoch: int) -> None:
        """--prior fitted: refit each label's mixture to one draw z ~ q(z|x,y) per training image:
        EM_STEPS of EM from the last fit, or from k-means the first time. The draws come from a
        generator seeded by the run's seed and the epoch, so the training's random numbers stay."""
        if self.cfg.prior != "fitted":
            return
        was_training = self.training
        self.eval()  # q without dropout, as evaluation sees it
        gen = torch.Generator(device=data.train.x.device).manual_seed(train_cfg.seed * 100_003 + epoch)
        z = []
        for b in data.batches(data.train, train_cfg.eval_batch_size, gen):
            q = self.posterior(b.x, b.y)
            z.append(q.mean + q.stddev * torch.randn(q.mean.shape, generator=gen, device=gen.device))
        z, labels = torch.cat(z).double(), data.train.y  # (N, Dz) and (N,), in the split's order
        self.train(was_training)
        first = not self.pz_fitted
        for label in range(self.n_classes):
            z_y = z[labels == label]  # (N_y, Dz): this label's codes
            mixture = (kmeans_start(z_y, self.cfg.prior_components, train_cfg.seed) if first else
                       (self.pz_loc[label], self.pz_tril[label], self.pz_log_weights[label]))
            mixture = tuple(t.double() for t in mixture)
            for _ in range(EM_STEPS * (10 if first else 1)):
                mixture = em_step(z_y, *mixture)
            for buffer, value in zip((self.pz_loc, self.pz_tril, self.pz_log_weights), mixture, strict=True):
                buffer[label] = value  # in place: a compiled step reads these tensors
        self.pz_fitted.fill_(True)

    @torch.no_grad()
    def sample(self, n: int, c: torch.Tensor | None = None, mode: str = "sample") -> torch.Tensor:
        """n draws from p(x | y); without labels, y cycles through the classes."""
        if c is None:
            c = torch.arange(n, device=next(self.parameters()).device) % self.n_classes
        return super().sample(n, c, mode)


EM_STEPS = 10  # per epoch, continuing from the last epoch's fit (ten times that from k-means)
REG = 1e-6  # added to each covariance's diagonal, as scikit-learn's GaussianMixture does


def em_step(z, loc, tril, log_weights):
    """One EM step for a full-covariance Gaussian mixture: z (N, D); loc (K, D), tril (K, D, D)
    Cholesky factors of the covariances, log_weights (K,). Returns the three updated."""
    log_r = MultivariateNormal(loc, scale_tril=tril).log_prob(z[:, None]) + log_weights  # (N, K)
    return m_step(z, log_r.softmax(1))  # E-step: each point's responsibilities r


def m_step(z, r):
    """The mixture that maximises the r-weighted log-likelihood of z (N, D), for r (N, K)."""
    n = r.sum(0) + 1e-10  # (K,) the components' weighted counts
    loc = r.T @ z / n[:, None]
    d = (z[None] - loc[:, None]) * r.T[..., None].sqrt()  # (K, N, D)
    cov = d.mT @ d / n[:, None, None] + REG * torch.eye(z.shape[1], dtype=z.dtype, device=z.device)
    return loc, torch.linalg.cholesky(cov), (n / len(z)).log()


def kmeans_start(z, k: int, seed: int):
    """The mixture of k-means' clusters of z (N, D), as scikit-learn's GaussianMixture starts."""
    from sklearn.cluster import KMeans

    assigned = KMeans(k, n_init=1, random_state=seed).fit_predict(z.cpu().numpy())
    assigned = torch.as_tensor(assigned, dtype=torch.int64, device=z.device)  # (N,)
    return m_step(z, F.one_hot(assigned, k).to(z.dtype))
