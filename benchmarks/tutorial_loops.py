"""Reference training loops written the way the tutorial's notebooks wrote them, for benchmarks.

Same architectures and recipes as `aevb`'s defaults, but in the tutorial's style: a module per
network, each returning a `torch.distributions` object, a TensorDataset + DataLoader, one Adam per
network, and a `float()` of the loss every step (a host synchronisation). Nothing in `aevb`
imports this file; `throughput.py` and `time_to_quality.py` time it beside `aevb`'s trainer, and
share its two timing helpers (`sync`, `describe`).

The VRNN keeps the tutorial's `sample()` (no gradient through z_t into the encoder), because this
file reproduces the tutorial's code, faults included; `aevb` uses `rsample()`.
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.distributions import Bernoulli, ContinuousBernoulli, Independent, Normal, kl_divergence
from torch.utils.data import DataLoader, TensorDataset

# float(loss) of a loss that requires grad, as the tutorial logged it, makes torch warn on each run
warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad=True to a scalar")


def _mlp(d_in: int, hidden: int, dropout: float = 0.0) -> nn.Sequential:
    layers = [nn.Linear(d_in, hidden), nn.ReLU()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers += [nn.Linear(hidden, hidden), nn.ReLU()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class GaussianNet(nn.Module):
    def __init__(self, d_in: int, hidden: int, d_out: int, dropout: float = 0.0):
        super().__init__()
        self.body = _mlp(d_in, hidden, dropout)
        self.mean = nn.Linear(hidden, d_out)
        self.std = nn.Linear(hidden, d_out)

    def forward(self, h):
        h = self.body(h)
        return Independent(Normal(self.mean(h), F.softplus(self.std(h)) + 1e-6), 1)


class BernoulliNet(nn.Module):
    def __init__(self, d_in: int, hidden: int, d_out: int, dropout: float = 0.0, continuous: bool = False):
        super().__init__()
        self.body = _mlp(d_in, hidden, dropout)
        self.out = nn.Linear(hidden, d_out)
        self.family = ContinuousBernoulli if continuous else Bernoulli

    def forward(self, h):
        return Independent(self.family(logits=self.out(self.body(h))), 1)


# -- the three models ------------------------------------------------------------------------


class TutorialVAE:
    """z = 20, 784-500-500 networks with dropout 0.1, continuous Bernoulli, dequantized pixels."""

    preprocess = "dequantize"

    def __init__(self, lr: float = 3e-4):
        self.encoder = GaussianNet(784, 500, 20, dropout=0.1)
        self.decoder = BernoulliNet(20, 500, 784, dropout=0.1, continuous=True)
        self.nets = [self.encoder, self.decoder]
        self.optimizers = [torch.optim.Adam(n.parameters(), lr=lr) for n in self.nets]

    def elbo(self, x):
        q = self.encoder(x)
        z = q.rsample()
        prior = Independent(Normal(torch.zeros_like(z), torch.ones_like(z)), 1)
        return self.decoder(z).log_prob(x) - kl_divergence(q, prior)


class TutorialGMVAE:
    """Rui Shu's GMVAE: K = 10, z = 64, 512-512 networks, Bernoulli; q(z|x,y) loops over y."""

    preprocess = "binarize-threshold"

    def __init__(self, lr: float = 1e-3, k: int = 10):
        self.k = k
        self.qy = nn.Sequential(_mlp(784, 512), nn.Linear(512, k))
        self.qz = GaussianNet(784 + k, 512, 64)
        self.pz_mean = nn.Linear(k, 64)
        self.pz_std = nn.Linear(k, 64)
        self.px = BernoulliNet(64, 512, 784)
        self.nets = [self.qy, self.qz, self.pz_mean, self.pz_std, self.px]
        for net in self.nets:
            for m in net.modules():
                if isinstance(m, nn.Linear):
                    nn.init.xavier_normal_(m.weight)
                    nn.init.zeros_(m.bias)
        self.optimizers = [torch.optim.Adam(n.parameters(), lr=lr) for n in self.nets]

    def elbo(self, x):
        qy_logits = self.qy(x)
        qy = F.softmax(qy_logits, -1)
        log_qy = F.log_softmax(qy_logits, -1)
        total = (-(qy * log_qy)).sum(-1)  # the entropy of q(y|x)
        for y in range(self.k):  # one pass over x per component, as the notebook did
            onehot = torch.zeros(x.shape[0], self.k, device=x.device)
            onehot[:, y] = 1.0
            q = self.qz(torch.cat([x, onehot], -1))
            z = q.rsample()
            p = Independent(Normal(self.pz_mean(onehot), F.softplus(self.pz_std(onehot)) + 1e-6), 1)
            elbo_y = self.px(z).log_prob(x) + p.log_prob(z) - q.log_prob(z) - math.log(self.k)
            total = total + qy[:, y] * elbo_y
        return total


