"""`aevb sweep`: one recipe from several seeds, collected into one table; it continues where it stopped."""

import json

import pytest

from aevb.cli import main
from aevb.errors import AevbError
from aevb.runs.sweep import parse_seeds, summarise


def test_parse_seeds():
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert parse_seeds("0,3,7") == [0, 3, 7]
    assert parse_seeds("2,5-6") == [2, 5, 6]
    for bad in ("", "a-b", "3,3", "-1", "1-"):
        with pytest.raises(AevbError, match="--seeds"):
            parse_seeds(bad)


def test_summary_takes_the_metrics_every_seed_has():
    """A seed evaluated before a metric existed leaves that metric out of the summary."""
    per_seed = {1: {"elbo": -80.0, "elbo_se": 0.3, "n": 10},
                0: {"elbo": -79.0, "elbo_se": 0.2, "cluster_purity": 0.7},
                2: {"elbo": -78.0, "cluster_purity": 0.6}}
    summary = summarise(per_seed)
    assert summary == {"elbo": {"median": -79.0, "min": -80.0, "max": -78.0}}


def test_sweep_trains_each_seed_and_tabulates(tmp_path, capsys):
    out = tmp_path / "sw"
    argv = ["sweep", "fa-tutorial", "--seeds", "0-2", "--max-steps", "30", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    table = capsys.readouterr().out
    result = json.loads((out / "sweep.json").read_text())
    lls = [m["log_likelihood"] for m in result["per_seed"].values()]
    assert len(set(lls)) == 3, "each seed trains its own model"
    s = result["summary"]["log_likelihood"]
    assert s["min"] == min(lls) and s["max"] == max(lls) and s["median"] == sorted(lls)[1]
    assert "| median |" in table and "log_likelihood" in table
    for seed in range(3):
        cfg = json.loads((out / f"seed-{seed}" / "run" / "config.json").read_text())
        assert cfg["train"]["seed"] == seed and not (out / f"seed-{seed}" / "figures").exists()

    # a seed whose results went missing is finished from its run, the others are kept
    (out / "seed-1" / "results.json").unlink()
    assert main(argv) == 0
    again = json.loads((out / "sweep.json").read_text())
    assert again["per_seed"] == result["per_seed"]


def test_sweep_refuses_seed_flag_and_unknown_recipe(tmp_path, capsys):
    assert main(["sweep", "no-such", "--seeds", "0-1", "--out", str(tmp_path / "x")]) == 2
    assert "no recipe" in capsys.readouterr().err and not (tmp_path / "x").exists()
