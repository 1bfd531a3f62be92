"""Training throughput: aevb's trainer against the tutorial's notebook code, in one run on one machine.

    python benchmarks/throughput.py                       # vae, gmvae, vrnn; recipe and large batch
    python benchmarks/throughput.py --models vae --large-batch 512 --seconds 20
    python benchmarks/throughput.py --device cuda --seconds 5     # on a GPU

For each model and batch size it prints images/s for `aevb`'s `Trainer.train_step` with the
recipe's precision and compile setting (what `aevb train` chooses for the recipe's whole run on
this device), for the same with compile flipped, on a GPU for the same without CUDA graphs
(`--no-cuda-graphs`), and for the tutorial's own notebook code (`tutorial_loops.py`); the ratio of
aevb to the tutorial's code; and the achieved FLOP/s as a fraction of the matrix-product peak for
that precision, which the script measures first. The loops are timed in interleaved turns, so a
noisy neighbour slows all of them alike. FLOPs per image come from `torch.utils.flop_counter` on
one eager training step of aevb's model (forward and backward matrix products). The data are
random bytes shaped like MNIST: throughput does not depend on pixel values, as the script flushes
denormal floats. Compilation happens before the timing.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import torch
from torch._dynamo.utils import counters

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tutorial_loops import TUTORIAL_MODELS, NotebookLoop, describe, sync  # noqa: E402

from aevb.data import Data, Split  # noqa: E402
from aevb.models import registry  # noqa: E402
from aevb.runs import build_config  # noqa: E402
from aevb.runtime import process  # noqa: E402
from aevb.runtime.compiling import compile_from  # noqa: E402
from aevb.runtime.devices import PRECISIONS, resolve_device, resolve_precision  # noqa: E402
from aevb.training.trainer import Trainer  # noqa: E402

N_IMAGES = 6000
N_MNIST = 60_000  # training images, for the length of a recipe's run


def matmul_peak(dtype: torch.dtype | None, device: torch.device, seconds: float = 2.0) -> float:
    """FLOP/s of a large square matrix product, the device's practical peak for this dtype
    (2048^3 on a CPU; 8192^3 on a GPU, which a smaller product leaves partly idle)."""
    dtype, size = dtype or torch.float32, 2048 if device.type == "cpu" else 8192
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    a @ b
    sync(device)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        n += 1
        if n % 10 == 0:
            sync(device)
    sync(device)
    return 2 * size**3 * n / (time.perf_counter() - start)


def fake_mnist(seed: int = 0) -> Data:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (N_IMAGES, 784), generator=g, dtype=torch.uint8)
    y = torch.randint(0, 10, (N_IMAGES,), generator=g)
    return Data("random-bytes", Split(x, y), Split(x[:1000], y[:1000]), image_shape=(28, 28),
                classes=tuple(str(i) for i in range(10)))


def aevb_trainer(name: str, batch_size: int, device: torch.device, recipe: dict | None = None,
                 **train) -> Trainer:
    """aevb's trainer of model `name` (with a `recipe`'s settings, if given) on random bytes."""
    cls = registry.get(name)
    cfg = build_config(name, ([("recipe", recipe)] if recipe else []) + [
        ("benchmark", {"train": {"batch_size": batch_size, "device": device.type, **train}})])
    data = fake_mnist()
    data.preprocess = cfg.data.preprocess
    for s in (data.train, data.test):  # as `aevb.runs.prepare_data` shapes them for the model
        s.x = cls.shape_data(s.x, None, data.image_shape, data.name, cfg.model_config)
    torch.manual_seed(0)
    model = cls(cfg.model_config, data.event_shape, 10).to(device)
    return Trainer(model, data.to(device), cfg.train, quiet=True)


class AevbLoop:
    """aevb's `Trainer.train_step` fed by `Data.batches`, timed in chunks of `steps`."""

    def __init__(self, name: str, batch_size: int, device: torch.device, recipe: dict | None = None,
                 **train):
        self.trainer = aevb_trainer(name, batch_size, device, recipe, **train)
        self.batches = self._batches()
        from torch.utils.flop_counter import FlopCounterMode

        b = next(self.batches)
        # Count on an eager step: a compiled function first called under a dispatch mode is given
        # up by dynamo for good, and every later step would then run eagerly.
        tr = self.trainer
        with FlopCounterMode(display=False) as counter, tr.steps.eager():
            tr.train_step(b.x, tr.model.condition(b))
        self.flops = counter.get_total_flops() / batch_size  # per image, forward and backward
        graphs = counters["stats"]["unique_graphs"]
        self.run(3)  # compiles here when compile is on from the start
        if tr.steps.compiling and counters["stats"]["unique_graphs"] == graphs:
            raise RuntimeError(f"{name}: the compiled step compiled no graph, so it runs eagerly")

    def _batches(self):
        data, bs, gen = self.trainer.data, self.trainer.cfg.batch_size, self.trainer.gen
        while True:
            order = torch.randperm(len(data.train), generator=gen, device=gen.device)
            for b in data.batches(data.train, bs, gen, order):
                if len(b.x) == bs:
                    yield b

    def run(self, steps: int) -> None:
        for _ in range(steps):
            b = next(self.batches)
            total = self.trainer.train_step(b.x, self.trainer.model.condition(b))
        total.item()  # wait for the last step


