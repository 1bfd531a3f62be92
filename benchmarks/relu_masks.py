"""What saving ReLU masks as bool tensors costs a compiled step on the CPU, and what
`compiling.CPU_PARTITION_OPTIONS` (AOTAutograd's `recompute_views`) wins back.

    python benchmarks/relu_masks.py                     # the kernel, then vae, gmvae, vrnn
    python benchmarks/relu_masks.py --models gmvae --seconds 30

First the kernel alone: a ReLU's backward on a (2800, 500) bf16 gradient (the VRNN's batched
decoder at batch 100), with the mask read from a saved bool tensor (random, as a ReLU's is, and
the same mask sorted, which shows the cost is branch misprediction), and with the mask recomputed
from the activation. Then each model's training step at the recipe's batch, compiled with views
saved (PyTorch's default) and with views recomputed (aevb's), timed in interleaved turns in one
process. The data are random bytes shaped like MNIST, as in `throughput.py`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import AevbLoop, rates  # noqa: E402

from aevb.models import registry  # noqa: E402
from aevb.runtime import process  # noqa: E402
from aevb.runtime.compiling import AOT_CACHE_OPTIONS, CPU_COMPILE_OPTIONS, CPU_PARTITION_OPTIONS  # noqa: E402


def ms(fn, seconds: float = 1.0) -> float:
    """Milliseconds per call of fn, after one call to compile or warm it."""
    fn()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        n += 1
    return (time.perf_counter() - start) / n * 1e3


def kernel_table() -> str:
    g = torch.randn(2800, 500).bfloat16()  # the gradient reaching the ReLU
    act = torch.randn(2800, 500).bfloat16().relu()  # the activation the step keeps anyway
    mask = act <= 0  # what PyTorch saves by default: about half True, in no order
    ordered = mask.flatten().sort(descending=True).values.view_as(mask)
    from_mask = torch.compile(lambda m, g: torch.where(m, 0.0, g))
    from_act = torch.compile(lambda a, g: torch.where(a <= 0, 0.0, g))
    rows = [("bool mask saved (a ReLU's random pattern)", ms(lambda: from_mask(mask, g))),
            ("bool mask saved, sorted (the same count of True)", ms(lambda: from_mask(ordered, g))),
            ("mask recomputed from the kept activation", ms(lambda: from_act(act, g)))]
    lines = ["| ReLU backward, (2800, 500) bf16, compiled | ms | ns per element |", "| --- | --- | --- |"]
    lines += [f"| {name} | {t:.2f} | {t * 1e6 / g.numel():.2f} |" for name, t in rows]
    return "\n".join(lines)


def step_row(name: str, seconds: float) -> str:
    batch = registry.get(name).recipe["train"]["batch_size"]
    loops = {}
    for recompute in (False, True):
        loop = AevbLoop(name, batch, torch.device("cpu"), compile=False)  # its first steps eager
        tr = loop.trainer
        # Two definitions, so that dynamo compiles each on its own: called through the same code
        # object, the second trainer would reuse the first one's graph (its guards pass).
        if recompute:
            fn = lambda x, c, step=tr.steps: step.elbo(x, c)  # noqa: E731
        else:
            fn = lambda x, c, step=tr.steps: step.elbo(x, c)  # noqa: E731
        # compiled from the next step, with the trainer's AOTAutograd options, with or without the
        # partitioner's
        tr.steps.compiled = torch.compile(fn, options=CPU_COMPILE_OPTIONS, dynamic=False)
        tr.steps.compile_from = 0
        tr.steps.aot_options = {**AOT_CACHE_OPTIONS, **(CPU_PARTITION_OPTIONS if recompute else {})}
        loop.run(3)  # compiles
        loops[recompute] = loop
    r = rates(loops, batch, seconds)
    return f"| {name} | {batch} | {r[False]:,.0f} | {r[True]:,.0f} | {r[True] / r[False]:.2f}x |"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["vae", "gmvae", "vrnn"], choices=["vae", "gmvae", "vrnn"])
    p.add_argument("--seconds", type=float, default=20.0, help="timing per variant and model (default: 20)")
    args = p.parse_args()
    process.configure()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    print(kernel_table(), flush=True)
    print("\n| model | batch | views saved img/s | views recomputed img/s | ratio |")
    print("| --- | --- | --- | --- | --- |")
    for name in args.models:
        print(step_row(name, args.seconds), flush=True)


if __name__ == "__main__":
    main()
