"""Starting a training run and continuing one: the model, data and trainer built from a resolved
config, the run directory created (or locked and read back), and training to the end."""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from aevb import provenance, starts
from aevb.config import RunConfig, config_from_dict
from aevb.data.files import load_images
from aevb.data.npz import from_arrays, to_arrays
from aevb.data.sources import is_folder
from aevb.errors import AevbError
from aevb.models import registry
from aevb.reports import console, tensorboard
from aevb.runs.directory import DATA, TENSORBOARD, RunDirectory, own
from aevb.runs.load import load_checkpoint, own_copy
from aevb.runs.parts import (
    build_model,
    check_test_labels,
    check_unchanged,
    data_file,
    data_info,
    prepare_data,
)
from aevb.runs.resolve import build_config, sections
from aevb.runtime import distributed
from aevb.runtime.devices import native_bf16, resolve_device
from aevb.training.trainer import Trainer, prefixed


def default_run_dir(model: str) -> Path:
    return Path("runs") / f"{model}-{time.strftime('%Y%m%d-%H%M%S')}"


def train(cfg: RunConfig, out: str | Path, quiet: bool = False, overwrite: bool = False,
          arrays: dict[str, np.ndarray] | None = None, hints: bool = False) -> Trainer:
    """Start a new run of `cfg` (from `aevb.runs.config` or `build_config`, which check it across
    fields and against the device) in `out` and train it to the end.

    The run directory appears whole or not at all, from its first moment holding a checkpoint that
    `resume` continues; a bad flag or a bad file leaves nothing behind. `arrays` (named as in an
    .npz) are the data instead of `cfg.data.dataset`, and are saved in the run as data.npz; `hints`
    ends with the commands to try next (the command line's summary, not Python's).

        trainer = train(config("fa", epochs=3), "runs/fa")
    """
    run = RunDirectory(out)
    given, files = None, {}
    if arrays is not None:  # validated before anything is written; cfg names the copy (aevb.fit)
        given = from_arrays(arrays, "aevb.fit")
        files[DATA] = lambda path: _save_arrays(path, arrays)
    elif is_folder(cfg.data.dataset) and Path(cfg.data.dataset).is_dir():
        given = load_images(cfg.data.dataset)  # decoded once: the run keeps the images as data.npz
        decoded = to_arrays(given)  # views, taken before the model reshapes the splits
        files[DATA] = lambda path: _save_arrays(path, decoded)
    if cfg.train.tensorboard:
        tensorboard.check_installed()
    replace = run.check_new(overwrite)
    device = distributed.setup(resolve_device(cfg.train.device))
    main = distributed.is_main()
    if cfg.train.precision == "bf16" and not native_bf16(device) and main:
        print(f"aevb: warning: this {device.type} has no bf16 hardware, so bf16 is emulated and "
              "much slower than fp32 here; use --precision auto or fp32", file=sys.stderr)
    data = prepare_data(cfg, device, given)
    if registry.get(cfg.model).uses_labels:
        check_test_labels(data, cfg.model)
    if arrays is not None:
        data.name = cfg.data.dataset  # the run's copy, as a later `aevb evaluate` reads it
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg, data_info(data)).to(device)
    frozen = model.parameters_of(cfg.train.freeze)  # a bad --freeze fails before the start's minutes
    model.prepare(data, cfg.train)
    start = starts.run(model, data, cfg.train, quiet or not main)
    info = data_info(data) | ({"file": found} if (found := data_file(cfg)) else {})
    meta = {"config": cfg.to_dict(), "data_info": info, "model": cfg.model,
            "versions": provenance.versions(), **({"start": start} if start else {})}
    trainer = Trainer(model, data, cfg.train, run, meta, quiet, frozen)
    state = trainer.state()  # under torchrun every rank takes part; rank 0 writes
    failed = None
    if main:
        try:
            run.create(cfg.to_dict(), *state, replace=replace, files=files)
        except AevbError as e:
            failed = str(e)
    if distributed.any_rank(torch.tensor([failed is not None]))[0]:  # the other ranks stop too
        raise AevbError(failed or f"rank 0 could not write the run directory {out}")
    _run(trainer, cfg, out, quiet, None, hints)
    return trainer


