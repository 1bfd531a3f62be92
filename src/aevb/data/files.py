"""The user's data as files: a table (.csv, numeric columns under a header, one of them optionally
the labels) or a folder of images (PNG or JPEG, all one size, grey or colour; subfolders name the
labels). Either is checked cell by cell or file by file, so bad input is one line naming the row,
column or file, never a traceback. Without a test split of its own, a seeded tenth of the rows
(or images) is held out as the test split.

    load_csv("measurements.csv", label_column="species")
    load_images("photos/")            # photos/cat/*.png, photos/dog/*.png: labels cat, dog
    load_images("digits/")            # digits/train/..., digits/test/...: the splits as given
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import torch

from aevb.data.containers import Data, Split
from aevb.errors import AevbError

TEST_FRACTION = 0.1  # of the rows held out as the test split, when the data have no test split
SPLIT_SEED = 0  # the held-out rows are the same for every run, whatever its seed
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
# Pillow's modes by kind: a folder is all grey or all colour (alpha is dropped)
GREY, COLOUR = ("1", "L", "LA", "I;16", "I"), ("RGB", "RGBA", "P", "CMYK", "YCbCr")


def load_csv(path: str | Path, label_column: str | None = None) -> Data:
    """A table: every column numeric (floats), one row a datapoint; `label_column` the labels
    (integers, or names, which become classes in sorted order; an empty cell or -1 is a missing
    label). A tenth of the rows, chosen by a fixed seed, is the test split.

        >>> Path("t.csv").write_text("a,b,kind\\n1,2,x\\n3,4,y\\n5,6,x\\n")
        >>> load_csv("t.csv", "kind").classes
        ('x', 'y')
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise AevbError(f"{path}: cannot read it as text ({getattr(e, 'strerror', None) or e})") from None
    rows = list(csv.reader(text.splitlines()))
    rows = [r for r in rows if any(cell.strip() for cell in r)]  # blank lines are no rows
    if not rows:
        raise AevbError(f"{path}: the file is empty; give a header line of column names, then one row "
                        "per datapoint")
    header, body = [h.strip() for h in rows[0]], rows[1:]
    if not body:
        raise AevbError(f"{path}: only a header, no rows of data")
    if label_column is not None and label_column not in header:
        raise AevbError(f"{path}: no column {label_column!r} for --label-column; the columns are "
                        f"{', '.join(header)}")
    features = [i for i, h in enumerate(header) if h != label_column]
    if not features:
        raise AevbError(f"{path}: no columns of data besides the labels")
    x = np.empty((len(body), len(features)), dtype=np.float32)
    labels = []
    for r, row in enumerate(body, start=2):  # line numbers as an editor shows them
        if len(row) != len(header):
            raise AevbError(f"{path}: row {r} has {len(row)} cells but the header has {len(header)} "
                            "columns; every row needs one value per column")
        for j, i in enumerate(features):
            try:
                value = float(row[i])
            except ValueError:
                raise AevbError(f"{path}: row {r}, column {header[i]!r} holds {row[i].strip()!r}, which "
                                "is not a number; every column but the labels must be numeric") from None
            if not math.isfinite(value):
                raise AevbError(f"{path}: row {r}, column {header[i]!r} is {row[i].strip()}; remove, "
                                "impute or rescale it")
            x[r - 2, j] = value
        if label_column is not None:
            labels.append(row[header.index(label_column)].strip())
    y, classes = (None, None) if label_column is None else _labels(labels, path)
    train, test = (Split(torch.from_numpy(x[rows]), None if y is None else torch.from_numpy(y[rows]))
                   for rows in _holdout(len(x)))
    note = f"test split: {len(test)} rows of {path.name} held out by a fixed seed"
    return Data(str(path), train, test, classes=classes, note=note)


def _labels(cells: list[str], path: Path) -> tuple[np.ndarray, tuple[str, ...]]:
    """Label cells as class indices (N,), -1 where a label is missing, and the class names."""
    known = [c for c in cells if c not in ("", "-1")]
    if not known:
        raise AevbError(f"{path}: the label column holds no label")
    if all(c.lstrip("-").isdigit() for c in known):  # integer labels: 0..K-1 as given
        y = np.array([int(c) if c else -1 for c in cells], dtype=np.int64)
        if y.min() < -1:
            raise AevbError(f"{path}: a label is {y.min()}; labels are 0..K-1, or -1 for none")
        return y, tuple(str(k) for k in range(int(y.max()) + 1))
    classes = tuple(sorted(set(known)))
    index = {name: k for k, name in enumerate(classes)}
    return np.array([index.get(c, -1) for c in cells], dtype=np.int64), classes


