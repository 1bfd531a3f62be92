"""The tutorial notebooks are committed without outputs and are the docs' tutorial pages; the
docs build runs them top to bottom in quick mode (tests/test_docs.py)."""

from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_there_are_five_notebooks():
    assert [p.stem[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, (
                f"{path.name} holds outputs; strip them with `nbstripout notebooks/*.ipynb`")
    assert "widgets" not in nb.metadata


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_has_a_quick_mode_and_is_a_page_of_the_docs(path):
    """The docs build (tests/test_docs.py) executes every notebook in its quick mode and fails on
    an error; here, that each has the switch and is one of the tutorials' pages."""
    nb = nbformat.read(path, as_version=4)
    assert [c for c in nb.cells if c.cell_type == "code" and "QUICK = True" in c.source], path.name
    page = path.parents[1] / "docs" / "tutorials" / path.name
    assert page.is_symlink() and page.resolve() == path.resolve()