class TutorialVRNN:
    """z = 2, a 2-layer LSTM of 256 fed [x_{t-1}, z_{t-1}], 500-500 MLPs, Bernoulli rows."""

    preprocess = "binarize-threshold"

    def __init__(self, lr: float = 1e-3):
        self.rnn = nn.LSTM(28 + 2, 256, num_layers=2)
        self.prior = GaussianNet(256, 500, 2)
        self.posterior = GaussianNet(256 + 28, 500, 2)
        self.likelihood = BernoulliNet(256 + 2, 500, 28)
        self.nets = [self.rnn, self.prior, self.posterior, self.likelihood]
        self.optimizers = [torch.optim.Adam(n.parameters(), lr=lr) for n in self.nets]

    def elbo(self, x):
        x = x.view(-1, 28, 28)
        b = x.shape[0]
        state = None
        inp = torch.zeros(1, b, 30, device=x.device)
        total = torch.zeros(b, device=x.device)
        for t in range(28):
            out, state = self.rnn(inp, state)
            h = out[0]
            q = self.posterior(torch.cat([h, x[:, t]], -1))
            p = self.prior(h)
            z = q.sample()  # the tutorial's fault: no reparameterisation gradient
            total = total + self.likelihood(torch.cat([h, z], -1)).log_prob(x[:, t]) - kl_divergence(q, p)
            inp = torch.cat([x[:, t], z], -1)[None]
        return total


TUTORIAL_MODELS = {"vae": TutorialVAE, "gmvae": TutorialGMVAE, "vrnn": TutorialVRNN}


def preprocess(x_uint8: torch.Tensor, mode: str) -> torch.Tensor:
    x = x_uint8.float()
    if mode == "dequantize":
        return (x + torch.rand_like(x)) / 256.0
    return ((x + torch.rand_like(x)) / 256.0 > 0.5).float()  # the tutorial's threshold


def sync(device: torch.device) -> None:
    """Wait for the device's queued work, so that a host clock measures it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def describe(device: torch.device) -> str:
    """What ran the benchmark, for its table: the GPU's name, or the CPU's thread count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{torch.get_num_threads()} threads"


def to_device(model, device: torch.device | str):
    """Move a tutorial model's networks to `device`, as the notebooks' `.to(device)` did. The
    optimisers keep working: `Module.to` moves each parameter's data in place."""
    for net in model.nets:
        net.to(device)
    model.device = torch.device(device)
    return model


def train_steps(model, x_uint8: torch.Tensor, batch_size: int, steps: int) -> list[float]:
    """`steps` Adam steps the tutorial's way; returns the per-step losses it kept as floats.
    The images stay on the CPU in the DataLoader; each batch moves to the model's device."""
    loader = DataLoader(TensorDataset(x_uint8), batch_size=batch_size, shuffle=True, drop_last=True)
    device = getattr(model, "device", torch.device("cpu"))
    losses: list[float] = []
    for net in model.nets:
        net.train()
    while len(losses) < steps:
        for (xb,) in loader:
            x = preprocess(xb.to(device), model.preprocess)
            loss = -model.elbo(x).mean()
            for opt in model.optimizers:
                opt.zero_grad()
            loss.backward()
            for opt in model.optimizers:
                opt.step()
            losses.append(float(loss))  # a host sync every step, as the notebooks logged
            if len(losses) == steps:
                break
    return losses


@torch.no_grad()
def test_elbo(model, x_uint8: torch.Tensor, batch_size: int = 1000, exact_normaliser: bool = False
              ) -> float:
    """The mean test ELBO per datapoint, one draw per point, as the tutorial reported it.

    exact_normaliser: score a continuous Bernoulli with aevb's exact log-normaliser instead of
    torch's, which clamps the probability to [1.2e-7, 1 - 1.2e-7] (|logit| <= 15.9) and so
    understates log p(x|z) by up to 0.6 nats for every saturated pixel.
    """
    decoder = getattr(model, "decoder", None)
    family = getattr(decoder, "family", None)
    if exact_normaliser and family is ContinuousBernoulli:
        from aevb.models.nets import ContinuousBernoulliLogits

        decoder.family = ContinuousBernoulliLogits
    for net in model.nets:
        net.eval()
    g = torch.Generator().manual_seed(0)
    device = getattr(model, "device", torch.device("cpu"))
    total = 0.0
    for i in range(0, len(x_uint8), batch_size):
        xb = x_uint8[i : i + batch_size].float()
        u = torch.rand(xb.shape, generator=g)  # on the CPU: the same noise on every device
        xb, u = xb.to(device), u.to(device)
        x = (xb + u) / 256.0 if model.preprocess == "dequantize" else ((xb + u) / 256.0 > 0.5).float()
        total += float(model.elbo(x).sum())
    for net in model.nets:
        net.train()
    if family is not None:
        decoder.family = family
    return total / len(x_uint8)
