"""Reference training loops: the tutorial's own notebook code, for the benchmarks to time and
score beside aevb's trainer. Nothing in aevb imports this file.

Each model reproduces what its notebook runs per training step (zhihanyang2022/aevb-tutorial:
`02_vae/vae_aevb.ipynb`, `04_gmvae/gmvae_marginalization.ipynb`, `05_vrnn/vrnn.ipynb`): the same
networks (a Sigmoid's output taken as the probabilities, a Softplus scale), the same optimisers
(two Adams for the VAE, one for the others), the same work per step (the GMVAE repeats x once per
component and makes one batched pass; the VRNN starts from h_1 = 0 and runs its LSTM from step 2),
and the same host synchronisations (a `float()` of each value the notebook logs). `NotebookLoop`
handles the data as the notebooks did: the whole training set dequantized, or thresholded, once
up front with numpy's noise, then a DataLoader over the float tensor in a fixed order (the
notebooks do not shuffle). Changes: each notebook's CPU-only tensors (the prior, h_1, the one-hot
y) are made on the model's device, so that the loops also run on a GPU; the VRNN's notebook has a
stray line (`gar`) in its step that would stop it, left out; and its `sample()` of z_t, without a
reparameterisation gradient, is kept, as are all its other choices.

`elbo(x)` gives each datapoint's ELBO for scoring, with the GMVAE's constant log p(y) = -log K,
which its notebook's estimate leaves out.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
import torch.nn as nn
from torch.distributions import Bernoulli, ContinuousBernoulli, Independent, Normal, OneHotCategorical
from torch.distributions import kl_divergence as kl
from torch.utils.data import DataLoader, TensorDataset

from aevb.models.nets import ContinuousBernoulliLogits

# float(loss) of a loss that requires grad, as the notebooks logged it, makes torch warn on each run
warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad=True to a scalar")


def relu_mlp(d_in: int, hidden: int, dropout: float = 0.0) -> list[nn.Module]:
    """Linear, ReLU[, Dropout], Linear, ReLU[, Dropout]: the notebooks' two hidden layers."""
    drop = [nn.Dropout(dropout)] if dropout else []
    return [nn.Linear(d_in, hidden), nn.ReLU(), *drop, nn.Linear(hidden, hidden), nn.ReLU(), *drop]


class GaussianNet(nn.Module):
    """A shared body, then a mean and a Softplus scale: the notebooks' q(z|.) and p(z|.)."""

    def __init__(self, d_in: int, hidden: int, d_out: int, dropout: float = 0.0):
        super().__init__()
        self.shared = nn.Sequential(*relu_mlp(d_in, hidden, dropout))
        self.mus = nn.Linear(hidden, d_out)
        self.sigmas = nn.Sequential(nn.Linear(hidden, d_out), nn.Softplus())

    def forward(self, h: torch.Tensor) -> Independent:
        h = self.shared(h)
        return Independent(Normal(self.mus(h), self.sigmas(h)), 1)


class ProbsNet(nn.Module):
    """Two hidden layers, a Linear and a Sigmoid whose output is the distribution's probabilities."""

    def __init__(self, d_in: int, hidden: int, d_out: int, family, dropout: float = 0.0):
        super().__init__()
        self.probs = nn.Sequential(*relu_mlp(d_in, hidden, dropout), nn.Linear(hidden, d_out), nn.Sigmoid())
        self.family = family

    def forward(self, h: torch.Tensor) -> Independent:
        return Independent(self.family(self.probs(h)), 1)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """The Sigmoid's input, for scoring with an exact density (see `test_elbo`)."""
        return self.probs[:-1](h)


class NotebookVAE:
    """`ImageDLVM`: z = 20, 784-500-500 networks with dropout 0.1, continuous Bernoulli."""

    preprocess, batch_size = "dequantize", 32

    def __init__(self, device="cpu", lr: float = 3e-4):
        self.p_z = Independent(Normal(torch.zeros(20, device=device), torch.ones(20, device=device)), 1)
        self.decoder = ProbsNet(20, 500, 784, ContinuousBernoulli, dropout=0.1).to(device)
        self.encoder = GaussianNet(784, 500, 20, dropout=0.1).to(device)
        self.nets = [self.decoder, self.encoder]
        self.optimizers = [torch.optim.Adam(n.parameters(), lr=lr) for n in self.nets]

    def step(self, xs: torch.Tensor) -> dict[str, float]:
        for net in self.nets:
            net.train()
        posterior = self.encoder(xs)
        kl_mean = kl(posterior, self.p_z).mean()
        zs = posterior.rsample()
        rec = self.decoder(zs).log_prob(xs).mean()
        elbo = -kl_mean + rec
        loss = -elbo
        for opt in self.optimizers:
            opt.zero_grad()
        loss.backward()
        for opt in self.optimizers:
            opt.step()
        return {"kl": float(kl_mean), "rec": float(rec), "elbo": float(elbo)}

    def elbo(self, xs: torch.Tensor) -> torch.Tensor:
        posterior = self.encoder(xs)
        return self.decoder(posterior.rsample()).log_prob(xs) - kl(posterior, self.p_z)


