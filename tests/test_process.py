"""aevb.process: the process-wide settings of the `aevb` command, each checked in a child Python
so that this test process keeps its own (hypothesis expects denormals)."""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

# Thirty eager training steps of the tutorial's GMVAE at batch 100 (K = 10 components, so
# activations of 2 to 3 MiB each); prints the page faults of the last twenty steps, and whether a
# denormal survives arithmetic.
CHILD = """
import json, resource, sys, torch
from aevb.models import registry
from aevb.runtime import process
from aevb.objectives import elbo
if sys.argv[1] == "configure":
    process.configure()
torch.manual_seed(0)
cls = registry.get("gmvae")
model = cls(cls.Config(), (784,), 10)
opt = torch.optim.Adam(model.parameters())
x = (torch.rand(100, 784) < 0.3).float()
faults = []
for _ in range(30):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    loss = -elbo(model.terms(x)).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
denormal = float(torch.tensor([1e-39]) * 1.0)
print(json.dumps({"faults": sum(faults[10:]), "denormal": denormal}))
"""


@pytest.fixture(scope="module")
def outcome() -> dict[str, dict]:
    """What the child printed, as a plain process and after `process.configure()`."""
    runs = {}
    for mode in ("plain", "configure"):
        out = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, check=True)
        runs[mode] = json.loads(out.stdout.splitlines()[-1])
    return runs


def test_configure_flushes_denormals(outcome):
    assert outcome["plain"]["denormal"] > 0
    assert outcome["configure"]["denormal"] == 0.0


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="keep_freed_memory tunes glibc's malloc")
def test_freed_memory_is_kept_for_the_next_step(outcome):
    # by default glibc gives freed activations back to the system and maps them again in the next
    # step, 4 KiB per fault. Over these 20 steps, in 8 runs each on this project's machine: 9,600 to
    # 34,000 faults by default, 2 to 2,100 configured (the heap still grows now and then, as freed
    # blocks fragment, until it has room for every step's pattern)
    assert outcome["plain"]["faults"] > 5000, "the default allocator no longer faults: nothing to test"
    assert outcome["configure"]["faults"] < 5000
