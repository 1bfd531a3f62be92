"""Faults the trainer survives: NaN/inf steps (stop or roll back), gradient clipping, Ctrl-C and
SIGTERM, and SIGKILL at any moment, including in the middle of a checkpoint write."""

import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from aevb import runs
from aevb.cli import main
from aevb.config import TrainConfig
from aevb.data import load
from aevb.errors import AevbError, Interrupted
from aevb.models import registry
from aevb.runs import launch
from aevb.runs.load import load_checkpoint
from aevb.training.faults import MAX_ROLLBACKS, ROLLBACK_LR
from aevb.training.trainer import Trainer
from run_outcome import assert_same

STEPS_PER_EPOCH = 32  # FA's 1000 training points at the recipe's batch of 32


def fa_config(**train):
    return runs.build_config("fa", [("test", {"train": train})])


def poison(model, step: int | None, where: str = "loss", every_after: bool = False):
    """Make the loss (where="loss"), the input batch (where="x") or the gradient of W (where="W")
    NaN at training step `step` (1-based), or at every step from it with `every_after`. Evaluation
    is untouched."""
    calls = [0]
    terms = model.terms

    def bad(now: int) -> bool:
        return now == step or (every_after and now >= step)

    def poisoned_terms(x, c=None, k=1):
        if not model.training:
            return terms(x, c, k)
        calls[0] += 1
        if where == "x" and bad(calls[0]):
            x = x * float("nan")
        t = terms(x, c, k)
        if where == "loss" and bad(calls[0]):
            t.log_px = t.log_px * float("nan")
        return t

    model.terms = poisoned_terms
    if where == "W":
        getattr(model, where).register_hook(lambda g: g * float("nan") if bad(calls[0]) else g)
    return model


def poisoned_build(monkeypatch, step, where="loss", every_after=False):
    build = launch.build_model
    monkeypatch.setattr(launch, "build_model",
                        lambda cfg, info: poison(build(cfg, info), step, where, every_after))


def finite_checkpoint(run: Path) -> dict:
    tensors, meta = load_checkpoint(run)
    assert all(torch.isfinite(v).all() for k, v in tensors.items() if k.startswith("model/"))
    return meta


@pytest.mark.parametrize("where, named", [("loss", "the loss is not finite"),
                                          ("W", "the gradient of W is not finite"),
                                          ("x", "MultivariateNormal got an invalid loc")])
def test_a_nan_stops_the_run_naming_step_and_tensor(tmp_path, monkeypatch, where, named):
    poisoned_build(monkeypatch, step=40, where=where)
    with pytest.raises(AevbError, match=f"diverged at step 40: {named}; the last good "
                                        "checkpoint is kept; lower --lr"):
        runs.train(fa_config(epochs=3), tmp_path / "run", quiet=True)
    meta = finite_checkpoint(tmp_path / "run")
    assert meta["step"] == STEPS_PER_EPOCH  # the last epoch end before the fault
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 1 and "nan" not in lines[0].lower()


def test_a_nan_gradient_is_named_with_clipping_too(tmp_path, monkeypatch):
    poisoned_build(monkeypatch, step=3, where="W")
    with pytest.raises(AevbError, match="diverged at step 3: the gradient of W is not finite"):
        runs.train(fa_config(epochs=1, clip_grad=1.0), tmp_path / "run", quiet=True)


def test_a_faulty_step_changes_nothing():
    data = load("fa-synthetic")
    torch.manual_seed(0)
    model = registry.get("fa")(registry.get("fa").Config(), (3,), None)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = Trainer(poison(model, step=1, where="W"), data, TrainConfig(epochs=1), quiet=True)
    with pytest.raises(AevbError, match="step 1: the gradient of W"):
        trainer.fit()
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k  # Adam skipped the whole update, not only W's
    assert all(s["step"].item() == 0 for s in trainer.steps.optimizer.state.values())


def test_rollback_restores_the_last_checkpoint_with_a_lower_learning_rate(tmp_path, monkeypatch):
    poisoned_build(monkeypatch, step=40)
    trainer = runs.train(fa_config(epochs=3, on_nan="rollback"), tmp_path / "run", quiet=True)
    lr = fa_config().train.lr * ROLLBACK_LR
    assert trainer.step == 3 * STEPS_PER_EPOCH  # the 8 steps after the last checkpoint were redone
    meta = finite_checkpoint(tmp_path / "run")
    assert meta["rollbacks"] == [{"fault": "step 40: the loss is not finite", "lr": lr}]
    assert meta["optimizer_groups"][0]["lr"] == lr
    assert json.loads((tmp_path / "run" / "config.json").read_text())["train"]["lr"] == lr
    records = [json.loads(s) for s in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3] and all(math.isfinite(r["test_elbo"]) for r in records)
    assert runs.resume(tmp_path / "run", {"epochs": 4}, quiet=True).cfg.lr == lr  # it stays lowered


def test_rollback_gives_up_when_lowering_the_rate_does_not_help(tmp_path, monkeypatch):
    poisoned_build(monkeypatch, step=40, every_after=True)
    with pytest.raises(AevbError, match=f"after {MAX_ROLLBACKS} rollbacks"):
        runs.train(fa_config(epochs=3, on_nan="rollback"), tmp_path / "run", quiet=True)
    assert finite_checkpoint(tmp_path / "run")["step"] == STEPS_PER_EPOCH


@pytest.mark.parametrize("clip", [None, 1e-3])
def test_clip_grad_bounds_the_gradient_norm(clip):
    data = load("fa-synthetic")
    model = registry.get("fa")(registry.get("fa").Config(), (3,), None)
    trainer = Trainer(model, data, TrainConfig(clip_grad=clip), quiet=True)
    trainer.train_step(data.train.x[:32])
    norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()]))
    if clip is None:
        assert norm > 1e-2  # so the clipped case below is a real test
    else:
        assert norm <= clip * (1 + 1e-4)


