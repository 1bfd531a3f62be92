"""The Python way in (`aevb.fit`, `aevb.open`, `aevb.Run`) on arrays it makes, as a new user would."""

import doctest
import json
import math
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

import aevb
from aevb.cli import main

GAUSSIAN = {"preprocess": "none", "likelihood": "gaussian", "hidden": 16, "latent_dim": 3}


def arrays(n=120, d=12, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x[: n * 3 // 4], x[n * 3 // 4 :]


def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_fit_on_arrays_saves_a_copy_that_the_command_line_reads(tmp_path, capsys):
    x_train, x_test = arrays()
    run = aevb.fit("vae", x_train, torch.from_numpy(x_test), out=tmp_path / "r", epochs=2, quiet=True,
                   **GAUSSIAN)
    saved = json.loads((tmp_path / "r" / "config.json").read_text())["data"]
    assert saved["from_memory"] is True and saved["dataset"] == str(tmp_path / "r" / "data.npz")
    with np.load(tmp_path / "r" / "data.npz") as f:
        assert np.array_equal(f["x_train"], x_train) and np.array_equal(f["x_test"], x_test)
    assert [m["epoch"] for m in run.metrics] == [1, 2] and run.config.model_config.latent_dim == 3
    result = run.evaluate(iwae_samples=5)
    code, out, _ = cli(capsys, "evaluate", tmp_path / "r", "--iwae-samples", 5, "--json")
    assert code == 0 and json.loads(out) == result and result["iwae"] >= result["elbo"] - 1.0
    assert run.sample(4, mode="param").shape == (4, 12)
    assert np.array_equal(run.sample(3, seed=1), run.sample(3, seed=1))
    z = run.encode(x_test)
    assert z.shape == (len(x_test), 3) and np.array_equal(z, run.codes()["z"])  # the run's own test split
    # the run directory moved elsewhere still finds its data, and resumes
    shutil.move(tmp_path / "r", tmp_path / "moved")
    moved = aevb.open(tmp_path / "moved")
    assert moved.evaluate()["elbo"] == result["elbo"]
    assert [m["epoch"] for m in moved.resume(epochs=3, quiet=True).metrics] == [1, 2, 3]


def test_fit_takes_labels_ragged_sequences_and_clusters(tmp_path):
    rng = np.random.default_rng(1)
    x_train, x_test = arrays()
    y = rng.integers(0, 3, 120)
    cvae = aevb.fit("cvae", x_train, x_test, y_train=y[:90], y_test=y[90:], out=tmp_path / "c", epochs=1,
                    quiet=True, **GAUSSIAN)
    assert cvae.sample(5, label=2).shape == (5, 12) and cvae.encode(x_test[:4], y=y[:4]).shape == (4, 3)
    with pytest.raises(aevb.AevbError, match="labels of this run are 0..2"):
        cvae.sample(2, label=3)
    seqs = (rng.random((40, 5, 3)) < 0.5).astype(np.float32)
    lengths = rng.integers(1, 6, 40)
    vrnn = aevb.fit("vrnn", seqs[:30], seqs[30:], lengths_train=lengths[:30], lengths_test=lengths[30:],
                    out=tmp_path / "v", epochs=1, quiet=True, preprocess="none", latent_dim=2)
    assert vrnn.encode(seqs[:4], lengths=lengths[:4]).shape == (4, 5, 2)
    bits = (rng.random((100, 20)) < 0.3).astype(np.float32)
    gmvae = aevb.fit("gmvae", bits[:80], bits[80:], out=tmp_path / "g", epochs=1, quiet=True,
                     preprocess="none", init="random")  # the UMAP start: tests/test_gmvae_start.py
    z, q = gmvae.encode(bits[:6])
    assert z.shape == (6, gmvae.config.model_config.latent_dim) and q.shape == (6, gmvae.model.n_clusters)
    assert np.allclose(q.sum(1), 1, atol=1e-5)
    assert len(gmvae.figures()) >= 1


def test_fit_on_a_named_dataset_with_a_recipe(tmp_path):
    run = aevb.fit("fa", dataset="fa-synthetic", config="fa-tutorial", out=tmp_path / "fa", epochs=1,
                   max_steps=5, quiet=True)
    assert run.config.data.dataset == "fa-synthetic" and not run.config.data.from_memory
    assert run.metrics[-1]["step"] == 5


def test_evaluate_reports_the_discrete_bound_in_bits_per_dimension(tmp_path):
    """Dequantized 8-bit pixels: -log2 P(x) per pixel <= -ELBO / (784 ln 2) + 8; none for FA's reals."""
    run = aevb.fit("vae", dataset="mnist-sample", out=tmp_path / "vae", max_steps=5, quiet=True)
    r = run.evaluate(iwae_samples=5, subset=50, elbo_samples=2)
    assert r["bits_per_dim"] == pytest.approx(-r["elbo"] / (784 * math.log(2)) + 8)
    assert r["iwae_bits_per_dim"] == pytest.approx(-r["iwae"] / (784 * math.log(2)) + 8)
    fa = aevb.fit("fa", dataset="fa-synthetic", out=tmp_path / "fa", max_steps=5, quiet=True)
    assert "bits_per_dim" not in fa.evaluate(iwae_samples=5)


@pytest.mark.parametrize("bad, match", [
    ({"x_train": np.zeros(10)}, "x_train has shape (10,)"),
    ({"x_train": np.array([["a", "b"]] * 4)}, "x_train has dtype <U1"),
    ({"x_train": np.full((4, 2), np.nan)}, "x_train has NaN or infinite values in 4 rows"),
    ({"x_test": np.zeros((3, 5))}, "x_train rows have shape (2,) but x_test rows have (5,)"),
    ({"y_train": np.zeros(3, int), "y_test": np.zeros(3, int)}, "y_train has shape (3,), expected (4,)"),
    ({"y_train": np.zeros(4, int)}, "give both y_train and y_test"),
    ({"y_train": np.full(4, 0.5), "y_test": np.zeros(3, int)}, "integer class labels"),
    ({"lengths_train": np.ones(4, int), "lengths_test": np.ones(3, int)}, "lengths_train is given"),
    ({"x_test": None}, "give both x_train and x_test"),
    ({"dataset": "mnist-sample"}, "not both"),
])
def test_bad_arrays_are_one_error_and_write_nothing(tmp_path, bad, match):
    given = {"x_train": np.zeros((4, 2), np.float32), "x_test": np.zeros((3, 2), np.float32), **bad}
    with pytest.raises(aevb.AevbError, match=match.replace("(", r"\(").replace(")", r"\)")) as e:
        aevb.fit("vae", given.pop("x_train"), given.pop("x_test"), out=tmp_path / "r", quiet=True,
                 **given, **GAUSSIAN)
    assert "\n" not in str(e.value) and "aevb.fit" in str(e.value)
    assert not (tmp_path / "r").exists() and list(tmp_path.iterdir()) == []


def test_an_existing_run_is_untouched_and_a_missing_one_is_named(tmp_path):
    x_train, x_test = arrays()
    aevb.fit("vae", x_train, x_test, out=tmp_path / "r", epochs=1, quiet=True, **GAUSSIAN)
    before = {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir() if p.is_file()}
    with pytest.raises(aevb.AevbError, match="already holds a run"):
        aevb.fit("vae", x_train, x_test, out=tmp_path / "r", quiet=True, **GAUSSIAN)
    assert {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir() if p.is_file()} == before
    with pytest.raises(aevb.AevbError, match="no checkpoint here"):
        aevb.open(tmp_path / "nothing")
    run = aevb.open(tmp_path / "r")
    with pytest.raises(aevb.AevbError, match="has shape"):
        run.encode(np.zeros(5))
    with pytest.raises(aevb.AevbError, match="datapoints of shape"):
        run.encode(np.zeros((2, 7), np.float32))


def test_importing_aevb_leaves_plotting_and_process_settings_alone():
    code = ("import sys, torch, aevb; assert not torch._C._get_denormal_flush() if hasattr(torch._C, "
            "'_get_denormal_flush') else True; print(sorted(m for m in ('matplotlib', 'umap', 'sklearn', "
            "'tensorboard') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_every_public_name_has_a_docstring_with_an_example():
    for name in aevb.__all__:
        if name.startswith("__"):
            continue
        doc = getattr(aevb, name).__doc__ or ""
        assert doc.strip(), name
        assert ">>>" in doc, name  # an example, run by test_the_api_examples_run


def test_the_api_examples_run(tmp_path, monkeypatch):
    """The doctests of the public API and the helpers it documents, run as written."""
    import aevb.api
    import aevb.config
    import aevb.errors
    import aevb.reports.console
    import aevb.runs.load
    import aevb.runs.resolve

    monkeypatch.chdir(tmp_path)
    modules = (aevb.api, aevb.config, aevb.errors, aevb.reports.console, aevb.runs.load, aevb.runs.resolve)
    for module in modules:
        failed, tried = doctest.testmod(module, optionflags=doctest.ELLIPSIS, extraglobs={"np": np})
        assert tried and not failed, module.__name__
