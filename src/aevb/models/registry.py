"""The model registry: every model is looked up here by name, for training and for loading runs.
A new model is one new file in this folder plus one line below."""

from __future__ import annotations

from aevb.errors import AevbError
from aevb.models.base import LatentModel
from aevb.models.cvae import CVAE
from aevb.models.fa import FactorAnalysis
from aevb.models.gmvae import GMVAE
from aevb.models.vae import VAE
from aevb.models.vrnn import VRNN

MODELS: dict[str, type[LatentModel]] = {m.name: m for m in (FactorAnalysis, VAE, CVAE, GMVAE, VRNN)}


def get(name: str) -> type[LatentModel]:
    """The model class registered as `name`.

        >>> get("vae").Config().latent_dim
        20
    """
    try:
        return MODELS[name]
    except KeyError:
        raise AevbError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}") from None
