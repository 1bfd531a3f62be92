"""Every benchmark script runs as its docstring writes it, on tiny settings in the default suite,
and still measures what it says it measures. The figures are for the benchmarks to print, not for
tests to judge."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from aevb.cli import main

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
sys.path.insert(0, str(BENCH))
from tutorial_loops import TUTORIAL_MODELS, NotebookLoop  # noqa: E402
from tutorial_loops import test_elbo as notebook_test_elbo  # noqa: E402 (pytest would collect test_elbo)

# every script at the top of benchmarks/, and the test below that runs it
SMOKE_TESTED = {
    "burda_table.py": "test_burda_table_puts_a_reproduced_run_beside_burda",
    "conv_throughput.py": "test_conv_throughput_times_aevb_beside_a_plain_loop",
    "cvae_label_accuracy.py": "test_cvae_label_accuracy",
    "gpu_check.sh": "test_gpu_check",
    "results_table.py": "test_results_table",
    "scale.py": "test_scale_trains_on_repeated_data_and_a_folder_and_samples_memory",
    "startup.py": "test_startup_times_help_without_torch_and_a_first_step",
    "throughput.py": "test_throughput_times_a_compiled_step_and_counts_flops_on_an_eager_one",
    "time_to_quality.py": "test_time_to_quality_runs_both_loops_to_the_tutorials_number",
    "tutorial_loops.py": "test_the_notebook_loops_train_and_score",
    "tutorial_retrain.py": "test_tutorial_retrain_writes_weights_the_side_by_side_scores",
    "tutorial_side_by_side.py": "test_tutorial_side_by_side_scores_weights_in_the_tutorials_layout",
    "versions.py": "test_versions_compares_two_checkouts",
}


def bench(*args: str) -> str:
    done = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def row(out: str, start: str) -> list[str]:
    """The cells of the one table row of `out` that starts with `start`."""
    rows = [line for line in out.splitlines() if line.startswith(start)]
    assert len(rows) == 1, out
    return [cell.strip() for cell in rows[0].strip("|").split("|")]


def test_every_script_has_a_smoke_test_and_results_hold_data_only():
    scripts = {p.name for p in BENCH.iterdir() if p.suffix in (".py", ".sh")}
    assert scripts == set(SMOKE_TESTED), scripts ^ set(SMOKE_TESTED)
    assert all(name in globals() for name in SMOKE_TESTED.values())
    assert not [p for p in (BENCH / "results").rglob("*") if p.suffix in (".py", ".sh")]


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory) -> Path:
    """Three epochs of FA, and a few steps of a CVAE and an fp32 VAE on the packaged sample."""
    root = tmp_path_factory.mktemp("runs")
    sample = ["--dataset", "mnist-sample", "--max-steps", "5", "--quiet", "--no-compile"]
    assert main(["train", "fa", "--epochs", "3", "--quiet", "--out", str(root / "fa")]) == 0
    assert main(["train", "cvae", *sample, "--hidden", "32", "--out", str(root / "cvae")]) == 0
    assert main(["train", "vae", *sample, "--precision", "fp32", "--out", str(root / "vae-fp32")]) == 0
    return root


# -- the default suite ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(TUTORIAL_MODELS))
def test_the_notebook_loops_train_and_score(name):
    torch.manual_seed(0)
    model = TUTORIAL_MODELS[name]()
    x = torch.randint(0, 256, (300, 784), dtype=torch.uint8)
    loop = NotebookLoop(model, x, model.batch_size)
    before = [p.detach().clone() for p in model.nets[0].parameters()]
    loop.train(3)  # wraps round the 300 images at the GMVAE's and VRNN's batch of 100
    assert any(not torch.equal(a, b) for a, b in zip(before, model.nets[0].parameters(), strict=True))
    score = notebook_test_elbo(model, x[:50], batch_size=25, exact_normaliser=True)
    assert score == score and abs(score) < 1e5  # finite


def test_results_table():
    out = bench("benchmarks/results_table.py")
    assert "| `vae-tutorial` | 1788 (the tutorial, notebook 2) |" in out  # docs/gallery/vae-tutorial/
    assert "- **GMVAE**: cluster accuracy" in out  # the definitions under the table


def test_startup_times_help_without_torch_and_a_first_step():
    out = bench("benchmarks/startup.py", "--rounds", "1")
    assert float(row(out, "| aevb --help |")[1]) < float(row(out, "| aevb --version |")[1])
    assert len(row(out, "| aevb train vae, to its first step |")) == 3


def test_cvae_label_accuracy(tiny_runs):
    out = bench("benchmarks/cvae_label_accuracy.py", str(tiny_runs / "cvae"), "--dataset", "mnist-sample",
                "--per-label", "5", "--sources", "prior,gaussian", "--epochs", "1")
    rows = [line.split(" | ") for line in out.splitlines() if line.startswith(("| prior", "| gaussian"))]
    assert len(rows) == 6 and all(0 <= float(r[2]) <= 1 for r in rows)


def test_tutorial_side_by_side_scores_weights_in_the_tutorials_layout(tmp_path):
    """Weights named and shaped as the tutorial's state dicts (random here; ../shared holds the real
    ones) load into aevb's models and are scored beside the shipped ones."""
    from safetensors.torch import save_file

    def tutorial_layout(q, p, x_in, z_in):
        shapes = {f"{q}.shared.0.weight": (500, x_in), f"{q}.shared.0.bias": (500,),
                  f"{q}.shared.3.weight": (500, 500), f"{q}.shared.3.bias": (500,),
                  f"{q}.mus.weight": (20, 500), f"{q}.mus.bias": (20,),
                  f"{q}.sigmas.0.weight": (20, 500), f"{q}.sigmas.0.bias": (20,),
                  f"{p}.lambdas.0.weight": (500, z_in), f"{p}.lambdas.0.bias": (500,),
                  f"{p}.lambdas.3.weight": (500, 500), f"{p}.lambdas.3.bias": (500,),
                  f"{p}.lambdas.6.weight": (784, 500), f"{p}.lambdas.6.bias": (784,)}
        return {k: 0.05 * torch.randn(v) for k, v in shapes.items()}

    save_file(tutorial_layout("q_z_given_x", "p_x_given_z", 784, 20), tmp_path / "vae.safetensors")
    cvae = tutorial_layout("q_z_given_x_y", "p_x_given_z_y", 794, 30)
    cvae |= {"p_z_given_y.mus.weight": torch.randn(20, 10), "p_z_given_y.mus.bias": torch.zeros(20),
             "p_z_given_y.sigmas.0.weight": torch.randn(20, 10), "p_z_given_y.sigmas.0.bias": torch.zeros(20)}
    save_file(cvae, tmp_path / "cvae.safetensors")
    out = bench("benchmarks/tutorial_side_by_side.py", "--weights", str(tmp_path), "--dataset",
                "mnist-sample", "--subset", "20", "--elbo-samples", "1", "--iwae-samples", "2")
    rows = [line for line in out.splitlines() if line.startswith(("| the tutorial's", "| aevb"))]
    assert len(rows) == 5 and all(len(r.split(" | ")) == 6 for r in rows)


