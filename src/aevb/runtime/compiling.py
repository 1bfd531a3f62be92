"""When training steps run through `torch.compile`, with which options, and compiled CPU code
started without repeating inductor's instruction-set check in every process.

Compiling costs seconds to minutes, which faster steps must repay (`compile_from`). Inductor checks
the CPU's vector instruction sets by building and loading test libraries, in every new process;
the outcome depends only on the CPU, the compiler and torch, so `isa_options` records it once
beside inductor's cache. Measurements: the docs' Results, Speed, "Why the code is as it is".
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import torch
import torch._functorch.config  # AOTAutograd's options, patched around compiled steps

from aevb import atomic
from aevb.config import TrainConfig
from aevb.errors import WriteError

# `compile = None` compiles runs of at least this many steps, by device type (others: "cpu"): where
# compiling repays itself (docs: Results, Speed, "When compiling pays").
COMPILE_FROM_STEPS = {"cpu": 2000, "cuda": 30_000}

# Random numbers in compiled CPU code from aten's generator, eager's stream: compiled and eager runs
# draw alike, and it is faster than inductor's own (docs: Results, Speed, "Random numbers in compiled code").
CPU_COMPILE_OPTIONS = {"fallback_random": True}

# On the CPU AOTAutograd saves no views, so a ReLU's mask is recomputed from the kept activation,
# not read as a bool tensor (docs: Results, Speed, "How AOTAutograd partitions a CPU step").
CPU_PARTITION_OPTIONS = {"recompute_views": True}

# Let AOTAutograd's disk cache hold graphs with a custom autograd.Function (nets.ReLUDropout), so a
# new process skips tracing (docs: Results, Speed, "AOTAutograd's cache"); older torch lacks the switch.
AOT_CACHE_OPTIONS = {key: True for key in ("autograd_cache_allow_custom_autograd_functions",)
                     if hasattr(torch._functorch.config, key)}


def compile_from(cfg: TrainConfig, compilable: bool, device: torch.device, planned_steps: int,
                 steps_per_epoch: int) -> int | None:
    """The step from which training steps run compiled (None: never). `compile = True` compiles
    from the start. Left unset, a run long enough to repay compiling compiles, on a GPU only after
    an eager first epoch, so that its first figures come within seconds."""
    if cfg.compile is not None:
        return 0 if cfg.compile else None
    if not compilable or planned_steps < COMPILE_FROM_STEPS.get(device.type, COMPILE_FROM_STEPS["cpu"]):
        return None
    return steps_per_epoch if device.type == "cuda" else 0


def cpu_options() -> dict:
    """Inductor's options for compiling on the CPU: aten's random numbers, and `isa_options`."""
    return {**CPU_COMPILE_OPTIONS, **isa_options()}


def partition_options(device: torch.device) -> dict:
    """AOTAutograd's options around a compiled step on `device`."""
    return {**AOT_CACHE_OPTIONS, **(CPU_PARTITION_OPTIONS if device.type == "cpu" else {})}


RECORD = "aevb-vec-isa.json"  # in inductor's cache folder, so clearing that cache clears it too


def isa_options() -> dict:
    """Inductor options for a CPU compile: `{"cpp.vec_isa_ok": True}` when this machine is known to
    pass inductor's instruction-set check (found out, and recorded, on the first call), else {}.
    A `TORCHINDUCTOR_VEC_ISA_OK` in the environment wins over the record."""
    from torch._inductor import config, cpp_builder, cpu_vec_isa
    from torch._inductor.runtime.cache_dir_utils import cache_dir

    if sys.platform != "linux" or platform.machine() != "x86_64" or config.cpp.vec_isa_ok is not None:
        return {}
    flags = cpu_vec_isa.x86_isa_checker()  # what the CPU reports: avx2, avx512, amx_tile ...
    claimed = [str(isa) for isa in cpu_vec_isa.supported_vec_isa_list
               if all(flag in flags for flag in str(isa).split())]
    compiler = shutil.which(cpp_builder.get_cpp_compiler()) or ""
    try:
        version = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):  # no compiler: inductor's own check will say so
        version = ""
    key = {"torch": torch.__version__, "torch_dir": str(Path(torch.__file__).parent), "cpu": flags,
           "compiler": compiler, "compiler_version": version.partition("\n")[0]}
    path = Path(cache_dir()) / RECORD
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        record = {}
    if not isinstance(record, dict) or record.get("key") != key:
        usable = [str(isa) for isa in cpu_vec_isa.valid_vec_isa_list()]  # inductor's check, once
        record = {"key": key, "all_usable": usable == claimed}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic.write_text(path, json.dumps(record, indent=1) + "\n")
        except (OSError, WriteError):  # a read-only cache: check again next time
            pass
    return {"cpp.vec_isa_ok": True} if record.get("all_usable") is True else {}
