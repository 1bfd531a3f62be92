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

from aevb.config import option
from aevb.data.support import LIKELIHOODS
from aevb.errors import AevbError
from aevb.models.base import LatentModel
from aevb.models.nets import (
    ACTIVATIONS,
    ConvDecoder,
    ConvEncoder,
    GaussianHead,
    LikelihoodHead,
    LocationLikelihood,
    OwnDecoder,
    imported,
    mlp,
    own_encoder,
)

OUTPUT_BIAS = ("random", "data")
ARCHS = ("mlp", "conv")


@dataclass(frozen=True)
class VAEConfig:
    latent_dim: int = option(20, "Dz, the dimensions of z", low=1)
    hidden: int = option(500, "H, the width of every hidden layer", low=1)
    layers: int = option(2, "hidden layers in the encoder and in the decoder", low=1)
    dropout: float = option(0.1, "dropout rate after every hidden activation", fraction=True)
    likelihood: str = option("continuous-bernoulli", "p(x|z): continuous Bernoulli for values in "
                             "[0, 1], Bernoulli for binary data, Gaussian for real values",
                             choices=LIKELIHOODS, noun="likelihood")
    activation: str = option("relu", "the hidden layers' activation (tanh: Burda et al. 2015's "
                             "benchmark architecture)", choices=tuple(ACTIVATIONS), noun="activation")
    output_bias: str = option("random", "how the decoder's output bias starts: random, as torch "
                              "initialises it, or data: p(x|z) centred on the training set's mean "
                              "datapoint (Burda et al. 2015)", choices=OUTPUT_BIAS, noun="output bias")
    arch: str = option("mlp", "the networks: mlp, fully connected (the tutorial's); conv, convolutions "
                       "for images of any size (--layers halvings, --hidden units; no dropout)",
                       choices=ARCHS, noun="--arch")
    encoder: str = option("", "a network of your own for q(z|x), as pkg.module:Name, built with "
                          "data_shape and --encoder-args and mapping a batch of data to features (B, F); "
                          "with --decoder (docs: Your own networks). Empty: --arch's", metavar="MODULE:NAME")
    encoder_args: str = option("{}", "keyword arguments of --encoder, a JSON object", json_object=True,
                               metavar="JSON")
    decoder: str = option("", "a network of your own for p(x|z), as pkg.module:Name, built with "
                          "in_features, data_shape and --decoder-args and mapping (B, in_features) to the "
                          "likelihood's location, a batch shaped as the data", metavar="MODULE:NAME")
    decoder_args: str = option("{}", "keyword arguments of --decoder, a JSON object", json_object=True,
                               metavar="JSON")


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
        self.cfg = cfg
        # registered in this order, which fixes the parameters' order (Adam's state is saved by it)
        if cfg.encoder:  # the user's own networks, x (B, *data_shape)
            self.encoder, features = own_encoder(cfg.encoder, cfg.encoder_args, event_shape)
            self.q_head = GaussianHead(features, cfg.latent_dim)
            self.decoder = OwnDecoder(cfg.decoder, cfg.decoder_args, cfg.latent_dim, event_shape)
            self.px_head = LocationLikelihood(event_shape, cfg.likelihood)
        elif cfg.arch == "conv":  # x (B, C, H, W)
            self.encoder = ConvEncoder(event_shape, cfg.hidden, cfg.layers)
            self.q_head = GaussianHead(cfg.hidden, cfg.latent_dim)
            self.decoder = ConvDecoder(cfg.latent_dim, event_shape, cfg.hidden, cfg.layers)
            self.px_head = LocationLikelihood(event_shape, cfg.likelihood)
        else:  # x (B, D)
            (d,) = event_shape
            self.encoder = mlp(d, cfg.hidden, cfg.layers, cfg.dropout, cfg.activation)
            self.q_head = GaussianHead(cfg.hidden, cfg.latent_dim)
            self.decoder = mlp(cfg.latent_dim, cfg.hidden, cfg.layers, cfg.dropout, cfg.activation)
            self.px_head = LikelihoodHead(cfg.hidden, d, cfg.likelihood)
        self.register_buffer("zero", torch.zeros(cfg.latent_dim), persistent=False)

    @classmethod
    def check_config(cls, cfg: VAEConfig) -> None:
        """Networks of the user's own come in pairs, and must import before anything is written."""
        if bool(cfg.encoder) != bool(cfg.decoder):
            raise AevbError("give --encoder and --decoder together: a network of your own reads or "
                            "writes the data in their own shape, which the other network must match")
        for role in ("encoder", "decoder"):
            if getattr(cfg, role):
                imported(getattr(cfg, role), role)

    def prior(self, c=None):
        """p(z) = N(0, I)."""
        return Independent(Normal(self.zero, torch.ones_like(self.zero)), 1)

    def likelihood(self, z, c=None):
        """p(x | z), batched over the leading dims of z: (K, B, Dz) -> (K, B) events of D."""
        return self.px_head(self.decoder(z))

    def posterior(self, x, c=None):
        """q(z | x) = N(mu(x), diag(sigma(x))^2)."""
        return self.q_head(self.encoder(x))

    @torch.no_grad()
    def prepare(self, data, train_cfg) -> None:
        """--output-bias data: set the decoder's output bias from the mean preprocessed training
        datapoint (one pass; a dynamic binarization's draw averages to pixel / 255)."""
        if self.cfg.output_bias == "random":
            return
        gen = torch.Generator(device=data.train.x.device).manual_seed(train_cfg.seed)
        total = sum(batch.x.sum(0) for batch in data.batches("train", 10_000, gen))  # (D...)
        self.px_head.start_at(total / len(data.train))  # copy_ moves it to the bias's device
