"""The checkpoint file format: one safetensors file of tensors whose header carries JSON.

    tensors   model/<name>, and for a training run optim/..., rng/..., data/... (aevb.training.trainer)
    metadata  {"aevb": JSON with format, config, data_info, step, epoch, metrics ...}

Nothing here unpickles code, and writes are atomic (`aevb.atomic`): a crash or a full disk never
leaves a half-written checkpoint. Paths in, paths out: which file a run or a shipped model name
means is `aevb.runs.directory`'s and `aevb.runs.pretrained`'s business.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from aevb.atomic import atomic_path
from aevb.errors import AevbError

FORMAT = "aevb-checkpoint-1"


def save(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Atomically write tensors plus JSON metadata to a safetensors file."""
    meta = {"format": FORMAT, **meta}
    cpu = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        try:
            save_file(cpu, str(tmp), metadata={"aevb": json.dumps(meta)})
        except SafetensorError as e:  # its I/O errors carry the OS's error number but are no OSError
            code = re.search(r"\(os error (\d+)\)", str(e))
            if code is None:
                raise OSError(str(e)) from None
            raise OSError(int(code[1]), os.strerror(int(code[1]))) from None


def load(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a checkpoint file's tensors and JSON; anything unreadable is an AevbError naming it."""
    path = Path(path)
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
