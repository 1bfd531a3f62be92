"""Making a shipped model from a finished run: `NAME.safetensors` (the model's tensors, in fp16 where
that moves no card metric) and its model card `NAME.json` (`aevb.runs.pretrained`). For maintainers.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

from aevb import atomic, provenance
from aevb.evaluate import evaluate
from aevb.runs import checkpoints
from aevb.runs.load import open_run
from aevb.runs.pretrained import DIR, sha256

CARD_FORMAT = "aevb-model-card-1"
HALF_TOLERANCE = 0.1  # nats: fp16 weights are shipped only if every density metric moves less
QUICK_POINTS = 500  # test points of the card's quick metric, which the tests recompute


def _density_keys(metrics: dict) -> list[str]:
    return [k for k in ("elbo", "iwae", "log_likelihood") if k in metrics]


def export(run: str | Path, name: str, recipe: str, description: str, iwae_samples: int = 0,
           data_dir: str | None = None, out_dir: Path = DIR, progress: bool = True,
           machine: str | None = None, note: str = "") -> dict:
    """Write `out_dir/NAME.safetensors` and `NAME.json` from the finished run in `run`.

    The weights go in fp16 if the test metrics of the fp16 weights stay within HALF_TOLERANCE nats
    of fp32 (and cluster accuracy within 0.001), else in fp32. The card's metrics are those of the
    shipped file, measured with `aevb evaluate`'s defaults (plus IWAE with `iwae_samples` if given).
    `machine` names where the run trained (default: this machine, as "N-core ARCH CPU"); `note` is
    the maintainer's remark for the card (e.g. the commit of a run that predates recorded versions).
    """
    model, cfg, data, meta = open_run(run, "cpu", data_dir=data_dir)
    elbo_samples = 10 * cfg.train.eval_samples
    eval_batch = cfg.train.eval_batch_size

    def measure(iwae: int, subset: int | None = None) -> dict:
        return evaluate(model, data, "test", eval_batch, iwae, seed=0, progress=progress,
                        elbo_samples=elbo_samples, subset=subset)

    full = measure(iwae_samples)
    weights = {k: v.detach().clone() for k, v in model.state_dict().items()}  # the run's fp32
    half = {k: v.half() if v.is_floating_point() else v for k, v in weights.items()}
    model.load_state_dict(half)  # fp16 values copied into the fp32 parameters
    half_metrics = measure(iwae_samples)
    moved = {k: abs(half_metrics[k] - full[k]) for k in _density_keys(full)}
    if "cluster_accuracy" in full:
        moved["cluster_accuracy"] = abs(half_metrics["cluster_accuracy"] - full["cluster_accuracy"])
    use_half = all(v < (0.001 if k == "cluster_accuracy" else HALF_TOLERANCE) for k, v in moved.items())
    if not use_half:
        model.load_state_dict(weights)
    shipped = half if use_half else weights
    metrics = half_metrics if use_half else full
    quick = measure(0, QUICK_POINTS)

    config = cfg.to_dict()
    config["data"]["data_dir"] = None  # the user's own data root, found as `aevb.data` finds it
    file_meta = {k: meta[k] for k in ("data_info", "step", "epoch", "seconds", "metrics", "start")
                 if k in meta}
    file_meta.update(config=config, model=cfg.model, pretrained=name)
    out_dir.mkdir(parents=True, exist_ok=True)
    weights_path = out_dir / f"{name}.safetensors"
    checkpoints.save(weights_path, {f"model/{k}": v for k, v in shipped.items()}, file_meta)
    trained_with = meta.get("versions")
    the_card = {
        "format": CARD_FORMAT,
        "name": name,
        "model": cfg.model,
        "description": description,
        "recipe": recipe,
        "reproduce": f"aevb reproduce {recipe}",
        "config": config,
        "dataset": meta["data_info"]["dataset"],
        "preprocess": cfg.data.preprocess,
        "epochs": meta["epoch"],
        "steps": meta["step"],
        "training_seconds": round(meta["seconds"], 1),
        **({"start": meta["start"]} if "start" in meta else {}),  # a pretrained start's measurements
        "trained_on": machine or f"{os.cpu_count()}-core {platform.machine()} CPU",
        "metrics": metrics,
        "metrics_command": f"aevb evaluate pretrained:{name} --json"
                           + (f" --iwae-samples {iwae_samples}" if iwae_samples else ""),
        "quick_metrics": quick,
        "quick_metrics_command": f"aevb evaluate pretrained:{name} --json --subset {QUICK_POINTS}",
        "weights_dtype": "float16" if use_half else "float32",
        "fp16_change": moved,
        "code_version": trained_with or provenance.versions(),
        "code_version_of": "training" if trained_with else "export (the run predates recorded versions)",
        "exported": {"date": time.strftime("%Y-%m-%d"), "versions": provenance.versions()},
        "note": note,
        "sha256": sha256(weights_path),
        "bytes": weights_path.stat().st_size,
    }
    atomic.write_text(out_dir / f"{name}.json", json.dumps(the_card, indent=2) + "\n")
    return the_card
