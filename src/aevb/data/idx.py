"""Datasets published as IDX files (MNIST, Fashion-MNIST, KMNIST, the packaged MNIST sample): the format,
the registry of named datasets with their checksums, where they are found, and their download.

A dataset is looked for in --data-dir ROOT/NAME, $AEVB_DATA_DIR/NAME, a Debian package's folder and
the per-user cache, in that order, and downloaded into the cache (or the data root given) when none
has it. Every file is checked against its published SHA-256 before it is used.
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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from aevb import atomic
from aevb.data.containers import Data, Split, chw
from aevb.errors import AevbError, WriteError

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
    sha256: dict[str, str]  # decompressed file name -> hex digest (of what `checksum` says)
    mirrors: tuple[str, ...] = ()  # base URLs that serve FILE.gz
    classes: tuple[str, ...] = tuple(str(i) for i in range(10))
    image_shape: tuple[int, int] = (28, 28)
    note: str = ""
    # what the digests are of: "content-sha256", the decompressed bytes' SHA-256; or "gz-md5", the
    # .gz file's MD5, for datasets whose publishers give only that (KMNIST)
    checksum: str = "content-sha256"

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
    "kmnist": IdxDataset(  # Clanuwat et al. 2018: ten classes of cursive Japanese (Kuzushiji) characters
        "kmnist",
        sha256={  # the .gz files' MD5 as the publisher (and torchvision) give them
            "train-images-idx3-ubyte": "bdb82020997e1d708af4cf47b453dcf7",
            "train-labels-idx1-ubyte": "e144d726b3acfaa3e44228e80efcd344",
            "t10k-images-idx3-ubyte": "5c965bf0a639b31b8f53240b1b52f4d7",
            "t10k-labels-idx1-ubyte": "7320c461ea6c1c855c0b718fb2a4b134",
        },
        mirrors=("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
        classes=("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
        checksum="gz-md5",
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
PACKAGE_DIR = Path(__file__).resolve().parents[1] / "datasets"


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


def _digest(spec: IdxDataset, gz: bytes | None, content: bytes) -> str:
    """The digest the dataset publishes: of the decompressed content, or of the .gz file."""
    if spec.checksum == "gz-md5":
        return "" if gz is None else hashlib.md5(gz, usedforsecurity=False).hexdigest()
    return hashlib.sha256(content).hexdigest()


def _verified(path: Path, spec: IdxDataset, stem: str) -> np.ndarray:
    """Read a dataset file and check its digest against the published one."""
    raw = _read_bytes(path)
    if spec.checksum == "gz-md5" and path.suffix != ".gz":
        raise AevbError(f"{path}: {spec.name}'s published checksums are of its .gz files; keep "
                        f"{path.name}.gz instead of the decompressed file")
    digest = _digest(spec, path.read_bytes() if path.suffix == ".gz" else None, raw)
    if digest != spec.sha256[stem]:
        what = "MD5 of the file" if spec.checksum == "gz-md5" else "SHA-256 of its content"
        raise AevbError(
            f"{path}: {what} is {digest[:12]}..., expected "
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
            digest = _digest(spec, payload, content)
            if digest != spec.sha256[stem]:
                failures.append(f"{url}: checksum mismatch (got {digest[:12]}...)")
                continue
            try:  # the folder appears only once there is a verified file to put in it
                folder.mkdir(parents=True, exist_ok=True)
                atomic.write_bytes(folder / f"{stem}.gz", payload)
            except (OSError, WriteError) as e:
                cause = e.cause if isinstance(e, WriteError) else e.strerror or e
                raise AevbError(f"cannot write {spec.name} into {folder} ({cause}); pass "
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


def available(name: str, data_dir: str | Path | None = None) -> bool:
    """Whether dataset `name` is on disk where `locate` looks, without downloading it.

        >>> available("mnist-sample")
        True
    """
    stems = DATASETS[name].sha256
    return any(all(_find_file(folder, s) for s in stems) for folder in candidate_dirs(name, data_dir))


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


def load_idx_dataset(name: str, data_dir: str | Path | None = None, mirrors=None) -> Data:
    """Dataset `name` from its four IDX files, found (or downloaded) by `locate` and verified.

        >>> load_idx_dataset("mnist-sample").train.x.shape
        torch.Size([5000, 784])
    """
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
    return Data(name, splits["train"], splits["test"], image_shape=chw(spec.image_shape),
                classes=spec.classes, note=spec.note)
