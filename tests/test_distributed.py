"""Training under torchrun with 2 gloo processes on the CPU: it matches one process.

Two processes draw different posterior samples than one does, so the parity tests take the noise
out: every reparameterised draw returns the mean (NOISELESS below), dropout is 0 and binarisation
is deterministic. What remains is the arithmetic of sharding, DDP's gradient averaging and the
sharded evaluation, which must agree with one process to float rounding. With the noise left in,
the other tests check what holds there: a rerun is bit-identical, resume under torchrun ends
where an uninterrupted run does, and only rank 0 writes.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from aevb.runs.load import load_checkpoint
from aevb.runtime import distributed
from run_outcome import assert_same, outcome

# The `aevb` command (`console`, which also leaves a torchrun rank without Python's shutdown),
# with every Normal.rsample replaced by its mean (NOISE=0), or untouched.
ENTRY = """
import os, sys, torch
if os.environ.get("NOISE") == "0":
    def rsample(self, sample_shape=torch.Size()):
        return self.loc.expand(self._extended_shape(sample_shape))
    torch.distributions.Normal.rsample = rsample
from aevb.cli import console
sys.exit(console())
"""

COMMON = ["--dataset", "mnist-sample", "--preprocess", "binarize-threshold", "--batch-size", "100",
          "--eval-samples", "1", "--no-compile", "--precision", "fp32", "--quiet"]
MODELS = {
    "vae": ["train", "vae", "--likelihood", "bernoulli", "--hidden", "64", "--layers", "1",
            "--latent-dim", "4", "--dropout", "0", "--epochs", "2", *COMMON],
    "vrnn": ["train", "vrnn", "--hidden", "32", "--layers", "1", "--state-dim", "32",
             "--rnn-layers", "1", "--epochs", "1", "--max-steps", "30", *COMMON],
}


def aevb(tmp_path: Path, argv: list[str], procs: int = 1, noise: bool = True,
         check: bool = True) -> subprocess.CompletedProcess:
    script = tmp_path / "entry.py"
    script.write_text(ENTRY)
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone",
              f"--nproc-per-node={procs}"] if procs > 1 else [sys.executable]
    env = {**os.environ, "NOISE": "1" if noise else "0", "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    done = subprocess.run([*launch, str(script), *map(str, argv)], env=env, capture_output=True,
                          text=True, timeout=300)
    if check:
        assert done.returncode == 0, done.stderr[-3000:]
    return done


# The eager VAE case (12 s) is slow-only: the compiled VAE and the eager VRNN cover both paths.
@pytest.mark.parametrize("model, compile_", [pytest.param("vae", False, marks=pytest.mark.slow),
                                             ("vrnn", False), ("vae", True)])
def test_two_processes_match_one_without_noise(tmp_path, model, compile_):
    argv = [*MODELS[model], "--compile" if compile_ else "--no-compile"]  # DDP under torch.compile too
    aevb(tmp_path, [*argv, "--out", tmp_path / "one"], noise=False)
    aevb(tmp_path, [*argv, "--out", tmp_path / "two"], procs=2, noise=False)
    (one, one_records), (two, two_records) = outcome(tmp_path / "one"), outcome(tmp_path / "two")
    assert one.keys() == two.keys()
    for k in one:
        torch.testing.assert_close(two[k], one[k], rtol=1e-4, atol=1e-5, msg=k)
    assert [r["step"] for r in two_records] == [r["step"] for r in one_records]
    for a, b in zip(one_records, two_records, strict=True):
        for key in ("train_elbo", "test_elbo"):
            assert b[key] == pytest.approx(a[key], rel=1e-5), key


def test_with_noise_a_rerun_is_identical_and_resume_ends_where_it_would(tmp_path):
    argv = [*MODELS["vae"], "--epochs", "3"]
    aevb(tmp_path, [*argv, "--out", tmp_path / "whole"], procs=2)
    aevb(tmp_path, [*argv, "--max-steps", "70", "--out", tmp_path / "split"], procs=2)
    tensors, meta = load_checkpoint(tmp_path / "split")
    assert meta["step"] == 70 and meta["world_size"] == 2 and "rng/torch/1" in tensors
    aevb(tmp_path, ["train", "vae", "--resume", "--max-steps", "150", "--out", tmp_path / "split",
                    "--quiet"], procs=2)
    # the split run's first 70 steps rerun the whole run's in new processes, so this also says a
    # rerun is identical: any noise not drawn from the saved streams would part the two
    assert_same(tmp_path / "split", tmp_path / "whole")
    assert sorted(p.name for p in (tmp_path / "whole").iterdir()) == [  # rank 0's files alone
        ".lock", "checkpoint.safetensors", "config.json", "metrics.jsonl"]


def test_other_commands_refuse_torchrun(tmp_path):
    done = aevb(tmp_path, ["evaluate", "pretrained:vae-mnist"], procs=2, check=False)
    assert done.returncode != 0 and "only `aevb train` runs under torchrun" in done.stderr


def test_a_batch_too_small_to_shard_is_refused(tmp_path):
    done = aevb(tmp_path, [*MODELS["vae"], "--batch-size", "1", "--out", tmp_path / "r"], procs=2,
                check=False)
    assert done.returncode != 0 and "leaves one without data" in done.stderr
    assert not (tmp_path / "r").exists()


def test_one_process_is_a_world_of_one():
    assert not distributed.launched() and distributed.world() == 1 and distributed.is_main()
    assert distributed.shard(7) == slice(0, 7)
    parts = [torch.arange(3.0), torch.arange(2.0)]
    assert torch.equal(distributed.gather_batches(parts, [3, 2]), torch.tensor([0.0, 1, 2, 0, 1]))
