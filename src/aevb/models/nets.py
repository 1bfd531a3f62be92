"""Building blocks shared by the neural models: MLPs, Gaussian heads, and the likelihoods of x.

Shapes: B batch, K samples, D data dims, Dz latent dims, H hidden units.
"""

from __future__ import annotations

import importlib
import json
import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Bernoulli, ContinuousBernoulli, Independent, Normal

from aevb.data.support import LIKELIHOODS
from aevb.errors import AevbError

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}


def mlp(d_in: int, hidden: int, layers: int, dropout: float, activation: str = "relu") -> nn.Sequential:
    """`layers` blocks of Linear -> activation -> Dropout, d_in -> H -> ... -> H.

    A ReLU followed by dropout is one module, `ReLUDropout`. Every Linear keeps the name that a
    Sequential of separate modules gives it (0, 3, 6 ... with dropout; 0, 2, 4 ... without), so
    models saved before the two were one module load as they did.
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}")
    width = 3 if dropout > 0 else 2  # modules per block when activation and dropout are separate
    blocks: dict[str, nn.Module] = {}
    for i in range(layers):
        blocks[str(width * i)] = nn.Linear(d_in if i == 0 else hidden, hidden)
        if activation == "relu" and dropout > 0:
            blocks[str(width * i + 1)] = ReLUDropout(dropout)
        else:
            blocks[str(width * i + 1)] = ACTIVATIONS[activation]()
            if dropout > 0:
                blocks[str(width * i + 2)] = nn.Dropout(dropout)
    return nn.Sequential(OrderedDict(blocks))


class ReLUDropout(nn.Module):
    """relu(y) followed by dropout of rate p, in one step whose gradient needs only its output.

    With a keep mask m ~ Bernoulli(1 - p), out = relu(y) m / (1 - p), and

        d out / d y = m 1[y > 0] / (1 - p) = 1[out > 0] / (1 - p)

    since out > 0 exactly where m = 1 and y > 0. The output is kept anyway (the next layer's weight
    gradient reads it), so nothing else is saved, where a ReLU and a Dropout module save two bool
    masks (docs: Results, Speed, "ReLU and dropout as one module"). The mask is drawn and applied as torch's
    native_dropout does: a seed draws the same masks, and in fp32 the same outputs and gradients.
    """

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return y.relu()
        return _ReLUDropout.apply(y, self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class _ReLUDropout(torch.autograd.Function):
    """The forward and backward of `ReLUDropout` in training."""

    @staticmethod
    def forward(ctx, y: torch.Tensor, p: float) -> torch.Tensor:
        keep = torch.empty_like(y).bernoulli_(1 - p)  # the draws of nn.Dropout's mask
        ctx.scale = 1 / (1 - p)
        out = y.relu().mul(keep).mul_(ctx.scale)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (out,) = ctx.saved_tensors
        return grad * (out > 0) * ctx.scale, None


class ContinuousBernoulliLogits(ContinuousBernoulli):
    """The continuous Bernoulli with its log-normaliser computed from the logits a, accurately.

    With lambda = sigmoid(a), C(lambda) = 2 atanh(1 - 2 lambda) / (1 - 2 lambda) = a / tanh(a / 2),
    so for u = |a| > 0.01

        log C = log u - log(1 - e^-u) + log(1 + e^-u)          (no cancellation as u grows)

    and log C = log 2 + a^2 / 12 + O(a^4) below (error under 1e-10). torch's own version works
    from lambda clamped to [eps, 1 - eps], so |a| is capped at 15.9 in float32: beyond that it is
    off by up to 0.6 nats per pixel (not a normalised density).
    """

    def _cont_bern_log_norm(self) -> torch.Tensor:
        return continuous_bernoulli_log_norm(self.logits)


def continuous_bernoulli_log_norm(a: torch.Tensor) -> torch.Tensor:
    """log C of the continuous Bernoulli with logits a, elementwise (see ContinuousBernoulliLogits)."""
    u = a.abs().clamp(min=1e-2)  # the clamp keeps the unused branch's gradient finite at 0
    exact = u.log() - torch.log(-torch.expm1(-u)) + torch.log1p(torch.exp(-u))
    return torch.where(a.abs() < 1e-2, math.log(2) + a * a / 12, exact)


class GaussianHead(nn.Module):
    """A diagonal Gaussian over Dz from features: a linear mean and a softplus-linear std."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.mean = nn.Linear(d_in, d_out)
        self.std = nn.Linear(d_in, d_out)

    def forward(self, h: torch.Tensor) -> Independent:
        # .float(): under bf16 autocast the layers run in bf16, but densities are fp32
        return Independent(Normal(self.mean(h).float(), F.softplus(self.std(h).float()) + 1e-6), 1)


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
        a = self.out(h).float()  # (..., D) logits, or the Gaussian mean; fp32 under autocast too
        if self.kind == "continuous-bernoulli":
            return Independent(ContinuousBernoulliLogits(logits=a), 1)
        if self.kind == "bernoulli":
            return Independent(Bernoulli(logits=a), 1)
        return Independent(Normal(a, self.log_std.exp().expand_as(a)), 1)

    @torch.no_grad()
    def start_at(self, mean: torch.Tensor) -> None:
        """Set the output bias to the logit of `mean` (D,) for the Bernoulli families (the mean
        clipped to [0.001, 0.999]: a pixel that is always 0 would ask for -inf), to `mean` for the
        Gaussian: the decoder then starts at the data's average instead of at 0.5 everywhere."""
        if self.kind == "gaussian":
            self.out.bias.copy_(mean)
        else:
            self.out.bias.copy_(torch.logit(mean.clamp(1e-3, 1 - 1e-3)))


