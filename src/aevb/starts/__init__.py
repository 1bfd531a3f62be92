"""Model starts: where training begins when it is not the networks' random weights. A model's
config names its start (`init`); `run` trains it before the first epoch, `check` refuses one that
cannot run before anything is written. Models know nothing of this package.

    starts.check(cfg.model_config)           # e.g. umap-learn missing
    meta = starts.run(model, data, cfg.train)  # {} for random weights; else what the start measured
"""

from __future__ import annotations

from aevb.evaluate import cluster_metrics
from aevb.starts import umap

# Each start by its `init` name; "random" trains nothing.
STARTS = {"autoencoder-umap": umap}


def check(model_config) -> None:
    """Refuse a start that cannot run here (a missing library), before anything is written."""
    init = getattr(model_config, "init", "random")
    if init in STARTS:
        STARTS[init].check_available()


def run(model, data, train_cfg, quiet: bool = False) -> dict:
    """Start `model` as its config's `init` says; returns what the start measured, for the run's
    metadata ({} for random weights). For a model with clusters that includes the start's own
    cluster accuracy on train and test, so that a run can say what training added to it."""
    init = getattr(model.cfg, "init", "random")
    if init == "random":
        return {}
    meta = STARTS[init].start(model, data, train_cfg, quiet)
    if model.has_clusters:
        meta["cluster_accuracy"] = own_accuracy(model, data, train_cfg.seed)
    return meta


def own_accuracy(model, data, seed: int) -> dict[str, float]:
    """q(y|x)'s cluster accuracy on each split that has labels, as the start leaves it (the labels
    are read to measure, never to train)."""
    return {split: cluster_metrics(model, data, split, seed=seed)["cluster_accuracy"]
            for split in ("train", "test") if data.split(split).y is not None}
