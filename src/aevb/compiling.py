"""When training steps run through `torch.compile`, and with which options; and compiled CPU code
started without repeating inductor's instruction-set check in every process.

`compile_from` picks the step from which a run's steps are compiled: compiling costs seconds to
minutes, which the faster steps must repay.

Before inductor loads compiled CPU code it checks which vector instruction sets it may use (AVX2,
AVX-512, AVX-512 VNNI, AMX): for each one the CPU reports, it builds a small test library (cached
on disk) and loads it in a child Python, which must load libtorch. Every new process repeats the
loads: 2.5 to 2.9 s on this project's machine, most of the VAE recipe's 4.8 s to the tutorial's
number. The outcome depends only on the CPU, the compiler and the torch build, so the first
process records it beside inductor's own cache (`isa_options`). When the record says every set
the CPU reports passed, the compile options set inductor's switch for that, `cpp.vec_isa_ok`,
which skips the base check of each set (inductor still checks the bf16, VNNI and AMX
instructions; loading the VAE's cached code then took 0.7 to 0.9 s in all, against 2.7 to 3.0 s).
A `TORCHINDUCTOR_VEC_ISA_OK` in the environment wins over the record.
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

# `compile = None` compiles only runs of at least this many steps, by device type (others: "cpu").
# On a laptop CPU compiling takes 5 s to 3 min (the VRNN, with an empty cache) and saves up to a
# quarter of each step: 2,000 steps is about 3 epochs of MNIST at batch 100. On a GPU with CUDA
# graphs a step takes well under a millisecond: on an H100 with empty caches, compiling took 14 s
# (VAE), 19 s (GMVAE) and 58 s (VRNN) and saves 0.18, 0.38 and 1.9 ms a step, so it repays itself
# after 76,000, 49,000 and 31,000 steps (README "On a GPU"). The VAE's, CVAE's and GMVAE's recipes
# (41,000 to 86,000 steps) compile there; the VRNN's 7 epochs (4,200 steps) run eagerly.
COMPILE_FROM_STEPS = {"cpu": 2000, "cuda": 30_000}

# Random numbers inside a compiled graph on the CPU: inductor's own generator (one Philox draw per
# element, per thread) made the VAE's four dropout masks cost 1.4 ms of a 7 ms step at batch 32;
# aten's is about twice as fast, and it is eager's stream, so compiled and eager runs draw alike.
CPU_COMPILE_OPTIONS = {"fallback_random": True}

# How AOTAutograd splits a compiled step into forward and backward, on the CPU. By default it may
# save a view of an activation for a matrix product's backward, and then cannot see that the
# activation itself is kept: for a ReLU applied to a (T, N, W) or (K, B, W) tensor it saves a
# bool mask of where the unit was off. Inductor reads bool masks with a branch per element, which
# mispredicts on the ~50% random pattern of a ReLU: 4.3 ns per element, against 0.24 ns when the
# mask is recomputed from the saved activation (benchmarks/relu_masks.py). Never saving views lets
# it recompute the mask. Patched in only around compiled steps: entering the patch costs up to 50 us a step.
CPU_PARTITION_OPTIONS = {"recompute_views": True}

# AOTAutograd keeps the joint forward-and-backward graph it traces in a disk cache, so that a new
# process skips tracing and partitioning; by default it refuses any graph that holds a custom
# autograd.Function, and nets.ReLUDropout is one. PyTorch's authors found the traced Function pure
# in its inputs and mean to make caching it the default (pytorch/pytorch#149751); refused, the VAE
# recipe's compile in a new process took 1.8 s instead of 0.9 s, a third of its time to the
# tutorial's number. Patched in around compiled steps on every device; torch 2.6 lacks the switch.
AOT_CACHE_OPTIONS = {key: True for key in ("autograd_cache_allow_custom_autograd_functions",)
                     if hasattr(torch._functorch.config, key)}


def compile_from(cfg: TrainConfig, compilable: bool, device: torch.device, planned_steps: int,
                 steps_per_epoch: int) -> int | None:
    """The step from which training steps run compiled (None: never). `compile = True` compiles
    from the start. Left unset, a run long enough to repay compiling compiles, on a GPU only after
    an eager first epoch: its figures come within seconds (the VAE passes the tutorial's number at
    epoch 0.04) instead of after the compiler, for one epoch at eager speed (the VAE's: 0.3 s
    longer on an H100)."""
    if cfg.compile is not None:
        return 0 if cfg.compile else None
    if not compilable or planned_steps < COMPILE_FROM_STEPS.get(device.type, COMPILE_FROM_STEPS["cpu"]):
        return None
    return steps_per_epoch if device.type == "cuda" else 0


RECORD = "aevb-vec-isa.json"  # in inductor's cache folder, so clearing that cache clears it too


def isa_options() -> dict:
    """Inductor options for a CPU compile: `{"cpp.vec_isa_ok": True}` when this machine is known to
    pass inductor's instruction-set check (found out, and recorded, on the first call), else {}."""
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
        except OSError:  # a read-only cache: check again next time
            pass
    return {"cpp.vec_isa_ok": True} if record.get("all_usable") is True else {}
