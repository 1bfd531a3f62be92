"""What values a likelihood accepts (its support), what each preprocessing mode gives, and the
checks that the data fit both. The one place where "support" is defined.

    real     any float: a Gaussian likelihood
    unit     values in [0, 1]: the continuous Bernoulli
    binary   values in {0, 1}: the Bernoulli
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from aevb.errors import AevbError

LIKELIHOOD_SUPPORT = {"continuous-bernoulli": "unit", "bernoulli": "binary", "gaussian": "real"}
LIKELIHOODS = tuple(LIKELIHOOD_SUPPORT)
# What each preprocessing mode guarantees of its output; None: the values as they are. The pixel
# modes read 8-bit pixels, bytes 0..255.
PREPROCESS_SUPPORT = {"none": None, "unit": "unit", "dequantize": "unit", "binarize-threshold": "binary",
                      "binarize-dynamic": "binary"}
PREPROCESS = tuple(PREPROCESS_SUPPORT)


def row_blocks(x: torch.Tensor, values: int = 2**24) -> Iterator[torch.Tensor]:
    """x (N, ...) in blocks of whole rows of about `values` values: a check over all the data
    makes temporaries of one block, not of the whole (possibly memory-mapped) array."""
    step = max(1, values // max(x[0].numel(), 1)) if len(x) else 1
    for i in range(0, len(x), step):
        yield x[i : i + step]


def likelihood_support(kind: str) -> str:
    """What values a likelihood accepts: real | unit | binary."""
    return LIKELIHOOD_SUPPORT[kind]


def check_support(x: torch.Tensor, support: str, what: str) -> None:
    """Refuse data outside the likelihood's support: 'real', 'unit' ([0,1]) or 'binary' ({0,1})."""
    if support == "real":
        return
    lo, hi = float(x.min()), float(x.max())
    if support == "unit" and (lo < 0 or hi > 1):
        raise AevbError(f"{what}: values span [{lo:g}, {hi:g}] but this likelihood needs [0, 1]; "
                        "rescale the data or pick --preprocess unit or dequantize")
    if support == "binary" and not all(bool(((b == 0) | (b == 1)).all()) for b in row_blocks(x)):
        raise AevbError(f"{what}: this likelihood needs binary 0/1 values; pick --preprocess "
                        "binarize-threshold or binarize-dynamic, or binarize the data")


def check_fits(data, support: str, model: str) -> None:
    """Refuse data whose preprocessed values a likelihood of `support` cannot score: raw values are
    checked, a preprocessing mode's output is known (a `aevb.data.Data`)."""
    given = PREPROCESS_SUPPORT[data.preprocess]
    if support == "real":
        return
    if given is None:  # raw values: check them
        for name in ("train", "test"):
            check_support(data.split(name).x, support, f"{data.name} x_{name}")
    elif support == "binary" and given != "binary":
        raise AevbError(f"model {model} needs binary data but --preprocess {data.preprocess} gives "
                        "values in [0, 1]; use binarize-threshold or binarize-dynamic")


def check_pixels(data, mode: str) -> None:
    """A pixel mode reads bytes 0..255: refuse other values, and integers that top out below 128
    (0/1 data, counts such as scikit-learn's 0..16 digits), which it would read as near-black."""
    if PREPROCESS_SUPPORT[mode] is None:
        return
    for name in ("train", "test"):
        x = data.split(name).x
        if x.dtype != torch.uint8 and not (
            all(bool((b == b.round()).all()) for b in row_blocks(x)) and float(x.min()) >= 0
            and float(x.max()) <= 255
        ):
            raise AevbError(f"{data.name}: --preprocess {mode} expects pixel values 0..255 but "
                            f"x_{name} holds other values; use --preprocess none")
    top = float(data.train.x.max())
    if top < 128:
        raise AevbError(f"{data.name}: --preprocess {mode} reads 8-bit pixels (0..255) but the largest "
                        f"value in x_train is {top:g}; scale the data to 0..255, or to [0, 1] and pass "
                        "--preprocess none")
