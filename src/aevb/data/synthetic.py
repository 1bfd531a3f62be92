"""The tutorial's Factor Analysis data: z ~ N(0, I_2), x = W z + eps, eps ~ N(0, diag(sigma)^2)."""

from __future__ import annotations

import numpy as np
import torch

from aevb.data.containers import Data, Split

FA_W = np.array([[-0.5, -1.0], [-1.0, -1.0], [2.0, 0.5]])
FA_SIGMA = np.array([0.4, 0.2, 0.3])


def fa_synthetic(n_train: int = 1000, n_test: int = 1000, seed: int = 42) -> Data:
    """The tutorial's FA data, drawn with numpy's legacy generator seeded 42 (z first, then noise).

        >>> fa_synthetic().train.x.shape
        torch.Size([1000, 3])
    """
    rng = np.random.RandomState(seed)
    n = n_train + n_test
    z = rng.randn(n, FA_W.shape[1])
    x = z @ FA_W.T + rng.randn(n, FA_W.shape[0]) * FA_SIGMA
    x = torch.from_numpy(x).float()
    return Data("fa-synthetic", Split(x[:n_train]), Split(x[n_train:]),
                extra={"true_W": FA_W.tolist(), "true_sigma": FA_SIGMA.tolist()},
                note="the tutorial's synthetic factor-analysis data (seed 42)")
