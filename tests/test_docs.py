"""The documentation site: it builds with warnings as errors, executing the five tutorials (a
failing cell fails it), with their figures in the pages, every command in the CLI reference, every
public name in the API reference, and the results and model pages generated from files."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import aevb

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def text(page: Path) -> str:
    """A page's visible text: tags dropped, whitespace collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", page.read_text()).split())


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    pytest.importorskip("sphinx")
    pytest.importorskip("myst_nb")
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ)
    if (SHARED / "mnist").is_dir():  # the tutorials use whatever MNIST the build has
        env["AEVB_DATA_DIR"] = str(SHARED)
    done = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
                           "-d", str(out / "doctrees"), str(ROOT / "docs"), str(out / "html")],
                          capture_output=True, text=True, env=env, cwd=out, timeout=1200)
    assert done.returncode == 0, done.stderr[-6000:]
    return out / "html"


def test_the_site_builds_with_every_tutorial_executed_and_drawn(site):
    for page in sorted((site / "tutorials").glob("0*.html")):
        html = page.read_text()
        figures = len(re.findall(r'<img[^>]+src="[^"]*_images/[^"]+\.(?:png|gif)"', html))
        assert figures >= 3, f"{page.name} shows {figures} figures"
        assert "Traceback" not in html and "math notranslate" in html
    assert len(list((site / "tutorials").glob("0*.html"))) == 5


def test_the_references_name_every_command_and_public_name(site):
    cli = text(site / "reference" / "cli.html")
    for command in ("train", "evaluate", "sample", "encode", "figures", "reproduce", "sweep", "pretrained"):
        assert f"aevb {command}" in cli, command
    assert "--tensorboard" in cli and "--print-config" in cli
    api = (site / "reference" / "api.html").read_text()
    for name in aevb.__all__:
        if not name.startswith("__"):
            assert f'id="aevb.{name}"' in api, name


def test_results_and_model_pages_come_from_the_files_commands_wrote(site):
    import json

    results = text(site / "results" / "index.html")
    for path in sorted((ROOT / "docs" / "gallery").glob("*/results.json")):
        recipe = json.loads(path.read_text())["recipe"]
        assert f"aevb reproduce {recipe}" in results, recipe
    from aevb.runs import pretrained

    for name in pretrained.names():
        page = (site / "guides" / "models" / f"{name}.html").read_text()
        assert pretrained.card(name)["sha256"][:16] in page, name
