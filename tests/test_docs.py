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
from conftest import SHARED_DATA as SHARED

ROOT = Path(__file__).resolve().parents[1]


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
        assert f" {recipe} " in results, recipe  # a row of the table, which `aevb reproduce RECIPE` makes
    assert "aevb reproduce RECIPE" in results
    from aevb.runs import pretrained

    for name in pretrained.names():
        page = (site / "guides" / "models" / f"{name}.html").read_text()
        assert pretrained.card(name)["sha256"][:16] in page, name


# Words of the project's history, which belong in CHANGELOG.md and git, never on a user's page.
HISTORY = re.compile(r"\b(issues? \d+|sessions?|today|yesterday)\b|\b20\d\d-\d\d-\d\d\b|\.\./shared", re.I)


def pages(site: Path) -> list[Path]:
    """Every page a reader sees, the source listings included; the changelog is the history."""
    skip = {"_sources", "changelog.html"}
    return [p for p in sorted(site.rglob("*.html")) if not skip & set(p.relative_to(site).parts)]


def test_no_page_and_not_the_readme_speaks_of_the_projects_history(site):
    found = {str(p.relative_to(site)): HISTORY.findall(text(p)) for p in pages(site)}
    found["README.md"] = HISTORY.findall((ROOT / "README.md").read_text())
    assert not {page: hits for page, hits in found.items() if hits}


def test_flags_render_as_typed(site):
    for page in pages(site):
        dashed = re.findall(r"[\u2013\u2014][a-z][a-z-]*", text(page))
        assert not dashed, (page.name, dashed[:5])
    assert "--list" in text(site / "reference" / "cli.html")


def test_every_link_and_anchor_of_the_site_resolves(site):
    from html import unescape
    from urllib.parse import urlparse

    everything = sorted(site.rglob("*.html"))
    ids = {p: set(re.findall(r'\sid="([^"]+)"', p.read_text())) for p in everything}
    broken = []
    for page in everything:
        for href in re.findall(r'href="([^"]+)"', page.read_text()):
            link = urlparse(unescape(href))
            if link.scheme:
                continue
            target = (page.parent / link.path).resolve() if link.path else page
            if link.path and not target.exists():
                broken.append((page.name, href))
            elif link.fragment and target.suffix == ".html" and link.fragment not in ids[target]:
                broken.append((page.name, href))
    assert not broken, broken[:10]


def test_the_api_reference_documents_every_public_parameter(site):
    import inspect

    api = text(site / "reference" / "api.html")
    for name in ("fit", "open"):
        for param in inspect.signature(getattr(aevb, name)).parameters:
            assert re.search(rf"\b{param}\b \(.*?\) --", api) or f"{param} --" in api, (name, param)
    for method in ("evaluate", "sample", "codes", "encode", "resume", "figures"):
        for param in list(inspect.signature(getattr(aevb.Run, method)).parameters)[1:]:
            assert f"{param} (" in api or f"{param} --" in api, (method, param)
    assert "Any" not in re.findall(r"\((\w+)\) --", api)
