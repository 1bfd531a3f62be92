"""The command line as a user meets it: smoke runs for every model, JSON output, one-line errors."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from aevb import runs
from aevb.cli import main
from aevb.errors import AevbError
from aevb.models import registry
from aevb.runs.load import load_checkpoint


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def expect_usage_error(capsys, *argv, match=""):
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert e.value.code == 2 and out == ""
    assert err.count("\n") == 1 and match in err, err
    return err


OFFLINE_DATASET = {"fa": "fa-synthetic"}  # every other model trains on the packaged MNIST sample


@pytest.mark.parametrize("name", sorted(registry.MODELS))
def test_smoke_every_model(tmp_path, capsys, name):
    run = tmp_path / "run"
    dataset = OFFLINE_DATASET.get(name, "mnist-sample")
    code, _, _ = run_cli(capsys, "train", name, "--dataset", dataset, "--max-steps", 5, "--out", run,
                         "--quiet")
    assert code == 0 and (run / "checkpoint.safetensors").is_file()
    # 3 draws on 200 test points: the VRNN's 28 steps over the 1,000 test sequences took 45 s with
    # 10 and 10 draws
    code, out, _ = run_cli(capsys, "evaluate", run, "--json", "--iwae-samples", 3, "--elbo-samples", 3,
                           "--subset", 200)
    result = json.loads(out)  # exactly one JSON object on stdout
    assert code == 0 and result["model"] == name and result["split"] == "test" and result["n"] == 200
    assert result["iwae_samples"] == 3 and result["elbo"] <= result["iwae"] + 0.05
    code, _, _ = run_cli(capsys, "sample", run, "--n", 16, "--out", tmp_path / "s.npy")
    assert code == 0 and np.load(tmp_path / "s.npy").shape[0] == 16
    code, _, _ = run_cli(capsys, "sample", run, "--n", 16, "--out", tmp_path / "s.png")
    assert code == 0 and (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"


def test_fa_evaluate_json_has_exact_log_likelihood(tmp_path, capsys, fa_npz):
    run = tmp_path / "run"
    run_cli(capsys, "train", "fa", "--dataset", fa_npz, "--epochs", 2, "--out", run, "--quiet")
    code, out, _ = run_cli(capsys, "evaluate", run, "--json")
    result = json.loads(out)
    assert {"model", "dataset", "split", "n", "elbo", "log_likelihood"} <= set(result)
    assert result["n"] == 1000 and result["dataset"] == str(fa_npz)
    assert result["elbo"] < result["log_likelihood"]


def test_a_relative_npz_path_is_found_from_anywhere(tmp_path, capsys, fa_npz, monkeypatch):
    # config.json records the file's absolute path, so evaluate and figures work from another folder
    monkeypatch.chdir(tmp_path)
    args = ["train", "fa", "--dataset", "fa.npz", "--latent-dim", 2, "--out", "run", "--quiet"]
    assert run_cli(capsys, *args, "--epochs", 1)[0] == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["data"]["dataset"] == str(fa_npz)
    assert run_cli(capsys, *args, "--epochs", 2, "--resume")[0] == 0  # the same file, spelt as before
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    code, out, _ = run_cli(capsys, "evaluate", tmp_path / "run", "--json")
    assert code == 0 and json.loads(out)["dataset"] == str(fa_npz) and json.loads(out)["epoch"] == 2
    fa_npz.rename(tmp_path / "moved.npz")
    code, _, err = run_cli(capsys, "evaluate", tmp_path / "run")
    assert code == 2 and err.count("\n") == 1 and f"was trained on {fa_npz}, which is no longer there" in err
    code, out, _ = run_cli(capsys, "evaluate", tmp_path / "run", "--dataset", "../moved.npz", "--json")
    assert code == 0 and json.loads(out)["dataset"] == str(tmp_path / "moved.npz")


def test_evaluate_on_other_data_checks_it_fits(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x, y = rng.random((40, 6)), np.arange(40) % 3
    np.savez(tmp_path / "a.npz", x_train=x, x_test=x, y_train=y, y_test=y)
    run = tmp_path / "run"
    assert run_cli(capsys, "train", "cvae", "--dataset", tmp_path / "a.npz", "--preprocess", "none",
                   "--hidden", 8, "--latent-dim", 2, "--epochs", 1, "--out", run, "--quiet")[0] == 0
    np.savez(tmp_path / "b.npz", x_train=x, x_test=x[::-1], y_train=y, y_test=y)
    code, out, _ = run_cli(capsys, "evaluate", run, "--dataset", tmp_path / "b.npz", "--json")
    assert code == 0 and json.loads(out)["dataset"] == str(tmp_path / "b.npz")
    code, _, _ = run_cli(capsys, "figures", run, "--dataset", tmp_path / "b.npz", "--out", tmp_path / "f")
    assert code == 0 and (tmp_path / "f" / "learning-curve.png").is_file()
    np.savez(tmp_path / "c.npz", x_train=x[:, :5], x_test=x[:, :5], y_train=y, y_test=y)
    code, _, err = run_cli(capsys, "evaluate", run, "--dataset", tmp_path / "c.npz")
    assert code == 2 and "holds datapoints of shape (5,) but" in err and "models (6,)" in err
    np.savez(tmp_path / "d.npz", x_train=x, x_test=x, y_train=y + 1, y_test=y + 1)
    code, _, err = run_cli(capsys, "evaluate", run, "--dataset", tmp_path / "d.npz")
    assert code == 2 and "has 4 classes but" in err and "give labels 0..2" in err
    np.savez(tmp_path / "e.npz", x_train=x * 2, x_test=x, y_train=y, y_test=y)
    code, _, err = run_cli(capsys, "evaluate", run, "--dataset", tmp_path / "e.npz")
    assert code == 2 and err.count("\n") == 1 and "likelihood needs [0, 1]" in err
    assert "reads --dataset data with its own --preprocess none" in err

# slow: the tutorial's two FA experiments take 25 to 35 s here; the default suite draws the same
# figures through the same code, from shortened experiments, in test_pretrained's reproduce smoke test
@pytest.mark.slow
def test_fa_figures(tmp_path, capsys):
    run = tmp_path / "run"
    run_cli(capsys, "train", "fa", "--epochs", 2, "--out", run, "--quiet")
    code, out, _ = run_cli(capsys, "figures", run, "--out", tmp_path / "figs")
    names = sorted(p.name for p in (tmp_path / "figs").iterdir())
    assert code == 0 and names == sorted([
        "learning-curve.png", "samples-over-test-data.png", "fa-experiment1-learning.png",
        "fa-experiment1-learning.pdf", "fa-experiment2-alternating.png",
        "fa-experiment2-alternating.pdf"])
    assert len(out.splitlines()) == 6


@pytest.mark.parametrize("name", ["vae", "cvae", "gmvae"])
def test_image_model_figures_and_labels(tmp_path, capsys, name):
    run = tmp_path / "run"
    start = ["--init", "random"] if name == "gmvae" else []  # the UMAP start: test_gmvae_start.py
    run_cli(capsys, "train", name, "--dataset", "mnist-sample", "--epochs", 1, "--batch-size", 500,
            "--hidden", 16, *start, "--out", run, "--quiet")
    code, out, _ = run_cli(capsys, "figures", run)
    names = {p.name for p in (run / "figures").iterdir()}
    expected = {"learning-curve.png", "test-digits.png", "generations-param.png",
                "generations-mean.png", "generations-sample.png", "tsne-posterior-means.png",
                "tsne-posterior-means.pdf"}
    if name == "cvae":
        expected.add("generations-per-label.png")
    if name == "gmvae":
        expected |= {"generations-per-cluster.png", "cluster-proportions.png"}
    assert code == 0 and names == expected and len(out.splitlines()) == len(expected)
    code, _, err = run_cli(capsys, "sample", run, "--label", 3, "--mode", "param", "--n", 8,
                           "--out", tmp_path / "s.npy")
    if name == "cvae":
        x = np.load(tmp_path / "s.npy")
        assert code == 0 and x.shape == (8, 784) and 0 <= x.min() and x.max() <= 1
        code, _, err = run_cli(capsys, "sample", run, "--label", 10, "--out", tmp_path / "s.npy")
        assert code == 2 and "labels of this run are 0..9" in err
    else:
        assert code == 2 and "not conditioned on labels" in err
    code, _, err = run_cli(capsys, "sample", run, "--cluster", 9, "--n", 4, "--mode", "param",
                           "--out", tmp_path / "c.npy")
    if name == "gmvae":
        assert code == 0 and np.load(tmp_path / "c.npy").shape == (4, 784)
        code, _, err = run_cli(capsys, "sample", run, "--cluster", 10, "--out", tmp_path / "c.npy")
        assert code == 2 and "clusters of this run are 0..9" in err
    else:
        assert code == 2 and "has no discrete clusters" in err


def test_gmvae_logs_and_reports_cluster_metrics(tmp_path, capsys):
    run = tmp_path / "run"
    code, _, _ = run_cli(capsys, "train", "gmvae", "--dataset", "mnist-sample", "--epochs", 1,
                         "--hidden", 32, "--latent-dim", 4, "--components", 3, "--init", "random",
                         "--out", run, "--quiet")
    record = json.loads((run / "metrics.jsonl").read_text())
    assert code == 0 and {"test_elbo", "test_cluster_accuracy", "test_nmi", "test_qy_entropy"} <= set(record)
    code, out, _ = run_cli(capsys, "evaluate", run, "--json", "--elbo-samples", 2)
    result = json.loads(out)
    assert code == 0 and 0.1 <= result["cluster_accuracy"] <= 1 and 0 <= result["nmi"] <= 1
    assert 0 <= result["qy_entropy"] <= math.log(3) + 1e-6
    assert result["cluster_accuracy"] == pytest.approx(record["test_cluster_accuracy"])


def test_config_file_and_flags_layer(tmp_path, capsys):
    toml = tmp_path / "r.toml"
    toml.write_text('model = "fa"\n[train]\nepochs = 2\nbatch_size = 100\nlr = 0.02\n'
                    '[model_config]\nlearn_mean = true\n')
    run = tmp_path / "run"
    code, _, _ = run_cli(capsys, "train", "fa", "--config", toml, "--batch-size", 250, "--out", run,
                         "--quiet")
    saved = json.loads((run / "config.json").read_text())
    assert code == 0 and saved["train"]["epochs"] == 2 and saved["train"]["lr"] == 0.02
    assert saved["train"]["batch_size"] == 250  # the flag wins over the file
    assert saved["model_config"]["learn_mean"] is True


def test_python_config_layers_as_the_command_line_does(tmp_path, capsys):
    """`runs.config` (the README's "From Python") builds the config the same flags would."""
    toml = tmp_path / "r.toml"
    toml.write_text('model = "vae"\n[train]\nepochs = 2\nlr = 0.002\n[model_config]\nhidden = 16\n')
    run_cli(capsys, "train", "vae", "--config", toml, "--dataset", "mnist-sample", "--max-steps", 3,
            "--latent-dim", 4, "--out", tmp_path / "cli", "--quiet")
    runs.train(runs.config("vae", toml, dataset="mnist-sample", max_steps=3, latent_dim=4),
               str(tmp_path / "py"), quiet=True)
    cli, py = (json.loads((tmp_path / d / "config.json").read_text()) for d in ("cli", "py"))
    assert py == cli
    assert py["train"]["lr"] == 0.002 and py["model_config"]["hidden"] == 16
    assert py["model_config"]["latent_dim"] == 4 and py["train"]["max_steps"] == 3
    with pytest.raises(AevbError, match="'latent' is not a setting of vae; use one of .*latent_dim"):
        runs.config("vae", latent=4)
    with pytest.raises(AevbError, match="unknown model 'vea'"):
        runs.config("vea")


def test_resume_from_the_command_line(tmp_path, capsys):
    run = tmp_path / "run"
    run_cli(capsys, "train", "fa", "--max-steps", 10, "--out", run, "--quiet")
    code, _, _ = run_cli(capsys, "train", "fa", "--resume", "--max-steps", 40, "--out", run, "--quiet")
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert code == 0 and json.loads(lines[-1])["step"] == 40


@pytest.mark.parametrize("argv, match", [
    (["train", "fa", "--dataset", "nope"], "unknown dataset 'nope'"),
    (["train", "fa", "--dataset", "missing.npz"], "no such file"),
    (["train", "fa", "--preprocess", "whiten"], "unknown preprocessing 'whiten'"),
    (["train", "fa", "--device", "tpu"], "unknown device 'tpu'"),
    (["train", "fa", "--config", "absent.toml"], "absent.toml does not exist"),
    (["train", "fa", "--resume"], "--resume needs --out"),
    (["evaluate", "no-such-run"], "no checkpoint here"),
    (["sample", "no-such-run", "--out", "x.gif"], "use a .png or .pdf file"),
])
def test_input_errors_are_one_line(tmp_path, capsys, monkeypatch, argv, match):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, *argv)
    assert code == 2 and out == "" and err.count("\n") == 1 and match in err, err
    assert err.startswith("aevb: error: ") and "Traceback" not in err
    assert not (tmp_path / "runs").exists()  # nothing half-written


