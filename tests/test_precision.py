"""Speed options that must not change the mathematics: the exact continuous-Bernoulli normaliser,
bf16 autocast with fp32 densities and optimiser, fused Adam, and when torch.compile is used."""

import json
import math
import platform

import pytest
import torch
from torch.distributions import ContinuousBernoulli

from aevb.cli import main
from aevb.config import TrainConfig
from aevb.data import Data, Split
from aevb.errors import AevbError
from aevb.models import registry
from aevb.models.nets import ContinuousBernoulliLogits
from aevb.runs import launch
from aevb.runtime import devices
from aevb.runtime.compiling import AOT_CACHE_OPTIONS, COMPILE_FROM_STEPS, compile_from
from aevb.runtime.devices import autocast, native_bf16, resolve_precision
from aevb.training.trainer import Trainer


def reference_log_norm(a: torch.Tensor) -> torch.Tensor:
    """log(a / tanh(a/2)) in float64, by the series near 0."""
    a = a.double()
    direct = torch.log(a / torch.tanh(a / 2))
    return torch.where(a.abs() < 1e-3, math.log(2) + a * a / 12, direct)


def test_cb_log_norm_is_accurate_in_float32_where_torch_is_not():
    a = torch.cat([torch.linspace(-40, 40, 8001), torch.tensor([0.0, 1e-6, -1e-3, 9.99e-3, 1.001e-2])])
    ours = ContinuousBernoulliLogits(logits=a)._cont_bern_log_norm().double()
    assert (ours - reference_log_norm(a)).abs().max() < 1e-6
    theirs = ContinuousBernoulli(logits=a)._cont_bern_log_norm().double()
    assert (theirs - reference_log_norm(a)).abs().max() > 0.5  # torch clamps |logit| at 15.9


@pytest.mark.parametrize("logit", [-30.0, -8.0, -1e-3, 0.0, 0.5, 16.0, 35.0])
def test_cb_density_integrates_to_one(logit):
    x = torch.linspace(0, 1, 400001, dtype=torch.float64)
    a = torch.full_like(x, logit)
    density = ContinuousBernoulliLogits(logits=a).log_prob(x).exp()
    assert torch.trapezoid(density, x).item() == pytest.approx(1.0, abs=2e-4)


def test_cb_log_norm_gradient_is_finite_at_zero():
    a = torch.tensor([0.0, 1e-4, -5e-3, 2.0], requires_grad=True)
    ContinuousBernoulliLogits(logits=a)._cont_bern_log_norm().sum().backward()
    assert torch.isfinite(a.grad).all()
    assert a.grad[0] == 0  # log C is even in a


def tiny_trainer(name="vae", **train) -> Trainer:
    cls = registry.get(name)
    cfg = cls.Config(hidden=16)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (64, 28, 28) if cls.sequential else (64, 784), generator=g, dtype=torch.uint8)
    data = Data("tiny", Split(x), Split(x[:16]), image_shape=(28, 28),
                preprocess=cls.recipe["data"]["preprocess"])
    torch.manual_seed(0)
    model = cls(cfg, data.event_shape, None)
    return Trainer(model, data, TrainConfig(**{"batch_size": 16, "epochs": 1, **train}), quiet=True)


@pytest.mark.parametrize("name", ["vae", "gmvae", "vrnn"])
def test_bf16_runs_the_layers_in_bf16_and_keeps_densities_and_adam_in_fp32(name):
    tr = tiny_trainer(name, precision="bf16")
    seen = []
    handles = [m.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
               for m in tr.model.modules() if isinstance(m, torch.nn.Linear)]
    b = next(tr.data.batches(tr.data.train, 16, tr.gen))
    with tr.steps.autocast:
        t = tr.model.terms(b.x, tr.model.condition(b), 2)
    for h in handles:
        h.remove()
    assert torch.bfloat16 in seen
    for v in (t.log_px, t.log_pz, t.log_qz, t.kl, t.log_qy):
        assert v is None or v.dtype == torch.float32
    tr.train_step(b.x, tr.model.condition(b))
    for p in tr.model.parameters():
        assert p.dtype == torch.float32
        assert all(s.dtype == torch.float32 for k, s in tr.steps.optimizer.state[p].items() if k != "step")


def test_bf16_and_fp32_steps_agree_closely():
    fp32, bf16 = tiny_trainer(), tiny_trainer(precision="bf16")
    b = next(fp32.data.batches(fp32.data.train, 16, torch.Generator().manual_seed(1)))
    torch.manual_seed(3)
    e32 = fp32.train_step(b.x)
    torch.manual_seed(3)
    e16 = bf16.train_step(b.x)
    assert e16.item() == pytest.approx(e32.item(), rel=2e-2)


