"""Datasets in memory: IDX files (MNIST, Fashion-MNIST), the user's .npz arrays, the tutorial's FA data.

Everything ends as a `Data`: raw train and test tensors (uint8 pixels or float values) plus labels,
and one preprocessing mode that `Data.batches` applies per batch, so noise is fresh every epoch and
no Python runs per sample.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import struct
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from aevb import atomic
from aevb.errors import AevbError

# ---------------------------------------------------------------------------------------------
# IDX files (http://yann.lecun.com/exdb/mnist/): magic 0x0000 TTDD, DD big-endian uint32 dims, data

_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_bytes(path: Path) -> bytes:
    """The decompressed bytes of a raw or .gz file."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise AevbError(f"{path}: cannot read ({e.strerror or e})") from None
    if path.suffix != ".gz":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise AevbError(f"{path}: corrupt gzip stream ({e}); delete it and fetch it again") from None


def parse_idx(raw: bytes, name: str = "IDX data") -> np.ndarray:
    """Decode IDX bytes, checking the magic number, the dimensions and the byte count."""
    if len(raw) < 4:
        raise AevbError(f"{name}: only {len(raw)} bytes, too short for an IDX header")
    zero, code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or code not in _IDX_TYPES or ndim == 0:
        raise AevbError(
            f"{name}: bad IDX magic number 0x{raw[:4].hex()} (not an IDX file, or corrupt)"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise AevbError(f"{name}: truncated IDX header ({len(raw)} of {header} bytes)")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_TYPES[code])
    expected = math.prod(dims) * dtype.itemsize  # Python ints: absurd headers cannot wrap round
    found = len(raw) - header
    if found != expected:
        fault = "truncated" if found < expected else "has trailing bytes"
        raise AevbError(
            f"{name}: shape {tuple(dims)} needs {expected} data bytes but the file has {found} "
            f"({fault}); fetch it again"
        )
    try:
        array = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    except ValueError:  # empty, yet with dimensions whose product numpy cannot represent
        raise AevbError(f"{name}: shape {tuple(dims)} is impossible (a corrupt header)") from None
    return array.astype(dtype.newbyteorder("="))


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file, raw or gzip-compressed."""
    path = Path(path)
    return parse_idx(_read_bytes(path), str(path))


# ---------------------------------------------------------------------------------------------
# Named datasets and where they are found


@dataclass(frozen=True)
class IdxDataset:
    """A dataset published as four IDX files, with the SHA-256 of each file's decompressed bytes."""

    name: str
    sha256: dict[str, str]  # decompressed file name -> hex digest
    mirrors: tuple[str, ...] = ()  # base URLs that serve FILE.gz
    classes: tuple[str, ...] = tuple(str(i) for i in range(10))
    image_shape: tuple[int, int] = (28, 28)
    note: str = ""

    files = {
        "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    }


DATASETS: dict[str, IdxDataset] = {
    "mnist": IdxDataset(
        "mnist",
        sha256={
            "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        },
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ),
    ),
    "fashion-mnist": IdxDataset(
        "fashion-mnist",
        sha256={
            "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        },
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    ),
    "mnist-sample": IdxDataset(
        "mnist-sample",
        sha256={},  # filled below from the package's own SHA256SUMS
        note="a SAMPLE of MNIST shipped with aevb (the first 5,000 training and 1,000 test images); "
        "use --dataset mnist for real results",
    ),
}

# datasets that a Debian package installs, and where: (folder, package)
DEBIAN = {"fashion-mnist": (Path("/usr/share/datasets/fashion-mnist"), "dataset-fashion-mnist")}
PACKAGE_DIR = Path(__file__).parent / "datasets"


def _read_sums(path: Path) -> dict[str, str]:
    sums = {}
    for line in path.read_text().splitlines():
        digest, name = line.split()
        sums[name] = digest
    return sums


DATASETS["mnist-sample"].sha256.update(_read_sums(PACKAGE_DIR / "mnist-sample" / "SHA256SUMS"))


def cache_root() -> Path:
    """The per-user download location: $XDG_CACHE_HOME/aevb or ~/.cache/aevb."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "aevb"


def candidate_dirs(name: str, data_dir: str | Path | None = None) -> list[Path]:
    """Folders that may hold dataset `name`, in the order they are tried."""
    if name == "mnist-sample":
        return [PACKAGE_DIR / name]
    dirs = []
    if data_dir is not None:
        dirs.append(Path(data_dir) / name)
    if os.environ.get("AEVB_DATA_DIR"):
        dirs.append(Path(os.environ["AEVB_DATA_DIR"]) / name)
    if name in DEBIAN:
        dirs.append(DEBIAN[name][0])
    dirs.append(cache_root() / name)
    return dirs


def _find_file(folder: Path, stem: str) -> Path | None:
    for p in (folder / f"{stem}.gz", folder / stem):
        if p.is_file():
            return p
    return None


def _verified(path: Path, spec: IdxDataset, stem: str) -> np.ndarray:
    """Read a dataset file and check its decompressed SHA-256 against the published one."""
    raw = _read_bytes(path)
    digest = hashlib.sha256(raw).hexdigest()
    if digest != spec.sha256[stem]:
        raise AevbError(
            f"{path}: SHA-256 of its content is {digest[:12]}..., expected "
            f"{spec.sha256[stem][:12]}... for {spec.name}; the file is corrupt or not "
            f"{spec.name}: delete it and fetch it again"
        )
    return parse_idx(raw, str(path))


def download(spec: IdxDataset, folder: Path, mirrors: tuple[str, ...] | None = None,
             timeout: float = 30.0) -> None:
    """Fetch the dataset's missing files into `folder`, verified, each written atomically.

    A file is only renamed into place after its decompressed SHA-256 has matched, so an interrupted
    or corrupt download never leaves a file that later passes as valid.
    """
    mirrors = spec.mirrors if mirrors is None else mirrors
    for stem in spec.sha256:
        if _find_file(folder, stem) is not None:
            continue
        failures = []
        for base in mirrors:
            url = base + stem + ".gz"
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    payload = response.read()
                content = gzip.decompress(payload)
            except (urllib.error.URLError, OSError, EOFError, zlib.error) as e:
                failures.append(f"{url}: {getattr(e, 'reason', None) or e}")
                continue
            digest = hashlib.sha256(content).hexdigest()
            if digest != spec.sha256[stem]:
                failures.append(f"{url}: checksum mismatch (got {digest[:12]}...)")
                continue
            try:  # the folder appears only once there is a verified file to put in it
                folder.mkdir(parents=True, exist_ok=True)
                atomic.write_bytes(folder / f"{stem}.gz", payload)
            except OSError as e:
                raise AevbError(f"cannot write {spec.name} into {folder} ({e.strerror or e}); pass "
                                "--data-dir ROOT with a folder you can write") from None
            break
        else:
            files = ", ".join(f"{s}.gz" for s in spec.sha256)
            reason = "; ".join(failures) or "no mirror is known"
            debian = (f", or on Debian or Ubuntu install the package {DEBIAN[spec.name][1]} "
                      f"(into {DEBIAN[spec.name][0]})") if spec.name in DEBIAN else ""
            raise AevbError(
                f"could not download {spec.name} ({reason}). Put the four files ({files}) in "
                f"{folder} or in ROOT/{spec.name} and pass --data-dir ROOT or set AEVB_DATA_DIR=ROOT"
                f"{debian}"
            )


def locate(name: str, data_dir: str | Path | None = None, download_missing: bool = True,
           mirrors: tuple[str, ...] | None = None) -> Path:
    """The folder holding all four files of dataset `name`, downloading them if none has them."""
    spec = DATASETS[name]
    dirs = candidate_dirs(name, data_dir)
    for folder in dirs:
        if all(_find_file(folder, stem) for stem in spec.sha256):
            return folder
    if name == "mnist-sample":
        raise AevbError(f"the packaged sample is missing from {dirs[0]}; reinstall aevb")
    target = dirs[0] if (data_dir is not None or os.environ.get("AEVB_DATA_DIR")) else dirs[-1]
    if not download_missing:
        raise AevbError(
            f"{name} not found in {', '.join(map(str, dirs))}; pass --data-dir ROOT with "
            f"ROOT/{name} holding its four IDX files"
        )
    download(spec, target, mirrors)
    return target


# ---------------------------------------------------------------------------------------------
# In-memory data and preprocessing

PREPROCESS = ("none", "unit", "dequantize", "binarize-threshold", "binarize-dynamic")
# What each pixel mode (input bytes 0..255) guarantees about the values it returns.
MODE_SUPPORT = {"unit": "unit", "dequantize": "unit", "binarize-threshold": "binary",
                "binarize-dynamic": "binary"}


def preprocess(x: torch.Tensor, mode: str, generator: torch.Generator | None = None) -> torch.Tensor:
    """Turn a batch of raw values into model input (float32). Pixel modes expect bytes in 0..255."""
    if mode == "none":
        return x.float()
    if mode == "unit":
        return x.float() / 255.0
    if mode == "dequantize":  # (pixel + U(0,1)) / 256, a density on [0,1]^D
        return (x.float() + _uniform(x, generator)) / 256.0
    if mode == "binarize-threshold":
        # The tutorial's (pixel + U(0,1))/256 >= 0.5 holds exactly when pixel >= 128: no noise needed.
        return (x >= 128).float()
    if mode == "binarize-dynamic":  # a fresh Bernoulli(pixel/255) draw every batch
        return (_uniform(x, generator) < x.float() / 255.0).float()
    raise AevbError(f"unknown preprocessing {mode!r}; choose one of {', '.join(PREPROCESS)}")


def _uniform(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """U(0,1) noise shaped like x, drawn on the generator's device and moved to x's: with a CPU
    generator (as `aevb.evaluate` uses), a GPU sees the same noise, so the same test set."""
    where = x.device if generator is None else generator.device
    return torch.rand(x.shape, generator=generator, device=where).to(x.device)


@dataclass
class Split:
    x: torch.Tensor  # (N, D...) raw values: uint8 pixels, or floats for user and synthetic data
    y: torch.Tensor | None = None  # (N,) int64 labels
    lengths: torch.Tensor | None = None  # (N,) int64 steps of each sequence x (N, T, D); None: all T

    def __len__(self) -> int:
        return self.x.shape[0]

    def to(self, device) -> Split:
        def move(t):
            return None if t is None else t.to(device)

        return Split(self.x.to(device), move(self.y), move(self.lengths))

    def head(self, n: int) -> Split:
        """The first n datapoints."""
        return Split(self.x[:n], None if self.y is None else self.y[:n],
                     None if self.lengths is None else self.lengths[:n])


class Batch(NamedTuple):
    """A preprocessed minibatch: x (B, D...), labels y (B,) and sequence lengths (B,) if any."""

    x: torch.Tensor
    y: torch.Tensor | None
    lengths: torch.Tensor | None


@dataclass
class Data:
    name: str
    train: Split
    test: Split
    preprocess: str = "none"
    image_shape: tuple[int, int] | None = None  # how to show one datapoint as an image
    classes: tuple[str, ...] | None = None  # label names, when there are labels
    extra: dict = field(default_factory=dict)  # e.g. the true parameters of synthetic data
    note: str = ""

    @property
    def event_shape(self) -> tuple[int, ...]:
        return tuple(self.train.x.shape[1:])

    def split(self, name: str) -> Split:
        if name not in ("train", "test"):
            raise AevbError(f"unknown split {name!r}; use train or test")
        return getattr(self, name)

    def to(self, device) -> Data:
        return Data(self.name, self.train.to(device), self.test.to(device), self.preprocess,
                    self.image_shape, self.classes, self.extra, self.note)

    def batches(self, split: str | Split, batch_size: int, generator: torch.Generator,
                order: torch.Tensor | None = None, start: int = 0) -> Iterator[Batch]:
        """Yield preprocessed batches over `order` (default: the split in order).

        Indexing whole tensors keeps per-sample Python out; `start` skips batches already seen.
        """
        s = self.split(split) if isinstance(split, str) else split
        n = len(s) if order is None else len(order)  # an order may pick a subset
        for i in range(start * batch_size, n, batch_size):
            idx = slice(i, i + batch_size) if order is None else order[i : i + batch_size]
            x = preprocess(s.x[idx], self.preprocess, generator)
            yield Batch(x, None if s.y is None else s.y[idx],
                        None if s.lengths is None else s.lengths[idx])


def check_support(x: torch.Tensor, support: str, what: str) -> None:
    """Refuse data outside the likelihood's support: 'real', 'unit' ([0,1]) or 'binary' ({0,1})."""
    if support == "real":
        return
    lo, hi = float(x.min()), float(x.max())
    if support == "unit" and (lo < 0 or hi > 1):
        raise AevbError(f"{what}: values span [{lo:g}, {hi:g}] but this likelihood needs [0, 1]; "
                        "rescale the data or pick --preprocess unit or dequantize")
    if support == "binary" and not bool(((x == 0) | (x == 1)).all()):
        raise AevbError(f"{what}: this likelihood needs binary 0/1 values; pick --preprocess "
                        "binarize-threshold or binarize-dynamic, or binarize the data")


def _load_idx_dataset(name: str, data_dir, mirrors=None) -> Data:
    spec = DATASETS[name]
    folder = locate(name, data_dir, mirrors=mirrors)
    splits = {}
    for split, (images, labels) in spec.files.items():
        x = _verified(_find_file(folder, images), spec, images)
        y = _verified(_find_file(folder, labels), spec, labels)
        if x.shape[0] != y.shape[0]:
            raise AevbError(f"{folder}: {images} has {x.shape[0]} images but {labels} has "
                            f"{y.shape[0]} labels; fetch both again")
        splits[split] = Split(torch.from_numpy(x.reshape(len(x), -1).copy()),
                              torch.from_numpy(y.astype(np.int64)))
    return Data(name, splits["train"], splits["test"], image_shape=spec.image_shape,
                classes=spec.classes, note=spec.note)


def _npz_lengths(path: Path, split: str, lengths, shape) -> torch.Tensor | None:
    """Validated sequence lengths (N,) for x of shape (N, T, D): integers in 1..T."""
    if lengths is None:
        return None
    if len(shape) != 3:
        raise AevbError(f"{path}: lengths_{split} is given but x_{split} has shape {shape}; "
                        "sequences must be (N, T, D)")
    if lengths.shape != (shape[0],) or lengths.dtype.kind not in "iu":
        raise AevbError(f"{path}: lengths_{split} must be ({shape[0]},) integers, one per sequence "
                        f"(got {lengths.dtype} {lengths.shape})")
    if lengths.min() < 1 or lengths.max() > shape[1]:
        raise AevbError(f"{path}: lengths_{split} must lie in 1..{shape[1]} (the padded length T); "
                        f"found {lengths.min()}..{lengths.max()}")
    return torch.from_numpy(lengths.astype(np.int64))


MAX_CLASSES = 10_000  # labels are one-hot encoded for the CVAE; more classes than this is a mistake


def load_npz(path: str | Path) -> Data:
    """The user's arrays: x_train and x_test (N, D...), optional integer labels y_train, y_test,
    and for sequences x (N, T, D) optional lengths_train, lengths_test (steps past a length are
    padding, ignored by the model)."""
    path = Path(path)
    if not path.is_file():
        raise AevbError(f"{path}: no such file; --dataset takes a dataset name "
                        f"({', '.join(DATASETS)}) or an .npz file")
    # np.load guesses the format from the first bytes and calls anything that is neither a zip
    # nor an .npy "pickled data", which misleads for an empty, text or truncated file
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic == b"\x93NUMPY":
        raise AevbError(f"{path}: holds one array (.npy), not an .npz archive; save the arrays "
                        "with numpy.savez(path, x_train=..., x_test=...)")
    if not magic.startswith(b"PK"):
        what = "empty" if not magic else "not a zip archive"
        raise AevbError(f"{path}: not an .npz file ({what}); save the arrays with "
                        "numpy.savez(path, x_train=..., x_test=...)")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except ValueError as e:  # includes object arrays, which would need pickle
        raise AevbError(f"{path}: cannot read arrays ({e}); save plain numeric arrays with "
                        "numpy.savez") from None
    except Exception as e:  # zipfile and zlib raise several unrelated types for corrupt archives
        raise AevbError(f"{path}: not a readable .npz file ({type(e).__name__}: {e})") from None
    for key in ("x_train", "x_test"):
        if key not in arrays:
            raise AevbError(f"{path}: missing array {key!r} (found: {', '.join(arrays) or 'none'}); "
                            "an .npz needs x_train and x_test, optionally y_train and y_test")
    for name in ("y", "lengths"):
        if (f"{name}_train" in arrays) != (f"{name}_test" in arrays):
            raise AevbError(f"{path}: give both {name}_train and {name}_test, or neither")
    # numpy keeps the byte order an array was saved in; torch takes only the machine's own
    arrays = {k: a.astype(a.dtype.newbyteorder("=")) for k, a in arrays.items()}
    splits = {}
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays.get(f"y_{split}")
        if x.dtype.kind not in "biuf":
            raise AevbError(f"{path}: x_{split} has dtype {x.dtype}; it must be numeric")
        if x.ndim < 2 or x.size == 0:
            raise AevbError(f"{path}: x_{split} has shape {x.shape}; it must be (N, D...) with N > 0 "
                            "and D > 0")
        # bytes stay bytes for the pixel modes; the rest becomes float32, checked after the cast
        # so that a float64 beyond float32's range counts as the inf it has become
        with np.errstate(over="ignore"):
            xt = torch.from_numpy(x if x.dtype == np.uint8 else x.astype(np.float32))
        if xt.is_floating_point() and not torch.isfinite(xt).all():
            bad = int((~torch.isfinite(xt)).flatten(1).any(1).sum())
            raise AevbError(f"{path}: x_{split} has NaN or infinite values in {bad} rows (as "
                            "float32); remove, impute or rescale them")
        if y is not None:
            if y.ndim != 1 or y.shape[0] != x.shape[0]:
                raise AevbError(f"{path}: y_{split} has shape {y.shape}, expected ({x.shape[0]},) "
                                f"to match x_{split}")
            if y.dtype.kind not in "biu" or y.min() < 0 or y.max() >= MAX_CLASSES:
                raise AevbError(f"{path}: y_{split} must hold integer class labels 0..K-1 with K at "
                                f"most {MAX_CLASSES}")
        lengths = _npz_lengths(path, split, arrays.get(f"lengths_{split}"), x.shape)
        splits[split] = Split(xt, None if y is None else torch.from_numpy(y.astype(np.int64)), lengths)
    if splits["train"].x.shape[1:] != splits["test"].x.shape[1:]:
        raise AevbError(f"{path}: x_train rows have shape {tuple(splits['train'].x.shape[1:])} but "
                        f"x_test rows have {tuple(splits['test'].x.shape[1:])}")
    classes = None
    if splits["train"].y is not None:
        k = int(max(splits["train"].y.max(), splits["test"].y.max())) + 1
        classes = tuple(str(i) for i in range(k))
    shape = tuple(splits["train"].x.shape[1:])
    image_shape = shape if len(shape) == 2 else None
    return Data(str(path), splits["train"], splits["test"], image_shape=image_shape, classes=classes)


# The tutorial's Factor Analysis data: z ~ N(0, I_2), x = W z + eps, eps ~ N(0, diag(sigma)^2).
FA_W = np.array([[-0.5, -1.0], [-1.0, -1.0], [2.0, 0.5]])
FA_SIGMA = np.array([0.4, 0.2, 0.3])


def fa_synthetic(n_train: int = 1000, n_test: int = 1000, seed: int = 42) -> Data:
    """The tutorial's FA data, drawn with numpy's legacy generator seeded 42 (z first, then noise)."""
    rng = np.random.RandomState(seed)
    n = n_train + n_test
    z = rng.randn(n, FA_W.shape[1])
    x = z @ FA_W.T + rng.randn(n, FA_W.shape[0]) * FA_SIGMA
    x = torch.from_numpy(x).float()
    return Data("fa-synthetic", Split(x[:n_train]), Split(x[n_train:]),
                extra={"true_W": FA_W.tolist(), "true_sigma": FA_SIGMA.tolist()},
                note="the tutorial's synthetic factor-analysis data (seed 42)")


def is_file(dataset: str) -> bool:
    """Whether `dataset` names the user's .npz file rather than a dataset we know by name."""
    return dataset != "fa-synthetic" and dataset not in DATASETS and (
        dataset.endswith(".npz") or Path(dataset).exists())


def absolute(dataset: str) -> str:
    """`dataset` with a file's path made absolute, so that the config.json of a run finds its data
    from any working directory; names are unchanged."""
    return os.path.abspath(dataset) if is_file(dataset) else dataset


def load(dataset: str, data_dir: str | Path | None = None, preprocess_mode: str = "none",
         mirrors: tuple[str, ...] | None = None) -> Data:
    """Load a dataset by name or .npz path, and validate the preprocessing against its values."""
    if preprocess_mode not in PREPROCESS:
        raise AevbError(f"unknown preprocessing {preprocess_mode!r}; choose one of "
                        f"{', '.join(PREPROCESS)}")
    if dataset == "fa-synthetic":
        data = fa_synthetic()
    elif dataset in DATASETS:
        data = _load_idx_dataset(dataset, data_dir, mirrors)
    elif is_file(dataset):
        data = load_npz(dataset)
    else:
        raise AevbError(f"unknown dataset {dataset!r}; use one of fa-synthetic, "
                        f"{', '.join(DATASETS)} or a path to an .npz file")
    data.preprocess = preprocess_mode
    if preprocess_mode in MODE_SUPPORT:
        for name in ("train", "test"):
            x = data.split(name).x
            if x.dtype != torch.uint8 and not (
                bool((x == x.round()).all()) and float(x.min()) >= 0 and float(x.max()) <= 255
            ):
                raise AevbError(f"{data.name}: --preprocess {preprocess_mode} expects pixel values "
                                "0..255 but x_" f"{name} holds other values; use --preprocess none")
        # Integers in 0..127 pass the check above but are not 8-bit pixels (0/1 data, counts such
        # as scikit-learn's 0..16 digits): read as pixels they would train on a sliver of [0, 1],
        # or, thresholded at 128, on blank images.
        top = float(data.train.x.max())
        if top < 128:
            raise AevbError(f"{data.name}: --preprocess {preprocess_mode} reads 8-bit pixels (0..255) "
                            f"but the largest value in x_train is {top:g}; scale the data to 0..255, "
                            "or to [0, 1] and pass --preprocess none")
    return data
