"""The trainer, checkpoints and resumption, and the FA fit against the exact maximum likelihood."""

import json
import struct

import pytest
import torch

from aevb import runs
from aevb.data import load
from aevb.errors import AevbError
from aevb.evaluate import evaluate
from aevb.runs import checkpoints, directory


def fa_config(dataset="fa-synthetic", model_config=None, **train):
    return runs.build_config("fa", [("test", {"data": {"dataset": dataset}, "train": train,
                                              "model_config": model_config or {}})])


def test_fa_fit_reaches_sklearn_maximum_likelihood(tmp_path):
    """AEVB on the tutorial's data reaches scikit-learn's exact ML fit within 0.01 nats per point.

    Both models learn a mean (sklearn always centres on the training mean), so both are centred
    the same way; the recipe is the package default for FA.
    """
    from sklearn.decomposition import FactorAnalysis

    runs.train(fa_config(model_config={"learn_mean": True}), tmp_path / "run", quiet=True)
    model, _, data, _ = runs.open_run(tmp_path / "run")
    ours = evaluate(model, data)["log_likelihood"]
    sk = FactorAnalysis(n_components=2, svd_method="lapack").fit(data.train.x.numpy())
    theirs = sk.score(data.test.x.numpy())
    assert abs(ours - theirs) < 0.01, (ours, theirs)


def test_user_npz_fit_reaches_sklearn(tmp_path, fa_npz):
    """The acceptance check: default `aevb train fa --dataset data.npz` learns the mean itself."""
    from sklearn.decomposition import FactorAnalysis

    trainer = runs.train(fa_config(str(fa_npz)), tmp_path / "run", quiet=True)
    assert trainer.model.cfg.learn_mean is True
    model, cfg, data, _ = runs.open_run(tmp_path / "run")
    ours = evaluate(model, data)["log_likelihood"]
    theirs = FactorAnalysis(n_components=2, svd_method="lapack").fit(
        data.train.x.numpy()).score(data.test.x.numpy())
    assert abs(ours - theirs) < 0.01, (ours, theirs)


