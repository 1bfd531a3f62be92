"""The README's results table, printed from the gallery's results.json files and the model cards.

    python benchmarks/results_table.py                 # reads docs/gallery/*/results.json

Each gallery folder is the output of `aevb reproduce NAME --pretrained --out docs/gallery/NAME`
(or, for recipes without a shipped model, of training it), so every number in the table comes
from a file a command wrote, never from hand copying.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from aevb import pretrained

ROOT = Path(__file__).resolve().parents[1]

# What each model's headline metric is, exactly.
DEFINITIONS = {
    "fa": "exact log p(x) of the 1,000 test points (closed form), nats per point",
    "vae": "test ELBO, nats per image: continuous-Bernoulli density with its exact normaliser, "
           "mean of 100 draws of z per image, 10,000 test images",
    "cvae": "test ELBO of log p(x\\|y), as the VAE's (100 draws, exact normaliser)",
    "gmvae": "cluster accuracy on the 10,000 test images (Hungarian one-to-one matching of the 10 "
             "clusters to labels); test ELBO with y summed out and log p(y) included, 10 draws",
    "vrnn": "test ELBO per image (28 rows of 28 binary pixels), 10 draws of the z trajectory",
}

# Recipes whose metric is not their model's usual one.
RECIPE_DEFINITIONS = {
    "vae-bernoulli": "test log-likelihood bound IWAE_5000, nats per image: Bernoulli density on the "
                     "10,000 test images binarized once (seeded Bernoulli(pixel/255) draws)",
}


def fmt(v: float) -> str:
    return f"{v:.3f}" if abs(v) < 10 else f"{v:.2f}"


def ours(r: dict) -> str:
    """Our metrics, the one the reference is stated in first and in bold."""
    m, headline = r["metrics"], (r["reference"] or {}).get("metric")
    shown = {
        "log_likelihood": lambda: f"log p(x) {fmt(m['log_likelihood'])}",
        "cluster_accuracy": lambda: f"accuracy {m['cluster_accuracy']:.3f} (NMI {m['nmi']:.3f})",
        "elbo": lambda: f"ELBO {fmt(m['elbo'])} (s.e. {m['elbo_se']:.2f})",
        "iwae": lambda: f"IWAE_{m['iwae_samples']} {fmt(m['iwae'])} (s.e. {m['iwae_se']:.2f})",
    }
    keys = sorted((k for k in shown if k in m), key=lambda k: k != headline)
    return "; ".join(f"**{shown[k]()}**" if k == headline else shown[k]() for k in keys)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gallery", type=Path, default=ROOT / "docs" / "gallery")
    args = p.parse_args()
    print("| model | recipe | published number | ours | metric, exactly | train time | reproduce |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    found = [json.loads(p.read_text()) for p in sorted(args.gallery.glob("*/results.json"))]
    for r in sorted(found, key=lambda r: list(DEFINITIONS).index(r["model"])):
        ref = r["reference"] or {}
        source = r["source"]
        if source.startswith(pretrained.PREFIX):
            name = source[len(pretrained.PREFIX):]
            card = pretrained.card(name)
            who = f"`{name}` ({card['weights_dtype']}), {r['epochs']} epochs"
        else:
            who = f"trained by the command, {r['epochs']} epochs"
        t = r["training_seconds"]
        took = f"{t:.0f} s" if t < 120 else f"{t / 60:.1f} min"
        print(f"| {r['model'].upper()} | `{r['recipe']}` | {ref.get('value', '')} "
              f"({ref.get('metric', '')}) | {ours(r)} [{who}] | "
              f"{RECIPE_DEFINITIONS.get(r['recipe'], DEFINITIONS[r['model']])} | "
              f"{took} | `aevb reproduce {r['recipe']}` |")


if __name__ == "__main__":
    main()