class NotebookGMVAE:
    """Rui Shu's GMVAE as `AEVB` in the marginalization notebook: K = 10, z = 64, 512-512 networks,
    Bernoulli, Xavier-normal weights; y summed out in one pass over x repeated K times."""

    preprocess, batch_size = "threshold", 100

    def __init__(self, device="cpu", lr: float = 1e-3, k: int = 10):
        self.k, self.device = k, device
        self.p_z_mus, self.p_z_sigmas = nn.Linear(k, 64), nn.Sequential(nn.Linear(k, 64), nn.Softplus())
        self.p_x = ProbsNet(64, 512, 784, Bernoulli)
        self.q_y = nn.Sequential(*relu_mlp(784, 512), nn.Linear(512, k))
        self.q_z = GaussianNet(784 + k, 512, 64)
        self.nets = [self.p_z_mus, self.p_z_sigmas, self.p_x, self.q_y, self.q_z]
        for net in self.nets:
            for m in net.modules():
                if isinstance(m, nn.Linear):
                    nn.init.xavier_normal_(m.weight)
                    m.bias.data.fill_(0)
            net.to(device)
        self.optimizers = [torch.optim.Adam([p for n in self.nets for p in n.parameters()], lr=lr)]

    def _summed(self, xs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per datapoint: sum_y q(y|x) [log p(x|z_y) - KL_y] and the entropy of q(y|x)."""
        q_y = OneHotCategorical(logits=self.q_y(xs))
        cond_ent = -(q_y.probs * q_y.logits).sum(dim=1)
        bs = xs.size(0)
        ys = torch.eye(self.k, device=self.device)[torch.tensor(range(self.k)).repeat_interleave(bs)]
        xs = xs.repeat(self.k, 1)
        post = self.q_z(torch.cat([xs, ys], dim=1))
        zs = post.rsample()
        p_z = Independent(Normal(self.p_z_mus(ys), self.p_z_sigmas(ys)), 1)
        other = self.p_x(zs).log_prob(xs) - kl(post, p_z)
        other = other.reshape(self.k, bs).T
        return (q_y.probs * other).sum(dim=1), cond_ent

    def step(self, xs: torch.Tensor) -> tuple[float, float]:
        other, cond_ent = self._summed(xs)
        cond_ent_mean = cond_ent.mean()
        estimated_elbo = other.mean() + cond_ent_mean  # without the constant log p(y)
        loss = -estimated_elbo
        self.optimizers[0].zero_grad()
        loss.backward()
        self.optimizers[0].step()
        return float(estimated_elbo), float(cond_ent_mean)

    def elbo(self, xs: torch.Tensor) -> torch.Tensor:
        other, cond_ent = self._summed(xs)
        return other + cond_ent - math.log(self.k)


class NotebookVRNN:
    """`AEVB` of the VRNN notebook: z = 2, h = 256 from a 2-layer LSTM fed [x_{t-1}, z_{t-1}],
    500-500 MLPs, Bernoulli rows; z_t drawn with `sample()`, as the notebook did."""

    preprocess, batch_size = "threshold", 100

    def __init__(self, device="cpu", lr: float = 1e-3):
        self.device = device
        self.p_zt_given_ht = GaussianNet(256, 500, 2).to(device)
        self.p_xt_given_ht_zt = ProbsNet(256 + 2, 500, 28, Bernoulli).to(device)
        self.q_zt_given_ht_xt = GaussianNet(256 + 28, 500, 2).to(device)
        self.f = nn.LSTM(input_size=28 + 2, hidden_size=256, batch_first=True, num_layers=2).to(device)
        self.nets = [self.p_zt_given_ht, self.p_xt_given_ht_zt, self.q_zt_given_ht_xt, self.f]
        self.optimizers = [torch.optim.Adam([p for n in self.nets for p in n.parameters()], lr=lr)]

    def _per_step(self, x: torch.Tensor):
        """(rec - KL) of every step, (B,) each, along one trajectory."""
        bs, seq_len = x.size(0), x.size(1)
        x_tm1 = z_tm1 = state_tm1 = None
        for t in range(seq_len):
            xt = x[:, t, :]
            if t == 0:
                ht, state_t = torch.zeros(bs, 256, device=self.device), None
            else:
                ht, state_t = self.f(torch.cat([x_tm1, z_tm1], dim=1).unsqueeze(1), state_tm1)
                ht = ht.squeeze()
            prior = self.p_zt_given_ht(ht)
            posterior = self.q_zt_given_ht_xt(torch.cat([ht, xt], dim=1))
            kl_t = kl(posterior, prior)
            zt = posterior.sample()
            rec = self.p_xt_given_ht_zt(torch.cat([ht, zt], dim=1)).log_prob(xt)
            assert kl_t.size() == (bs,) and zt.size() == (bs, 2) and rec.size() == (bs,)
            assert ht.size() == (bs, 256)
            yield rec - kl_t
            x_tm1, z_tm1, state_tm1 = xt, zt, state_t

    def step(self, x: torch.Tensor) -> float:
        for net in self.nets:
            net.train()
        elbo = 0
        for value in self._per_step(x):
            elbo += value.mean()
        loss = -elbo
        self.optimizers[0].zero_grad()
        loss.backward()
        self.optimizers[0].step()
        return float(elbo)

    def elbo(self, x: torch.Tensor) -> torch.Tensor:
        return sum(self._per_step(x))


TUTORIAL_MODELS = {"vae": NotebookVAE, "gmvae": NotebookGMVAE, "vrnn": NotebookVRNN}


def prepared(x_uint8: torch.Tensor, mode: str, seed: int = 0) -> torch.Tensor:
    """The notebooks' data, made once: (pixel + U(0,1)) / 256 in float64 with numpy's noise, then
    thresholded at 0.5 for the binary models, as float32."""
    x = x_uint8.numpy().astype(np.float64) + np.random.RandomState(seed).uniform(0, 1, x_uint8.shape)
    x = x / 256
    if mode == "threshold":
        x[x > 0.5] = 1
        x[x <= 0.5] = 0
    return torch.from_numpy(x).float()


class NotebookLoop:
    """A notebook's training loop: `train(steps)` takes the next `steps` batches of a DataLoader
    over the prepared training set, in order, epoch after epoch. Images (N, 784); the VRNN reads
    them as (N, 28, 28)."""

    def __init__(self, model, x_uint8: torch.Tensor, batch_size: int, device="cpu", seed: int = 0):
        self.model, self.device = model, torch.device(device)
        x = prepared(x_uint8.reshape(len(x_uint8), -1), model.preprocess, seed)
        if isinstance(model, NotebookVRNN):
            x = x.view(-1, 28, 28)
        self.loader = DataLoader(TensorDataset(x), batch_size=batch_size)  # on the CPU, as the notebooks
        self.batches = self._forever()

    def _forever(self):
        while True:
            for (xb,) in self.loader:
                yield xb

    def train(self, steps: int) -> None:
        for _ in range(steps):
            xb = next(self.batches)
            self.model.step(xb if self.device.type == "cpu" else xb.to(self.device))


def sync(device: torch.device) -> None:
    """Wait for the device's queued work, so that a host clock measures it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def describe(device: torch.device) -> str:
    """What ran the benchmark, for its table: the GPU's name, or the CPU's thread count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{torch.get_num_threads()} threads"


@torch.no_grad()
def test_elbo(model, x_uint8: torch.Tensor, batch_size: int = 1000, exact_normaliser: bool = False) -> float:
    """The mean test ELBO per datapoint, one draw per point, in eval mode.

    exact_normaliser: score a continuous Bernoulli with aevb's exact log-normaliser, from the
    logits, instead of torch's, which clamps the probability to [1.2e-7, 1 - 1.2e-7] (|logit| <=
    15.9) and so understates log p(x|z) by up to 0.6 nats for every saturated pixel.
    """
    decoder = getattr(model, "decoder", None)
    exact = exact_normaliser and decoder is not None and decoder.family is ContinuousBernoulli
    if exact:
        decoder.forward = lambda h: Independent(ContinuousBernoulliLogits(logits=decoder.logits(h)), 1)
    for net in model.nets:
        net.eval()
    g = torch.Generator().manual_seed(0)
    device = next(model.nets[0].parameters()).device
    total = 0.0
    shape = (28, 28) if isinstance(model, NotebookVRNN) else (784,)
    for i in range(0, len(x_uint8), batch_size):
        xb = x_uint8[i : i + batch_size].float().reshape(-1, *shape)
        u = torch.rand(xb.shape, generator=g)  # on the CPU: the same noise on every device
        x = (xb + u) / 256.0
        if model.preprocess == "threshold":
            x = (x > 0.5).float()
        total += float(model.elbo(x.to(device)).sum())
    if exact:
        del decoder.forward
    return total / len(x_uint8)