def test_metrics_and_config_are_written(tmp_path):
    runs.train(fa_config(epochs=3), tmp_path / "run", quiet=True)
    lines = [json.loads(s) for s in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == [1, 2, 3]
    assert [m["step"] for m in lines] == [32, 64, 96]  # 1000 points in batches of 32
    assert all({"train_elbo", "test_elbo", "seconds"} <= set(m) for m in lines)
    assert lines[-1]["test_elbo"] > lines[0]["test_elbo"]
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["model"] == "fa" and saved["train"]["epochs"] == 3
    assert saved["model_config"]["learn_mean"] is False  # resolved: the tutorial's data is centred


def test_learning_rate_decays_on_a_half_cosine_from_its_epoch(tmp_path):
    trainer = runs.train(fa_config(epochs=3, lr=0.01, lr_decay_from=1), tmp_path / "run", quiet=True)
    rate, per_epoch, last = trainer.learning_rate, 32, 95  # 1000 points in batches of 32
    assert [rate(s) for s in (0, per_epoch - 1, per_epoch)] == [0.01, 0.01, 0.01]
    assert rate(per_epoch + 32) == pytest.approx(0.005)  # halfway through the 64 decaying steps
    assert 0 < rate(last) < 1e-4 and rate(last + 1) == 0
    steps = [rate(s) for s in range(last + 1)]
    assert all(a >= b for a, b in zip(steps, steps[1:], strict=False))
    assert trainer.steps.optimizer.param_groups[0]["lr"] == rate(last)  # Adam took the scheduled rate
    lines = [json.loads(s) for s in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [m["lr"] for m in lines] == [rate(per_epoch - 1), rate(2 * per_epoch - 1), rate(last)]
    short = runs.train(fa_config(epochs=2, lr=0.01, lr_decay_from=3), tmp_path / "short", quiet=True)
    assert {short.learning_rate(s) for s in range(2 * per_epoch)} == {0.01}  # a decay past the end


def test_checkpoint_round_trip(tmp_path):
    trainer = runs.train(fa_config(max_steps=40), tmp_path / "run", quiet=True)
    model, cfg, meta = runs.load_model(tmp_path / "run")
    for name, p in trainer.model.state_dict().items():
        assert torch.equal(p, model.state_dict()[name]), name
    assert meta["step"] == 40 and cfg.train.max_steps == 40
    data = trainer.data
    assert evaluate(model, data) == evaluate(trainer.model.eval(), data)


def test_resume_equals_uninterrupted(tmp_path):
    """Stop mid-epoch, resume, and end bit-for-bit where one uninterrupted run ends."""
    whole = runs.train(fa_config(epochs=3), tmp_path / "whole", quiet=True)
    runs.train(fa_config(epochs=3, max_steps=50), tmp_path / "split", quiet=True)  # epoch 2, batch 18
    partial = (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()
    assert json.loads(partial[-1])["partial"] is True
    resumed = runs.resume(tmp_path / "split", {"max_steps": None}, quiet=True)
    assert resumed.step == whole.step == 96
    for name, p in whole.model.state_dict().items():
        assert torch.equal(p, resumed.model.state_dict()[name]), name

    def strip(path):
        return [{k: v for k, v in json.loads(s).items() if k != "seconds"}
                for s in path.read_text().splitlines()]

    assert strip(tmp_path / "split" / "metrics.jsonl") == strip(tmp_path / "whole" / "metrics.jsonl")


def test_resume_refuses_other_changes(tmp_path):
    runs.train(fa_config(max_steps=5), tmp_path / "run", quiet=True)
    with pytest.raises(AevbError, match=r"--batch-size cannot change when resuming \(the run has 32"):
        runs.resume(tmp_path / "run", {"batch_size": 8})
    with pytest.raises(AevbError, match="--preprocess cannot change"):
        runs.resume(tmp_path / "run", sources=[("test", {"data": {"preprocess": "unit"}})])
    # the values it was started with are no change, and the learning rate may change
    trainer = runs.resume(tmp_path / "run", {"batch_size": 32, "lr": 0.003, "max_steps": 6},
                          quiet=True, sources=[("test", {"model_config": {"latent_dim": 2}})])
    assert trainer.step == 6 and trainer.steps.optimizer.param_groups[0]["lr"] == 0.003


def test_existing_run_is_not_overwritten(tmp_path):
    runs.train(fa_config(max_steps=5), tmp_path / "run", quiet=True)
    with pytest.raises(AevbError, match="already holds a run"):
        runs.train(fa_config(max_steps=5), tmp_path / "run", quiet=True)


def test_bad_input_leaves_no_run_dir(tmp_path):
    with pytest.raises(AevbError):
        runs.train(fa_config(str(tmp_path / "missing.npz")), tmp_path / "run", quiet=True)
    assert not (tmp_path / "run").exists()


def test_checkpoint_is_tensors_plus_json(tmp_path):
    """The file is safetensors: an 8-byte header length, a JSON header, raw tensor bytes."""
    runs.train(fa_config(max_steps=5), tmp_path / "run", quiet=True)
    raw = (tmp_path / "run" / directory.CHECKPOINT).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8: 8 + n])
    meta = json.loads(header["__metadata__"]["aevb"])
    assert meta["format"] == checkpoints.FORMAT and meta["config"]["model"] == "fa"
    assert {"model/W", "optim/0/exp_avg", "rng/torch", "rng/data"} <= set(header)
    assert b"\x80\x04" not in raw[: 8 + n]  # no pickle protocol marker in the header


@pytest.mark.parametrize("damage", ["truncate", "garbage", "pickle"])
def test_damaged_checkpoint_is_refused(tmp_path, damage):
    runs.train(fa_config(max_steps=5), tmp_path / "run", quiet=True)
    path = tmp_path / "run" / directory.CHECKPOINT
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:200])
    elif damage == "garbage":
        path.write_bytes(b"\x00" * 64)
    else:  # a pickled state dict named like a checkpoint must not be unpickled
        torch.save({"W": torch.zeros(2)}, path)
    with pytest.raises(AevbError, match="not a readable aevb checkpoint"):
        runs.load_model(tmp_path / "run")


def test_trainer_does_not_depend_on_the_model_class(tmp_path):
    """Any LatentModel trains: here a one-dimensional Gaussian model written inline."""
    from torch import nn
    from torch.distributions import Independent, Normal

    from aevb.config import TrainConfig
    from aevb.models.base import LatentModel
    from aevb.training.trainer import Trainer

    class Tiny(LatentModel):
        name = "tiny"

        def __init__(self):
            super().__init__()
            self.a, self.log_s = nn.Parameter(torch.tensor(0.1)), nn.Parameter(torch.tensor(0.0))

        def prior(self, c=None):
            return Independent(Normal(torch.zeros(1), torch.ones(1)), 1)

        def likelihood(self, z, c=None):
            return Independent(Normal(z, self.log_s.exp().expand(z.shape)), 1)

        def posterior(self, x, c=None):
            return Independent(Normal(self.a * x, torch.ones_like(x) * 0.7), 1)

    data = load("fa-synthetic")
    data.train.x, data.test.x = data.train.x[:, :1], data.test.x[:, :1]
    trainer = Trainer(Tiny(), data, TrainConfig(epochs=2, lr=0.05), quiet=True)
    metrics = trainer.fit()
    assert len(metrics) == 2 and metrics[1]["test_elbo"] > metrics[0]["test_elbo"]


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_fit_reaches_sklearn_on_fresh_data(tmp_path, seed):
    """The acceptance check over several fresh datasets and training seeds."""
    import numpy as np
    from sklearn.decomposition import FactorAnalysis

    from aevb.data import fa_synthetic

    d = fa_synthetic(seed=100 + seed)
    path = tmp_path / "d.npz"
    np.savez(path, x_train=d.train.x.numpy(), x_test=d.test.x.numpy())
    runs.train(fa_config(str(path), seed=seed), tmp_path / "run", quiet=True)
    model, _, data, _ = runs.open_run(tmp_path / "run")
    ours = evaluate(model, data)["log_likelihood"]
    theirs = FactorAnalysis(n_components=2, svd_method="lapack").fit(
        d.train.x.numpy()).score(d.test.x.numpy())
    assert abs(ours - theirs) < 0.01, (ours, theirs)


