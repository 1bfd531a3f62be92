"""Start compiled CPU code without repeating inductor's instruction-set check in every process.

Before inductor loads compiled CPU code it checks which vector instruction sets it may use (AVX2,
AVX-512, AVX-512 VNNI, AMX): for each one the CPU reports, it builds a small test library (cached
on disk) and loads it in a child Python, which must load libtorch. Every new process repeats the
loads: 2.5 to 2.9 s on this project's machine, most of the VAE recipe's 4.8 s to the tutorial's
number. The outcome depends only on the CPU, the compiler and the torch build, so the first
process records it beside inductor's own cache. When the record says every set the CPU reports
passed, the compile options set inductor's switch for that, `cpp.vec_isa_ok`, which skips the
base check of each set (inductor still checks the bf16, VNNI and AMX instructions; loading the
VAE's cached code then took 0.7 to 0.9 s in all, against 2.7 to 3.0 s).
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

from aevb import atomic

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
