"""Run directories: start a training run from a config, resume it, and reopen it for evaluation.

A run directory holds `config.json` (the resolved config), `metrics.jsonl` (one line per epoch)
and `checkpoint.safetensors`. It is created only once the data and the model have been built, so
a bad flag or a bad file leaves nothing behind.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from aevb import atomic, checkpoints, models, provenance
from aevb.config import RunConfig, config_from_dict
from aevb.data import MODE_SUPPORT, Data, check_support, load
from aevb.errors import AevbError
from aevb.train import Trainer, check_options, resolve_device


def prepare_data(cfg: RunConfig, device: torch.device | str = "cpu") -> Data:
    """Load the run's dataset, shape it for the model (vectors, or sequences (N, T, D) for a
    sequential model: an image is read row by row), and check it fits the model's likelihood."""
    cls = models.get(cfg.model)
    data = load(cfg.data.dataset, cfg.data.data_dir, cfg.data.preprocess)
    for split in (data.train, data.test):
        if not cls.sequential:
            if split.lengths is not None:
                raise AevbError(f"{data.name} holds sequences with lengths, which only a sequential "
                                f"model (vrnn) reads; drop lengths_train/lengths_test for {cfg.model}")
            split.x = split.x.flatten(1)
        elif data.image_shape is not None:
            split.x = split.x.reshape(len(split), *data.image_shape)  # (N, T=rows, D=columns)
        else:
            raise AevbError(f"model {cfg.model} reads sequences but {data.name} has x of shape "
                            f"{tuple(split.x.shape)}; give x_train and x_test as (N, T, D)")
    mode_support = MODE_SUPPORT.get(data.preprocess)
    support = cls.data_support(cfg.model_config)
    if support != "real":
        if mode_support is None:  # raw values: check them
            for name in ("train", "test"):
                check_support(data.split(name).x, support, f"{data.name} x_{name}")
        elif support == "binary" and mode_support != "binary":
            raise AevbError(f"model {cfg.model} needs binary data but --preprocess "
                            f"{data.preprocess} gives values in [0, 1]; use binarize-threshold or "
                            "binarize-dynamic")
    if cls.uses_labels and data.train.y is None:
        raise AevbError(f"model {cfg.model} is conditioned on labels but {data.name} has none; "
                        "add y_train and y_test to the .npz")
    return data.to(device)


def data_info(data: Data) -> dict:
    """What a checkpoint must know about its data to rebuild the model and draw its figures."""
    return {
        "dataset": data.name,
        "event_shape": list(data.event_shape),
        "n_classes": None if data.classes is None else len(data.classes),
        "classes": None if data.classes is None else list(data.classes),
        "image_shape": None if data.image_shape is None else list(data.image_shape),
        "note": data.note,
    }


def default_run_dir(model: str) -> Path:
    return Path("runs") / f"{model}-{time.strftime('%Y%m%d-%H%M%S')}"


def train(cfg: RunConfig, out: Path, quiet: bool = False) -> Trainer:
    """Start a new run in `out` and train it to the end."""
    if (out / checkpoints.CHECKPOINT).exists():
        raise AevbError(f"{out} already holds a run; pass --resume to continue it, or choose "
                        "another --out")
    device = resolve_device(cfg.train.device)
    cls = models.get(cfg.model)
    check_options(cfg.train, cls, device)
    cfg.model_config = cls.resolve(cfg.model_config, cfg.data.dataset)
    data = prepare_data(cfg, device)
    torch.manual_seed(cfg.train.seed)
    model = checkpoints.build_model(cfg, data_info(data)).to(device)
    out.mkdir(parents=True, exist_ok=True)
    atomic.write_text(out / "config.json", json.dumps(cfg.to_dict(), indent=2) + "\n")
    (out / "metrics.jsonl").write_text("")
    run_meta = {"config": cfg.to_dict(), "data_info": data_info(data), "model": cfg.model,
                "versions": provenance.versions()}
    trainer = Trainer(model, data, cfg.train, out, run_meta, quiet)
    trainer.fit()
    return trainer


# What may change when a run is resumed: how long it runs and where.
RESUMABLE = ("epochs", "max_steps", "device", "compile")


def resume(out: Path, train_overrides: dict, quiet: bool = False, model: str | None = None) -> Trainer:
    """Continue the run in `out` from its last checkpoint, optionally for more epochs or steps."""
    tensors, meta = checkpoints.load(out)
    if "optimizer_groups" not in meta:
        raise AevbError(f"{out} is a shipped model without optimiser state; it cannot be resumed. "
                        "Train its recipe with `aevb reproduce NAME`")
    if model is not None and meta["config"]["model"] != model:
        raise AevbError(f"{out} holds a {meta['config']['model']} run, not {model}; "
                        f"resume it with `aevb train {meta['config']['model']} --resume`")
    cls = models.get(meta["config"]["model"])
    cfg = config_from_dict(meta["config"], cls)
    for key, value in train_overrides.items():
        if key not in RESUMABLE:
            raise AevbError(f"--{key.replace('_', '-')} cannot change when resuming; only "
                            f"{', '.join('--' + k.replace('_', '-') for k in RESUMABLE)} can")
        setattr(cfg.train, key, value)
    device = resolve_device(cfg.train.device)
    data = prepare_data(cfg, device)
    model = checkpoints.build_model(cfg, meta["data_info"])
    model.load_state_dict(checkpoints.prefixed(tensors, "model"))
    model.to(device)
    atomic.write_text(out / "config.json", json.dumps(cfg.to_dict(), indent=2) + "\n")
    run_meta = {"config": cfg.to_dict(), "data_info": meta["data_info"], "model": cfg.model,
                "versions": meta.get("versions"), "resumed_with": provenance.versions()}
    trainer = Trainer(model, data, cfg.train, out, run_meta, quiet)
    trainer.restore(tensors, meta)
    trainer.fit()
    return trainer


def open_run(run: str | Path, device: str = "cpu", with_data: bool = True,
             data_dir: str | None = None) -> tuple[models.LatentModel, RunConfig, Data | None, dict]:
    """A trained run (or `pretrained:NAME`) ready for evaluation: (model in eval mode, config, data,
    checkpoint meta). `data_dir` overrides the data root the run was trained from."""
    dev = resolve_device(device)
    model, cfg, meta = checkpoints.load_model(run, dev)
    if data_dir is not None:
        cfg.data.data_dir = data_dir
    data = prepare_data(cfg, dev) if with_data else None
    return model, cfg, data, meta