def _holdout(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Training and test row indices: a fixed-seed tenth (at least one row) for the test split."""
    if n < 2:
        raise AevbError(f"only {n} datapoint; at least 2 are needed, one of them for the test split")
    order = np.random.default_rng(SPLIT_SEED).permutation(n)
    k = max(1, round(TEST_FRACTION * n))
    return np.sort(order[k:]), np.sort(order[:k])


def load_images(folder: str | Path) -> Data:
    """A folder of images, all one size, all grey or all colour: FOLDER/*.png, or FOLDER/LABEL/*.png
    (each subfolder a label), or FOLDER/train/ and FOLDER/test/ laid out either way (the splits
    as given; otherwise a fixed-seed tenth of the images is the test split). Pixels are kept as
    bytes, (N, H, W) grey or (N, H, W, 3) colour; the image shape is recorded as (C, H, W)."""
    folder = Path(folder)
    given = [folder / s for s in ("train", "test")]
    if all(p.is_dir() for p in given):
        sources = {"train": given[0], "test": given[1]}
    else:
        sources = {"all": folder}
    found = {split: _image_files(where) for split, where in sources.items()}  # split: [(file, label)]
    names = sorted({label for files in found.values() for _, label in files if label is not None})
    if any(label is None for files in found.values() for _, label in files) and names:
        raise AevbError(f"{folder}: some images sit in label subfolders and some do not; put every "
                        "image in a subfolder named for its label, or none")
    reference = next(iter(found.values()))[0][0]  # the first image by name sets size and mode
    first, kind = _read_image(reference)
    if "all" in found:  # no test split of its own: hold one out, decoded in place (no copy)
        train, test = _holdout(len(found["all"]))
        found = {"train": [found["all"][i] for i in train], "test": [found["all"][i] for i in test]}
    files = found["train"] + found["test"]
    # one array of bytes for both splits, filled image by image: a large folder takes its own size
    # in memory, not twice that for a list of images and their stack (docs: Your own data, "Large data")
    pixels = np.empty((len(files), *first.shape), dtype=np.uint8)
    for i, (path, _) in enumerate(files):
        image, its_kind = _read_image(path)
        if (image.shape, its_kind) != (first.shape, kind):
            raise AevbError(f"{path}: {_describe(image.shape, its_kind)}, but {reference} is "
                            f"{_describe(first.shape, kind)}; every image must have one size and mode")
        pixels[i] = image
    index = {name: k for k, name in enumerate(names)}
    y = torch.tensor([index[label] for _, label in files], dtype=torch.int64) if names else None
    n = len(found["train"])
    x = torch.from_numpy(pixels)
    splits = {"train": Split(x[:n], None if y is None else y[:n]),
              "test": Split(x[n:], None if y is None else y[n:])}
    h, w = first.shape[:2]
    c = 1 if kind == "L" else 3
    held = f"test split: {len(splits['test'])} images held out by a fixed seed"
    note = held if "all" in sources else ""
    return Data(str(folder), splits["train"], splits["test"], image_shape=(c, h, w),
                classes=tuple(names) or None, note=note)


def _image_files(folder: Path) -> list[tuple[Path, str | None]]:
    """(file, label) for the images in `folder`, or in its subfolders (the label), sorted by name."""
    if not folder.is_dir():
        raise AevbError(f"{folder}: not a folder of images")
    subfolders = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    images = [(p, None) for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    for sub in subfolders:
        images += [(p, sub.name) for p in sorted(sub.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    if not images:
        raise AevbError(f"{folder}: no PNG or JPEG images in it or in its subfolders")
    return images


def _read_image(path: Path) -> tuple[np.ndarray, str]:
    """One image's bytes, (H, W) grey or (H, W, 3) colour, and its kind ("L" or "RGB")."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            mode = image.mode
            if mode in GREY:
                kind, image = "L", image.convert("L")
            elif mode in COLOUR:
                kind, image = "RGB", image.convert("RGB")
            else:
                raise AevbError(f"{path}: image mode {mode}, which is neither grey nor colour; save it "
                                "as 8-bit grey or RGB")
            return np.asarray(image, dtype=np.uint8), kind
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise AevbError(f"{path}: not a readable image ({type(e).__name__}: {e})") from None


def _describe(shape: tuple[int, ...], kind: str) -> str:
    return f"{shape[1]}x{shape[0]} {'grey' if kind == 'L' else 'colour'}"
