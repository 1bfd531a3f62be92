"""Checkpoints as data: one safetensors file of tensors whose header carries the run's JSON.

Layout of `RUN_DIR/checkpoint.safetensors`:
    tensors   model/<name>, optim/<param index>/<key>, rng/<stream>, data/<name>
    metadata  {"aevb": JSON with format, config, data_info, step, epoch, metrics, optimizer groups}

Loading rebuilds the model through the registry from that JSON; nothing unpickles code. Writes are
atomic (`aevb.atomic`), so a crash never leaves a half-written checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from aevb import models
from aevb.atomic import atomic_path
from aevb.config import RunConfig, config_from_dict
from aevb.errors import AevbError

FORMAT = "aevb-checkpoint-1"
CHECKPOINT = "checkpoint.safetensors"


def save(path: Path, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Atomically write tensors plus JSON metadata to a safetensors file."""
    meta = {"format": FORMAT, **meta}
    cpu = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(cpu, str(tmp), metadata={"aevb": json.dumps(meta)})


def load(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a checkpoint's tensors and JSON from a run directory, a checkpoint file or
    `pretrained:NAME`; anything unreadable is an AevbError naming the file."""
    from aevb.pretrained import resolve  # pretrained builds on this module

    path = resolve(path)
    if path.is_dir():
        path = path / CHECKPOINT
    if not path.is_file():
        raise AevbError(f"{path}: no checkpoint here; give a run directory made by `aevb train`")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is no dict)
        meta = json.loads(header["aevb"])
    except (SafetensorError, OSError, KeyError, ValueError) as e:
        raise AevbError(f"{path}: not a readable aevb checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(meta, dict):
        raise AevbError(f"{path}: not a readable aevb checkpoint (its metadata is not a JSON object)")
    if meta.get("format") != FORMAT:
        made_by = (meta.get("versions") or {}).get("aevb", "an unknown version")
        raise AevbError(f"{path}: checkpoint format {meta.get('format')!r} (written by aevb {made_by}) "
                        f"is not this aevb's {FORMAT!r}; load it with the aevb that wrote it, or retrain")
    return tensors, meta


def prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors under `prefix/`, with the prefix removed."""
    n = len(prefix) + 1
    return {k[n:]: v for k, v in tensors.items() if k.startswith(prefix + "/")}


def build_model(cfg: RunConfig, data_info: dict) -> models.LatentModel:
    """Construct the registered model for a config and the shape of its data."""
    cls = models.get(cfg.model)
    return cls(cfg.model_config, tuple(data_info["event_shape"]), data_info.get("n_classes"))


def load_model(run: str | Path, device: str | torch.device = "cpu"
               ) -> tuple[models.LatentModel, RunConfig, dict]:
    """Rebuild a trained model from a run directory, checkpoint file or `pretrained:NAME`:
    (model in eval mode, config, meta)."""
    tensors, meta = load(run)
    try:
        cfg = config_from_dict(meta["config"], models.get(meta["config"]["model"]))
        model = build_model(cfg, meta["data_info"])
    except (KeyError, TypeError) as e:
        raise AevbError(f"{run}: the checkpoint's metadata is incomplete ({type(e).__name__}: {e}); "
                        "it was not written by this aevb") from None
    state = prefixed(tensors, "model")
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise AevbError(f"{run}: checkpoint tensors do not fit model {cfg.model!r} ({first})") from None
    return model.to(device).eval(), cfg, meta
