"""Which data a `--dataset` value means: a registered name, the tutorial's FA data, or the user's
.npz file, .csv table or folder of images; loaded, and its values checked against the
preprocessing mode asked for."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from aevb.data.containers import Data
from aevb.data.files import load_csv, load_images
from aevb.data.idx import DATASETS, load_idx_dataset
from aevb.data.npz import load_npz
from aevb.data.support import PREPROCESS, PREPROCESS_SUPPORT, check_pixels
from aevb.data.synthetic import fa_synthetic
from aevb.errors import AevbError

SYNTHETIC = "fa-synthetic"


def is_file(dataset: str) -> bool:
    """Whether `dataset` names the user's file or folder rather than a dataset we know by name."""
    return dataset != SYNTHETIC and dataset not in DATASETS and (
        dataset.endswith((".npz", ".csv")) or Path(dataset).exists())


def is_folder(dataset: str) -> bool:
    """Whether `dataset` names a folder of images (or did, when the run began: it may be gone)."""
    return dataset != SYNTHETIC and dataset not in DATASETS and not dataset.endswith((".npz", ".csv"))


def absolute(dataset: str) -> str:
    """`dataset` with a file's path made absolute, so that the config.json of a run finds its data
    from any working directory; names are unchanged."""
    return os.path.abspath(dataset) if is_file(dataset) else dataset


def load(dataset: str, data_dir: str | Path | None = None, preprocess_mode: str = "none",
         mirrors: tuple[str, ...] | None = None, label_column: str | None = None) -> Data:
    """Load a dataset by name, or the user's .npz file, .csv table (`label_column`: its labels) or
    folder of images, and validate the preprocessing against its values.

        >>> load("mnist-sample", preprocess_mode="dequantize").train.x.dtype
        torch.uint8
    """
    if preprocess_mode not in PREPROCESS:
        raise AevbError(f"unknown preprocessing {preprocess_mode!r}; choose one of "
                        f"{', '.join(PREPROCESS)}")
    if label_column is not None and not dataset.endswith(".csv"):
        raise AevbError(f"--label-column names a column of a .csv --dataset, and {dataset} is none; "
                        "drop it (other data carry their labels: y_train in an .npz, subfolders of images)")
    if dataset == SYNTHETIC:
        data = fa_synthetic()
    elif dataset in DATASETS:
        data = load_idx_dataset(dataset, data_dir, mirrors)
    elif dataset.endswith(".csv"):
        if not Path(dataset).is_file():
            raise AevbError(f"{dataset}: no such file")
        data = load_csv(dataset, label_column)
    elif Path(dataset).is_dir():
        data = load_images(dataset)
    elif is_file(dataset):
        data = load_npz(dataset, known=tuple(DATASETS))
    else:
        raise AevbError(f"unknown dataset {dataset!r}; use one of {SYNTHETIC}, "
                        f"{', '.join(DATASETS)}, or a path to an .npz file, a .csv file or a folder of "
                        "images")
    return read_as(data, preprocess_mode)


def read_as(data: Data, preprocess_mode: str) -> Data:
    """`data`, to be read with `preprocess_mode`, once its values are checked against that mode;
    pixels given as floats are held as bytes, a quarter of the memory, and read the same."""
    data.preprocess = preprocess_mode
    check_pixels(data, preprocess_mode)
    if PREPROCESS_SUPPORT[preprocess_mode] is not None:
        for split in (data.train, data.test):
            split.x = split.x.to(torch.uint8)  # no copy where they are bytes already
    return data
