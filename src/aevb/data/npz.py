"""The user's own arrays: an .npz archive with x_train and x_test (N, D...), optional integer labels
y_train and y_test, and for sequences x (N, T, D) optional lengths_train and lengths_test. Every
array is validated, so bad input is a one-line error naming the array, never a traceback.
"""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import numpy as np
import torch

from aevb.data.containers import Data, Split
from aevb.data.support import row_blocks
from aevb.errors import AevbError


def _npz_lengths(where: str, split: str, lengths, shape) -> torch.Tensor | None:
    """Validated sequence lengths (N,) for x of shape (N, T, D): integers in 1..T."""
    if lengths is None:
        return None
    if len(shape) != 3:
        raise AevbError(f"{where}: lengths_{split} is given but x_{split} has shape {shape}; "
                        "sequences must be (N, T, D)")
    if lengths.shape != (shape[0],) or lengths.dtype.kind not in "iu":
        raise AevbError(f"{where}: lengths_{split} must be ({shape[0]},) integers, one per sequence "
                        f"(got {lengths.dtype} {lengths.shape})")
    if lengths.min() < 1 or lengths.max() > shape[1]:
        raise AevbError(f"{where}: lengths_{split} must lie in 1..{shape[1]} (the padded length T); "
                        f"found {lengths.min()}..{lengths.max()}")
    return torch.from_numpy(lengths.astype(np.int64))


CHANNELS = (1, 3)  # an (N, A, B, C) array is images when A or C is one of these: grey or colour
MAX_CLASSES = 10_000  # labels are one-hot encoded for the CVAE; more classes than this is a mistake


def load_npz(path: str | Path, known: tuple[str, ...] = ()) -> Data:
    """The user's arrays: x_train and x_test (N, D...), optional integer labels y_train, y_test,
    and for sequences x (N, T, D) optional lengths_train, lengths_test (steps past a length are
    padding, ignored by the model), and `classes`, the labels' names. Arrays stored uncompressed
    are memory-mapped, not read into memory (`read_members`). `known`: the dataset names a missing
    file may have meant.

        >>> np.savez("my.npz", x_train=np.random.rand(100, 5), x_test=np.random.rand(20, 5))
        >>> load_npz("my.npz").event_shape
        (5,)
    """
    path = Path(path)
    if not path.is_file():
        raise AevbError(f"{path}: no such file; --dataset takes a dataset name "
                        f"({', '.join(known)}) or an .npz file")
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
        arrays = read_members(path)
    except ValueError as e:  # includes object arrays, which would need pickle
        raise AevbError(f"{path}: cannot read arrays ({e}); save plain numeric arrays with "
                        "numpy.savez") from None
    except Exception as e:  # zipfile and zlib raise several unrelated types for corrupt archives
        raise AevbError(f"{path}: not a readable .npz file ({type(e).__name__}: {e})") from None
    return from_arrays(arrays, str(path))


def read_members(path: str | Path) -> dict[str, np.ndarray]:
    """An .npz's arrays by name, never unpickled: a member stored uncompressed (numpy.savez) is
    memory-mapped, so its pages are read as batches need them and no second copy is made; a
    compressed one (numpy.savez_compressed) is read into memory.

        >>> np.savez("big.npz", x_train=np.zeros((10, 3), np.uint8))
        >>> type(read_members("big.npz")["x_train"]).__name__
        'memmap'
    """
    arrays = {}
    with zipfile.ZipFile(path) as archive, open(path, "rb") as f:
        for info in archive.infolist():
            name = info.filename.removesuffix(".npy")
            if info.compress_type != zipfile.ZIP_STORED:
                with archive.open(info) as member:
                    arrays[name] = np.lib.format.read_array(member, allow_pickle=False)
                continue
            f.seek(info.header_offset)
            local = f.read(30)  # the member's local header: its name's and extra field's lengths at 26
            if len(local) < 30 or local[:4] != b"PK\x03\x04":
                raise zipfile.BadZipFile(f"member {info.filename} has no local header")
            f.seek(info.header_offset + 30 + sum(struct.unpack("<HH", local[26:30])))
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = read_header(f)
            if dtype.hasobject:
                raise ValueError(f"member {info.filename} holds Python objects, which would need pickle")
            if 0 in shape:
                arrays[name] = np.empty(shape, dtype)
            else:
                # copy-on-write: a page written by mistake is copied, never the user's file changed
                arrays[name] = np.memmap(path, dtype, "c", f.tell(), shape, "F" if fortran else "C")
    return arrays


