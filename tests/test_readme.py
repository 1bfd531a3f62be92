"""The README's Python example runs as written (slow: it trains for five epochs, about 30 s)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_block(heading: str) -> str:
    """The first ```python block under the README's `## heading`."""
    section = README.read_text().split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_from_python_example_runs(tmp_path):
    # a process of its own: the example's process.configure() changes process-wide settings
    done = subprocess.run([sys.executable, "-c", readme_block("From Python")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "'iwae'" in done.stdout
    lines = (tmp_path / "runs/vae-python/metrics.jsonl").read_text().splitlines()
    assert len(lines) == 5  # three epochs, then two more on resuming