# -- convolutional networks for images (`arch = "conv"`), and likelihoods of data of any shape ----


def conv_sizes(image_shape: tuple[int, int, int], layers: int) -> list[tuple[int, int]]:
    """(H, W) before each of `layers` halvings by a 4x4 convolution of stride 2, then after the last."""
    _, h, w = image_shape
    sizes = [(h, w)]
    for _ in range(layers):
        h, w = h // 2, w // 2
        if h < 1 or w < 1:
            most = min(image_shape[1:]).bit_length() - 1
            raise AevbError(f"--arch conv halves the image --layers {layers} times, and a "
                            f"{image_shape[1]}x{image_shape[2]} image allows at most {most}; lower --layers")
        sizes.append((h, w))
    return sizes


def conv_channels(image_shape: tuple[int, int, int], layers: int) -> list[int]:
    """Channels at each stage: the image's, then 32, 64, 128 and 256 at most."""
    return [image_shape[0]] + [min(32 * 2**i, 256) for i in range(layers)]


class ConvEncoder(nn.Module):
    """Features of images, (B, C, H, W) -> (B, hidden): `layers` 4x4 convolutions of stride 2, each
    halving H and W (32, 64, 128 ... channels, a ReLU after each), then a linear layer to `hidden`
    units, with a ReLU unless `activate` is False (DCGAN's encoder, Radford et al. 2016)."""

    def __init__(self, image_shape: tuple[int, int, int], hidden: int, layers: int, activate: bool = True):
        super().__init__()
        sizes, chans = conv_sizes(image_shape, layers), conv_channels(image_shape, layers)
        blocks: list[nn.Module] = []
        for i in range(layers):
            blocks += [nn.Conv2d(chans[i], chans[i + 1], 4, stride=2, padding=1), nn.ReLU()]
        h, w = sizes[-1]
        blocks += [nn.Flatten(), nn.Linear(chans[-1] * h * w, hidden)] + ([nn.ReLU()] if activate else [])
        self.net = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ConvDecoder(nn.Module):
    """The mirror of `ConvEncoder`, (..., d_in) -> (..., C, H, W): a hidden layer and a layer to
    the smallest feature map (ReLUs), then transposed convolutions that double it back, with the
    output padding that restores odd sizes exactly; the last gives the likelihood's location."""

    def __init__(self, d_in: int, image_shape: tuple[int, int, int], hidden: int, layers: int):
        super().__init__()
        sizes, chans = conv_sizes(image_shape, layers), conv_channels(image_shape, layers)
        self.image_shape = tuple(image_shape)
        self.first = (chans[-1], *sizes[-1])  # the smallest feature map
        self.inp = nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(),
                                 nn.Linear(hidden, math.prod(self.first)), nn.ReLU())
        ups: list[nn.Module] = []
        for i in reversed(range(layers)):
            (hi, wi), (ho, wo) = sizes[i + 1], sizes[i]
            ups.append(nn.ConvTranspose2d(chans[i + 1], chans[i], 4, stride=2, padding=1,
                                          output_padding=(ho - 2 * hi, wo - 2 * wi)))
            if i > 0:
                ups.append(nn.ReLU())
        self.ups = nn.Sequential(*ups)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        lead = z.shape[:-1]  # (K, B) or (B,): the convolutions see one batch dimension
        h = self.inp(z.reshape(-1, z.shape[-1])).reshape(-1, *self.first)
        return self.ups(h).reshape(*lead, *self.image_shape)


