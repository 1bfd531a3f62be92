"""The benchmark scripts run as the README writes them, on short settings, and still time what they
say they time. Slow (each compiles models; about three minutes in all on 2 cores): the figures
themselves are for the benchmarks to print, not for tests to judge."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def bench(*args: str) -> str:
    done = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def row(out: str, start: str) -> list[str]:
    """The cells of the one table row of `out` that starts with `start`."""
    rows = [line for line in out.splitlines() if line.startswith(start)]
    assert len(rows) == 1, out
    return [cell.strip() for cell in rows[0].strip("|").split("|")]


def test_throughput_times_a_compiled_step_and_counts_flops_on_an_eager_one():
    out = bench("benchmarks/throughput.py", "--models", "vae", "--large-batch", "0", "--seconds", "1")
    cells = row(out, "| vae | 32 |")
    # The script stops when a loop meant to be compiled compiled no graph. A FLOP count taken on a
    # compiled step (under FlopCounterMode, which also makes dynamo give the function up) came to
    # 0.010 GFLOP per image instead of the network's 0.007.
    assert cells[3] == "on" and cells[8] == "0.007"
    assert cells[7].endswith("x") and float(cells[7][:-1]) > 0


def test_vae_ceiling_prints_every_loop():
    out = bench("benchmarks/vae_ceiling.py", "--seconds", "0.5")
    for loop in ("aevb, bf16 compiled", "aevb, fp32 compiled", "plain loop, fused Adam",
                 "plain loop, foreach Adam", "tutorial-style reference"):
        assert row(out, f"| {loop} |")[2].endswith("x")


def test_time_to_quality_sees_aevbs_vae_pass_the_tutorials_number(shared_mnist):
    out = bench("benchmarks/time_to_quality.py", "--data-dir", str(shared_mnist), "--models", "vae",
                "--loops", "aevb", "--budget", "60")
    cells = row(out, "| vae | 1788.00 |")
    assert cells[3] == "not run" and cells[4].endswith(" s")  # the reference skipped; aevb's time


def test_reference_flops_counts_the_lstm():
    out = bench("benchmarks/reference_flops.py")
    assert "0.3306 GFLOP per image" in out
