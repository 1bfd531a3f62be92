"""Building blocks shared by the neural models: MLPs, Gaussian heads, and the likelihoods of x.

Shapes: B batch, K samples, D data dims, Dz latent dims, H hidden units.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Bernoulli, ContinuousBernoulli, Independent, Normal

from aevb.data.support import LIKELIHOODS

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
