"""Full-length fp32 runs of a recipe (one or several seeds) against its shipped model, trained in bf16.

    aevb reproduce vae-tutorial --precision fp32 --data-dir DIR --out runs/vae-fp32
    python benchmarks/precision_pretrained.py runs/vae-fp32/run vae-mnist --data-dir DIR

    # several fp32 seeds (--seed 1, --seed 2 ...): how far apart two trainings of one precision land
    python benchmarks/precision_pretrained.py runs/vae-fp32/run runs/vae-fp32-s1/run vae-mnist ...

`precision.py` trains both precisions on one machine, which makes full recipes cost hours; the
shipped models (`aevb pretrained list`) are the recipes trained in bf16 on a CPU with bf16
hardware, so fp32 runs of the same recipe complete the pair. All are scored here in fp32 on the
same test points with the same noise (the `--elbo-samples` default of `aevb evaluate`, 10x the
recipe's eval_samples), and each difference is paired over the test set. The paired standard
error counts only the test set's sampling, not training's: with two or more fp32 seeds the script
also prints the spread between their scores, the yardstick for one bf16 run's difference. The
runs trained on different machines, so a difference holds whatever else that changes, not bf16
alone.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from precision import score  # noqa: E402

from aevb import runs  # noqa: E402
from aevb.evaluate import mean_se  # noqa: E402
from aevb.runs.pretrained import PREFIX, card  # noqa: E402
from aevb.runtime import process  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", metavar="run", help="the fp32 run directories (one per seed)")
    p.add_argument("pretrained", help="the shipped model of the same recipe, e.g. vae-mnist")
    p.add_argument("--data-dir", default=os.environ.get("AEVB_DATA_DIR"))
    p.add_argument("--dataset", help="score every model on this dataset instead (read with its own "
                   "preprocessing), e.g. mnist-sample")
    p.add_argument("--subset", type=int, help="score only the first N test points, for a quick check")
    args = p.parse_args()
    process.configure()
    scored = {}  # label -> (per-point ELBO (N,), precision, seed, epochs, training seconds)
    named = [(f"fp32 {i}", r) for i, r in enumerate(args.runs)] + [("bf16", PREFIX + args.pretrained)]
    for label, where in named:
        model, cfg, data, meta = runs.open_run(where, data_dir=args.data_dir, dataset=args.dataset)
        if args.subset:
            data.test = data.test.head(args.subset)
        first = next(iter(scored.values()), None)
        if first is not None and len(data.test) != len(first[0]):
            sys.exit(f"precision_pretrained.py: {where} is scored on {len(data.test):,} test points and "
                     f"{args.runs[0]} on {len(first[0]):,}; train the fp32 runs on the same dataset")
        scored[label] = (score(model, data, cfg)["elbo"], cfg.train.precision, cfg.train.seed,
                         meta["epoch"], meta.get("seconds", float("nan")))
        print(f"{label}: {where}, trained in {cfg.train.precision} from seed {cfg.train.seed}, "
              f"{meta['epoch']:g} epochs, test ELBO {mean_se(scored[label][0])[0]:.2f} "
              f"({10 * cfg.train.eval_samples} draws)", flush=True)
    v16, p16, s16, n16, _ = scored.pop("bf16")
    if p16 != "bf16" or any(r[1] != "fp32" for r in scored.values()):
        print(f"warning: the runs trained in {', '.join(r[1] for r in scored.values())} and {p16}, "
              "not fp32 and bf16")
    e16 = mean_se(v16)
    trained_on = card(args.pretrained).get("trained_on", "?")
    print("\n| model | fp32 seed | epochs | fp32 test ELBO (this machine) | bf16 test ELBO (shipped, "
          f"seed {s16}) | bf16 - fp32 | fp32 train s | bf16 trained on |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for v32, _, seed, n32, sec in scored.values():
        e32, diff = mean_se(v32), mean_se(v16 - v32)  # paired: same test points, same noise
        print(f"| {args.pretrained} | {seed} | {n32:g} / {n16:g} | {e32[0]:.2f} ± {e32[1]:.2f} | "
              f"{e16[0]:.2f} ± {e16[1]:.2f} | {diff[0]:+.2f} ± {diff[1]:.2f} | {sec:.0f} | {trained_on} |")
    if len(scored) > 1:
        means = [mean_se(r[0])[0] for r in scored.values()]
        v32 = sum(r[0].double() for r in scored.values()) / len(scored)  # (N,) the seeds' average
        diff = mean_se(v16 - v32)
        print(f"\nfp32 over {len(means)} seeds: mean {statistics.fmean(means):.2f}, from {min(means):.2f} "
              f"to {max(means):.2f}, standard deviation between seeds {statistics.stdev(means):.2f}")
        print(f"bf16 - the fp32 seeds' mean: {diff[0]:+.2f} ± {diff[1]:.2f} (paired over the test set); "
              f"{sum(m < e16[0] for m in means)} of {len(means)} fp32 seeds score below the bf16 model")


if __name__ == "__main__":
    main()
