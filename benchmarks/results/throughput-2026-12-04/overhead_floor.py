"""How much of a VAE training step at batch 32 is the framework itself? aevb's trainer (compiled,
bf16) on the recipe's network and on the same network shrunk to 8 units and 8 pixels, where the
arithmetic is nothing.

    python benchmarks/results/throughput-2026-12-04/overhead_floor.py
"""

from __future__ import annotations

import time

import torch

from aevb import models, process
from aevb.config import build_config
from aevb.data import Data, Split
from aevb.train import Trainer


def step_ms(hidden: int, pixels: int, dropout: float, steps: int = 450) -> float:
    cls = models.get("vae")
    cfg = build_config("vae", cls, [("floor", {
        "train": {"batch_size": 32, "precision": "bf16", "compile": True},
        "model_config": {"hidden": hidden, "dropout": dropout}})])
    x = torch.randint(0, 256, (6000, pixels), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    data = Data("random-bytes", Split(x), Split(x[:100]), image_shape=None, preprocess=cfg.data.preprocess)
    torch.manual_seed(0)
    tr = Trainer(cls(cfg.model_config, (pixels,), None), data, cfg.train, quiet=True)
    batches = list(data.batches(data.train, 32, tr.gen, torch.randperm(6000, generator=tr.gen)))[:150]
    for b in batches[:20]:  # the eager warm-up and the compile
        tr.train_step(b.x)
    start = time.perf_counter()
    for i in range(steps):
        tr.train_step(batches[i % len(batches)].x)
        tr.check_faults()
    torch._dynamo.reset()
    return (time.perf_counter() - start) / steps * 1e3


def main() -> None:
    process.configure()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; aevb's VAE step at batch 32")
    print("| network | dropout | ms per step |")
    print("| --- | --- | --- |")
    for hidden, pixels, dropout in ((8, 8, 0.1), (8, 8, 0.0), (500, 784, 0.1), (500, 784, 0.0)):
        print(f"| {pixels}-{hidden}-{hidden}-20 | {dropout} | {step_ms(hidden, pixels, dropout):.2f} |")


if __name__ == "__main__":
    main()
