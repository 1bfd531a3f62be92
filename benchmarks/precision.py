"""bf16 against fp32: train each recipe both ways from one seed, evaluate both in fp32.

    python benchmarks/precision.py --data-dir DIR                    # the full recipes
    python benchmarks/precision.py --data-dir DIR --epochs vae=10 gmvae=10 vrnn=2

`--precision bf16` autocasts the networks' layers; the densities, the ELBO and Adam stay fp32.
This prints, per model, the final test ELBO of each run (evaluated in fp32 with the run's
`--elbo-samples` default: 10x the recipe's eval_samples), their paired difference over the test
set with its standard error, and the training time of each. bf16 is the default of a recipe only
where the difference stays within 0.5 nats. `--out DIR` keeps both runs' directories.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from aevb import runs
from aevb.evaluate import mean_se, per_datapoint
from aevb.runtime import process


def train_and_score(name: str, precision: str, epochs: int | None, data: dict, seed: int, out: Path,
                    max_steps: int | None = None) -> tuple[dict, float, int]:
    """Train one run; returns (per-datapoint fp32 test values, training seconds, epochs)."""
    train = {"precision": precision, "seed": seed, "max_steps": max_steps,
             **({"epochs": epochs} if epochs else {})}
    cfg = runs.build_config(name, [("benchmark", {"data": data, "train": train})])
    trainer = runs.train(cfg, out / f"{name}-{precision}", quiet=True)
    return score(trainer.model, trainer.data, cfg), trainer.seconds, cfg.train.epochs


def score(model, data, cfg) -> dict:
    """Per-datapoint fp32 test values with `aevb evaluate`'s default draws (10x eval_samples),
    from noise seed 0, so two models' values pair up point by point."""
    return per_datapoint(model, data, "test", cfg.train.eval_batch_size, seed=0,
                         elbo_samples=10 * cfg.train.eval_samples)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["vae", "cvae", "gmvae", "vrnn"])
    p.add_argument("--epochs", nargs="*", default=[], metavar="MODEL=N",
                   help="shorter runs than the recipes, e.g. gmvae=10")
    p.add_argument("--data-dir", default=os.environ.get("AEVB_DATA_DIR"))
    p.add_argument("--dataset", help="instead of the recipes' (e.g. mnist-sample, with --max-steps, "
                   "for a quick check)")
    p.add_argument("--max-steps", type=int, help="stop each run after this many steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="keep the runs here (default: a temporary folder)")
    args = p.parse_args()
    process.configure()  # as the `aevb` command does
    epochs = {k: int(v) for k, v in (e.split("=") for e in args.epochs)}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        for name in args.models:
            data = {"data_dir": args.data_dir, **({"dataset": args.dataset} if args.dataset else {})}
            scored = {prec: train_and_score(name, prec, epochs.get(name), data, args.seed, out,
                                            args.max_steps) for prec in ("fp32", "bf16")}
            (v32, s32, n), (v16, s16, _) = scored["fp32"], scored["bf16"]
            e32, e16 = mean_se(v32["elbo"]), mean_se(v16["elbo"])
            diff = mean_se(v16["elbo"] - v32["elbo"])  # paired: same test points, same noise seed
            rows.append((name, n, e32, e16, diff, s32, s16))
            print(f"{name}: fp32 {e32[0]:.2f}, bf16 {e16[0]:.2f}", flush=True)
    print("\n| model | epochs | fp32 test ELBO | bf16 test ELBO | bf16 - fp32 | fp32 train s "
          "| bf16 train s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, n, e32, e16, diff, s32, s16 in rows:
        print(f"| {name} | {n} | {e32[0]:.2f} ± {e32[1]:.2f} | {e16[0]:.2f} ± {e16[1]:.2f} | "
              f"{diff[0]:+.2f} ± {diff[1]:.2f} | {s32:,.0f} | {s16:,.0f} |")


if __name__ == "__main__":
    main()
