"""Training runs and their directories: a config built once (`resolve`), a run's model and data
(`parts`), a run started or resumed (`launch`), a recipe reproduced or swept over seeds
(`reproduce`, `sweep`), a run read back for evaluation (`load`), the directory's files
(`directory`), the checkpoint format (`checkpoints`), and the shipped pretrained models
(`pretrained`, `export`).

    from aevb import runs
    cfg = runs.config("fa", epochs=3)               # the recipe, then settings named as the flags
    runs.train(cfg, "runs/fa")
    model, cfg, data, meta = runs.open_run("runs/fa")
"""

from __future__ import annotations

from aevb.runs.launch import default_run_dir, resume, train
from aevb.runs.load import load_model, load_pretrained, open_run
from aevb.runs.parts import build_model, data_info, prepare_data
from aevb.runs.resolve import RESUMABLE, build_config, config

__all__ = ["RESUMABLE", "build_config", "build_model", "config", "data_info", "default_run_dir",
           "load_model", "load_pretrained", "open_run", "prepare_data", "resume", "train"]
