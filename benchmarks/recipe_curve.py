"""Summarise a training run against the tutorial's number: the test metrics per epoch, the training
wall time, the first epoch at or past the target, and the best epoch.

    aevb train vae --data-dir DIR --out runs/vae-mnist
    python benchmarks/recipe_curve.py runs/vae-mnist --target 1788 --budget 46
    aevb train gmvae --data-dir DIR --out runs/gmvae-mnist
    python benchmarks/recipe_curve.py runs/gmvae-mnist --metric test_cluster_accuracy --target 0.83 \\
        --budget 78

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
    p.add_argument("--metric", default="test_elbo",
                   help="the metrics.jsonl key to judge (default: test_elbo)")
    p.add_argument("--target", type=float, required=True, help="the tutorial's value of that metric")
    p.add_argument("--budget", type=int, required=True, help="the tutorial's number of epochs")
    p.add_argument("--every", type=int, default=5, help="print every Nth epoch (default: 5)")
    args = p.parse_args()
    metrics = [json.loads(line) for line in (args.run / "metrics.jsonl").read_text().splitlines()]
    metrics = [m for m in metrics if not m.get("partial")]
    if not metrics or args.metric not in metrics[0]:
        p.error(f"{args.run}/metrics.jsonl has no complete epoch with {args.metric!r}")
    config = json.loads((args.run / "config.json").read_text())
    print(f"run {args.run}: {config['model']} on {config['data']['dataset']}, "
          f"batch {config['train']['batch_size']}, lr {config['train']['lr']}")
    shown = [k for k in metrics[0] if k.startswith("test_")]  # test_elbo first, then the rest
    print("| epoch | " + " | ".join(k[5:].replace("_", " ") for k in shown) + " | train seconds |")
    print("| --- " * (len(shown) + 2) + "|")
    passed = next((m for m in metrics if m[args.metric] >= args.target), None)
    best = max(metrics, key=lambda m: m[args.metric])
    for m in metrics:
        if m["epoch"] % args.every == 0 or m is passed or m is best or m is metrics[0]:
            values = " | ".join(f"{m[k]:.2f}" if abs(m[k]) > 10 else f"{m[k]:.4f}" for k in shown)
            print(f"| {m['epoch']} | {values} | {m['seconds']:.0f} |")
    what = f"the tutorial's {args.metric} {args.target:g}"
    if passed:
        print(f"passes {what} at epoch {passed['epoch']} ({passed['seconds']:.0f} s of training; "
              f"the tutorial's budget: {args.budget} epochs)")
    else:
        print(f"never reaches {what}")
    within = [m for m in metrics if m["epoch"] <= args.budget]
    if within:
        b = max(within, key=lambda m: m[args.metric])
        print(f"best within {args.budget} epochs: {b[args.metric]:.4g} at epoch {b['epoch']}")
    print(f"best overall: {best[args.metric]:.4g} at epoch {best['epoch']} of {len(metrics)}; "
          f"{metrics[-1]['seconds']:.0f} s of training in all")


if __name__ == "__main__":
    main()