def from_arrays(arrays: dict[str, np.ndarray], where: str) -> Data:
    """Data from arrays named as in an .npz (x_train, x_test, y_*, lengths_*), each validated;
    `where` names them in errors (the file, or `aevb.fit`).

        >>> from_arrays({"x_train": np.zeros((4, 3)), "x_test": np.zeros((2, 3))}, "mine").event_shape
        (3,)
    """
    for key in ("x_train", "x_test"):
        if key not in arrays:
            raise AevbError(f"{where}: missing array {key!r} (found: {', '.join(arrays) or 'none'}); "
                            "the data need x_train and x_test, optionally y_train and y_test")
    for name in ("y", "lengths"):
        if (f"{name}_train" in arrays) != (f"{name}_test" in arrays):
            raise AevbError(f"{where}: give both {name}_train and {name}_test, or neither")
    # numpy keeps the byte order an array was saved in; torch takes only the machine's own
    arrays = {k: a if a.dtype.isnative else a.astype(a.dtype.newbyteorder("="))
              for k, a in arrays.items()}
    splits = {}
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays.get(f"y_{split}")
        if x.dtype.kind not in "biuf":
            raise AevbError(f"{where}: x_{split} has dtype {x.dtype}; it must be numeric")
        if x.ndim < 2 or x.size == 0:
            raise AevbError(f"{where}: x_{split} has shape {x.shape}; it must be (N, D...) with N > 0 "
                            "and D > 0")
        # bytes stay bytes for the pixel modes, and float32 stays where it is (a mapped file is
        # not copied); the rest becomes float32, checked after the cast so that a float64 beyond
        # float32's range counts as the inf it has become
        with np.errstate(over="ignore"):
            xt = torch.from_numpy(x if x.dtype in (np.uint8, np.float32) else x.astype(np.float32))
        if xt.is_floating_point():
            bad = sum(int((~torch.isfinite(b)).flatten(1).any(1).sum()) for b in row_blocks(xt))
            if bad:
                raise AevbError(f"{where}: x_{split} has NaN or infinite values in {bad} rows (as "
                                "float32); remove, impute or rescale them")
        if y is not None:
            if y.ndim != 1 or y.shape[0] != x.shape[0]:
                raise AevbError(f"{where}: y_{split} has shape {y.shape}, expected ({x.shape[0]},) "
                                f"to match x_{split}")
            if y.dtype.kind not in "biu" or y.min() < 0 or y.max() >= MAX_CLASSES:
                raise AevbError(f"{where}: y_{split} must hold integer class labels 0..K-1 with K at "
                                f"most {MAX_CLASSES}")
        lengths = _npz_lengths(where, split, arrays.get(f"lengths_{split}"), x.shape)
        splits[split] = Split(xt, None if y is None else torch.from_numpy(y.astype(np.int64)), lengths)
    if splits["train"].x.shape[1:] != splits["test"].x.shape[1:]:
        raise AevbError(f"{where}: x_train rows have shape {tuple(splits['train'].x.shape[1:])} but "
                        f"x_test rows have {tuple(splits['test'].x.shape[1:])}")
    classes, names = None, arrays.get("classes")
    if names is not None and (names.ndim != 1 or names.dtype.kind != "U" or splits["train"].y is None):
        raise AevbError(f"{where}: classes must be a 1-D array of strings, the names of labels 0..K-1 "
                        "in y_train and y_test; drop it or give the labels")
    if splits["train"].y is not None:
        k = int(max(splits["train"].y.max(), splits["test"].y.max())) + 1
        if names is not None and len(names) < k:
            raise AevbError(f"{where}: classes names {len(names)} labels but y holds labels up to {k - 1}")
        classes = tuple(str(i) for i in range(k)) if names is None else tuple(str(n) for n in names)
    shape = tuple(splits["train"].x.shape[1:])
    image_shape = None
    if len(shape) == 2:  # (N, H, W): grey images, which a sequential model reads row by row
        image_shape = (1, *shape)
    elif len(shape) == 3 and (shape[0] in CHANNELS or shape[2] in CHANNELS):  # colour images
        if shape[0] in CHANNELS and shape[2] not in CHANNELS:  # (N, C, H, W): stored as (N, H, W, C)
            for s in splits.values():
                s.x = s.x.permute(0, 2, 3, 1).contiguous()
            shape = (shape[1], shape[2], shape[0])
        image_shape = (shape[2], shape[0], shape[1])
    return Data(where, splits["train"], splits["test"], image_shape=image_shape, classes=classes)


def to_arrays(data: Data) -> dict[str, np.ndarray]:
    """The arrays, named as in an .npz, that `from_arrays` reads back as `data`: a run keeps the
    images of a folder this way, decoded once (its data.npz)."""
    arrays = {"x_train": data.train.x.numpy(), "x_test": data.test.x.numpy()}
    if data.train.y is not None:
        arrays.update(y_train=data.train.y.numpy(), y_test=data.test.y.numpy())
        if data.classes is not None:
            arrays["classes"] = np.array(data.classes, dtype=str)
    return arrays
