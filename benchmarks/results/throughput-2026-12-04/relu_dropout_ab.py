"""The VAE's or CVAE's trainer with ReLU and dropout as two modules (as before b56035c) against
`nets.ReLUDropout`, in interleaved turns in one process; median per-turn ratios.

    python benchmarks/results/throughput-2026-12-04/relu_dropout_ab.py vae 32
    python benchmarks/results/throughput-2026-12-04/relu_dropout_ab.py cvae 100 --rounds 12
    python benchmarks/results/throughput-2026-12-04/relu_dropout_ab.py vae 32 --precision fp32

The VAE's ratios are to the tutorial-style reference loop; the CVAE's, to the two-module trainer.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from throughput import AevbLoop, ReferenceLoop  # noqa: E402

from aevb import process  # noqa: E402
from aevb.models import cvae, nets, vae  # noqa: E402


def two_modules(d_in: int, hidden: int, layers: int, dropout: float,
                activation: str = "relu") -> nn.Sequential:
    """`nets.mlp` as it was: Linear -> ReLU -> Dropout, each a module."""
    blocks: list[nn.Module] = []
    for i in range(layers):
        blocks += [nn.Linear(d_in if i == 0 else hidden, hidden), nets.ACTIVATIONS[activation]()]
        if dropout > 0:
            blocks.append(nn.Dropout(dropout))
    return nn.Sequential(*blocks)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", choices=("vae", "cvae"))
    p.add_argument("batch_size", type=int)
    p.add_argument("--rounds", type=int, default=24)
    p.add_argument("--precision", default="bf16", choices=("bf16", "fp32"))
    args = p.parse_args()
    process.configure()
    module = {"vae": vae, "cvae": cvae}[args.model]
    loops = {}
    for key, build in (("two modules", two_modules), ("ReLUDropout", nets.mlp)):
        module.mlp = build
        torch._dynamo.reset()
        loops[key] = AevbLoop(args.model, args.batch_size, torch.device("cpu"),
                              precision=args.precision, compile=True)
    module.mlp = nets.mlp
    base = "two modules"
    if args.model == "vae":
        loops["reference"] = ReferenceLoop("vae", args.batch_size, torch.device("cpu"))
        base = "reference"
    steps = max(20, 9600 // args.batch_size)  # about a second a turn
    rates: dict[str, list[float]] = {key: [] for key in loops}
    for _ in range(args.rounds):
        for key, loop in loops.items():
            start = time.perf_counter()
            loop.run(steps)
            rates[key].append(steps * args.batch_size / (time.perf_counter() - start))
    print(f"{args.model} at batch {args.batch_size}, {args.precision}, {args.rounds} rounds; "
          f"ratios to {base}")
    print("| loop | median img/s | median ratio | quartiles |")
    print("| --- | --- | --- | --- |")
    for key, r in rates.items():
        ratios = [a / b for a, b in zip(r, rates[base], strict=True)]
        q = statistics.quantiles(ratios)
        print(f"| {key} | {statistics.median(r):,.0f} | {statistics.median(ratios):.2f}x | "
              f"{q[0]:.2f} to {q[2]:.2f} |")


if __name__ == "__main__":
    main()
