"""Pretrained models shipped with aevb: weights as safetensors, a JSON model card each, SHA-256 checked.

    src/aevb/pretrained_models/NAME.safetensors   a checkpoint (`aevb.runs.checkpoints`) holding only
                                                  the model's tensors, in fp16 where the card's
                                                  metrics stay within 0.1 nats of fp32 (loaded
                                                  back into fp32 parameters)
    src/aevb/pretrained_models/NAME.json          the model card: recipe, data, epochs, training
                                                  time, metrics as `aevb evaluate` measures them,
                                                  code version, SHA-256 of the weights file

`pretrained:NAME` stands for a run directory in every command; loading checks the file's SHA-256
against its card first and refuses a mismatch. `aevb.runs.export` makes the two files from a run.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from aevb.errors import AevbError

PREFIX = "pretrained:"
DIR = Path(__file__).resolve().parents[1] / "pretrained_models"


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


def is_name(run: str | Path) -> bool:
    """Whether `run` is `pretrained:NAME` rather than a path."""
    return str(run).startswith(PREFIX)


def training_seconds(record: dict) -> float:
    """A run's `training_seconds` plus its start's (a model card or a results.json): the start
    trains networks too, so a training time leaves it out only by hiding it."""
    return record["training_seconds"] + record.get("start", {}).get("seconds", 0.0)