def test_the_command_flushes_denormals_and_the_library_does_not():
    """The `aevb` command sets flush-to-zero (Adam's moments decayed below 1e-38 made its step 7x
    slower); importing aevb leaves the process's floating-point mode alone."""
    import subprocess
    import sys

    probe = "import torch; print((torch.tensor([1e-39]) * 1.0).item() == 0.0)"  # 1e-39: a denormal
    script = ("import sys; from aevb.cli import console; sys.argv = ['aevb', 'pretrained', 'list'];"
              f"console(); {probe}")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert run.stdout.strip().splitlines()[-1] == "True"
    import aevb.training.trainer  # noqa: F401

    assert (torch.tensor([1e-39]) * 1.0).item() != 0.0


def test_iwae_training_of_fa_gets_at_least_as_close_to_maximum_likelihood_as_the_elbo(tmp_path):
    """With 50 importance samples the bound is nearly log p(x), so the model is pulled less toward
    parameters whose posterior q can match: on the tutorial's 35 epochs it ends nearer sklearn's fit."""
    from sklearn.decomposition import FactorAnalysis

    scores = {}
    for objective, k in (("elbo", 1), ("iwae", 50)):
        cfg = fa_config(model_config={"learn_mean": True}, epochs=35, objective=objective, train_samples=k)
        runs.train(cfg, tmp_path / objective, quiet=True)
        model, _, data, _ = runs.open_run(tmp_path / objective)
        scores[objective] = evaluate(model, data, "train")["log_likelihood"]
    best = FactorAnalysis(n_components=2, svd_method="lapack").fit(data.train.x.numpy()).score(
        data.train.x.numpy())
    assert best - scores["iwae"] <= best - scores["elbo"], (scores, best)
    assert best - scores["iwae"] < 0.02, (scores, best)


def test_an_iwae_run_names_its_training_bound_in_the_log_and_the_learning_curve(tmp_path, capsys,
                                                                                 monkeypatch):
    """Its train column is IWAE_K, not an ELBO: labelled so, it is not read as overfitting."""
    from aevb.reports import figures, plots

    runs.train(fa_config(epochs=1, objective="iwae", train_samples=3), tmp_path / "run")
    assert "train IWAE_3 " in capsys.readouterr().out
    drawn, learning_curve = [], plots.learning_curve
    monkeypatch.setattr(plots, "learning_curve", lambda *a, **k: drawn.append(a) or tmp_path / "x.png")
    figures.write(*runs.open_run(tmp_path / "run"), tmp_path / "figures")
    assert drawn[0][3] == "IWAE_3"
    legend = learning_curve([{"epoch": 1, "train_elbo": -9.0, "test_elbo": -9.5}],
                            objective="IWAE_3").axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["train IWAE_3", "test ELBO"]


def test_burdas_schedule_divides_the_rate_by_10_to_the_1_7_after_1_3_9_27_epochs(tmp_path):
    trainer = runs.train(fa_config(epochs=5, lr=0.01, lr_schedule="burda"), tmp_path / "run", quiet=True)
    per_epoch = trainer.steps_per_epoch
    stage_starts = [(3**i - 1) // 2 for i in range(8)]  # 0, 1, 4, 13, 40, 121, 364, 1093 epochs
    for i, epoch in enumerate(stage_starts):
        assert trainer.learning_rate(epoch * per_epoch) == pytest.approx(0.01 * 10 ** (-i / 7))
        if epoch:
            assert trainer.learning_rate(epoch * per_epoch - 1) == pytest.approx(0.01 * 10 ** (-(i - 1) / 7))
    assert trainer.learning_rate(5000 * per_epoch) == pytest.approx(0.01 * 10 ** (-1))  # then it stays
    lines = [json.loads(s) for s in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [m["lr"] for m in lines] == pytest.approx([0.01 * 10 ** (-i / 7) for i in (0, 1, 1, 1, 2)])
    with pytest.raises(AevbError, match="--lr-schedule burda and --lr-decay-from each set"):
        fa_config(lr_schedule="burda", lr_decay_from=3)
