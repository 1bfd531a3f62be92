"""Burda et al. (2015)'s one-stochastic-layer MNIST table beside aevb's runs and pythae's
reproductions: test -log p(x) by IWAE with 5,000 samples, in nats, with the training each took.

Reads the results.json that `aevb reproduce RECIPE --out DIR` writes (the recipe, its reference,
IWAE_5000 on the 10,000 test images binarized once with seed 0, epochs and training seconds);
prints a Markdown table. Lower is better.

    aevb reproduce vae-bernoulli --out runs/burda/vae-bernoulli --data-dir DIR
    aevb reproduce iwae-bernoulli-k5 --out runs/burda/iwae-bernoulli-k5 --data-dir DIR
    aevb reproduce iwae-bernoulli-k50 --out runs/burda/iwae-bernoulli-k50 --data-dir DIR
    python benchmarks/burda_table.py runs/burda/*/results.json
    python benchmarks/burda_table.py docs/gallery/*bernoulli*/results.json    # the kept results
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from aevb.runs.resolve import recipe

# Burda et al. 2015, Table 1, MNIST, one stochastic layer (784-200-200-50 tanh, dynamic
# binarization, 3,280 epochs of their schedule, batch 20): -log p(x) by IWAE_5000, in nats
BURDA = {("elbo", 1): 86.76, ("elbo", 5): 86.47, ("elbo", 50): 86.35,
         ("iwae", 1): 86.76, ("iwae", 5): 85.54, ("iwae", 50): 84.78}
# pythae's model cards (clementchadebec/reproduced_iwae on the Hugging Face hub, "Binary MNIST",
# NLL by 5,000 importance samples): obtained value, and the reference value the card quotes
PYTHAE = {("iwae", 5): (87.85, 87.6), ("iwae", 50): (86.82, 87.1)}


def row(path: Path) -> tuple[tuple, str]:
    r = json.loads(path.read_text())
    train = recipe(r["recipe"]).get("train", {})
    key = (train.get("objective", "elbo"), train.get("train_samples", 1))
    m = r["metrics"]
    if m.get("iwae_samples") != 5000:
        raise SystemExit(f"{path}: scored by IWAE_{m.get('iwae_samples')}, not IWAE_5000; run "
                         f"`aevb evaluate RUN --iwae-samples 5000` or `aevb reproduce`")
    name = "VAE" if key[0] == "elbo" else "IWAE"
    source = f"`{r['source']}`" if r["source"].startswith("pretrained:") else "trained by `aevb reproduce`"
    pythae = PYTHAE.get(key)
    return key, (f"| {name}, k = {key[1]} (`{r['recipe']}`) | {-m['iwae']:.2f} (s.e. {m['iwae_se']:.2f}) | "
                 f"{r['epochs']:,} epochs, {r['training_seconds'] / 60:.0f} min ({source}) | "
                 f"{BURDA[key]:.2f} | "
                 + (f"{pythae[0]:.2f} (its reference: {pythae[1]:.1f}) |" if pythae else "not reproduced |"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", nargs="+", type=Path, help="results.json files of `aevb reproduce`")
    args = p.parse_args()
    rows = sorted(row(path) for path in args.results)
    print("| model | aevb: -log p(x), nats | aevb's training | Burda et al. (3,280 epochs) | pythae |")
    print("| --- | --- | --- | --- | --- |")
    for _, line in rows:
        print(line)
    print("\naevb trains on a 2-core CPU (one hour at most); Burda et al. and pythae do not state "
          "training times. Lower is better.")


if __name__ == "__main__":
    main()
