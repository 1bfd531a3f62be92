"""LatentModel: a model declares p(z|c), p(x|z,c) and q(z|x,c) and never computes its own loss.

Each of `prior`, `likelihood` and `posterior` returns a `torch.distributions` object whose event
dimensions are folded (`Independent` or a multivariate family), so `log_prob` gives one number per
datapoint. `terms` turns them into the log-densities that `aevb.objectives` reduces to an ELBO or
an IWAE bound. Shapes use one alphabet: K samples, B batch, D dims.

Everything else that is particular to one model is asked of the model through the hooks at the
end of the class (how it reads data, checks its options and data, what it refits after an epoch),
so that no code outside `aevb.models` names a model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn
from torch.distributions import Distribution, Independent, kl_divergence

from aevb.data.containers import chw
from aevb.data.support import likelihood_support
from aevb.errors import AevbError


@dataclass
class Terms:
    """Log-densities at K reparameterised draws z_k ~ q(z|x) for a batch of B datapoints.

    Models with a discrete latent y summed out exactly (the GMVAE) add a component axis C:
    every term is then (K, C, B), scored at z_kc ~ q(z | x, y=c), and `log_qy` holds q(y | x).
    """

    log_px: torch.Tensor  # (K, B) or (K, C, B): log p(x | z_k)
    log_pz: torch.Tensor  # (K, B) or (K, C, B): log p(z_k), or log p(y=c) + log p(z_kc | y=c)
    log_qz: torch.Tensor  # (K, B) or (K, C, B): log q(z_k | x), or log q(z_kc | x, y=c)
    kl: torch.Tensor | None = None  # (B,) or (C, B): E_q[log q(z..) - log p(z..)] in closed form
    log_qy: torch.Tensor | None = None  # (C, B) log q(y=c | x), when y is summed out


class LatentModel(nn.Module):
    """p(x, z | c) = p(z | c) p(x | z, c) with an amortised posterior q(z | x, c)."""

    name: ClassVar[str]
    Config: ClassVar[type]  # the model's options, a frozen dataclass of `aevb.config.option`s
    recipe: ClassVar[dict] = {}  # `aevb train MODEL`'s defaults: {"model_config", "data", "train": {...}}
    support: ClassVar[str] = "real"  # what p(x|z) accepts: real | unit | binary (aevb.data.support)
    uses_labels: ClassVar[bool] = False  # conditional models take c = the datapoint's label
    sequential: ClassVar[bool] = False  # x is a sequence (B, T, D), not a vector (B, D)
    compilable: ClassVar[bool] = True  # torch.compile can trace `terms` (aevb.training.step)
    figure_sets: ClassVar[tuple[str, ...]] = ()  # figures only this model gets (aevb.reports.figures)

    @classmethod
    def data_support(cls, cfg) -> str:
        """What p(x|z) accepts for this config: real | unit | binary.

        Models whose config names a `likelihood` (see `aevb.models.nets`) take that one's support.
        """
        kind = getattr(cfg, "likelihood", None)
        return cls.support if kind is None else likelihood_support(kind)

    def condition(self, batch) -> torch.Tensor | None:
        """What `c` is for this model in a `aevb.data.Batch`: its labels for a conditional model,
        None for the others (the VRNN takes its sequence lengths)."""
        return batch.y if self.uses_labels else None

    def prior(self, c: torch.Tensor | None = None) -> Distribution:
        """p(z | c)."""
        raise NotImplementedError

    def likelihood(self, z: torch.Tensor, c: torch.Tensor | None = None) -> Distribution:
        """p(x | z, c), batched over any leading dims of z."""
        raise NotImplementedError

    def posterior(self, x: torch.Tensor, c: torch.Tensor | None = None) -> Distribution:
        """q(z | x, c)."""
        raise NotImplementedError

    def terms(self, x: torch.Tensor, c: torch.Tensor | None = None, k: int = 1) -> Terms:
        """Draw K reparameterised z ~ q(z|x,c) per datapoint and score them under every density."""
        qz = self.posterior(x, c)
        pz = self.prior(c)
        z = qz.rsample((k,))  # (K, B, Dz)
        px = self.likelihood(z, c)
        try:
            kl = kl_divergence(qz, pz)  # (B,)
        except NotImplementedError:
            kl = None
        return Terms(log_px=px.log_prob(x), log_pz=pz.log_prob(z), log_qz=qz.log_prob(z), kl=kl)

    def iwae_terms(self, x: torch.Tensor, c: torch.Tensor | None = None, k: int = 1) -> Terms:
        """The K draws that `objectives.iwae` weighs: those of `terms`, unless a model has a
        better proposal for evaluation (the GMVAE draws y instead of one z per component)."""
        return self.terms(x, c, k)

    @torch.no_grad()
    def sample(self, n: int, c: torch.Tensor | None = None, mode: str = "sample") -> torch.Tensor:
        """n draws from p(x | c), shape (n, D...); `mode` as in `decode`."""
        z = self.prior(c).sample(() if c is not None else (n,))  # (n, Dz)
        return self.decode(z, c, mode)

    @torch.no_grad()
    def decode(self, z: torch.Tensor, c: torch.Tensor | None = None, mode: str = "param") -> torch.Tensor:
        """What is shown of p(x | z, c), (n, D...) for z (n, Dz): "sample" a draw x ~ p(x|z);
        "mean" E[x|z]; "param" the decoder's parameter (the Bernoulli or continuous-Bernoulli
        probability, the Gaussian mean), which is what the tutorial's figures show."""
        px = self.likelihood(z, c)
        if mode == "sample":
            return px.sample()
        if mode == "mean":
            return px.mean
        if mode == "param":
            base = px.base_dist if isinstance(px, Independent) else px
            return base.probs if hasattr(base, "probs") else px.mean
        raise ValueError(f"unknown sample mode {mode!r}; use sample, mean or param")

    def posterior_mean(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """E_q[z | x, c], (B, Dz): where the encoder places each datapoint (for maps and plots)."""
        return self.posterior(x, c).mean

    def exact_log_prob(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """log p(x | c) in closed form, (B,), for the models where it exists."""
        raise NotImplementedError(f"{self.name} has no closed-form log p(x)")

    @property
    def has_exact_log_prob(self) -> bool:
        return type(self).exact_log_prob is not LatentModel.exact_log_prob

    @property
    def n_clusters(self) -> int:
        """How many values a discrete latent cluster y takes; 0 for models without one."""
        return 0

    @property
    def has_clusters(self) -> bool:
        return self.n_clusters > 0

    def cluster_log_probs(self, x: torch.Tensor) -> torch.Tensor:
        """log q(y | x), (B, C), for models with a discrete latent cluster y."""
        raise NotImplementedError(f"{self.name} has no discrete clusters")

    @property
    def has_fitted_prior(self) -> bool:
        """Whether p(z) was fitted to the codes after training (ex-post density estimation), so
        that `trained_prior()` can score the networks with the prior they trained against."""
        return False

    # -- hooks: what the rest of aevb asks of a model ---------------------------------------------

    @classmethod
    def check_config(cls, cfg) -> None:
        """Refuse options this model cannot run with (beyond each field's own checks)."""

    @classmethod
    def resolve(cls, cfg, dataset: str):
        """Fill options whose default depends on the dataset; the resolved config is saved."""
        return cfg

    @classmethod
    def shape_data(cls, x: torch.Tensor, lengths, image_shape, where: str, cfg=None) -> torch.Tensor:
        """x (N, ...) as this model, with config `cfg`, reads it: vectors (N, D) for fully connected
        networks; images (N, C, H, W) for convolutional ones (`arch = "conv"`) and the user's own
        (which read other data as given); a sequential model reads (N, T, D)."""
        if lengths is not None:
            raise AevbError(f"{where} holds sequences with lengths, which only a sequential model (vrnn) "
                            f"reads; drop lengths_train/lengths_test for {cls.name}")
        own = bool(getattr(cfg, "encoder", ""))  # the user's networks read the data in their own shape
        if own and image_shape is None:
            return x
        if getattr(cfg, "arch", "mlp") == "mlp" and not own:
            return x.flatten(1)
        if image_shape is None:
            raise AevbError(f"--arch {cfg.arch} needs images and {where} has none (its datapoints have "
                            f"shape {tuple(x.shape[1:])}); use --arch mlp")
        c, h, w = chw(image_shape)
        # (N, C, H, W) as a view of the stored (N, H, W, C): no copy of the data; batches are made contiguous
        return x.reshape(len(x), h, w, c).permute(0, 3, 1, 2)

    def prepare(self, data, train_cfg) -> None:
        """Before training, and before a run directory is written: take from the training data what
        the model starts from (the VAE's output bias), or refuse data it cannot train on (the
        CVAE's fitted prior needs enough images of every label)."""

    def after_epoch(self, data, train_cfg, epoch: int) -> None:
        """Update what the model fits rather than trains (the CVAE's fitted prior), after each
        complete epoch and before it is evaluated and checkpointed; `epoch` counts completed ones."""

    def parameters_of(self, names: str) -> list[nn.Parameter]:
        """The parameters of the modules named in `names` ("qy,pz_y"); an unknown name is an error."""
        params = []
        for name in filter(None, (n.strip() for n in names.split(","))):
            try:
                params += list(self.get_submodule(name).parameters())
            except AttributeError:
                tops = ", ".join(n for n, _ in self.named_children())
                raise AevbError(f"--freeze {name!r}: {type(self).__name__} has no module of that name; "
                                f"its modules are {tops}") from None
        return params
