"""Which device a run trains on, and in which precision.

`auto` picks CUDA, then Apple's MPS, then the CPU. bf16 runs the networks' layers under autocast,
and `auto` picks it only where the device multiplies bf16 in hardware: elsewhere it is emulated,
and slower than fp32.
"""

from __future__ import annotations

import platform

import torch

from aevb.errors import AevbError


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA, then Apple's MPS, then the CPU; an unavailable choice is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name not in ("cpu", "cuda", "mps") and not name.startswith("cuda:"):
        raise AevbError(f"unknown device {name!r}; use auto, cpu, cuda or mps")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise AevbError("--device cuda: no CUDA GPU is visible to PyTorch; use --device cpu")
    if name == "mps" and not torch.backends.mps.is_available():
        raise AevbError("--device mps: Apple's MPS backend is not available; use --device cpu")
    return torch.device(name)


PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}  # and "auto", which resolve_precision picks


def native_bf16(device: torch.device) -> bool:
    """Whether `device` multiplies bf16 matrices in hardware: a CPU with AVX-512 BF16 or AMX (or
    an Arm CPU that oneDNN runs bf16 on), a CUDA GPU from Ampere on. Elsewhere bf16 is emulated,
    and several times slower than fp32 (docs: Results, Speed, "On a CPU without bf16 hardware")."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type != "cpu":
        return False
    if platform.machine() in ("x86_64", "AMD64"):
        return any(getattr(torch.cpu, check, lambda: False)()  # private, as inductor uses them
                   for check in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """fp32 or bf16 as asked; `auto` is bf16 where `device` has bf16 hardware, else fp32."""
    if precision not in (*PRECISIONS, "auto"):
        raise AevbError(f"unknown precision {precision!r}; use auto, fp32 or bf16")
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision


def autocast(device: torch.device, precision: str) -> torch.autocast:
    """The autocast context that runs the networks' layers in `precision` on `device`.

    Only matrix products and their kin go to bf16 (PyTorch's autocast op lists); every density
    head returns fp32 parameters, so log-densities, KL, logsumexp, the ELBO and Adam's state are
    fp32 whatever the precision.
    """
    dtype = PRECISIONS[resolve_precision(precision, device)]
    if dtype is not None and not torch.amp.is_autocast_available(device.type):
        raise AevbError(f"--precision {precision} is not supported on {device.type}; use fp32")
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)
