"""Run directories: start a training run from a config, resume it, and reopen it for evaluation.

A run directory holds `config.json` (the resolved config), `metrics.jsonl` (one line per epoch)
and `checkpoint.safetensors`. It is created only once the data and the model have been built, so
a bad flag or a bad file leaves nothing behind.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from aevb import atomic, checkpoints, distributed, initialise, models, provenance
from aevb.config import (
    RunConfig,
    build_config,
    check_ranges,
    config_from_dict,
    flag,
    read_toml,
    replace_checked,
    sections,
)
from aevb.data import MODE_SUPPORT, Data, absolute, check_support, is_file, load
from aevb.devices import native_bf16, resolve_device, resolve_precision
from aevb.errors import AevbError
from aevb.train import Trainer, check_options, frozen_parameters


def config(model: str, config_file: str | Path | None = None, **settings) -> RunConfig:
    """A run's config from Python, layered as `aevb train MODEL --config FILE --flag value` layers
    it: the model's recipe, then `config_file`, then `settings`, named as the flags are but in
    snake case (`config("vae", dataset="my.npz", preprocess="none", epochs=20, latent_dim=8)`)."""
    cls = models.get(model)
    sources = [] if config_file is None else [(str(config_file), read_toml(config_file))]
    return build_config(model, cls, sources + [("keyword arguments", sections(model, cls, settings))])


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


def train(cfg: RunConfig, out: str | Path, quiet: bool = False, overwrite: bool = False) -> Trainer:
    """Start a new run in `out` and train it to the end.

    The run directory appears whole or not at all: config.json, an empty metrics.jsonl and a step-0
    checkpoint are written into a hidden folder beside `out` that is then renamed, so from its first
    moment `out` holds a checkpoint that `--resume` continues.
    """
    out = Path(out)
    replace = _check_out(out, overwrite)
    device = distributed.setup(resolve_device(cfg.train.device))
    cls = models.get(cfg.model)
    check_ranges(cfg)
    # config.json records the precision that ran, so a resumed run keeps it on any machine
    cfg.train.precision = resolve_precision(cfg.train.precision, device)
    check_options(cfg.train, cls, device)
    if cfg.train.precision == "bf16" and not native_bf16(device) and distributed.is_main():
        print(f"aevb: warning: this {device.type} has no bf16 hardware, so bf16 is emulated and "
              "much slower than fp32 here; use --precision auto or fp32", file=sys.stderr)
    initialise.check(cfg)
    cfg.model_config = cls.resolve(cfg.model_config, cfg.data.dataset)
    cfg.data.dataset = absolute(cfg.data.dataset)  # config.json then finds an .npz from anywhere
    data = prepare_data(cfg, device)
    torch.manual_seed(cfg.train.seed)
    model = checkpoints.build_model(cfg, data_info(data)).to(device)
    frozen_parameters(model, cfg.train.freeze)  # a bad --freeze fails before the start's minutes
    start = initialise.start(model, data, cfg, quiet or not distributed.is_main())
    run_meta = {"config": cfg.to_dict(), "data_info": data_info(data), "model": cfg.model,
                "versions": provenance.versions(), **({"start": start} if start else {})}
    trainer = Trainer(model, data, cfg.train, None, run_meta, quiet)
    state = trainer.state()  # under torchrun every rank takes part; rank 0 writes
    failed = None
    if distributed.is_main():
        try:
            with atomic.atomic_dir(out, replace=replace) as tmp:
                atomic.write_text(tmp / "config.json", json.dumps(cfg.to_dict(), indent=2) + "\n")
                (tmp / "metrics.jsonl").write_text("")
                checkpoints.save(tmp / checkpoints.CHECKPOINT, *state)
        except OSError as e:
            failed = f"cannot write the run directory {out} ({e.strerror or e}); choose another --out"
    if distributed.any_rank(torch.tensor([failed is not None]))[0]:  # the other ranks stop too
        raise AevbError(failed or f"rank 0 could not write the run directory {out}")
    trainer.run_dir = out
    trainer.fit()
    return trainer


def _check_out(out: Path, overwrite: bool) -> bool:
    """Whether `out` holds a run that --overwrite replaces; refuse anything else already there."""
    if not out.exists():
        return False
    if not out.is_dir():
        raise AevbError(f"--out {out} is a file; give a directory for the run")
    if (out / checkpoints.CHECKPOINT).exists() or (out / "config.json").exists():
        if not overwrite:
            raise AevbError(f"{out} already holds a run; pass --resume to continue it, --overwrite to "
                            "replace it, or choose another --out")
        return True
    if any(out.iterdir()):
        raise AevbError(f"{out} exists and holds other files; choose a new or empty --out")
    return False


# What may change when a run is resumed: how long it runs, where, and how it steps (so that a run
# stopped by a NaN can go on with a lower learning rate or clipping); and where its data lives.
RESUMABLE = ("epochs", "max_steps", "device", "compile", "cuda_graphs", "lr", "clip_grad", "on_nan")
RESUMABLE_DATA = ("data_dir",)


def resume(out: str | Path, train_overrides: dict | None = None, quiet: bool = False,
           model: str | None = None, given: dict | None = None) -> Trainer:
    """Continue the run in `out` from its last checkpoint, optionally for more epochs or steps.

    `train_overrides` are [train] values; `given` holds any other sections the user repeated
    ({"model_config": ..., "data": ..., "train": ...}, e.g. the original command line). A value equal
    to the saved one is accepted, so the command that started a run continues it with --resume;
    a changed value is refused unless it is in RESUMABLE or RESUMABLE_DATA.
    """
    out = Path(out)
    tensors, meta = checkpoints.load(out)
    if "optimizer_groups" not in meta:
        raise AevbError(f"{out} is a shipped model without optimiser state; it cannot be resumed. "
                        "Train its recipe with `aevb reproduce NAME`")
    if model is not None and meta["config"]["model"] != model:
        raise AevbError(f"{out} holds a {meta['config']['model']} run, not {model}; "
                        f"resume it with `aevb train {meta['config']['model']} --resume`")
    cls = models.get(meta["config"]["model"])
    cfg = config_from_dict(meta["config"], cls)
    given = {k: dict(v) for k, v in (given or {}).items()}
    given.setdefault("train", {}).update(train_overrides or {})
    # the same file, however it is spelt (runs started before 2026-11-28 saved the path as typed)
    cfg.data.dataset = absolute(cfg.data.dataset)
    if "dataset" in given.get("data", {}):
        given["data"]["dataset"] = absolute(given["data"]["dataset"])
    if given["train"].get("precision") == "auto":  # resolved when the run started; that stands
        del given["train"]["precision"]
    allowed = {"train": RESUMABLE, "data": RESUMABLE_DATA, "model_config": ()}
    for section, values in given.items():
        saved = getattr(cfg, section)
        new = replace_checked(saved, values, "--resume")
        for key in values:
            if getattr(new, key) != getattr(saved, key) and key not in allowed[section]:
                may = ", ".join(flag(k) for k in RESUMABLE + RESUMABLE_DATA)
                raise AevbError(f"{flag(key)} cannot change when resuming (the run has "
                                f"{getattr(saved, key)!r}, not {getattr(new, key)!r}); only {may} can")
        setattr(cfg, section, new)
    check_ranges(cfg)
    device = distributed.setup(resolve_device(cfg.train.device))
    if distributed.is_main():
        atomic.remove_leftovers(out)  # temporary files of a write that a kill cut short
    data = prepare_data(cfg, device)
    model = checkpoints.build_model(cfg, meta["data_info"])
    model.load_state_dict(checkpoints.prefixed(tensors, "model"))
    model.to(device)
    if distributed.is_main():
        atomic.write_text(out / "config.json", json.dumps(cfg.to_dict(), indent=2) + "\n")
    run_meta = {"config": cfg.to_dict(), "data_info": meta["data_info"], "model": cfg.model,
                "versions": meta.get("versions"), "resumed_with": provenance.versions(),
                **({"start": meta["start"]} if "start" in meta else {})}
    trainer = Trainer(model, data, cfg.train, out, run_meta, quiet)
    trainer.restore(tensors, meta)
    trainer.fit()
    return trainer


def open_run(run: str | Path, device: str = "cpu", with_data: bool = True, data_dir: str | None = None,
             dataset: str | None = None) -> tuple[models.LatentModel, RunConfig, Data | None, dict]:
    """A trained run (or `pretrained:NAME`) ready for evaluation: (model in eval mode, config, data,
    checkpoint meta). `data_dir` overrides the data root the run was trained from; `dataset`, the
    data itself (a name or an .npz of the same shape, read with the run's preprocessing)."""
    dev = resolve_device(device)
    model, cfg, meta = checkpoints.load_model(run, dev)
    if data_dir is not None:
        cfg.data.data_dir = data_dir
    if dataset is not None:
        cfg.data.dataset = absolute(dataset)
    elif with_data and is_file(cfg.data.dataset) and not Path(cfg.data.dataset).is_file():
        raise AevbError(f"{run} was trained on {cfg.data.dataset}, which is no longer there; "
                        "put the file back, or give the file's new place with --dataset")
    try:
        data = prepare_data(cfg, dev) if with_data else None
    except AevbError as e:
        if dataset is None or "--preprocess" not in str(e):
            raise
        # the loader's advice is for training; here the run's preprocessing is fixed
        raise AevbError(f"{e} (but here {run} reads --dataset data with its own --preprocess "
                        f"{cfg.data.preprocess}, so give data of that kind)") from None
    if data is not None and dataset is not None:
        _check_fits(data, model, meta["data_info"], run)
    return model, cfg, data, meta


def _check_fits(data: Data, model: models.LatentModel, info: dict, run: str | Path) -> None:
    """Data other than a run's own must have its datapoints' shape (a sequential model reads any
    number of steps) and, for a label-conditioned model, no label the model has not seen."""
    shape, trained = data.event_shape, tuple(info["event_shape"])
    if model.sequential:
        shape, trained = shape[-1:], trained[-1:]
    if shape != trained:
        raise AevbError(f"{data.name} holds datapoints of shape {shape} but {run} models {trained}; "
                        "give data of the shape the run was trained on")
    if model.uses_labels and len(data.classes) > info["n_classes"]:
        raise AevbError(f"{data.name} has {len(data.classes)} classes but {run} was trained on "
                        f"{info['n_classes']}; give labels 0..{info['n_classes'] - 1}")

