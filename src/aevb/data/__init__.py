"""Data for aevb: named datasets (IDX files), the user's .npz arrays, the tutorial's FA data, the
containers they end in, preprocessing, and what values each likelihood accepts.

    from aevb.data import load
    data = load("mnist-sample", preprocess_mode="dequantize")   # a Data: train and test splits
"""

from aevb.data.containers import Batch, Data, Split, preprocess
from aevb.data.idx import (
    DATASETS,
    DEBIAN,
    IdxDataset,
    available,
    cache_root,
    candidate_dirs,
    download,
    load_idx_dataset,
    locate,
    parse_idx,
    read_idx,
)
from aevb.data.npz import MAX_CLASSES, load_npz
from aevb.data.sources import SYNTHETIC, absolute, is_file, load
from aevb.data.support import PREPROCESS, PREPROCESS_SUPPORT, check_support
from aevb.data.synthetic import FA_SIGMA, FA_W, fa_synthetic

__all__ = ["DATASETS", "DEBIAN", "FA_SIGMA", "FA_W", "MAX_CLASSES", "PREPROCESS", "PREPROCESS_SUPPORT",
           "SYNTHETIC", "Batch", "Data", "IdxDataset", "Split", "absolute", "available", "cache_root",
           "candidate_dirs", "check_support", "download", "fa_synthetic", "is_file", "load",
           "load_idx_dataset", "load_npz", "locate", "parse_idx", "preprocess", "read_idx"]
