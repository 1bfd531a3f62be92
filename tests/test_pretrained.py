"""The shipped pretrained models: present, SHA-256 checked, loadable, and as good as their cards say;
and `aevb reproduce`, which trains a recipe or fetches its shipped model."""

import json
import shutil

import pytest
import torch

import aevb
from aevb.cli import main as _main
from aevb.errors import AevbError
from aevb.evaluate import evaluate
from aevb.runs import export, open_run, pretrained, reproduce
from aevb.runs.load import load_model


def main(argv):
    return _main([str(a) for a in argv])


SHIPPED = ["cvae-mnist", "cvae-tutorial-mnist", "gmvae-mnist", "gmvae-tutorial-mnist", "gmvae-umap-mnist",
           "vae-bernoulli-mnist", "vae-mnist", "vrnn-mnist"]


def test_every_recipe_with_a_shipped_model_has_one():
    promised = {reproduce.recipe(n).get("pretrained") for n in reproduce.names()} - {None}
    assert promised == set(SHIPPED) and set(SHIPPED) <= set(pretrained.names())


def test_shipped_files_stay_small():
    total = sum(p.stat().st_size for p in pretrained.DIR.iterdir())
    assert total < 30e6, f"shipped models take {total / 1e6:.1f} MB; the budget is 30 MB"


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_matches_its_card_and_loads(name):
    card = pretrained.card(name)
    path = pretrained.checkpoint(name)  # checks the SHA-256
    assert pretrained.sha256(path) == card["sha256"] and card["bytes"] == path.stat().st_size
    model = aevb.load_pretrained(name)
    assert not model.training and model.name == card["model"] == name.split("-")[0]
    for key in ("recipe", "dataset", "preprocess", "epochs", "training_seconds", "metrics",
                "code_version", "weights_dtype"):
        assert card[key] is not None, key
    with torch.no_grad():
        x = model.sample(4, torch.arange(4) if model.uses_labels else None)
    assert torch.isfinite(x).all()


def test_a_changed_weights_file_is_refused(tmp_path, monkeypatch):
    name = SHIPPED[0]
    for suffix in (".json", ".safetensors"):
        shutil.copy(pretrained.DIR / f"{name}{suffix}", tmp_path)
    monkeypatch.setattr(pretrained, "DIR", tmp_path)
    raw = bytearray((tmp_path / f"{name}.safetensors").read_bytes())
    raw[-1] ^= 1  # one bit of one weight
    (tmp_path / f"{name}.safetensors").write_bytes(bytes(raw))
    with pytest.raises(AevbError, match="SHA-256"):
        aevb.load_pretrained(name)