class ReferenceLoop:
    """The tutorial's notebook code (`tutorial_loops.py`), timed in chunks of `steps`."""

    def __init__(self, name: str, batch_size: int, device: torch.device):
        torch.manual_seed(0)
        self.loop = NotebookLoop(TUTORIAL_MODELS[name](device), fake_mnist().train.x, batch_size, device)
        self.device = device
        self.run(2)

    def run(self, steps: int) -> None:
        self.loop.train(steps)
        sync(self.device)


def rates(loops: dict, batch_size: int, seconds: float, rounds: int = 5) -> dict[str, float]:
    """Images/s of each loop, timed in `rounds` interleaved turns of about seconds/rounds each,
    so that a noisy neighbour on the machine slows every loop alike."""
    steps = {}
    for key, loop in loops.items():  # size a turn from one short timing
        start = time.perf_counter()
        loop.run(2)
        steps[key] = max(1, round(seconds / rounds / ((time.perf_counter() - start) / 2)))
    spent = dict.fromkeys(loops, 0.0)
    for _ in range(rounds):
        for key, loop in loops.items():
            start = time.perf_counter()
            loop.run(steps[key])
            spent[key] += time.perf_counter() - start
    return {key: rounds * steps[key] * batch_size / spent[key] for key in loops}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["vae", "gmvae", "vrnn"], choices=list(TUTORIAL_MODELS))
    p.add_argument("--large-batch", type=int, default=512,
                   help="the second batch size; 0 for none (default: 512)")
    p.add_argument("--seconds", type=float, default=15.0, help="timing per loop and cell (default: 15)")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"),
                   help="override the recipes' precision (auto: bf16 where the device has bf16 hardware)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    args = p.parse_args()
    device = resolve_device(args.device)
    process.configure()  # as the `aevb` command does; the reference loop shares the process
    load = os.getloadavg()[0]
    # Two CPU jobs with a thread per core each can run 10-50x slower (OpenMP spin-waits).
    if load > 0.5 and device.type == "cpu":
        print(f"warning: load average {load:.1f} before the run; another job shares the CPU and "
              "the figures below are not to be trusted", file=sys.stderr)
    precisions = {name: resolve_precision(args.precision or registry.get(name).recipe["train"].get(
        "precision", "fp32"), device) for name in args.models}
    peaks = {prec: matmul_peak(PRECISIONS[prec], device) for prec in sorted(set(precisions.values()))}
    print(f"torch {torch.__version__}, {describe(device)}; matmul peak: "
          + ", ".join(f"{k} {v / 1e9:,.0f} GFLOP/s" for k, v in peaks.items()))
    graphs = device.type == "cuda"  # aevb's default there; the table adds the trainer without them
    print(f"| model | batch | precision | compile | aevb img/s | compile flipped "
          f"{'| CUDA graphs off ' if graphs else ''}| tutorial's code img/s "
          "| ratio | GFLOP per image | aevb GFLOP/s | of peak |")
    print("| --- " * (12 if graphs else 11) + "|")
    for name in args.models:
        recipe = registry.get(name).recipe["train"]
        precision = precisions[name]
        # what `aevb train NAME` does on this device: on for the recipes on a CPU, off for the
        # VRNN's 4,200 steps on a GPU, where compiling would not repay itself (aevb.compiling.compile_from)
        epoch = math.ceil(N_MNIST / recipe["batch_size"])  # steps
        cls = registry.get(name)
        compile_ = compile_from(build_config(name, [("benchmark", {"train": {"device": device.type}})]).train,
                                cls.compilable, device,
                                recipe["epochs"] * epoch, epoch) is not None
        for bs in dict.fromkeys(b for b in (recipe["batch_size"], args.large_batch) if b):
            torch._dynamo.reset()  # each cell compiles afresh, as `aevb train` in its own process
            loops = {
                "aevb": AevbLoop(name, bs, device, precision=precision, compile=compile_),
                "flipped": AevbLoop(name, bs, device, precision=precision, compile=not compile_),
                "reference": ReferenceLoop(name, bs, device),
            }
            if graphs:
                loops["no graphs"] = AevbLoop(name, bs, device, precision=precision, compile=compile_,
                                              cuda_graphs=False)
            r = rates(loops, bs, args.seconds)
            flops = loops["aevb"].flops
            achieved = r["aevb"] * flops
            no_graphs = f"{r['no graphs']:,.0f} | " if graphs else ""
            print(f"| {name} | {bs} | {precision} | {'on' if compile_ else 'off'} | {r['aevb']:,.0f} | "
                  f"{r['flipped']:,.0f} | {no_graphs}"
                  f"{r['reference']:,.0f} | {r['aevb'] / r['reference']:.2f}x | "
                  f"{flops / 1e9:.3f} | {achieved / 1e9:.0f} | {achieved / peaks[precision]:.0%} |",
                  flush=True)


if __name__ == "__main__":
    main()