class LocationLikelihood(nn.Module):
    """p(x | location) for data of any shape: a decoder's output (..., *data_shape) plus a learned
    bias per element of x is the location (logits, or the Gaussian's mean); a Gaussian's std is a
    free parameter per element. The bias is what `--output-bias data` sets (`start_at`)."""

    def __init__(self, data_shape: tuple[int, ...], kind: str):
        super().__init__()
        if kind not in LIKELIHOODS:
            raise ValueError(f"unknown likelihood {kind!r}")
        self.kind, self.event_dims = kind, len(data_shape)
        self.bias = nn.Parameter(torch.zeros(data_shape))
        self.log_std = nn.Parameter(torch.zeros(data_shape)) if kind == "gaussian" else None

    def forward(self, location: torch.Tensor):
        a = (location + self.bias).float()  # (..., *data_shape); fp32 under autocast too
        if self.kind == "continuous-bernoulli":
            return Independent(ContinuousBernoulliLogits(logits=a), self.event_dims)
        if self.kind == "bernoulli":
            return Independent(Bernoulli(logits=a), self.event_dims)
        return Independent(Normal(a, self.log_std.exp().expand_as(a)), self.event_dims)

    @torch.no_grad()
    def start_at(self, mean: torch.Tensor) -> None:
        """As `LikelihoodHead.start_at`: the location starts at the data's mean."""
        self.bias.copy_(mean if self.kind == "gaussian" else torch.logit(mean.clamp(1e-3, 1 - 1e-3)))


# -- networks of the user's own, named by import path (never pickled) ------------------------------


def imported(path: str, role: str) -> type:
    """The class `path` names, as "pkg.module:Name"; an AevbError naming it when it cannot be
    imported (a run records the path, so reopening the run imports it again)."""
    module, _, name = path.partition(":")
    if not module or not name:
        raise AevbError(f"--{role} {path!r}: name the class as pkg.module:Name")
    try:
        found = importlib.import_module(module)
        for part in name.split("."):
            found = getattr(found, part)
    except Exception as e:  # ImportError, AttributeError, or whatever the module raises
        raise AevbError(f"cannot import --{role} {path} ({type(e).__name__}: {e}); install the module "
                        "that defines it, or put it on PYTHONPATH") from None
    if not isinstance(found, type) or not issubclass(found, nn.Module):
        raise AevbError(f"--{role} {path} is not a torch.nn.Module class")
    return found


def own_encoder(path: str, args: str, data_shape: tuple[int, ...]) -> tuple[nn.Module, int]:
    """The user's encoder, `Name(data_shape=..., **args)`, mapping (B, *data_shape) to (B, F), and
    F, found with one dry batch of zeros."""
    net = _built(imported(path, "encoder"), args, "encoder", data_shape=tuple(data_shape))
    with torch.no_grad():
        out = net(torch.zeros(2, *data_shape))
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise AevbError(f"--encoder {path} maps a batch (2, {', '.join(map(str, data_shape))}) to {shape}; "
                        "it must give features (B, F)")
    return net, out.shape[1]


class OwnDecoder(nn.Module):
    """The user's decoder, `Name(in_features=..., data_shape=..., **args)`, mapping (B, in_features)
    to the likelihood's location (B, *data_shape); leading dims (K, B) are folded into one."""

    def __init__(self, path: str, args: str, in_features: int, data_shape: tuple[int, ...]):
        super().__init__()
        self.data_shape = tuple(data_shape)
        self.net = _built(imported(path, "decoder"), args, "decoder", in_features=in_features,
                          data_shape=self.data_shape)
        with torch.no_grad():
            out = self.net(torch.zeros(2, in_features))
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, *self.data_shape):
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise AevbError(f"--decoder {path} maps a batch (2, {in_features}) to {shape}; it must give "
                            f"the data's shape, (B, {', '.join(map(str, self.data_shape))})")

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        lead = z.shape[:-1]
        return self.net(z.reshape(-1, z.shape[-1])).reshape(*lead, *self.data_shape)


def _built(cls: type, args: str, role: str, **given):
    try:
        return cls(**given, **json.loads(args or "{}"))
    except Exception as e:
        raise AevbError(f"--{role} {cls.__module__}:{cls.__qualname__} could not be built with "
                        f"{', '.join(given)} and --{role}-args {args} ({type(e).__name__}: {e})") from None
