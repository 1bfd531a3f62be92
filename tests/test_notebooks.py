"""The tutorial notebooks run top to bottom as committed (quick mode), and are committed without
outputs. A notebook that fails shows the failing cell and its traceback."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
NEEDS_MNIST = {"02_vae", "03_cvae", "04_gmvae", "05_vrnn"}


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
def test_notebook_runs_in_quick_mode(path, tmp_path, monkeypatch, request):
    if path.stem in NEEDS_MNIST:
        monkeypatch.setenv("AEVB_DATA_DIR", str(request.getfixturevalue("shared_mnist")))
    nb = nbformat.read(path, as_version=4)
    quick = [c for c in nb.cells if c.cell_type == "code" and "QUICK = True" in c.source]
    assert quick, f"{path.name} has no `QUICK = True` switch"
    # The kernel starts in tmp_path, so the notebook's runs/ folder lands there.
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert not errors
    images = sum("image/png" in o.get("data", {}) or "image/gif" in o.get("data", {})
                 for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert images >= 3, f"{path.name} drew {images} figures; every notebook shows the tutorial's"
