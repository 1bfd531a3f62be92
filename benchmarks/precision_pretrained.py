"""A full-length fp32 run of a recipe against its shipped model, which was trained in bf16.

    aevb reproduce vae-tutorial --precision fp32 --data-dir ../shared/data --out runs/vae-fp32
    python benchmarks/precision_pretrained.py runs/vae-fp32/run vae-mnist --data-dir ../shared/data

`precision.py` trains both precisions on one machine, which makes full recipes cost hours; the
shipped models (`aevb pretrained list`) are the recipes trained in bf16 on a CPU with bf16
hardware, so one fp32 run of the same recipe and seed completes the pair. Both are scored here in
fp32 on the same test points with the same noise (the `--elbo-samples` default of `aevb evaluate`,
10x the recipe's eval_samples), and the difference is paired over the test set. The two ran on
different machines, so the difference holds whatever else that changes, not bf16 alone.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from precision import score  # noqa: E402

from aevb import process, runs  # noqa: E402
from aevb.evaluate import mean_se  # noqa: E402
from aevb.pretrained import PREFIX, card  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", help="the fp32 run directory")
    p.add_argument("pretrained", help="the shipped model of the same recipe, e.g. vae-mnist")
    p.add_argument("--data-dir", default=os.environ.get("AEVB_DATA_DIR"))
    args = p.parse_args()
    process.configure()
    scored = {}
    for label, where in (("fp32", args.run), ("bf16", PREFIX + args.pretrained)):
        model, cfg, data, meta = runs.open_run(where, data_dir=args.data_dir)
        if scored and len(data.test) != len(scored["fp32"][0]):
            sys.exit(f"precision_pretrained.py: {where} is scored on {len(data.test):,} test points and "
                     f"{args.run} on {len(scored['fp32'][0]):,}; train the fp32 run on the same dataset")
        scored[label] = (score(model, data, cfg)["elbo"], cfg.train.precision, meta["epoch"],
                         meta.get("seconds", float("nan")))
        print(f"{label}: {where}, trained in {cfg.train.precision}, {meta['epoch']:g} epochs, "
              f"test ELBO {mean_se(scored[label][0])[0]:.2f} ({10 * cfg.train.eval_samples} draws)",
              flush=True)
    (v32, p32, n32, s32), (v16, p16, n16, _) = scored["fp32"], scored["bf16"]
    if p32 != "fp32" or p16 != "bf16":
        print(f"warning: the runs trained in {p32} and {p16}, not fp32 and bf16")
    e32, e16, diff = mean_se(v32), mean_se(v16), mean_se(v16 - v32)
    trained_on = card(args.pretrained).get("trained_on", "?")
    print("\n| model | epochs | fp32 test ELBO (this machine) | bf16 test ELBO (shipped) | bf16 - fp32 "
          "| fp32 train s | bf16 trained on |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print(f"| {args.pretrained} | {n32:g} / {n16:g} | {e32[0]:.2f} ± {e32[1]:.2f} | {e16[0]:.2f} ± "
          f"{e16[1]:.2f} | {diff[0]:+.2f} ± {diff[1]:.2f} | {s32:.0f} | {trained_on} |")


if __name__ == "__main__":
    main()
