"""Model starts: where training begins when it is not the networks' random weights. A model's
config names its start (`init`); `run` trains it before the first epoch, `check` refuses one that
cannot run before anything is written. Models know nothing of this package.

    starts.check(cfg.model_config)           # e.g. umap-learn missing
    meta = starts.run(model, data, cfg.train)  # {} for random weights
"""

from __future__ import annotations

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
    metadata ({} for random weights)."""
    init = getattr(model.cfg, "init", "random")
    return {} if init == "random" else STARTS[init].start(model, data, train_cfg, quiet)
