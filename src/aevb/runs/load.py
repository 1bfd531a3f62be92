"""Runs read back: a model rebuilt from a run directory, a checkpoint file or `pretrained:NAME`
(through the model registry; nothing unpickled), ready for evaluation with its data."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from aevb.config import RunConfig, config_from_dict
from aevb.data.containers import Data
from aevb.data.sources import absolute, is_file
from aevb.errors import AevbError
from aevb.models import registry
from aevb.models.base import LatentModel
from aevb.runs import checkpoints, pretrained
from aevb.runs.directory import DATA, RunDirectory, own
from aevb.runs.parts import build_model, check_unchanged, prepare_data
from aevb.runtime.devices import resolve_device
from aevb.training.trainer import prefixed


def checkpoint_file(run: str | Path) -> Path:
    """The checkpoint of a run directory, a checkpoint file as given, or the checked weights of
    `pretrained:NAME`."""
    if pretrained.is_name(run):
        return pretrained.checkpoint(str(run)[len(pretrained.PREFIX):])
    path = Path(run)
    if path.is_dir():
        path = RunDirectory(path).checkpoint
    if not path.is_file():
        raise AevbError(f"{path}: no checkpoint here; give a run directory made by `aevb train`")
    return path


def load_checkpoint(run: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """A run's (or shipped model's) checkpoint: its tensors and JSON."""
    return checkpoints.load(checkpoint_file(run))


def load_model(run: str | Path, device: str | torch.device = "cpu") -> tuple[LatentModel, RunConfig, dict]:
    """Rebuild a trained model from a run directory, checkpoint file or `pretrained:NAME`:
    (model in eval mode, config, meta).

        >>> model, cfg, meta = load_model("pretrained:vae-mnist")
    """
    tensors, meta = load_checkpoint(run)
    try:
        cfg = config_from_dict(meta["config"], registry.get(meta["config"]["model"]))
        model = build_model(cfg, meta["data_info"])
    except (KeyError, TypeError) as e:
        raise AevbError(f"{run}: the checkpoint's metadata is incomplete ({type(e).__name__}: {e}); "
                        "it was not written by this aevb") from None
    try:
        model.load_state_dict(prefixed(tensors, "model"))
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise AevbError(f"{run}: checkpoint tensors do not fit model {cfg.model!r} ({first})") from None
    return model.to(device).eval(), cfg, meta


def load_pretrained(name: str, device: str | torch.device = "cpu") -> LatentModel:
    """The shipped model `name` (`aevb pretrained list`) in eval mode, its weights checked against
    the card's SHA-256.

        >>> load_pretrained("vae-mnist").sample(2).shape
        torch.Size([2, 784])
    """
    model, _, _ = load_model(pretrained.PREFIX + name, device)
    return model


def own_copy(cfg: RunConfig, run: str | Path) -> RunConfig:
    """A run trained on arrays in memory reads its data.npz from where the run directory is now."""
    if not cfg.data.from_memory or pretrained.is_name(run) or not Path(run).is_dir():
        return cfg
    copy = str(own(Path(run).absolute() / DATA))
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, dataset=copy))


def open_run(run: str | Path, device: str = "cpu", with_data: bool = True, data_dir: str | None = None,
             dataset: str | None = None, loaded: tuple | None = None
             ) -> tuple[LatentModel, RunConfig, Data | None, dict]:
    """A trained run (or `pretrained:NAME`) ready for evaluation: (model in eval mode, config, data,
    checkpoint meta). `data_dir` overrides the data root the run was trained from; `dataset`, the
    data itself (a name or an .npz of the same shape, read with the run's preprocessing); `loaded`,
    the run's `load_model` result where the caller has read it already (its model moves to `device`)."""
    dev = resolve_device(device)
    model, cfg, meta = load_model(run, dev) if loaded is None else loaded
    model = model.to(dev)
    if data_dir is not None:
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, data_dir=data_dir))
    cfg = own_copy(cfg, run)
    if dataset is not None:
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, dataset=absolute(dataset)))
    elif with_data and is_file(cfg.data.dataset) and not Path(cfg.data.dataset).exists():
        raise AevbError(f"{run} was trained on {cfg.data.dataset}, which is no longer there; "
                        "put the file back, or give the file's new place with --dataset")
    if with_data and dataset is None:
        check_unchanged(cfg, meta["data_info"], run)
    try:
        data = prepare_data(cfg, dev, run=None if dataset is not None else run) if with_data else None
    except AevbError as e:
        if dataset is None or "--preprocess" not in str(e):
            raise
        # the loader's advice is for training; here the run's preprocessing is fixed
        raise AevbError(f"{e} (but here {run} reads --dataset data with its own --preprocess "
                        f"{cfg.data.preprocess}, so give data of that kind)") from None
    if data is not None and dataset is not None:
        check_same_shape(data, model, meta["data_info"], run)
    return model, cfg, data, meta


def check_same_shape(data: Data, model: LatentModel, info: dict, run: str | Path) -> None:
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
