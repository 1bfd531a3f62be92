"""`--tensorboard`: the event files, read back with TensorBoard's own reader, hold each epoch's
ELBOs, metrics, learning rate and samples once per step, across a resume."""

import builtins
import json

import pytest

from aevb.cli import main

pytest.importorskip("tensorboard")  # a test extra; the default suite installs it
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

ARGS = ["--dataset", "mnist-sample", "--batch-size", "100", "--hidden", "32", "--latent-dim", "4",
        "--eval-samples", "1", "--quiet"]


def events(run):
    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


def test_scalars_and_samples_match_the_metrics_across_a_resume(tmp_path):
    run = tmp_path / "run"
    assert main(["train", "vae", *ARGS, "--epochs", "2", "--out", str(run), "--tensorboard"]) == 0
    # the config keeps --tensorboard, so both resumes append to the same log
    assert main(["train", "vae", "--resume", "--out", str(run), "--epochs", "3", "--quiet"]) == 0
    assert main(["train", "vae", "--resume", "--out", str(run), "--epochs", "4", "--quiet"]) == 0
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    acc = events(run)
    tags = acc.Tags()
    assert {"elbo/train", "elbo/test", "lr"} <= set(tags["scalars"]) and tags["images"] == ["samples"]
    train = acc.Scalars("elbo/train")
    assert [e.step for e in train] == [m["step"] for m in metrics] == sorted({e.step for e in train})
    test = [round(e.value, 3) for e in acc.Scalars("elbo/test")]
    assert test == [round(m["test_elbo"], 3) for m in metrics]
    assert [e.value for e in acc.Scalars("lr")] == pytest.approx([3e-4] * len(metrics))
    assert len(acc.Images("samples")) == len(metrics)


def test_a_resumed_run_drops_what_was_logged_after_its_checkpoint(tmp_path):
    run = tmp_path / "run"
    assert main(["train", "vae", *ARGS, "--epochs", "2", "--out", str(run), "--tensorboard"]) == 0
    # as if killed after logging epoch 2 but before its checkpoint: put epoch 1's checkpoint back
    first = tmp_path / "first"
    assert main(["train", "vae", *ARGS, "--epochs", "1", "--out", str(first)]) == 0
    (run / "checkpoint.safetensors").write_bytes((first / "checkpoint.safetensors").read_bytes())
    assert main(["train", "vae", "--resume", "--out", str(run), "--epochs", "2", "--quiet"]) == 0
    steps = [e.step for e in events(run).Scalars("elbo/train")]
    assert steps == sorted(set(steps)) and len(steps) == 2


def test_without_the_package_it_is_one_line_naming_the_extra(tmp_path, capsys, monkeypatch):
    real = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):
        if name.split(".")[0] == "tensorboard":
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    code = main(["train", "vae", *ARGS, "--epochs", "1", "--out", str(tmp_path / "run"), "--tensorboard"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "pip install tensorboard" in err
    assert not (tmp_path / "run").exists()


def test_fit_logs_for_tensorboard_too(tmp_path):
    import numpy as np

    import aevb

    x = np.random.default_rng(0).random((120, 6)).astype(np.float32)
    run = aevb.fit("vae", x[:90], x[90:], out=tmp_path / "r", epochs=2, preprocess="none", hidden=8,
                   quiet=True, tensorboard=True)
    assert run.config.train.tensorboard
    assert [e.step for e in events(tmp_path / "r").Scalars("elbo/test")] == [m["step"] for m in run.metrics]
