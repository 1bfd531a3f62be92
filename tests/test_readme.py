"""The README is for users: short, no maintainer details, and its quickstart runs as written."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def quickstart_blocks() -> list[tuple[str, str]]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quickstart", 1)[1].split("\nThe tutorial's recipes", 1)[0]
    return re.findall(r"```(bash|python)\n(.*?)```", section, flags=re.S)


def test_the_readme_quickstart_runs_as_written(tmp_path):
    blocks = quickstart_blocks()
    assert [kind for kind, _ in blocks] == ["bash", "python"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    for kind, code in blocks:
        command = ["bash", "-euo", "pipefail", "-c", code] if kind == "bash" else [sys.executable, "-c", code]
        done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=600)
        assert done.returncode == 0, f"{kind} block failed:\n{code}\n{done.stderr[-3000:]}"
    assert (tmp_path / "samples.png").is_file() and (tmp_path / "runs" / "mine" / "data.npz").is_file()


def test_the_readme_is_for_users():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    assert not re.search(r"20\d\d-\d\d-\d\d|issue \d|\.\./shared", text)
    first = re.search(r"```bash\n(.*?)\n", text).group(1)
    assert first == "pip install ."
