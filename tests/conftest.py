import os
from pathlib import Path

import numpy as np
import pytest
import torch

from aevb.data import fa_synthetic

# A data root holding the full MNIST for the tests that need it: $AEVB_TEST_DATA, or the CI's
# shared/data folder beside the checkout; tests that need it are skipped without it.
SHARED_DATA = Path(os.environ.get("AEVB_TEST_DATA") or Path(__file__).parents[2] / "shared" / "data")


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
        pytest.skip(f"no full MNIST in {SHARED_DATA}/mnist (set AEVB_TEST_DATA to a data root)")
    return SHARED_DATA


def pytest_report_header(config):
    return f"torch {torch.__version__}, {os.cpu_count()} cpus"
