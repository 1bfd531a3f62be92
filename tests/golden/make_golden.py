"""Write the golden runs that tests/test_golden.py checks: run directories from an earlier aevb.

    python tests/golden/make_golden.py        # from the repository root; replaces tests/golden/*

Each run is a tiny model on the packaged MNIST sample, stopped mid-epoch (step 30 of 50 per epoch)
so that its checkpoint holds a partial epoch. Beside it: what `aevb evaluate --json` printed for it,
and the metrics and final model of the same run resumed to step 80. Regenerate them only when a
change is meant to alter numbers, and say so in the change; the test compares bit for bit.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from safetensors import safe_open

HERE = Path(__file__).resolve().parent
# (name, `aevb train` arguments): a VAE in bf16 with dropout (every random stream: dropout,
# posterior draws, dequantization noise, shuffling) and a GMVAE in fp32 (y summed out, clusters).
RUNS = {
    "vae": ["vae", "--latent-dim", "4", "--hidden", "16", "--layers", "1", "--precision", "bf16",
            "--eval-samples", "2", "--seed", "3"],
    "gmvae": ["gmvae", "--components", "3", "--latent-dim", "4", "--hidden", "16", "--layers", "1",
              "--precision", "fp32", "--lr", "0.003", "--seed", "5"],
}
COMMON = ["--dataset", "mnist-sample", "--batch-size", "100", "--no-compile", "--quiet"]
STOP, RESUME_TO = 30, 80  # 50 steps per epoch: stopped in epoch 1, resumed into epoch 2
IWAE_SAMPLES = 10


def aevb(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "aevb", *args], capture_output=True, text=True, check=True)
    return done.stdout


def model_digest(run: Path) -> str:
    """SHA-256 over the model's tensors (name, dtype, shape, bytes), in name order."""
    h = hashlib.sha256()
    with safe_open(str(run / "checkpoint.safetensors"), framework="pt") as f:
        for key in sorted(k for k in f.keys() if k.startswith("model/")):  # noqa: SIM118
            t = f.get_tensor(key).contiguous()
            h.update(f"{key} {t.dtype} {tuple(t.shape)}".encode())
            h.update(t.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def machine() -> dict:
    """What the bit-for-bit figures depend on besides the code: torch, the CPU's vendor and ISA."""
    vendor = next((line.split(":")[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("vendor_id")), "unknown")
    return {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "cpu_vendor": vendor}


def main() -> None:
    for name, args in RUNS.items():
        out = HERE / name
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        aevb("train", *args, *COMMON, "--max-steps", str(STOP), "--out", str(out / "run"))
        (out / "evaluate.json").write_text(aevb("evaluate", str(out / "run"), "--json", "--iwae-samples",
                                                str(IWAE_SAMPLES)))
        with tempfile.TemporaryDirectory() as tmp:
            resumed = Path(tmp) / "run"
            shutil.copytree(out / "run", resumed)
            aevb("train", args[0], "--resume", "--out", str(resumed), "--max-steps", str(RESUME_TO),
                 "--quiet")
            lines = [json.loads(s) for s in (resumed / "metrics.jsonl").read_text().splitlines()]
            for line in lines:
                line.pop("seconds")  # wall time, the one value that differs between runs
            record = {"metrics": lines, "model_sha256": model_digest(resumed)}
            (out / "resumed.json").write_text(json.dumps(record, indent=1) + "\n")
    (HERE / "machine.json").write_text(json.dumps(machine(), indent=1) + "\n")


if __name__ == "__main__":
    main()
