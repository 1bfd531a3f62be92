"""The user's own arrays: an .npz archive with x_train and x_test (N, D...), optional integer labels
y_train and y_test, and for sequences x (N, T, D) optional lengths_train and lengths_test. Every
array is validated, so bad input is a one-line error naming the array, never a traceback.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from aevb.data.containers import Data, Split
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
    padding, ignored by the model). `known`: the dataset names a missing file may have meant.

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
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except ValueError as e:  # includes object arrays, which would need pickle
        raise AevbError(f"{path}: cannot read arrays ({e}); save plain numeric arrays with "
                        "numpy.savez") from None
    except Exception as e:  # zipfile and zlib raise several unrelated types for corrupt archives
        raise AevbError(f"{path}: not a readable .npz file ({type(e).__name__}: {e})") from None
    return from_arrays(arrays, str(path))


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
    arrays = {k: a.astype(a.dtype.newbyteorder("=")) for k, a in arrays.items()}
    splits = {}
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays.get(f"y_{split}")
        if x.dtype.kind not in "biuf":
            raise AevbError(f"{where}: x_{split} has dtype {x.dtype}; it must be numeric")
        if x.ndim < 2 or x.size == 0:
            raise AevbError(f"{where}: x_{split} has shape {x.shape}; it must be (N, D...) with N > 0 "
                            "and D > 0")
        # bytes stay bytes for the pixel modes; the rest becomes float32, checked after the cast
        # so that a float64 beyond float32's range counts as the inf it has become
        with np.errstate(over="ignore"):
            xt = torch.from_numpy(x if x.dtype == np.uint8 else x.astype(np.float32))
        if xt.is_floating_point() and not torch.isfinite(xt).all():
            bad = int((~torch.isfinite(xt)).flatten(1).any(1).sum())
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
    classes = None
    if splits["train"].y is not None:
        k = int(max(splits["train"].y.max(), splits["test"].y.max())) + 1
        classes = tuple(str(i) for i in range(k))
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