def test_unknown_pretrained_name_is_one_line_error(capsys):
    assert main(["evaluate", "pretrained:no-such-model"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no pretrained model 'no-such-model'" in err and "vae-mnist" in err


@pytest.mark.parametrize("name", SHIPPED)
def test_quick_metric_agrees_with_card(name, shared_mnist):
    """The card's metric on the first 500 test images, recomputed (seeded draws: the same numbers
    up to float summation order on another CPU)."""
    card = pretrained.card(name)
    model, cfg, data, _ = open_run(pretrained.PREFIX + name, "cpu", data_dir=str(shared_mnist))
    got = evaluate(model, data, "test", cfg.train.eval_batch_size, 0, 0,
                   elbo_samples=10 * cfg.train.eval_samples, subset=export.QUICK_POINTS)
    want = card["quick_metrics"]
    assert got["n"] == want["n"] == export.QUICK_POINTS
    assert got["elbo"] == pytest.approx(want["elbo"], abs=0.05)
    if "cluster_accuracy" in want:
        assert got["cluster_accuracy"] == pytest.approx(want["cluster_accuracy"], abs=0.005)


def test_pretrained_list_shows_every_model(capsys):
    assert main(["pretrained", "list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in SHIPPED)
    assert main(["pretrained", "list", "--json"]) == 0
    cards = json.loads(capsys.readouterr().out)
    assert sorted(cards) == sorted(pretrained.names())


def test_sample_from_a_pretrained_model(tmp_path, capsys):
    out = tmp_path / "s.npy"
    assert main(["sample", "pretrained:cvae-mnist", "--n", "5", "--label", "3", "--out", out]) == 0
    import numpy as np

    assert np.load(out).shape == (5, 784)


def test_load_model_gives_the_recipe_config():
    model, cfg, meta = load_model("pretrained:vae-mnist")
    assert cfg.model == "vae" and cfg.data.data_dir is None and meta["pretrained"] == "vae-mnist"
    assert meta["metrics"], "the learning curve travels with the weights"


# -- aevb reproduce ---------------------------------------------------------------------------------

def test_reproduce_list_names_every_recipe(capsys):
    assert main(["reproduce", "--list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in reproduce.names()) and "vae-tutorial" in out


def test_reproduce_smoke_run_writes_results_and_figures(tmp_path, capsys, monkeypatch):
    # the tutorial's two FA experiments, shortened: their full 7,000 steps are test_fa_figures' (slow)
    from aevb.reports import fa_experiments as experiments

    short_1, short_2 = experiments.experiment_1, experiments.experiment_2
    monkeypatch.setattr(experiments, "experiment_1", lambda *run: short_1(*run, steps=50))
    monkeypatch.setattr(experiments, "experiment_2", lambda *run: short_2(*run, phase_steps=20, phases=4))
    out = tmp_path / "fa"
    assert main(["reproduce", "fa-tutorial", "--max-steps", "40", "--out", out, "--quiet"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["recipe"] == "fa-tutorial" and results["steps"] == 40
    assert results["reference"]["value"] == -4.0 and "ours" in results["reference"]
    assert results["metrics"]["log_likelihood"] == results["reference"]["ours"]
    assert sorted(results["figures"]) == sorted(f"figures/{name}" for name in [
        "learning-curve.png", "samples-over-test-data.png", "fa-experiment1-learning.png",
        "fa-experiment1-learning.pdf", "fa-experiment2-alternating.png",
        "fa-experiment2-alternating.pdf"])  # the tutorial's FA figures, as `aevb figures` draws them
    assert all((out / f).is_file() for f in results["figures"])
    assert "fa-tutorial: log_likelihood" in capsys.readouterr().out


def test_reproduce_reports_a_recipe_scored_without_a_published_number(tmp_path, capsys, monkeypatch):
    # vae-fashion's [reference] names its metric but no value: the summary line says so
    ref = {"metric": "iwae", "iwae_samples": 1000, "ours": 2077.9}
    monkeypatch.setattr(reproduce, "reproduce", lambda *a, **k: {"reference": ref, "source": "trained here"})
    assert main(["reproduce", "vae-fashion", "--out", tmp_path / "f", "--quiet"]) == 0
    assert "vae-fashion: iwae 2078 (no published reference)" in capsys.readouterr().out


def test_reproduce_refuses_unknown_recipe_and_pretrained_without_one(tmp_path, capsys):
    assert main(["reproduce", "no-such", "--out", tmp_path / "x"]) == 2
    assert "no recipe 'no-such'" in capsys.readouterr().err
    assert main(["reproduce", "fa", "--pretrained", "--out", tmp_path / "y"]) == 2
    assert "has no shipped model" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


@pytest.mark.slow
def test_reproduce_pretrained_vae(tmp_path, shared_mnist):
    out = tmp_path / "vae"
    assert main(["reproduce", "vae-tutorial", "--pretrained", "--out", out, "--quiet",
                 "--data-dir", shared_mnist]) == 0
    results = json.loads((out / "results.json").read_text())
    card = pretrained.card("vae-mnist")
    assert results["metrics"]["elbo"] == pytest.approx(card["metrics"]["elbo"], abs=0.05)
    assert (out / "figures" / "learning-curve.png").is_file()


def test_a_shipped_model_cannot_be_resumed(capsys):
    assert main(["train", "vae", "--resume", "--out", "pretrained:vae-mnist"]) == 2
    assert "cannot be resumed" in capsys.readouterr().err


def test_export_writes_weights_and_a_card_that_load_back(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    # one draw per test point in the run's evaluation, so export and evaluate score 10, not 100
    assert main(["train", "vae", "--dataset", "mnist-sample", "--max-steps", "5", "--hidden", "16",
                 "--eval-samples", "1", "--out", run, "--quiet"]) == 0
    shipped = tmp_path / "shipped"
    assert main(["pretrained", "export", run, "tiny-vae", "--recipe", "vae-tutorial", "--out", shipped,
                 "--note", "a test"]) == 0
    monkeypatch.setattr(pretrained, "DIR", shipped)
    card = pretrained.card("tiny-vae")
    assert card["sha256"] == pretrained.sha256(shipped / "tiny-vae.safetensors")
    assert card["steps"] == 5 and card["note"] == "a test"
    assert card["reproduce"] == "aevb reproduce vae-tutorial"
    assert card["code_version"]["torch"] == torch.__version__ and card["code_version_of"] == "training"
    assert card["quick_metrics"]["n"] == export.QUICK_POINTS
    assert card["config"]["data"]["data_dir"] is None
    want_dtype = torch.float16 if card["weights_dtype"] == "float16" else torch.float32
    from safetensors.torch import load_file

    stored = load_file(str(shipped / "tiny-vae.safetensors"))
    assert all(v.dtype == want_dtype for v in stored.values() if v.is_floating_point())
    assert not any(k.startswith(("optim/", "rng/")) for k in stored), "no optimiser or RNG state shipped"
    capsys.readouterr()
    assert main(["evaluate", "pretrained:tiny-vae", "--json"]) == 0
    measured = json.loads(capsys.readouterr().out)
    assert measured["elbo"] == pytest.approx(card["metrics"]["elbo"], abs=1e-6)
