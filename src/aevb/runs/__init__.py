"""Training runs and their directories: a config built once (`resolve`), a run started or resumed
(`launch`), read back for evaluation (`load`), the directory's files (`directory`), the checkpoint
format (`checkpoints`), and the shipped pretrained models (`pretrained`, `export`).

    from aevb import runs
    cfg = runs.config("fa", epochs=3)               # the recipe, then settings named as the flags
    runs.train(cfg, "runs/fa")
    model, cfg, data, meta = runs.open_run("runs/fa")
"""

from __future__ import annotations

from pathlib import Path

from aevb.config import RunConfig
from aevb.runs.launch import default_run_dir, resume, train
from aevb.runs.load import build_model, data_info, load_model, load_pretrained, open_run, prepare_data
from aevb.runs.resolve import RESUMABLE, build_config, read_toml, sections


def config(model: str, config_file: str | Path | None = None, **settings) -> RunConfig:
    """A run's config from Python, layered as `aevb train MODEL --config FILE --flag value` layers
    it: the model's recipe, then `config_file`, then `settings`, named as the flags are but in
    snake case: `config("vae", dataset="my.npz", preprocess="none", epochs=20, latent_dim=8)`."""
    sources = [] if config_file is None else [(str(config_file), read_toml(config_file))]
    return build_config(model, sources + [("keyword arguments", sections(model, settings))])


__all__ = ["RESUMABLE", "build_config", "build_model", "config", "data_info", "default_run_dir",
           "load_model", "load_pretrained", "open_run", "prepare_data", "resume", "train"]