def test_adam_is_fused_on_cpu():
    assert tiny_trainer().steps.optimizer.defaults["fused"]


def test_unknown_precision_is_refused():
    with pytest.raises(AevbError, match="unknown precision 'fp8'"):
        autocast(torch.device("cpu"), "fp8")


def test_unknown_precision_on_the_command_line_leaves_nothing(capsys, tmp_path):
    out = tmp_path / "run"
    code = main(["train", "fa", "--precision", "fp16", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "unknown precision 'fp16'; choose one of auto, fp32, bf16" in err
    assert not out.exists()


@pytest.mark.skipif(platform.machine() != "x86_64", reason="reads x86 CPU flags")
@pytest.mark.parametrize("avx512_bf16, amx, expected", [
    (False, False, "fp32"), (True, False, "bf16"), (False, True, "bf16")])
def test_auto_precision_is_bf16_only_on_a_cpu_with_bf16_hardware(monkeypatch, avx512_bf16, amx,
                                                                expected):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    cpu = torch.device("cpu")
    assert native_bf16(cpu) is (expected == "bf16")
    assert resolve_precision("auto", cpu) == expected
    assert resolve_precision("bf16", cpu) == "bf16" and resolve_precision("fp32", cpu) == "fp32"
    assert autocast(cpu, "auto").fast_dtype == (torch.bfloat16 if expected == "bf16" else torch.float32)
    assert autocast(cpu, "auto")._enabled is (expected == "bf16")


def test_neural_recipes_default_to_auto():
    for name in ("vae", "cvae", "gmvae", "vrnn"):
        assert registry.get(name).recipe["train"]["precision"] == "auto"


def _no_bf16_hardware(monkeypatch):
    monkeypatch.setattr(devices, "native_bf16", lambda device: False)
    monkeypatch.setattr(launch, "native_bf16", lambda device: False)


def test_a_run_records_the_precision_auto_chose_and_resumes_with_auto(monkeypatch, capsys, tmp_path):
    _no_bf16_hardware(monkeypatch)
    out = tmp_path / "run"
    args = ["train", "vae", "--dataset", "mnist-sample", "--hidden", "8", "--epochs", "1",
            "--max-steps", "2", "--precision", "auto", "--no-compile", "--quiet", "--out", str(out)]
    assert main(args) == 0
    assert json.loads((out / "config.json").read_text())["train"]["precision"] == "fp32"
    assert "warning" not in capsys.readouterr().err
    # the same command line resumes it: auto was resolved when the run started
    assert main([*args[:-2], "--max-steps", "3", "--resume", "--out", str(out)]) == 0
    assert json.loads((out / "config.json").read_text())["train"]["precision"] == "fp32"


def test_bf16_without_bf16_hardware_warns_and_still_runs(monkeypatch, capsys, tmp_path):
    _no_bf16_hardware(monkeypatch)
    out = tmp_path / "run"
    code = main(["train", "vae", "--dataset", "mnist-sample", "--hidden", "8", "--epochs", "1",
                 "--max-steps", "2", "--precision", "bf16", "--no-compile", "--quiet", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 0 and "aevb: warning: this cpu has no bf16 hardware" in err
    assert json.loads((out / "config.json").read_text())["train"]["precision"] == "bf16"


def test_compile_unset_compiles_only_long_runs():
    long = COMPILE_FROM_STEPS["cpu"]  # epochs of 4 steps each
    assert tiny_trainer().steps.compiled is None  # 4 steps
    assert tiny_trainer(epochs=long).steps.compiled is not None
    assert tiny_trainer(epochs=long, compile=False).steps.compiled is None
    assert tiny_trainer(compile=True).steps.compiled is not None


def test_compile_unset_on_a_gpu_waits_for_longer_runs_and_a_first_eager_epoch():
    cuda, cpu, vrnn_recipe = torch.device("cuda"), torch.device("cpu"), 7 * 600
    assert compile_from(TrainConfig(), True, cuda, vrnn_recipe, 600) is None
    assert compile_from(TrainConfig(), True, cpu, vrnn_recipe, 600) == 0
    assert compile_from(TrainConfig(), True, cuda, 46 * 1875, 1875) == 1875  # the VAE's recipe
    assert compile_from(TrainConfig(), False, cuda, 46 * 1875, 1875) is None  # not compilable
    assert compile_from(TrainConfig(compile=True), True, cuda, 10, 5) == 0  # asked for: at once
    assert compile_from(TrainConfig(compile=False), True, cpu, 10**6, 600) is None


def test_a_deferred_compile_takes_over_at_its_step():
    tr = tiny_trainer(compile=True, epochs=3)  # 4 steps an epoch
    calls = []

    def compiled(x, c):  # stands in for torch.compile's function, without compiling
        calls.append(tr.step)
        return tr.steps.elbo(x, c)

    tr.steps.compiled, tr.steps.compile_from = compiled, 4  # as on a GPU: after epoch 1
    tr.fit()
    assert calls == list(range(4, 12)) and tr.steps.compiling


@pytest.mark.slow
def test_compiled_steps_train_like_eager_ones():
    """On the CPU a compiled graph draws from aten's generator (`CPU_COMPILE_OPTIONS`), so with
    dropout on, compiled and eager steps see the same masks and noise."""
    eager, compiled = tiny_trainer(compile=False), tiny_trainer(compile=True)
    batches = list(eager.data.batches(eager.data.train, 16, torch.Generator().manual_seed(1)))
    values = {}
    for tr in (eager, compiled):
        torch.manual_seed(5)
        values[tr] = [tr.train_step(b.x).item() for b in batches]
    assert values[compiled] == pytest.approx(values[eager], rel=1e-4)


@pytest.mark.slow
def test_compiled_bf16_step_runs_under_autocast():
    """The trainer enters autocast around the compiled function, not inside it (so AOTAutograd's
    cache can keep the graph): the compiled step must still run the layers in bf16."""
    first = {}
    for precision, compile_ in (("fp32", False), ("bf16", False), ("bf16", True)):
        tr = tiny_trainer(precision=precision, compile=compile_)
        batch = next(tr.data.batches(tr.data.train, 16, torch.Generator().manual_seed(1)))
        torch.manual_seed(5)
        first[precision, compile_] = tr.train_step(batch.x).item()
    assert first["bf16", False] != pytest.approx(first["fp32", False], rel=1e-4)  # bf16 shows
    assert first["bf16", True] == pytest.approx(first["bf16", False], rel=1e-5)


@pytest.mark.parametrize("name", ["vae", "gmvae"])
def test_compiled_iwae_chunks_match_eager(name):
    """Long IWAE evaluations compile their chunks; the draws come from the same seeded stream,
    so the estimate is the eager one to float rounding."""
    from aevb.evaluate import compiled_chunks, seeded
    from aevb.objectives import iwae

    model = registry.get(name)(registry.get(name).Config(hidden=32), (784,))
    model.eval()
    x = torch.rand(8, 784)
    if name == "gmvae":  # its Bernoulli takes binary x
        x = (x > 0.5).float()
    compiled = compiled_chunks()  # as evaluate() compiles them
    with torch.no_grad():
        model.terms(x, None, 1)  # fills torch.distributions' KL cache, as evaluation does first
        with seeded(0, torch.device("cpu")):
            eager = iwae(model, x, None, 40, 10)
        with seeded(0, torch.device("cpu")):
            fused = iwae(model, x, None, 40, 10, chunk_fn=compiled)
    torch.testing.assert_close(fused, eager, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("name", ["vae", "gmvae", pytest.param("vrnn", marks=pytest.mark.slow)])
def test_compiled_step_saves_no_relu_masks(name):
    """On the CPU the compiled step recomputes each ReLU's mask from the activation it keeps
    (`CPU_PARTITION_OPTIONS`), and the VAE's ReLU-dropout reads its gradient off its output
    (`nets.ReLUDropout`): no bool mask is saved for the backward."""
    tr = tiny_trainer(name, compile=True)
    batch = next(tr.data.batches(tr.data.train, 16, torch.Generator().manual_seed(1)))
    torch._dynamo.reset()  # compile here, with this trainer's options, not from an earlier test
    tr.train_step(batch.x)  # the eager warm-up and the compiled step
    saved = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved.append(t.dtype)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        tr.train_step(batch.x)
    assert saved and torch.bool not in saved


@pytest.mark.skipif(not AOT_CACHE_OPTIONS, reason="this torch cannot cache custom autograd.Functions")
def test_a_new_compile_of_the_vae_step_reads_aotautograds_cache():
    """The VAE's ReLUDropout is a custom autograd.Function, which AOTAutograd's cache refuses
    unless told (`aevb.runtime.compiling.AOT_CACHE_OPTIONS`); refused, every new process traces
    the step again."""
    from torch._dynamo.utils import counters

    data = tiny_trainer().data
    batch = next(data.batches(data.train, 16, torch.Generator().manual_seed(1)))
    for _ in range(2):  # the first compile may find the cache empty; the second must read it
        torch._dynamo.reset()  # forgets this process's compiled graphs, as a new process starts
        counters.clear()
        tr = tiny_trainer("vae", compile=True)
        tr.train_step(batch.x)  # the eager warm-up and the compiled step
    assert counters["aot_autograd"]["autograd_cache_bypass"] == 0
    assert counters["aot_autograd"]["autograd_cache_hit"] == 1