def test_divergence_is_one_line_and_writes_no_nan(tmp_path, capsys):
    run = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "fa", "--lr", 1e4, "--epochs", 2, "--out", run, "--quiet")
    assert code == 2 and err.count("\n") == 1 and "training diverged" in err and "lower --lr" in err
    assert "nan" not in (run / "metrics.jsonl").read_text().lower()
    tensors, meta = load_checkpoint(run)  # the last good one: here the step-0 checkpoint
    assert meta["step"] == 0 and all(torch.isfinite(t).all() for t in tensors.values())


def test_bad_toml_values(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    for text, match in [('[train]\nepochs = "many"\n', "'epochs' must be int"),
                        ("[train]\nepoch = 3\n", "unknown option 'epoch'"),
                        ("[trian]\n", "unknown section 'trian'"),
                        ('model = "vae"\n', "recipe for model 'vae'"),
                        ("[train\n", "not valid TOML")]:
        bad.write_text(text)
        code, _, err = run_cli(capsys, "train", "fa", "--config", bad, "--out", tmp_path / "r")
        assert code == 2 and match in err and err.count("\n") == 1, err


def test_usage_errors(capsys):
    expect_usage_error(capsys, "train", "fa", "--epochs", "ten", match="invalid int value")
    expect_usage_error(capsys, "train", "gan", match="invalid choice")
    expect_usage_error(capsys, "frobnicate", match="invalid choice")
    expect_usage_error(capsys, "train", "fa", "--no-such-flag", match="unrecognized arguments")


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and out.startswith("aevb ") and f"torch {torch.__version__}" in out


def test_help_shows_recipe_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["train", "fa", "--help"])
    out = capsys.readouterr().out
    assert "(default: fa-synthetic)" in out and "(default: 0.01)" in out and "--latent-dim" in out


