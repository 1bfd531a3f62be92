"""Summarise a training run against the tutorial's number: the test ELBO per epoch, the training
wall time, the first epoch at or past the target, and the best epoch.

    aevb train vae --data-dir ../shared/data --out runs/vae-mnist
    python benchmarks/recipe_curve.py runs/vae-mnist --target 1788 --budget 46

`seconds` in metrics.jsonl counts training steps only (not the per-epoch test evaluation), summed
over resumptions. Run it on an otherwise idle machine: the figures are wall-clock.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path)
    p.add_argument("--target", type=float, required=True, help="the tutorial's test ELBO")
    p.add_argument("--budget", type=int, required=True, help="the tutorial's number of epochs")
    p.add_argument("--every", type=int, default=5, help="print every Nth epoch (default: 5)")
    args = p.parse_args()
    metrics = [json.loads(line) for line in (args.run / "metrics.jsonl").read_text().splitlines()]
    metrics = [m for m in metrics if not m.get("partial")]
    config = json.loads((args.run / "config.json").read_text())
    print(f"run {args.run}: {config['model']} on {config['data']['dataset']}, "
          f"batch {config['train']['batch_size']}, lr {config['train']['lr']}")
    print("| epoch | test ELBO | train seconds |\n| --- | --- | --- |")
    passed = next((m for m in metrics if m["test_elbo"] >= args.target), None)
    best = max(metrics, key=lambda m: m["test_elbo"])
    for m in metrics:
        if m["epoch"] % args.every == 0 or m is passed or m is best or m is metrics[0]:
            print(f"| {m['epoch']} | {m['test_elbo']:.2f} | {m['seconds']:.0f} |")
    if passed:
        print(f"passes the tutorial's {args.target:g} at epoch {passed['epoch']} "
              f"({passed['seconds']:.0f} s of training; the tutorial's budget: {args.budget} epochs)")
    else:
        print(f"never reaches the tutorial's {args.target:g}")
    within = [m for m in metrics if m["epoch"] <= args.budget]
    if within:
        b = max(within, key=lambda m: m["test_elbo"])
        print(f"best within {args.budget} epochs: {b['test_elbo']:.2f} at epoch {b['epoch']}")
    print(f"best overall: {best['test_elbo']:.2f} at epoch {best['epoch']} of {len(metrics)}; "
          f"{metrics[-1]['seconds']:.0f} s of training in all")


if __name__ == "__main__":
    main()
