"""The docs' results table, printed from the gallery's results.json files and the model cards.

    python benchmarks/results_table.py    # reads docs/gallery/*/results.json, benchmarks/results/*-sweep/

Each gallery folder is the output of `aevb reproduce NAME --pretrained --out docs/gallery/NAME`
(or, for recipes without a shipped model, of training it), so every number in the table comes
from a file a command wrote, never from hand copying.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from aevb.runs import pretrained, reproduce, sweep

ROOT = Path(__file__).resolve().parents[1]

# What each model's headline metric is, exactly.
DEFINITIONS = {
    "fa": "exact log p(x) of the 1,000 test points (closed form), nats per point",
    "vae": "test ELBO, nats per image: continuous-Bernoulli density with its exact normaliser, "
           "mean of 100 draws of z per image, 10,000 test images",
    "cvae": "test ELBO of log p(x\\|y), as the VAE's (100 draws, exact normaliser)",
    "gmvae": "cluster accuracy of argmax q(y\\|x) on the 10,000 test images (Hungarian one-to-one "
             "matching of the 10 clusters to labels), and of the ELBO's own choice argmax_y ELBO_y; "
             "test ELBO with y summed out and log p(y) included; 100 draws of z per cluster",
    "vrnn": "test ELBO per image (28 rows of 28 binary pixels), 10 draws of the z trajectory",
}

# The metric of the recipes on Burda et al.'s yardstick, not their model's usual one.
BURDA = ("test log-likelihood bound IWAE_5000, nats per image: Bernoulli density on the 10,000 test "
         "images binarized once (seeded Bernoulli(pixel/255) draws)")


def fmt(v: float) -> str:
    return f"{v:.3f}" if abs(v) < 10 else f"{v:.2f}"


def ours(r: dict) -> str:
    """Our metrics, the one the reference is stated in first and in bold."""
    m, headline = r["metrics"], (r["reference"] or {}).get("metric")
    shown = {
        "log_likelihood": lambda: f"log p(x) {fmt(m['log_likelihood'])}",
        "cluster_accuracy": lambda: (f"accuracy {m['cluster_accuracy']:.3f} ("
                                     + (f"the ELBO's own clusters {m['elbo_cluster_accuracy']:.3f}, "
                                        f"agreeing on {m['cluster_agreement']:.1%}; "
                                        if "elbo_cluster_accuracy" in m else "")
                                     + (f"purity {m['cluster_purity']:.3f}, "
                                        if "cluster_purity" in m else "")
                                     + f"NMI {m['nmi']:.3f})"),
        "elbo": lambda: f"ELBO {fmt(m['elbo'])} (s.e. {m['elbo_se']:.2f})",
        "elbo_trained_prior": lambda: f"ELBO {fmt(m['elbo_trained_prior'])} under the trained prior",
        "iwae": lambda: f"IWAE_{m['iwae_samples']} {fmt(m['iwae'])} (s.e. {m['iwae_se']:.2f})",
    }
    keys = sorted((k for k in shown if k in m), key=lambda k: k != headline)
    return "; ".join(f"**{shown[k]()}**" if k == headline else shown[k]() for k in keys)


def published(recipe: str) -> str:
    """The recipe's reference number and who published it (configs/NAME.toml's [reference]), or a
    dash where the recipe has none; read from the recipe, so a corrected source shows at once."""
    ref = reproduce.recipe(recipe).get("reference") or {}
    if "value" not in ref:
        return "-"
    who = ref.get("source", "").split(":")[0].split(" (")[0]
    return f"{ref['value']:g} ({who})"


def seeds_row(folder: Path) -> str:
    """One row for a sweep kept in benchmarks/results/NAME-sweep/ (each seed's results.json):
    the median over seeds, with the range, as `aevb sweep` summarises it."""
    found = {int(p.name.split("-")[1]): json.loads(p.read_text())
             for p in sorted(folder.glob("seed-*-results.json"))}
    first = next(iter(found.values()))
    summary = sweep.summarise({s: r["metrics"] for s, r in found.items()})

    def spread(key: str, digits: int) -> str:
        v = summary[key]
        return f"{v['median']:.{digits}f} ({v['min']:.{digits}f} to {v['max']:.{digits}f})"

    shown = f"**median accuracy {spread('cluster_accuracy', 3)}**; ELBO {spread('elbo', 2)}"
    minutes = sorted(pretrained.training_seconds(r) / 60 for r in found.values())
    seeds = ",".join(str(s) for s in sorted(found))
    return (f"| `{first['recipe']}`, seeds {seeds} | {published(first['recipe'])} | {shown} "
            f"(`aevb sweep {first['recipe']} --seeds {seeds}`{made_by(first)}) | "
            f"{minutes[0]:.0f} to {minutes[-1]:.0f} min each |")


def dataset_of(recipe: str) -> str:
    return reproduce.recipe(recipe).get("data", {}).get("dataset", "mnist")


def made_by(r: dict) -> str:
    """What besides the model's own training made a row's number, as the recipe says: a start,
    q(y|x) held at the start's clusters, a prior fitted after training."""
    recipe = reproduce.recipe(r["recipe"])
    train, model = recipe.get("train", {}), recipe.get("model_config", {})
    said = ""
    if (r.get("start") or {}).get("init") == "autoencoder-umap":
        said += "; started from UMAP clusters of an autoencoder's codes"
        if train.get("freeze") == "qy" and train.get("freeze_epochs", 0) >= r["epochs"]:
            said += ", q(y\\|x) held there: the accuracy is the start's"
    if model.get("prior") == "fitted":
        said += "; p(z\\|y) fitted to the codes by EM after each epoch (ex-post density estimation)"
    return said


def table(gallery: Path = ROOT / "docs" / "gallery", dataset: str | None = None) -> str:
    """The results table as Markdown, from `gallery`'s results.json files and the kept sweeps:
    one row per recipe (`aevb reproduce RECIPE`), then one per kept sweep of seeds; only the
    recipes on `dataset` when one is named (the Fashion-MNIST page shows its own)."""
    rows = ["| recipe | published (by whom) | aevb (what made it) | training |",
            "| --- | --- | --- | --- |"]
    found = [json.loads(p.read_text()) for p in sorted(gallery.glob("*/results.json"))]
    found = [r for r in found if dataset in (None, dataset_of(r["recipe"]))]
    for r in sorted(found, key=lambda r: (list(DEFINITIONS).index(r["model"]), r["recipe"])):
        source = r["source"]
        if source.startswith(pretrained.PREFIX):
            name = source[len(pretrained.PREFIX):]
            who = f"the shipped `{name}`, {r['epochs']} epochs"
        else:
            who = f"trained by `aevb reproduce`, {r['epochs']} epochs"
        who += made_by(r)
        t = pretrained.training_seconds(r)
        took = f"{t:.0f} s" if t < 120 else f"{t / 60:.0f} min"
        rows.append(f"| `{r['recipe']}` | {published(r['recipe'])} | {ours(r)} ({who}) | {took} |")
    for folder in sorted((ROOT / "benchmarks" / "results").glob("*-sweep")):
        if dataset in (None, dataset_of(folder.name.removesuffix("-sweep"))):
            rows.append(seeds_row(folder))
    return "\n".join(rows)


def definitions() -> str:
    """What each headline metric is, exactly, as a list under the table."""
    lines = [f"- **{model.upper()}**: {text.replace(chr(92), '')}." for model, text in DEFINITIONS.items()]
    lines.insert(2, "- **VAE on binarized MNIST** (`vae-bernoulli`, `vae-conv-bernoulli`, "
                    f"`iwae-bernoulli-k5`, `-k50`): {BURDA}.")
    lines.insert(3, "- **Fashion-MNIST** (`vae-fashion`, `gmvae-fashion`): as on MNIST, on its 10,000 test "
                    "images; the VAE's headline is IWAE_1000, a bound on log p(x) under the continuous "
                    "Bernoulli with its exact normaliser (dequantized test images, drawn once).")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gallery", type=Path, default=ROOT / "docs" / "gallery")
    p.add_argument("--dataset", help="only the recipes on this dataset (e.g. fashion-mnist)")
    args = p.parse_args()
    print(table(args.gallery, args.dataset))
    print()
    print(definitions())


if __name__ == "__main__":
    main()
