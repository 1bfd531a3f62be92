"""Training throughput of the convolutional VAE (`--arch conv`): aevb's trainer against a plain
PyTorch loop of the same networks, in one run on one machine.

    python benchmarks/conv_throughput.py                  # the vae-conv-bernoulli recipe, batch 100 and 512
    python benchmarks/conv_throughput.py --seconds 20 --large-batch 0
    python benchmarks/conv_throughput.py --seconds 1 --large-batch 0 --no-compile   # a smoke run

The plain loop is what a user would write with the same `aevb.models.nets.ConvEncoder` and
`ConvDecoder`: a linear layer to the posterior's mean and log-variance, the reparameterised draw,
the Bernoulli log-likelihood of the logits plus a per-pixel bias, the analytic KL, and fused Adam,
with the ELBO compiled by `torch.compile` and run under the same bf16 autocast when aevb's is. Both
read the same random bytes shaped like MNIST, binarized afresh each batch. Loops are timed in
interleaved turns (`throughput.rates`), so a noisy neighbour slows them alike.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import AevbLoop, fake_mnist, matmul_peak, rates  # noqa: E402
from tutorial_loops import describe  # noqa: E402

from aevb.models.nets import ConvDecoder, ConvEncoder  # noqa: E402
from aevb.runs.resolve import read_toml  # noqa: E402
from aevb.runtime import process  # noqa: E402
from aevb.runtime.devices import PRECISIONS, resolve_device, resolve_precision  # noqa: E402

RECIPE = Path(__file__).resolve().parents[1] / "configs" / "vae-conv-bernoulli.toml"


class PlainConvLoop:
    """The conv VAE's networks in a plain PyTorch training loop, timed in chunks of `steps`."""

    def __init__(self, model_config: dict, batch_size: int, device: torch.device, precision: str,
                 compile_: bool):
        torch.manual_seed(0)
        shape, hidden, layers, dz = (1, 28, 28), model_config["hidden"], model_config["layers"], \
            model_config["latent_dim"]
        self.encoder = ConvEncoder(shape, hidden, layers).to(device)
        self.heads = nn.Linear(hidden, 2 * dz).to(device)  # q(z|x)'s mean and log-variance
        self.decoder = ConvDecoder(dz, shape, hidden, layers).to(device)
        self.bias = nn.Parameter(torch.zeros(shape, device=device))  # the logits' per-pixel bias
        params = [*self.encoder.parameters(), *self.heads.parameters(), *self.decoder.parameters(), self.bias]
        self.optimizer = torch.optim.Adam(params, lr=1e-3, fused=True)
        self.autocast = torch.autocast(device.type, PRECISIONS[precision] or torch.float32,
                                       enabled=PRECISIONS[precision] is not None)
        self.loss = torch.compile(self.negative_elbo) if compile_ else self.negative_elbo
        self.pixels = fake_mnist().train.x.reshape(-1, *shape).to(device)  # (N, 1, 28, 28) bytes
        self.batch_size, self.device = batch_size, device
        self.run(2)

    def negative_elbo(self, x: torch.Tensor) -> torch.Tensor:
        mu, logvar = self.heads(self.encoder(x)).float().chunk(2, dim=-1)  # (B, Dz) each
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        logits = self.decoder(z).float() + self.bias  # (B, 1, 28, 28)
        log_px = -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum((1, 2, 3))
        kl = 0.5 * (mu.square() + logvar.exp() - 1 - logvar).sum(-1)
        return (kl - log_px).mean()

    def run(self, steps: int) -> None:
        for _ in range(steps):
            idx = torch.randint(0, len(self.pixels), (self.batch_size,), device=self.device)
            raw = self.pixels[idx].float() / 255
            x = (torch.rand_like(raw) < raw).float()  # dynamic binarization
            with self.autocast:
                loss = self.loss(x)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        loss.item()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--large-batch", type=int, default=512, help="the second batch size; 0 for none")
    p.add_argument("--seconds", type=float, default=15.0, help="timing per loop and cell (default: 15)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-compile", action="store_true", help="time both loops eagerly (a smoke run)")
    args = p.parse_args()
    device = resolve_device(args.device)
    process.configure()
    recipe = read_toml(RECIPE)
    precision = resolve_precision(recipe["train"]["precision"], device)
    peak = matmul_peak(PRECISIONS[precision], device)
    print(f"torch {torch.__version__}, {describe(device)}; {precision} matmul peak {peak / 1e9:,.0f} GFLOP/s")
    print("| batch | precision | aevb img/s | plain loop img/s | ratio | GFLOP per image | aevb GFLOP/s "
          "| of peak |")
    print("| --- " * 8 + "|")
    for bs in dict.fromkeys(b for b in (recipe["train"]["batch_size"], args.large_batch) if b):
        torch._dynamo.reset()
        compile_ = not args.no_compile
        loops = {"aevb": AevbLoop("vae", bs, device, recipe, precision=precision, compile=compile_),
                 "plain": PlainConvLoop(recipe["model_config"], bs, device, precision, compile_)}
        r = rates(loops, bs, args.seconds)
        flops = loops["aevb"].flops
        print(f"| {bs} | {precision} | {r['aevb']:,.0f} | {r['plain']:,.0f} | {r['aevb'] / r['plain']:.2f}x "
              f"| {flops / 1e9:.4f} | {r['aevb'] * flops / 1e9:.0f} | {r['aevb'] * flops / peak:.0%} |",
              flush=True)


if __name__ == "__main__":
    main()
