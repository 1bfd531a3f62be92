"""The variational RNN of Chung et al. (2015), section 7 of Yang (2022), arXiv 2208.07818.

A sequence x_1..x_T (an MNIST digit read as 28 rows of 28 pixels) with one latent z_t per step.
A recurrent state h_t = LSTM(h_{t-1}, [x_{t-1}, z_{t-1}]) summarises (x_<t, z_<t), and

    p(z_t | h_t)        = N(mu(h_t), diag(sigma(h_t))^2)           the prior, learned
    q(z_t | h_t, x_t)   = N(mu(h_t, x_t), diag(sigma(h_t, x_t))^2)  the posterior
    p(x_t | h_t, z_t)   = Bernoulli(x_t; f(h_t, z_t))               the likelihood

    ELBO = sum_t E_q[log p(x_t | h_t, z_t) - KL(q(z_t | h_t, x_t) || p(z_t | h_t))]

with z_<t drawn from q along the trajectory. Every z_t is drawn with `rsample`, so the
reconstruction term reaches the encoder (the tutorial's code used `sample` and lost that gradient).
Only the LSTM step and q(z_t | ...) depend on the previous draw; the prior and the likelihood of
every step are computed after the loop, in one batched call over all T steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Independent, Normal, kl_divergence

from aevb.config import option
from aevb.data.containers import chw
from aevb.data.support import LIKELIHOODS
from aevb.errors import AevbError
from aevb.models.base import LatentModel, Terms
from aevb.models.nets import GaussianHead, LikelihoodHead, mlp


@dataclass(frozen=True)
class VRNNConfig:
    latent_dim: int = option(2, "Dz, the dimensions of each step's z_t", low=1)
    state_dim: int = option(256, "H, the LSTM state h_t", low=1)
    rnn_layers: int = option(2, "stacked LSTM layers", low=1)
    hidden: int = option(500, "width of the MLPs of the prior, the posterior and the likelihood", low=1)
    layers: int = option(2, "hidden layers in each MLP", low=1)
    likelihood: str = option("bernoulli", "p(x_t|h_t,z_t): Bernoulli for binary data, continuous "
                             "Bernoulli for values in [0, 1], Gaussian for real values",
                             choices=LIKELIHOODS, noun="likelihood")


@dataclass
class StepTerms:
    """Per-step terms of one pass along the sequences, each (T, K, B), zero at padded steps."""

    log_px: torch.Tensor  # log p(x_t | h_t, z_t)
    log_pz: torch.Tensor  # log p(z_t | h_t)
    log_qz: torch.Tensor  # log q(z_t | h_t, x_t)
    kl: torch.Tensor  # KL(q(z_t | h_t, x_t) || p(z_t | h_t)) in closed form
    z_mean: torch.Tensor  # (T, K, B, Dz) the posterior means, for maps of the latent space


class VRNN(LatentModel):
    """Variational RNN: a latent z_t per step, with an LSTM state carrying the past."""

    name = "vrnn"
    Config = VRNNConfig
    sequential = True
    recipe = {
        "data": {"dataset": "mnist", "preprocess": "binarize-threshold"},
        # One trajectory per test sequence in the per-epoch test ELBO: a VRNN pass costs 28 steps.
        "train": {"epochs": 7, "batch_size": 100, "lr": 1e-3, "eval_samples": 1, "precision": "auto"},
    }

    def __init__(self, cfg: VRNNConfig, event_shape: tuple[int, ...], n_classes: int | None = None):
        super().__init__()
        t, d = event_shape
        h, dz, w = cfg.state_dim, cfg.latent_dim, cfg.hidden
        self.cfg, self.steps, self.dim = cfg, t, d
        self.rnn = nn.ModuleList(nn.LSTMCell(d + dz if i == 0 else h, h) for i in range(cfg.rnn_layers))
        self.prior_net = nn.Sequential(mlp(h, w, cfg.layers, 0.0), GaussianHead(w, dz))  # p(z_t|h_t)
        self.q_x = nn.Linear(d, w)  # first layer of q(z_t|h_t,x_t): the x_t part, for all t at once
        self.q_h = nn.Linear(h, w, bias=False)  # ... and the h_t part, inside the loop
        self.q_rest = nn.Sequential(mlp(w, w, cfg.layers - 1, 0.0), GaussianHead(w, dz))
        self.decoder = nn.Sequential(mlp(h + dz, w, cfg.layers, 0.0), LikelihoodHead(w, d, cfg.likelihood))

    def condition(self, batch) -> torch.Tensor | None:
        return batch.lengths  # (B,) steps of each sequence, or None when all are T long

    @classmethod
    def shape_data(cls, x, lengths, image_shape, where: str, cfg=None) -> torch.Tensor:
        """Sequences (N, T, D) as given, or images read row by row: (N, rows, columns x channels)."""
        if x.dim() == 3 and image_shape is None:
            return x
        if image_shape is not None:
            c, h, w = chw(image_shape)
            return x.reshape(len(x), h, w * c)  # (N, T=rows, D=columns); pixels are stored row-major
        raise AevbError(f"model {cls.name} reads sequences but {where} has x of shape "
                        f"{tuple(x.shape)}; give x_train and x_test as (N, T, D)")

    def _rnn_step(self, state: list, inp: torch.Tensor) -> torch.Tensor:
        """Advance the stacked LSTM one step in place; returns the top layer's h_t, (N, H)."""
        for i, cell in enumerate(self.rnn):
            state[i] = cell(inp, state[i])  # the fused LSTM cell kernel
            inp = state[i][0]
        return inp

    def _initial(self, n: int, like: torch.Tensor) -> tuple[list, torch.Tensor]:
        """Zero LSTM states and the zero input [x_0, z_0], for n sequences."""
        h = self.cfg.state_dim
        state = [(like.new_zeros(n, h), like.new_zeros(n, h)) for _ in self.rnn]
        return state, like.new_zeros(n, self.dim + self.cfg.latent_dim)

    def step_terms(self, x: torch.Tensor, lengths: torch.Tensor | None = None, k: int = 1) -> StepTerms:
        """Run K trajectories per sequence: draw z_t ~ q(z_t | h_t, x_t) step by step, then score
        every step under the prior and the likelihood. x (B, T, D); lengths (B,) or None."""
        b, t, _ = x.shape
        xs = x.transpose(0, 1).unsqueeze(1).expand(t, k, b, self.dim).reshape(t, k * b, self.dim)
        qx = self.q_x(xs)  # (T, N, W), N = K*B: the x_t part of q's first layer, one matmul
        state, inp = self._initial(k * b, x)
        hs, zs, q_means, q_stds = [], [], [], []
        # unbind, not qx[i]: the backward of one unbind is one stack; of T slices, T zero-filled
        # (T, N, W) gradients added up
        for qx_t, x_t in zip(qx.unbind(0), xs.unbind(0), strict=True):
            h = self._rnn_step(state, inp)  # h_t from (x_<t, z_<t)
            q = self.q_rest(F.relu(qx_t + self.q_h(h)))  # q(z_t | h_t, x_t)
            z = q.rsample()  # (N, Dz): the reparameterisation keeps d/d(encoder) of log p(x|z)
            hs.append(h)
            zs.append(z)
            q_means.append(q.mean)
            q_stds.append(q.base_dist.scale)
            inp = torch.cat([x_t, z], -1)  # [x_t, z_t] feeds h_{t+1}
        hs, zs = torch.stack(hs), torch.stack(zs)  # (T, N, H), (T, N, Dz)
        qz = Independent(Normal(torch.stack(q_means), torch.stack(q_stds)), 1)  # batch (T, N)
        pz = self.prior_net(hs)  # p(z_t | h_t), batch (T, N)
        px = self.decoder(torch.cat([hs, zs], -1))  # p(x_t | h_t, z_t), batch (T, N)
        real = None if lengths is None else (torch.arange(t, device=x.device)[:, None, None]
                                             < lengths)  # (T, 1, B): the steps before each length

        def per_step(v: torch.Tensor) -> torch.Tensor:  # (T, N) -> (T, K, B), exactly 0 if padded
            v = v.reshape(t, k, b)
            return v if real is None else torch.where(real, v, 0.0)

        return StepTerms(log_px=per_step(px.log_prob(xs)), log_pz=per_step(pz.log_prob(zs)),
                         log_qz=per_step(qz.log_prob(zs)), kl=per_step(kl_divergence(qz, pz)),
                         z_mean=qz.mean.reshape(t, k, b, -1))

    def terms(self, x, c=None, k: int = 1) -> Terms:
        """Whole-sequence terms, (K, B): the per-step terms summed over t; c is the lengths."""
        s = self.step_terms(x, c, k)
        return Terms(log_px=s.log_px.sum(0), log_pz=s.log_pz.sum(0), log_qz=s.log_qz.sum(0),
                     kl=s.kl.sum(0).mean(0))  # the KL depends on the drawn z_<t: average over K

    def posterior_mean(self, x, c=None) -> torch.Tensor:
        """The per-step posterior means along one trajectory, concatenated: (B, T*Dz)."""
        m = self.step_terms(x, c, 1).z_mean[:, 0]  # (T, B, Dz)
        return m.transpose(0, 1).flatten(1)

    @torch.no_grad()
    def sample(self, n: int, c=None, mode: str = "sample") -> torch.Tensor:
        """n sequences (n, T, D) generated step by step: z_t ~ p(z_t | h_t), then x_t from
        p(x_t | h_t, z_t). What is shown (a draw, the mean, or the decoder's parameter) is also
        what is fed back as x_t."""
        if mode not in ("sample", "mean", "param"):
            raise ValueError(f"unknown sample mode {mode!r}; use sample, mean or param")
        like = next(self.parameters())
        state, inp = self._initial(n, like)
        xs = []
        for _ in range(self.steps):
            h = self._rnn_step(state, inp)
            z = self.prior_net(h).sample()  # (n, Dz)
            px = self.decoder(torch.cat([h, z], -1))
            x = px.sample() if mode == "sample" else px.mean
            if mode == "param" and hasattr(px.base_dist, "probs"):
                x = px.base_dist.probs
            xs.append(x)
            inp = torch.cat([x, z], -1)
        return torch.stack(xs, 1)
