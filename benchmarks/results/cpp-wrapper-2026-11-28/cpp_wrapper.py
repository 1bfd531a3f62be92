"""Does inductor's C++ wrapper (`cpp_wrapper`) speed up aevb's compiled step on this CPU?

    python benchmarks/results/cpp-wrapper-2026-11-28/cpp_wrapper.py [BATCH [MODEL [PRECISION]]]

Two compiled trainers, with inductor's Python and C++ wrappers, beside the tutorial-style loop,
timed in interleaved turns in one process (throughput.py's `rates`). An experiment kept with its
output; not part of the benchmarks.
"""

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # benchmarks/
from throughput import AevbLoop, ReferenceLoop, rates  # noqa: E402

from aevb import compiling, process  # noqa: E402

process.configure()
cpu = torch.device("cpu")
bs = int(sys.argv[1]) if len(sys.argv) > 1 else 32
model = sys.argv[2] if len(sys.argv) > 2 else "vae"
prec = sys.argv[3] if len(sys.argv) > 3 else "fp32"
loops = {}
start = time.perf_counter()
loops["python wrapper"] = AevbLoop(model, bs, cpu, precision=prec, compile=True)
print("built A", time.perf_counter() - start, flush=True)
torch._dynamo.reset()
base = dict(compiling.CPU_COMPILE_OPTIONS)
compiling.CPU_COMPILE_OPTIONS = {**base, "cpp_wrapper": True}  # read when the Trainer is built
start = time.perf_counter()
loops["cpp wrapper"] = AevbLoop(model, bs, cpu, precision=prec, compile=True)
print("built B", time.perf_counter() - start, flush=True)
compiling.CPU_COMPILE_OPTIONS = base
loops["reference"] = ReferenceLoop(model, bs, cpu)
r = rates(loops, bs, 30.0, rounds=6)
for key, rate in r.items():
    print(f"{key}: {rate:,.0f} img/s  {rate / r['reference']:.2f}x")
