"""CUDA graphs (aevb.runtime.cuda_graphs): a graphed run ends where an eager one does, to 1e-5.
Needs a GPU."""

import pytest
import torch

from aevb import runs
from aevb.errors import AevbError
from aevb.runs import build_config
from aevb.runtime import compiling

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def run(out, name, graphs, **train):
    """`aevb train NAME` on mnist-sample: batches of 96 leave a short last batch of 8 (eager)."""
    train = {"device": "cuda", "cuda_graphs": graphs, "compile": False, "batch_size": 96,
             "epochs": 2, "eval_samples": 1, "precision": "fp32", **train}
    start = {"init": "random"} if name == "gmvae" else {}  # the UMAP start is not what this tests
    cfg = build_config(name, [("test", {"data": {"dataset": "mnist-sample"}, "train": train,
                                        "model_config": start})])
    return runs.train(cfg, out, quiet=True)


def max_difference(a, b) -> float:
    sa, sb = a.model.state_dict(), b.model.state_dict()
    return max((sa[k].double() - sb[k].double()).abs().max().item() for k in sa)


@needs_cuda
@pytest.mark.parametrize("name", ["vae", "cvae", "gmvae", "vrnn"])
def test_graphed_run_matches_eager(tmp_path, name):
    """Every model, with its dropout and posterior draws: the same parameters as eager steps."""
    graphed = run(tmp_path / "g", name, True)
    eager = run(tmp_path / "e", name, False)
    assert graphed.steps.graphed.graph is not None and eager.steps.graphed is None
    assert max_difference(graphed, eager) < 1e-5
    assert graphed.metrics[-1]["test_elbo"] == pytest.approx(eager.metrics[-1]["test_elbo"], abs=1e-3)


@needs_cuda
def test_compiled_and_bf16_graphed_run_matches_eager(tmp_path):
    graphed = run(tmp_path / "g", "vae", True, compile=True, precision="bf16")
    eager = run(tmp_path / "e", "vae", False, compile=True, precision="bf16")
    assert max_difference(graphed, eager) < 1e-4


@needs_cuda
def test_compiling_unasked_starts_after_an_eager_first_epoch(tmp_path, monkeypatch):
    """`compile` unset on a GPU: the first epoch runs eagerly, then the graph is captured again
    around the compiled step; graphed and ungraphed runs of that end alike."""
    monkeypatch.setitem(compiling.COMPILE_FROM_STEPS, "cuda", 1)  # so that this short run compiles
    graphed = run(tmp_path / "g", "vae", True, compile=None)
    eager = run(tmp_path / "e", "vae", False, compile=None)
    assert graphed.steps.compile_from == graphed.steps_per_epoch > 0
    assert graphed.steps.compiling and graphed.steps.graphed.graph is not None
    assert max_difference(graphed, eager) < 1e-5


@needs_cuda
def test_schedule_freezing_and_resume_under_graphs(tmp_path):
    """A learning-rate schedule (read from the device) and frozen then thawed parameters (a new
    capture) match eager steps; so does a resumed run (a new optimizer, so a new capture)."""
    train = {"epochs": 3, "lr_decay_from": 1, "freeze": "qy", "freeze_epochs": 1}
    eager = run(tmp_path / "e", "gmvae", False, **train)
    graphed = run(tmp_path / "g", "gmvae", True, **train)
    assert max_difference(graphed, eager) < 1e-5
    # max_steps would shorten the schedule, so the resumed run has none
    whole = run(tmp_path / "w", "gmvae", True, epochs=3, freeze="qy", freeze_epochs=1)
    run(tmp_path / "r", "gmvae", True, epochs=3, freeze="qy", freeze_epochs=1, max_steps=70)
    resumed = runs.resume(tmp_path / "r", {"max_steps": None}, quiet=True)
    assert resumed.step == whole.step
    assert max_difference(resumed, whole) < 1e-5


@needs_cuda
def test_a_nan_parameter_is_a_fault_not_a_crash(tmp_path):
    trainer = run(tmp_path / "g", "vae", True, epochs=1)
    batch = next(trainer.data.batches(trainer.data.train, 96, trainer.gen,
                                      torch.arange(len(trainer.data.train), device="cuda")))
    with torch.no_grad():
        next(trainer.model.parameters()).fill_(float("nan"))
    trainer.train_step(batch.x)
    assert trainer.monitor.check(now=True) == f"step {trainer.step + 1}: the loss is not finite"


def test_cuda_graphs_need_cuda(tmp_path):
    """Asked for on a CPU, CUDA graphs are refused before anything is written."""
    with pytest.raises(AevbError, match="--cuda-graphs needs a CUDA device"):
        run(tmp_path / "c", "vae", True, device="cpu")
    assert list(tmp_path.iterdir()) == []
