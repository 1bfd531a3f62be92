"""How fast can the VAE recipe's step be here? aevb's trainer against a hand-written loop.

    python benchmarks/vae_ceiling.py                 # batch 32, the recipe's
    python benchmarks/vae_ceiling.py --batch-size 512

The throughput target for the VAE (3x the tutorial's code at batch 32) is a question of
per-step overhead, not arithmetic: a step is 32 x 7 MFLOP. This times, in interleaved turns in one
process, aevb's `Trainer.train_step` (the recipe's bf16 + compile, and fp32 + compile) beside a
plain loop of the same network written for speed by hand (tensors in, no torch.distributions, no
DataLoader, no host sync, one fused Adam) and the same plain loop with Adam's default (foreach)
implementation, and the tutorial's notebook code (`tutorial_loops.py`). Ratios are to the
reference. The data are random bytes, dequantized, as in `throughput.py`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import AevbLoop, ReferenceLoop, fake_mnist, rates  # noqa: E402

from aevb.data import preprocess  # noqa: E402
from aevb.models.nets import continuous_bernoulli_log_norm  # noqa: E402
from aevb.runtime import process  # noqa: E402


class PlainLoop:
    """The recipe's VAE (784-500-500-20, dropout 0.1, continuous Bernoulli) as one would write it
    for speed without a library: raw tensors and one Adam over every parameter."""

    def __init__(self, batch_size: int, fused: bool):
        torch.manual_seed(0)

        def mlp(d_in: int) -> nn.Sequential:
            return nn.Sequential(nn.Linear(d_in, 500), nn.ReLU(), nn.Dropout(0.1),
                                 nn.Linear(500, 500), nn.ReLU(), nn.Dropout(0.1))

        self.enc, self.dec = mlp(784), mlp(20)
        self.mean, self.std, self.out = nn.Linear(500, 20), nn.Linear(500, 20), nn.Linear(500, 784)
        self.params = [p for m in (self.enc, self.dec, self.mean, self.std, self.out) for p in m.parameters()]
        self.opt = torch.optim.Adam(self.params, lr=3e-4, fused=fused)
        self.x, self.bs = fake_mnist().train.x, batch_size
        self.gen = torch.Generator().manual_seed(0)
        self.run(2)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """The batch's mean negative ELBO, one draw of z per image."""
        h = self.enc(x)
        mu, sigma = self.mean(h), F.softplus(self.std(h)) + 1e-6
        z = mu + sigma * torch.randn_like(sigma)
        a = self.out(self.dec(z))  # logits
        log_norm = continuous_bernoulli_log_norm(a)  # the exact log C(a) that aevb's model uses
        log_px = (log_norm - F.binary_cross_entropy_with_logits(a, x, reduction="none")).sum(1)
        kl = 0.5 * (mu * mu + sigma * sigma - 1).sum(1) - sigma.log().sum(1)
        return (kl - log_px).mean()

    def step(self, x: torch.Tensor) -> torch.Tensor:
        loss = self.loss(x)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss

    def run(self, steps: int) -> None:
        for _ in range(steps):
            idx = torch.randint(len(self.x), (self.bs,), generator=self.gen)
            x = preprocess(self.x[idx], "dequantize")
            loss = self.step(x)
        loss.item()  # wait for the last step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seconds", type=float, default=20.0, help="timing per loop (default: 20)")
    args = p.parse_args()
    process.configure()
    bs, cpu = args.batch_size, torch.device("cpu")
    loops = {
        "aevb, bf16 compiled": AevbLoop("vae", bs, cpu, precision="bf16", compile=True),
        "aevb, fp32 compiled": AevbLoop("vae", bs, cpu, precision="fp32", compile=True),
        "plain loop, fused Adam": PlainLoop(bs, fused=True),
        "plain loop, foreach Adam": PlainLoop(bs, fused=False),
        "tutorial's notebook code": ReferenceLoop("vae", bs, cpu),
    }
    r = rates(loops, bs, args.seconds)
    ref = r["tutorial's notebook code"]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, VAE at batch {bs}")
    print("| loop | img/s | against the reference |")
    print("| --- | --- | --- |")
    for key, rate in r.items():
        print(f"| {key} | {rate:,.0f} | {rate / ref:.2f}x |")


if __name__ == "__main__":
    main()
