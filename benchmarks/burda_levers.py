"""What buys Burda et al.'s VAE its last nats: Burda's architecture and data (the `vae-bernoulli`
recipe) at a constant learning rate from torch's initialisation, then with one lever changed at a
time, from one seed and for one length, each scored by IWAE_K on the test set.

    python benchmarks/burda_levers.py --data-dir DIR --epochs 100 --iwae-samples 1000 \
        --out benchmarks/results/burda-levers

The levers: the learning rate along a half cosine to 0 over the second half of the epochs
(`--lr-decay-from`), then with the decoder's output bias started at the logit of the data's mean
pixel (`--output-bias data`), with fp32 instead of bf16 layers, or with the KL term's weight rising from 0
to 1 over the first tenth of the epochs (`--kl-warmup`); and Burda's own schedule
(`--lr-schedule burda`, cut off at the last epoch). Prints -log p(x) by IWAE_K, its paired
difference from the plain start (constant learning rate) with the standard error over the
10,000 test images, and the training time of each; `--out DIR` also gets levers.json and the runs.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from aevb import runs
from aevb.evaluate import mean_se, per_datapoint
from aevb.runs.resolve import config
from aevb.runtime import process

PLAIN = {"lr_decay_from": None, "output_bias": "random"}  # the recipe without the levers it took


def levers(epochs: int) -> dict[str, dict]:
    """Each lever's settings over the plain start, named as the flags are."""
    cosine = {"lr_decay_from": epochs // 2}
    return {
        "constant learning rate": {},
        "cosine decay over the second half": cosine,
        "cosine, and the output bias from the data": cosine | {"output_bias": "data"},
        "cosine, and fp32 layers": cosine | {"precision": "fp32"},
        "cosine, and KL warm-up over the first tenth": cosine | {"kl_warmup": max(1, epochs // 10)},
        "Burda et al.'s schedule, cut off": {"lr_schedule": "burda"},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=os.environ.get("AEVB_DATA_DIR"))
    p.add_argument("--dataset", help="instead of MNIST (e.g. mnist-sample, for a quick check)")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--iwae-samples", type=int, default=1000)
    p.add_argument("--only", nargs="*", help="the first words of the levers to run (default: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="keep levers.json and the runs here")
    args = p.parse_args()
    process.configure()  # as the `aevb` command does
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        for i, (name, settings) in enumerate(levers(args.epochs).items()):
            if args.only and not any(name.startswith(w) for w in args.only) and i:
                continue  # the plain start always runs: the others are compared with it
            extra = {"dataset": args.dataset} if args.dataset else {}
            cfg = config("vae-bernoulli", args.data_dir, epochs=args.epochs, seed=args.seed,
                         **(PLAIN | settings), **extra)
            trainer = runs.train(cfg, out / "runs" / f"lever-{i}", quiet=True)
            v = per_datapoint(trainer.model, trainer.data, "test", 1000, args.iwae_samples, seed=0,
                              elbo_samples=10)
            results[name] = {"settings": settings, "seconds": trainer.seconds, "iwae": v["iwae"]}
            print(f"{name}: {trainer.seconds / 60:.1f} min, IWAE_{args.iwae_samples} "
                  f"{mean_se(v['iwae'])[0]:.2f}", flush=True)
    base = results["constant learning rate"]["iwae"]
    print(f"\n| lever | training | -log p(x), IWAE_{args.iwae_samples} | change |")
    print("| --- | --- | --- | --- |")
    for name, r in results.items():
        m, _ = mean_se(r["iwae"])
        d, se = mean_se(base - r["iwae"])  # in -log p(x), paired: the same images and binarization
        print(f"| {name} | {args.epochs} epochs, {r['seconds'] / 60:.1f} min | {-m:.2f} | "
              f"{d:+.2f} (s.e. {se:.2f}) |")  # negative: fewer nats than the plain start
    if args.out:
        summary = {name: {**{k: v for k, v in r.items() if k != "iwae"}, "iwae": mean_se(r["iwae"])}
                   for name, r in results.items()}
        record = {"epochs": args.epochs, "iwae_samples": args.iwae_samples, "levers": summary}
        (args.out / "levers.json").write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
