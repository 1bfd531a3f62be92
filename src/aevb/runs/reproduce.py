"""`aevb reproduce NAME`: a published recipe (configs/NAME.toml) trained, or its shipped model
fetched, then its figures and a results.json beside the number it reproduces.

    OUT/run/            the training run (absent with --pretrained)
    OUT/figures/        every figure of the model (`aevb.reports.figures`)
    OUT/results.json    the recipe, the reference number, our metrics as `aevb evaluate` gives them
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from aevb import atomic, provenance
from aevb.errors import AevbError
from aevb.evaluate import evaluate
from aevb.reports import figures
from aevb.runs import launch
from aevb.runs.load import open_run
from aevb.runs.pretrained import PREFIX
from aevb.runs.pretrained import card as pretrained_card
from aevb.runs.resolve import config, recipe, recipe_names

names = recipe_names  # the recipes under configs/, for `aevb reproduce --list`


def default_out(name: str) -> Path:
    return Path("runs") / "reproduce" / name


def reproduce(name: str, out: Path, pretrained: bool = False, data_dir: str | None = None,
              train_overrides: dict | None = None, resume: bool = False, device: str = "auto",
              quiet: bool = False, with_figures: bool = True) -> dict:
    """Train recipe `name` into OUT/run (or take its shipped model), then write OUT/figures
    (unless `with_figures` is False) and OUT/results.json; returns the results."""
    raw = recipe(name)
    overrides = dict(train_overrides or {})
    if pretrained:
        if not raw.get("pretrained"):
            raise AevbError(f"recipe {name} has no shipped model; drop --pretrained to train it")
        if overrides or resume:
            raise AevbError("--pretrained trains nothing; drop the training flags")
        pretrained_card(raw["pretrained"])  # an unknown shipped model is an error before any output
        run: str | Path = PREFIX + raw["pretrained"]
    else:
        run = out / "run"
        if device != "auto":
            overrides["device"] = device
        if resume:
            launch.resume(run, overrides, quiet)
        else:
            settings = overrides | ({} if data_dir is None else {"data_dir": data_dir})
            launch.train(config(name, **settings), run, quiet)
    written = figures.write(*open_run(run, data_dir=data_dir), out / "figures") if with_figures else []
    model, cfg, data, meta = open_run(run, device, data_dir=data_dir)
    reference = raw.get("reference")
    iwae_samples = (reference or {}).get("iwae_samples", 0)  # a reference scored by IWAE_K
    # 100 draws where the bound's own choice of cluster is scored: fewer flip near-ties (docs: Evaluation)
    draws = 100 if model.has_clusters else 10 * cfg.train.eval_samples
    metrics = evaluate(model, data, "test", cfg.train.eval_batch_size, iwae_samples, 0,
                       progress=not quiet, elbo_samples=draws)
    if reference and reference.get("metric") in metrics:
        reference = {**reference, "ours": metrics[reference["metric"]]}
    results = {
        "recipe": Path(name).stem,
        "description": raw.get("description", ""),
        "model": cfg.model,
        "source": str(run) if pretrained else "trained here",
        "reference": reference,
        "metrics": metrics,
        "evaluate_command": f"aevb evaluate {run} --json"
                            + (f" --iwae-samples {iwae_samples}" if iwae_samples else ""),
        "epochs": meta["epoch"],
        "steps": meta["step"],
        "training_seconds": round(meta["seconds"], 1),
        **({"start": meta["start"]} if "start" in meta else {}),  # a pretrained start's measurements
        "figures": [str(p.relative_to(out)) for p in written],
        "date": time.strftime("%Y-%m-%d"),
        "versions": provenance.versions(),
    }
    atomic.write_text(out / "results.json", json.dumps(results, indent=2) + "\n")
    return results
