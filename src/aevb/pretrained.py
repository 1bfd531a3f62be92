"""Pretrained models shipped with aevb: weights as safetensors, a JSON model card each, SHA-256 checked.

    src/aevb/pretrained_models/NAME.safetensors   a checkpoint (`aevb.checkpoints`) holding only
                                                  the model's tensors, in fp16 where the card's
                                                  metrics stay within 0.1 nats of fp32 (loaded
                                                  back into fp32 parameters)
    src/aevb/pretrained_models/NAME.json          the model card: recipe, data, epochs, training
                                                  time, metrics as `aevb evaluate` measures them,
                                                  code version, SHA-256 of the weights file

`pretrained:NAME` stands for a run directory in every command; loading checks the file's SHA-256
against its card first and refuses a mismatch. `export` makes the two files from a finished run.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from pathlib import Path

import torch

from aevb import atomic, checkpoints, provenance
from aevb.errors import AevbError

PREFIX = "pretrained:"
DIR = Path(__file__).resolve().parent / "pretrained_models"
CARD_FORMAT = "aevb-model-card-1"
HALF_TOLERANCE = 0.1  # nats: fp16 weights are shipped only if every density metric moves less
QUICK_POINTS = 500  # test points of the card's quick metric, which the tests recompute


def names() -> list[str]:
    """The shipped models, by name."""
    return sorted(p.stem for p in DIR.glob("*.json"))


def card(name: str) -> dict:
    """The model card of a shipped model; an unknown name is an error listing the known ones."""
    path = DIR / f"{name}.json"
    if not path.is_file():
        known = ", ".join(names()) or "none"
        raise AevbError(f"no pretrained model {name!r}; shipped: {known} (see `aevb pretrained list`)")
    return json.loads(path.read_text())


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def checkpoint(name: str) -> Path:
    """The weights file of a shipped model, after checking its SHA-256 against the card."""
    expected = card(name)["sha256"]
    path = DIR / f"{name}.safetensors"
    if not path.is_file():
        raise AevbError(f"pretrained model {name}: weights file {path} is missing; reinstall aevb")
    found = sha256(path)
    if found != expected:
        raise AevbError(f"pretrained model {name}: {path.name} has SHA-256 {found[:16]}..., its card "
                        f"says {expected[:16]}...; the file is corrupt or replaced, reinstall aevb")
    return path


def resolve(run: str | Path) -> Path:
    """A run directory or checkpoint path as given, or the checked weights of `pretrained:NAME`."""
    run = str(run)
    return checkpoint(run[len(PREFIX):]) if run.startswith(PREFIX) else Path(run)


def load_pretrained(name: str, device: str | torch.device = "cpu"):
    """The shipped model `name` in eval mode, its weights checked against the card's SHA-256."""
    model, _, _ = checkpoints.load_model(PREFIX + name, device)
    return model


# -- making a shipped model from a run --------------------------------------------------------------

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
    from aevb.evaluate import evaluate
    from aevb.runs import open_run

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
