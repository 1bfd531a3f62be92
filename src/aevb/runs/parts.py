"""A run's parts, built from its config: the model (through the model registry) and its data,
loaded and shaped as the model reads it and checked against what the model can score."""

from __future__ import annotations

from pathlib import Path

import torch

from aevb.config import RunConfig
from aevb.data.containers import Data
from aevb.data.npz import load_npz
from aevb.data.sources import is_folder, load, read_as
from aevb.data.support import check_fits
from aevb.errors import AevbError
from aevb.models import registry
from aevb.models.base import LatentModel
from aevb.runs.directory import DATA, own
from aevb.runs.pretrained import sha256


def build_model(cfg: RunConfig, data_info: dict) -> LatentModel:
    """Construct the registered model for a config and the shape of its data."""
    cls = registry.get(cfg.model)
    return cls(cfg.model_config, tuple(data_info["event_shape"]), data_info.get("n_classes"))


def prepare_data(cfg: RunConfig, device: torch.device | str = "cpu", given: Data | None = None,
                 run: str | Path | None = None) -> Data:
    """Load the run's dataset (or take the `given` one, already validated), shaped as its model
    reads it (`LatentModel.shape_data`), and check that the model's likelihood can score its values
    and that it has the labels the model needs. A `run` trained on a folder of images reads the
    images it decoded then, its data.npz (memory-mapped), not the folder again."""
    cls = registry.get(cfg.model)
    if given is None and run is not None and is_folder(cfg.data.dataset) and (Path(run) / DATA).exists():
        given = load_npz(own(Path(run) / DATA))
        given.name = cfg.data.dataset
    if given is None:
        data = load(cfg.data.dataset, cfg.data.data_dir, cfg.data.preprocess,
                    label_column=cfg.data.label_column)
    else:
        data = read_as(given, cfg.data.preprocess)
    for split in (data.train, data.test):
        split.x = cls.shape_data(split.x, split.lengths, data.image_shape, data.name, cfg.model_config)
    check_fits(data, cls.data_support(cfg.model_config), cfg.model)
    for name, split in (("y_train", data.train), ("y_test", data.test)):
        if split.y is not None and bool((split.y < 0).any()):
            missing = int((split.y < 0).sum())
            raise AevbError(f"{data.name}: {name} lacks {missing} labels (empty or -1); give every "
                            "datapoint a label, or drop the labels")
    if cls.uses_labels and data.train.y is None:
        raise AevbError(f"model {cfg.model} is conditioned on labels but {data.name} has none; "
                        "add y_train and y_test to the .npz")
    return data.to(device)


def check_test_labels(data: Data, model: str) -> None:
    """A label-conditioned model learns p(z|y) from the training labels: refuse test labels that
    no training point has, whose test ELBO would score an untrained prior."""
    unseen = sorted(set(data.test.y.unique().tolist()) - set(data.train.y.unique().tolist()))
    if unseen:
        raise AevbError(f"{data.name}: y_test holds label {unseen[0]}, which y_train never has; {model} "
                        "learns p(z|y) from the training labels, so drop those test rows or add training "
                        f"rows of label {unseen[0]}")


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


def data_file(cfg: RunConfig) -> dict | None:
    """The .npz or .csv a run reads in place, by path, size and SHA-256 (the checkpoint records it,
    no copy is made), so that a later read finds out whether the file has changed."""
    path = Path(cfg.data.dataset)
    if cfg.data.from_memory or not cfg.data.dataset.endswith((".npz", ".csv")) or not path.is_file():
        return None
    return {"path": str(path), "bytes": path.stat().st_size, "sha256": sha256(path)}


def check_unchanged(cfg: RunConfig, info: dict, run: str | Path) -> None:
    """Refuse to read a run's data file that is no longer the one it was trained on."""
    recorded = info.get("file")
    if not recorded or recorded["path"] != cfg.data.dataset or not Path(recorded["path"]).is_file():
        return  # another file named by --dataset, or a missing one (the loader says so)
    now = data_file(cfg)
    if now is not None and (now["bytes"], now["sha256"]) != (recorded["bytes"], recorded["sha256"]):
        raise AevbError(f"{recorded['path']} has changed since {run} was trained on it (its SHA-256 "
                        "differs); put back the file it was trained on, or name other data with --dataset")