def test_console_entry_points(tmp_path):
    for cmd in (["aevb", "--help"], [sys.executable, "-m", "aevb", "train", "fa", "--help"]):
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and "usage:" in done.stdout
    done = subprocess.run([sys.executable, "-m", "aevb", "evaluate", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.count("\n") == 1


def test_a_reader_that_leaves_early_is_no_error():
    # `aevb pretrained list | head -1`: the reader closes the pipe before aevb writes (aevb takes a
    # second or two to import torch), so the first print meets a broken pipe
    run = subprocess.Popen([sys.executable, "-m", "aevb", "pretrained", "list"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    run.stdout.close()
    err = run.stderr.read().decode()
    assert run.wait(timeout=120) == 141 and err == ""


def test_vrnn_on_user_sequences_with_lengths(tmp_path, capsys):
    rng = np.random.default_rng(0)
    t, d = 4, 6
    arrays = {f"x_{s}": (rng.random((n, t, d)) > 0.5).astype(np.float32) for s, n in
              (("train", 64), ("test", 32))}
    arrays |= {f"lengths_{s}": rng.integers(1, t + 1, n) for s, n in (("train", 64), ("test", 32))}
    np.savez(tmp_path / "seq.npz", **arrays, y_train=np.arange(64) % 2, y_test=np.arange(32) % 2)
    run = tmp_path / "run"
    code, _, _ = run_cli(capsys, "train", "vrnn", "--dataset", tmp_path / "seq.npz", "--preprocess",
                         "none", "--epochs", 2, "--batch-size", 16, "--hidden", 16, "--state-dim", 8,
                         "--out", run, "--quiet")
    assert code == 0
    code, out, _ = run_cli(capsys, "evaluate", run, "--json", "--iwae-samples", 5)
    r = json.loads(out)
    steps = arrays["lengths_test"].sum()
    assert r["elbo_per_step"] == pytest.approx(r["elbo"] * 32 / steps)
    assert r["iwae_per_step"] == pytest.approx(r["iwae"] * 32 / steps)
    code, out, _ = run_cli(capsys, "figures", run)
    names = {p.name for p in (run / "figures").iterdir()}
    assert code == 0 and {"generations-row-by-row.gif", "generations-mean.png", "learning-curve.png",
                          "tsne-posterior-means.png"} <= names
    from PIL import Image

    with Image.open(run / "figures" / "generations-row-by-row.gif") as gif:
        assert gif.n_frames == t  # one frame per generated row (the held last frame merges)
    code, _, _ = run_cli(capsys, "sample", run, "--n", 3, "--out", tmp_path / "s.npy")
    assert code == 0 and np.load(tmp_path / "s.npy").shape == (3, t, d)


@pytest.mark.parametrize("arrays, model, match", [
    ({"x_train": np.zeros((4, 6)), "x_test": np.zeros((4, 6))}, "vrnn",
     "give x_train and x_test as (N, T, D)"),
    ({"x_train": np.zeros((4, 3, 2)), "x_test": np.zeros((4, 3, 2)), "lengths_train": np.full(4, 2),
      "lengths_test": np.full(4, 2)}, "vae", "only a sequential model (vrnn) reads"),
    ({"x_train": np.zeros((4, 3, 2)), "x_test": np.zeros((4, 3, 2)), "lengths_train": np.full(4, 4),
      "lengths_test": np.full(4, 2)}, "vrnn", "lengths_train must lie in 1..3"),
    ({"x_train": np.zeros((4, 3, 2)), "x_test": np.zeros((4, 3, 2)), "lengths_train": np.full(4, 2)},
     "vrnn", "give both lengths_train and lengths_test"),
])
def test_sequence_input_errors(tmp_path, capsys, arrays, model, match):
    np.savez(tmp_path / "d.npz", **arrays)
    code, out, err = run_cli(capsys, "train", model, "--dataset", tmp_path / "d.npz", "--likelihood",
                             "gaussian", "--preprocess", "none", "--out", tmp_path / "run")
    assert code == 2 and err.count("\n") == 1 and match in err, err
    assert not (tmp_path / "run").exists()
