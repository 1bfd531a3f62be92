"""Run directories written by an earlier aevb evaluate and resume to the same numbers, bit for bit.

tests/golden/ holds two tiny runs (a bf16 VAE with dropout, an fp32 GMVAE) stopped mid-epoch by the
code before the engine was rebuilt, with what `aevb evaluate --json` printed for them and the metrics
and model of their continuation (tests/golden/make_golden.py). Floating-point results depend on the
CPU's vendor and instruction set as well as the code, so on another machine the figures are
compared to a relative 1e-2 instead and the model digest is not compared.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

GOLDEN = Path(__file__).resolve().parent / "golden"
sys.path.insert(0, str(GOLDEN))
from make_golden import IWAE_SAMPLES, RESUME_TO, RUNS, machine, model_digest  # noqa: E402

SAME_MACHINE = machine() == json.loads((GOLDEN / "machine.json").read_text())
# in `aevb evaluate --json` since these runs were made: bits per dimension, from the bounds checked
# below, and the GMVAE's own choice of cluster (tested in test_gmvae)
ADDED = ("bits_per_dim", "iwae_bits_per_dim", "elbo_cluster_accuracy", "elbo_cluster_purity",
         "cluster_agreement", "qy_elbo_gap", "qy_elbo_gap_se")


def aevb(*args: str) -> str:
    """The command as a user runs it (its process settings, denormals flushed, included)."""
    done = subprocess.run([sys.executable, "-m", "aevb", *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def same(found, expected) -> None:
    """Equal, or on another machine equal to a relative 1e-2 in every float (nested dicts, lists)."""
    if SAME_MACHINE:
        assert found == expected
    elif isinstance(expected, dict):
        assert found.keys() == expected.keys()
        for key in expected:
            same(found[key], expected[key])
    elif isinstance(expected, list):
        assert len(found) == len(expected)
        for f, e in zip(found, expected, strict=True):
            same(f, e)
    elif isinstance(expected, float):
        assert found == pytest.approx(expected, rel=1e-2, abs=1e-2)
    else:
        assert found == expected


@pytest.mark.parametrize("name", list(RUNS))
def test_an_old_run_evaluates_to_its_old_numbers(name, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(GOLDEN / name / "run", run)  # a copy: evaluating must change nothing, but be safe
    found = json.loads(aevb("evaluate", str(run), "--json", "--iwae-samples", str(IWAE_SAMPLES)))
    for key in ADDED:  # keys later versions added
        found.pop(key, None)
    same(found, json.loads((GOLDEN / name / "evaluate.json").read_text()))


@pytest.mark.parametrize("name", list(RUNS))
def test_an_old_run_resumes_to_its_old_continuation(name, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(GOLDEN / name / "run", run)
    aevb("train", RUNS[name][0], "--resume", "--out", str(run), "--max-steps", str(RESUME_TO), "--quiet")
    lines = [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines()]
    for line in lines:
        line.pop("seconds")
    expected = json.loads((GOLDEN / name / "resumed.json").read_text())
    same(lines, expected["metrics"])
    if SAME_MACHINE:
        assert model_digest(run) == expected["model_sha256"]
