"""The GMVAE's autoencoder-UMAP start, and holding parameters fixed for the first epochs."""

import dataclasses
import json
import sys

import numpy as np
import pytest
import torch

from aevb import starts
from aevb.cli import main
from aevb.config import TrainConfig
from aevb.data import preprocess
from aevb.errors import AevbError
from aevb.runs import build_config, build_model, data_info, prepare_data
from aevb.runs.load import load_checkpoint
from aevb.runtime.devices import autocast
from aevb.starts import umap as gmvae_start
from aevb.training.trainer import Trainer

SMALL = {"components": 4, "latent_dim": 3, "hidden": 32, "layers": 1}


def small_setup(init="random", **train):
    cfg = build_config("gmvae", [("test", {
        "model_config": {**SMALL, "init": init, "init_epochs": 30},
        "data": {"dataset": "mnist-sample"},
        "train": {"epochs": 1, "batch_size": 100, "precision": "fp32", "compile": False, **train}})])
    data = prepare_data(cfg)
    data.train = data.train.head(600)
    data.test = data.test.head(200)
    torch.manual_seed(0)
    return cfg, data, build_model(cfg, data_info(data))


def test_frozen_modules_do_not_learn_until_their_epochs_are_over():
    cfg, data, model = small_setup(freeze="qy, pz_y", freeze_epochs=1)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = Trainer(model, data, cfg.train, quiet=True)
    trainer.fit()
    for n, p in model.named_parameters():
        held = n.startswith(("qy.", "pz_y."))
        assert torch.equal(p, before[n]) == held, n
    after_first = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer.cfg = dataclasses.replace(trainer.cfg, epochs=2)
    trainer.fit()
    for n, p in model.named_parameters():
        assert not torch.equal(p, after_first[n]), n  # from epoch 2 everything learns


def test_an_unknown_module_to_freeze_is_named():
    cfg, data, model = small_setup(freeze="qx")
    with pytest.raises(AevbError, match=r"--freeze 'qx'.*its modules are qy, qz_x"):
        Trainer(model, data, cfg.train, quiet=True)


def test_freeze_epochs_cannot_be_negative():
    with pytest.raises(AevbError, match="freeze_epochs"):
        build_config("gmvae", [("test", {"train": {"freeze_epochs": -1}})])
    assert TrainConfig().freeze == "" and TrainConfig().freeze_epochs == 0


def test_autoencoder_umap_start_sets_the_prior_to_its_clusters():
    pytest.importorskip("umap")
    cfg, data, model = small_setup("autoencoder-umap")
    info = starts.run(model, data, cfg.train, quiet=True)
    assert info["init"] == "autoencoder-umap" and sum(info["cluster_sizes"]) == 600
    assert info["reconstruction_nats"] < 250  # an autoencoder, not random weights (about 540)

    codes = gmvae_start._map(model.code, data, torch.Generator(), autocast(torch.device("cpu"), "fp32"))
    r = torch.as_tensor(gmvae_start.clusters(codes.numpy(), 4, cfg.train.seed), dtype=torch.float32)
    w = r / r.sum(0)
    torch.testing.assert_close(model.prior().mean[:, 0], w.T @ codes, atol=1e-4, rtol=1e-4)
    # q(z|x,y) starts at the code for every y, and q(y|x) has learnt the clusters
    x = preprocess(data.train.x, data.preprocess)
    torch.testing.assert_close(model.posterior(x).mean, codes.expand(4, -1, -1), atol=1e-4, rtol=1e-4)
    agree = (model.cluster_log_probs(x).argmax(1) == r.argmax(1)).float().mean()
    assert agree > 0.9
    # the start's own accuracy is recorded, measured on q(y|x) as training will begin with it
    from aevb.evaluate import cluster_metrics

    assert info["cluster_accuracy"] == {s: cluster_metrics(model, data, s)["cluster_accuracy"]
                                        for s in ("train", "test")}
    # four clusters match at most four of the ten digits (0.4); a random labelling scores about 0.1
    assert 0.15 < info["cluster_accuracy"]["train"] <= 0.4


def test_start_is_reproducible_and_recorded_in_the_run(tmp_path, monkeypatch):
    pytest.importorskip("umap")
    _, data, _ = small_setup()  # 600 training images of mnist-sample, as bytes
    npz = tmp_path / "digits.npz"
    np.savez(npz, x_train=data.train.x.numpy(), x_test=data.test.x.numpy())
    args = ["train", "gmvae", "--dataset", str(npz), "--preprocess", "binarize-threshold",
            "--max-steps", "2", "--precision", "fp32",
            "--components", "3", "--latent-dim", "2", "--hidden", "16", "--layers", "1",
            "--init", "autoencoder-umap", "--init-epochs", "1", "--quiet"]
    for name in ("a", "b"):
        assert main([*args, "--out", str(tmp_path / name)]) == 0
    (ta, ma), (tb, mb) = load_checkpoint(tmp_path / "a"), load_checkpoint(tmp_path / "b")
    assert ma["start"]["cluster_sizes"] == mb["start"]["cluster_sizes"]
    assert sum(ma["start"]["cluster_sizes"]) == 600
    torch.testing.assert_close(ta["model/pz_y.mean.weight"], tb["model/pz_y.mean.weight"])
    saved = json.loads((tmp_path / "a" / "config.json").read_text())
    assert saved["model_config"]["init"] == "autoencoder-umap"


def test_bad_start_is_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    code = main(["train", "gmvae", "--dataset", "mnist-sample", "--init", "kmeans", "--out", str(out)])
    assert code != 0 and not out.exists()
    assert "unknown init 'kmeans'; choose one of random, autoencoder-umap" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "umap", None)  # as if umap-learn were not installed
    code = main(["train", "gmvae", "--dataset", "mnist-sample", "--init", "autoencoder-umap",
                 "--out", str(out)])
    assert code != 0 and not out.exists()
    assert "needs umap-learn, a dependency of aevb that this install lacks; install it with " \
        "pip install umap-learn" in capsys.readouterr().err


def test_the_start_takes_at_most_max_steps_in_each_of_its_fits(monkeypatch):
    pytest.importorskip("umap")
    cfg, data, model = small_setup("autoencoder-umap", max_steps=2)
    steps = []
    real = torch.optim.Adam.step

    def counted(self, *args, **kwargs):
        steps.append(self)  # the optimiser itself: an id() may be reused once the first is freed
        return real(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", counted)
    starts.run(model, data, cfg.train, quiet=True)
    fits = [opt for i, opt in enumerate(steps) if all(opt is not o for o in steps[:i])]
    per_fit = [sum(opt is o for o in steps) for opt in fits]
    assert per_fit == [2, 2]  # the autoencoder's 30 epochs and q(y|x)'s 1,200 steps, cut at 2