# -- signals and kills, through the real command line in a child process -------------------------

# A small VAE whose every random stream matters: dropout and posterior draws (global RNG), dynamic
# binarisation and shuffling (data RNG). 50 steps per epoch on the packaged MNIST sample.
TRAIN = ["train", "vae", "--dataset", "mnist-sample", "--preprocess", "binarize-dynamic",
         "--likelihood", "bernoulli", "--hidden", "64", "--latent-dim", "4", "--layers", "1",
         "--epochs", "4", "--batch-size", "100", "--eval-samples", "1", "--no-compile", "--quiet"]

# Runs `aevb` with checkpoint writes that SIGKILL the process on write number N, once the
# temporary file holds half the checkpoint: a crash in the middle of a write.
KILL_IN_WRITE = """
import os, signal, sys
import aevb.runs.checkpoints as c
from aevb.cli import main
real, n = c.save_file, [0]
def save_file(tensors, path, metadata=None):
    real(tensors, path, metadata=metadata)
    n[0] += 1
    if n[0] == int(os.environ["KILL_AT_WRITE"]):
        os.truncate(path, os.path.getsize(path) // 2)
        os.kill(os.getpid(), signal.SIGKILL)
c.save_file = save_file
sys.exit(main(sys.argv[1:]))
"""


def aevb(*argv, env=None, wait=True) -> subprocess.Popen:
    child_env = {**os.environ, **(env or {})}
    cmd = [sys.executable, "-c", KILL_IN_WRITE] if env else [sys.executable, "-m", "aevb"]
    p = subprocess.Popen([*cmd, *map(str, argv)], env=child_env, stderr=subprocess.PIPE, text=True)
    if wait:
        p.wait(timeout=300)
    return p


def wait_for(predicate, timeout=120.0):
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.02)


def epochs_logged(run: Path) -> int:
    path = run / "metrics.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("ref") / "run"
    assert aevb(*TRAIN, "--out", run).returncode == 0
    return run


def test_sigkill_anywhere_then_resume_ends_where_an_uninterrupted_run_does(tmp_path, uninterrupted):
    run = tmp_path / "run"
    # 1. killed in the middle of writing the third checkpoint (after step 0 and epoch 1)
    p = aevb(*TRAIN, "--out", run, env={"KILL_AT_WRITE": "3"})
    assert p.returncode == -signal.SIGKILL
    assert finite_checkpoint(run)["epoch"] == 1  # the previous checkpoint, whole
    assert list(run.glob(".*.part*"))  # the cut-short temporary file
    # 2. killed at random moments while training; each time a whole checkpoint is there
    rng = random.Random(0)
    for _ in range(2):
        p = aevb(*TRAIN, "--out", run, "--resume", wait=False)
        logged = epochs_logged(run)
        wait_for(lambda p=p, logged=logged: epochs_logged(run) > logged or p.poll() is not None)
        time.sleep(rng.uniform(0.0, 0.6))
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=60)
        finite_checkpoint(run)
    # 3. resumed to the end
    p = aevb(*TRAIN, "--out", run, "--resume")
    assert p.returncode == 0, p.stderr.read()
    assert not list(run.glob(".*.part*"))  # resuming cleared the leftovers
    assert_same(run, uninterrupted)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_saves_mid_epoch_and_resume_ends_where_an_uninterrupted_run_does(
        tmp_path, uninterrupted, sig):
    run = tmp_path / "run"
    p = aevb(*TRAIN, "--out", run, wait=False)
    wait_for(lambda: epochs_logged(run) >= 1)
    time.sleep(0.2)  # into the second epoch
    p.send_signal(sig)
    p.wait(timeout=60)
    err = p.stderr.read()
    assert p.returncode == 130, err
    assert err.count("\n") == 1 and f"--resume --out {run}" in err, err
    meta = finite_checkpoint(run)
    assert meta["step"] > 50 and meta["batch_in_epoch"] > 0, "not saved mid-epoch"
    p = aevb(*TRAIN, "--out", run, "--resume")
    assert p.returncode == 0, p.stderr.read()
    assert_same(run, uninterrupted)


@pytest.mark.parametrize("after", [0.3, 1.0, 2.0])
def test_ctrl_c_at_any_moment_even_while_libraries_load_is_one_line_and_exit_130(tmp_path, after):
    run = tmp_path / "run"
    p = aevb(*TRAIN, "--out", run, wait=False)
    time.sleep(after)  # torch loads for about a second; then the run is set up and trains
    p.send_signal(signal.SIGINT)
    p.wait(timeout=60)
    err = p.stderr.read()
    assert p.returncode == 130 and err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("aevb: ")
    if run.exists():  # whatever was written is whole and goes on
        finite_checkpoint(run)
        assert aevb(*TRAIN, "--out", run, "--resume").returncode == 0
    else:
        assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv, hint", [
    (["reproduce", "fa-tutorial", "--out", "R"], "`aevb reproduce fa-tutorial --resume --out R`"),
    (["sweep", "fa-tutorial", "--seeds", "0-1", "--out", "S"],
     "`aevb sweep fa-tutorial --seeds 0-1 --out S`"),
])
def test_an_interrupted_reproduce_or_sweep_says_how_to_go_on(tmp_path, monkeypatch, capsys, argv, hint):
    def stopped(cfg, out, *args, **kwargs):
        raise Interrupted("SIGINT: training stopped at step 3 and saved", "aevb train fa --resume")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(launch, "train", stopped)
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert err == f"aevb: SIGINT: training stopped at step 3 and saved; continue it with {hint}\n"
