"""Training throughput on one process against several under torchrun, in one run on one machine.

    python benchmarks/distributed.py                        # VAE, 2 processes, CPU
    python benchmarks/distributed.py --model gmvae --procs 2 --device cuda

Each configuration is `aevb train` on the packaged MNIST sample (5,000 images) for a few epochs;
images/s comes from the training seconds of the epochs after the first (which holds compilation
and warm-up), as logged in metrics.jsonl. One process uses every core (torch's default threads);
N processes get cores/N threads each, as torchrun's users should set. The configurations run in
interleaved rounds so that a noisy neighbour slows all of them alike.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def images_per_second(run: Path, n_train: int = 5000) -> float:
    records = [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines()]
    seconds = records[-1]["seconds"] - records[0]["seconds"]
    return (len(records) - 1) * n_train / seconds


def train(procs: int, argv: list[str], out: Path) -> float:
    threads = max(1, (os.cpu_count() or 1) // procs)
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone",
              f"--nproc-per-node={procs}", "-m", "aevb"] if procs > 1 else [sys.executable, "-m", "aevb"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    subprocess.run([*launch, *argv, "--out", str(out), "--quiet"], env=env, check=True,
                   stderr=subprocess.DEVNULL)
    return images_per_second(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="vae", choices=["vae", "cvae", "gmvae", "vrnn"])
    p.add_argument("--procs", type=int, default=2, help="processes of the torchrun configuration")
    p.add_argument("--batch-size", type=int, default=100, help="the global batch (default: 100)")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--device", default="cpu")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    argv = ["train", args.model, "--dataset", "mnist-sample", "--epochs", str(args.epochs),
            "--batch-size", str(args.batch_size), "--eval-samples", "1", "--device", args.device]
    rates: dict[int, list[float]] = {1: [], args.procs: []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for procs in rates:
                rates[procs].append(train(procs, argv, Path(tmp) / f"{procs}-{r}"))
    print(f"| {args.model}, global batch {args.batch_size}, {args.device} | images/s (median of "
          f"{args.rounds}) | all rounds |\n| --- | --- | --- |")
    for procs, found in rates.items():
        print(f"| {procs} process{'es' if procs > 1 else ''} | {statistics.median(found):,.0f} | "
              + ", ".join(f"{v:,.0f}" for v in found) + " |")
    print(f"ratio {args.procs} / 1: {statistics.median(rates[args.procs]) / statistics.median(rates[1]):.2f}")


if __name__ == "__main__":
    main()