def test_tutorial_retrain_writes_weights_the_side_by_side_scores(tmp_path):
    """The notebooks' VAE and CVAE, one epoch each, saved in the tutorial's layout: the side-by-side
    loads them (strictly, every tensor) and scores them beside the shipped weights' layout."""
    bench("benchmarks/tutorial_retrain.py", "--dataset", "mnist-sample", "--epochs", "1",
          "--out", str(tmp_path))
    log = json.loads((tmp_path / "log.json").read_text())
    assert [log[m]["epochs"] for m in ("vae", "cvae")] == [1, 1]
    assert log["vae"]["test_elbo_torch_normaliser"][0] > 0  # a density on [0, 1]^784: positive nats
    out = bench("benchmarks/tutorial_side_by_side.py", "--weights", str(tmp_path),
                "--retrained", str(tmp_path), "--dataset", "mnist-sample", "--subset", "20",
                "--elbo-samples", "1")
    shipped, retrained = row(out, "| the tutorial's VAE (its"), row(out, "| the tutorial's VAE retrained")
    assert shipped[2] == retrained[2]  # the same weights, loaded both ways, score the same


def test_burda_table_puts_a_reproduced_run_beside_burda(tmp_path):
    shipped = ROOT / "docs" / "gallery" / "vae-bernoulli" / "results.json"
    out = bench("benchmarks/burda_table.py", str(shipped))
    cells = row(out, "| VAE, k = 1")
    assert cells[3] == "86.76" and 80 < float(cells[1].split()[0]) < 100
    r = json.loads(shipped.read_text())
    r["metrics"]["iwae_samples"] = 100
    (tmp_path / "results.json").write_text(json.dumps(r))
    done = subprocess.run([sys.executable, "benchmarks/burda_table.py", str(tmp_path / "results.json")],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode != 0 and "IWAE_100, not IWAE_5000" in done.stderr


def test_gpu_check():
    script = BENCH / "gpu_check.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0  # it parses
    if not torch.cuda.is_available():
        pytest.skip("the script's steps need a CUDA GPU")
    subprocess.run(["bash", str(script), "env", "smoke"], cwd=ROOT, check=True, timeout=1200,
                   env={**__import__("os").environ, "OUT": str(ROOT / ".gpu-check")})
    shutil.rmtree(ROOT / ".gpu-check", ignore_errors=True)


def test_throughput_times_a_compiled_step_and_counts_flops_on_an_eager_one():
    out = bench("benchmarks/throughput.py", "--models", "vae", "--large-batch", "0", "--seconds", "1")
    cells = row(out, "| vae | 32 |")
    # The script stops when a loop meant to be compiled compiled no graph. A FLOP count taken on a
    # compiled step (under FlopCounterMode, which also makes dynamo give the function up) came to
    # 0.010 GFLOP per image instead of the network's 0.007.
    assert cells[3] == "on" and cells[8] == "0.007"
    assert cells[7].endswith("x") and float(cells[7][:-1]) > 0


def test_conv_throughput_times_aevb_beside_a_plain_loop():
    out = bench("benchmarks/conv_throughput.py", "--large-batch", "0", "--seconds", "1", "--no-compile")
    cells = row(out, "| 100 |")
    assert float(cells[2].replace(",", "")) > 0 and float(cells[3].replace(",", "")) > 0
    assert cells[4].endswith("x") and float(cells[5]) > 0.005  # the conv VAE's GFLOP per image


def test_scale_trains_on_repeated_data_and_a_folder_and_samples_memory():
    out = bench("benchmarks/scale.py", "--dataset", "mnist-sample", "--scales", "1", "2", "--folder", "30",
                "--steps", "3")
    one, two = row(out, "| mnist-sample x1 "), row(out, "| mnist-sample x2 ")
    assert float(two[1].split()[0]) > float(one[1].split()[0])  # twice the images
    folder = row(out, "| folder of 30 64x64 colour PNGs")
    for cells in (one, two, folder):
        assert float(cells[4].split()[0].replace(",", "")) > 10  # a process holds more than 10 MiB


def test_time_to_quality_runs_both_loops_to_the_tutorials_number():
    out = bench("benchmarks/time_to_quality.py", "--dataset", "mnist-sample", "--models", "vae",
                "--budget", "20", "--every", "0.2", "--no-compile")
    cells = row(out, "| vae | 1788.00 |")
    assert cells[3].endswith(" s") and cells[4].endswith(" s") and cells[5].endswith("x")


def test_versions_compares_two_checkouts():
    out = bench("benchmarks/versions.py", "--baseline", "HEAD", "--models", "vae", "--seconds", "2",
                "--rounds", "2")
    assert float(row(out, "| vae | 32 |")[4]) > 0
