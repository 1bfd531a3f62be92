"""Every recipe under configs/ parses and builds a complete config for its model."""

from pathlib import Path

import pytest

from aevb.models import registry
from aevb.runs.resolve import build_config, read_toml

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.toml"))


def test_there_are_recipes():
    assert CONFIGS


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_recipe_builds(path):
    raw = read_toml(path)
    assert raw.get("description"), "each recipe says what it reproduces"
    cfg = build_config(raw["model"], [(str(path), raw)])
    assert cfg.model == raw["model"] and cfg.train.epochs > 0


@pytest.mark.parametrize("path", [p for p in CONFIGS if p.stem in registry.MODELS], ids=lambda p: p.name)
def test_a_models_default_recipe_file_is_what_aevb_train_model_runs(path):
    """configs/MODEL.toml (`aevb reproduce MODEL`) and `aevb train MODEL` build the same config."""
    raw = read_toml(path)
    assert build_config(raw["model"], [(str(path), raw)]) == build_config(raw["model"])
