"""Training throughput: aevb's trainer against the tutorial-style loop, in one run on one machine.

    python benchmarks/throughput.py                       # vae, gmvae, vrnn; recipe and large batch
    python benchmarks/throughput.py --models vae --large-batch 512 --seconds 20

For each model and batch size it prints images/s for `aevb`'s `Trainer.train_step` and for the
reference loop of `tutorial_loops.py` (same architecture, the tutorial's style), their ratio, and
the achieved FLOP/s as a fraction of the matrix-product peak that the script measures first. FLOPs
per image come from `torch.utils.flop_counter` on one training step of aevb's model (forward and
backward matrix products). The data are random bytes shaped like MNIST: throughput does not
depend on pixel values. Run it on an otherwise idle machine; the figures are wall-clock ratios.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tutorial_loops import TUTORIAL_MODELS, train_steps  # noqa: E402

from aevb import models  # noqa: E402
from aevb.config import build_config  # noqa: E402
from aevb.data import Data, Split  # noqa: E402
from aevb.train import Trainer  # noqa: E402

N_IMAGES = 6000


def matmul_peak(dtype: torch.dtype, seconds: float = 2.0) -> float:
    """FLOP/s of a large square matrix product, the machine's practical peak for this dtype."""
    a = torch.randn(2048, 2048).to(dtype)
    b = torch.randn(2048, 2048).to(dtype)
    a @ b
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        n += 1
    return 2 * 2048**3 * n / (time.perf_counter() - start)


def fake_mnist(seed: int = 0) -> Data:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (N_IMAGES, 784), generator=g, dtype=torch.uint8)
    y = torch.randint(0, 10, (N_IMAGES,), generator=g)
    return Data("random-bytes", Split(x, y), Split(x[:1000], y[:1000]), image_shape=(28, 28),
                classes=tuple(str(i) for i in range(10)))


def aevb_trainer(name: str, batch_size: int) -> Trainer:
    cls = models.get(name)
    cfg = build_config(name, cls, [("benchmark", {"train": {"batch_size": batch_size}})])
    data = fake_mnist()
    data.preprocess = cfg.data.preprocess
    if cls.sequential:
        for s in (data.train, data.test):
            s.x = s.x.reshape(len(s), 28, 28)
    torch.manual_seed(0)
    model = cls(cfg.model_config, data.event_shape, 10)
    return Trainer(model, data, cfg.train, quiet=True)


def aevb_rate(trainer: Trainer, seconds: float) -> tuple[float, float]:
    """(images/s, FLOPs per image) of the trainer's steps, timed over about `seconds`."""
    from torch.utils.flop_counter import FlopCounterMode

    data, bs = trainer.data, trainer.cfg.batch_size

    def batches():
        while True:
            order = torch.randperm(len(data.train), generator=trainer.gen)
            for b in data.batches(data.train, bs, trainer.gen, order):
                if len(b.x) == bs:
                    yield b

    it = batches()
    b = next(it)
    with FlopCounterMode(display=False) as counter:
        trainer.train_step(b.x, trainer.model.condition(b))
    flops = counter.get_total_flops() / bs
    for _ in range(2):  # warm up
        b = next(it)
        trainer.train_step(b.x, trainer.model.condition(b))
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        b = next(it)
        total = trainer.train_step(b.x, trainer.model.condition(b))
        n += bs
    total.item()  # wait for the last step
    return n / (time.perf_counter() - start), flops


def reference_rate(name: str, batch_size: int, seconds: float) -> float:
    torch.manual_seed(0)
    model = TUTORIAL_MODELS[name]()
    x = fake_mnist().train.x
    train_steps(model, x, batch_size, 2)  # warm up
    steps, n, start = max(1, int(20 * 100 / batch_size)), 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        train_steps(model, x, batch_size, steps)
        n += steps * batch_size
    return n / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["vae", "gmvae", "vrnn"], choices=list(TUTORIAL_MODELS))
    p.add_argument("--large-batch", type=int, default=512, help="the second batch size (default: 512)")
    p.add_argument("--seconds", type=float, default=15.0, help="timing per cell (default: 15)")
    args = p.parse_args()
    load = os.getloadavg()[0]
    if load > 0.5:  # two jobs with a thread per core each can run 10-50x slower (OpenMP spin-waits)
        print(f"warning: load average {load:.1f} before the run; another job shares the CPU and "
              "the figures below are not to be trusted", file=sys.stderr)
    peak = matmul_peak(torch.float32)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"fp32 matmul peak {peak / 1e9:.0f} GFLOP/s (2048^3)")
    print("| model | batch | aevb img/s | tutorial-style img/s | ratio | GFLOP per image | "
          "aevb GFLOP/s | of fp32 peak |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in args.models:
        recipe_bs = models.get(name).recipe["train"]["batch_size"]
        for bs in dict.fromkeys([recipe_bs, args.large_batch]):
            ours, flops = aevb_rate(aevb_trainer(name, bs), args.seconds)
            ref = reference_rate(name, bs, args.seconds)
            achieved = ours * flops
            print(f"| {name} | {bs} | {ours:,.0f} | {ref:,.0f} | {ours / ref:.2f}x | {flops / 1e9:.3f} | "
                  f"{achieved / 1e9:.0f} | {achieved / peak:.0%} |", flush=True)


if __name__ == "__main__":
    main()
