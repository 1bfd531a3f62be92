"""Process-wide settings for fast CPU training, which the `aevb` command makes when it starts.

They belong to the whole process, not to a model, so importing aevb leaves them alone: a library
leaves the floating-point mode and the allocator to its caller. In Python, call `configure()`
first to train as fast as the command does (the notebooks and benchmarks do).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

import torch

# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_FROM = 32 << 20  # glibc's largest allowed threshold on 64-bit: bigger blocks still get mmap
TRIM_FROM = 1 << 30  # free memory at the heap's top that is given back to the system


def configure() -> None:
    """Both settings below: flush denormals and keep freed memory."""
    flush_denormals()
    keep_freed_memory()


def flush_denormals() -> None:
    """Flush denormal floats to zero on the CPU (FTZ and DAZ), for the whole process.

    Adam's moments of a weight whose gradient stays at zero decay below 1e-38, where x86 arithmetic
    is many times slower, and values that small change no update (docs: Results, Speed, "Denormals").
    Threads take the mode of the thread that creates them, so call this before torch's first
    parallel operation (numpy and hypothesis, for two, expect denormals).
    """
    torch.set_flush_denormal(True)


def keep_freed_memory() -> bool:
    """Let glibc's malloc keep the memory that a training step's tensors free, for the next step;
    returns whether it could (False off glibc, e.g. macOS or musl).

    By default glibc gives freed blocks back to the system, and the next step maps them again, one
    page fault per 4 KiB (docs: Results, Speed, "The allocator"). The cost is that the heap stays at its
    peak size (up to TRIM_FROM free at its top), as PyTorch's CUDA allocator keeps its blocks.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    # setting either threshold stops glibc adjusting both, so both are set: the mmap one would
    # otherwise stay at its 128 KiB default, and every larger tensor would be mapped afresh
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_FROM) and libc.mallopt(M_TRIM_THRESHOLD, TRIM_FROM))