def _save_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def resume(out: str | Path, settings: dict | None = None, quiet: bool = False, model: str | None = None,
           sources: list[tuple[str, dict]] = (), hints: bool = False) -> Trainer:
    """Continue the run in `out` from its last checkpoint, optionally for more epochs or steps.

    `settings` are flag values in snake case (epochs=, lr= ...); `sources` (where, values) pairs
    shaped like a recipe file, e.g. the command line that started the run. A value equal to the
    saved one is accepted; a changed one must be resumable (`aevb.runs.resolve.RESUMABLE`).

        trainer = resume("runs/fa", {"epochs": 6})
    """
    run = RunDirectory(out)
    tensors, meta = load_checkpoint(out)
    if "optimizer_groups" not in meta:
        raise AevbError(f"{out} is a shipped model without optimiser state; it cannot be resumed. "
                        "Train its recipe with `aevb reproduce NAME`")
    name = meta["config"]["model"]
    if model is not None and name != model:
        raise AevbError(f"{out} holds a {name} run, not {model}; resume it with `aevb train {name} --resume`")
    saved = own_copy(config_from_dict(meta["config"], registry.get(name)), out)
    given = list(sources) + ([("keyword arguments", sections(name, settings))] if settings else [])
    cfg = build_config(name, given, saved=saved)
    if cfg.train.tensorboard:
        tensorboard.check_installed()
    device = distributed.setup(resolve_device(cfg.train.device))
    if distributed.is_main():
        run.lock()  # before anything changes: a second process on the run stops here
        run.remove_leftovers()  # temporary files of a write that a kill cut short
        run.saved_step = meta["step"]
    try:
        check_unchanged(cfg, meta["data_info"], out)
        data = prepare_data(cfg, device, run=out)
        trained = build_model(cfg, meta["data_info"])
        trained.load_state_dict(prefixed(tensors, "model"))
        trained.to(device)
        if distributed.is_main():
            run.write_config(cfg.to_dict())
        run_meta = {"config": cfg.to_dict(), "data_info": meta["data_info"], "model": cfg.model,
                    "versions": meta.get("versions"), "resumed_with": provenance.versions(),
                    **({"start": meta["start"]} if "start" in meta else {})}
        trainer = Trainer(trained, data, cfg.train, run, run_meta, quiet)
        trainer.restore(tensors, meta)
    except BaseException:
        run.release()
        raise
    _run(trainer, cfg, out, quiet, meta["step"], hints)
    return trainer


def _run(trainer: Trainer, cfg: RunConfig, out: str | Path, quiet: bool, resumed_from: int | None,
         hints: bool) -> None:
    """Train to the end between a start line and a summary (`--quiet`: neither), logging for
    TensorBoard if asked; the run's lock is released however it ends."""
    talk = not quiet and distributed.is_main()
    try:
        if talk:
            print(console.start_line(cfg, trainer.data, trainer.device, trainer.steps.compile_from, out,
                                     resumed_from), file=sys.stderr)
        if cfg.train.tensorboard and trainer.writes:
            trainer.observers.append(tensorboard.TensorBoardLog(
                own(Path(out) / TENSORBOARD), trainer.model, trainer.meta["data_info"], cfg.train.seed,
                resumed_from))
        trainer.fit()
    finally:
        for observer in trainer.observers:
            observer.close()
        trainer.run.release()
    if talk and trainer.last_record is not None:
        dims = math.prod(trainer.data.event_shape)
        logs = Path(out) / TENSORBOARD if cfg.train.tensorboard else None
        for line in console.end_lines(cfg.model, trainer.last_record, dims, cfg.data.preprocess, out,
                                      hints, logs):
            print(line, file=sys.stderr)
