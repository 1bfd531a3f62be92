import os
from pathlib import Path

import numpy as np
import pytest
import torch

from aevb.data import fa_synthetic

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Every test gets its own cache and no data root from the environment."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("AEVB_DATA_DIR", raising=False)
    torch.manual_seed(0)
    yield
    torch.set_flush_denormal(False)  # aevb.fit flushes denormals process-wide; hypothesis needs them


@pytest.fixture
def fa_npz(tmp_path) -> Path:
    """FA data drawn like the tutorial's but from another seed, saved as a user's .npz."""
    d = fa_synthetic(seed=7)
    path = tmp_path / "fa.npz"
    np.savez(path, x_train=d.train.x.numpy(), x_test=d.test.x.numpy())
    return path


@pytest.fixture
def shared_mnist() -> Path:
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip("../shared/data/mnist is not beside this checkout")
    return SHARED_DATA


def pytest_report_header(config):
    return f"torch {torch.__version__}, {os.cpu_count()} cpus"
