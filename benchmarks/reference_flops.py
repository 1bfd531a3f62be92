"""FLOPs per image of the tutorial's VRNN training step (its notebook code), counted two ways.

    python benchmarks/reference_flops.py

`torch.utils.flop_counter.FlopCounterMode` has no formula for `nn.LSTM` (aten's fused `lstm`), so a
count of the notebook's step leaves its LSTM out. Here the same step is counted as benchmarked,
then with the `nn.LSTM` swapped for the same two layers as `nn.LSTMCell`s (the product kernels it
does count), to compare with aevb's VRNN (0.331 GFLOP per image).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tutorial_loops import NotebookVRNN  # noqa: E402


class CellStack(nn.Module):
    """One step of the notebook's nn.LSTM(30, 256, num_layers=2, batch_first), as two LSTMCells."""

    def __init__(self, lstm: nn.LSTM):
        super().__init__()
        self.cells = nn.ModuleList(nn.LSTMCell(lstm.input_size if i == 0 else lstm.hidden_size,
                                               lstm.hidden_size) for i in range(lstm.num_layers))

    def forward(self, inp: torch.Tensor, state):  # inp (B, 1, 30), as nn.LSTM takes one step
        h, new = inp[:, 0], []
        for cell, s in zip(self.cells, state or [None] * len(self.cells), strict=True):
            new.append(cell(h, s))
            h = new[-1][0]
        return h[:, None], new


def gflop_per_image(model: NotebookVRNN, batch: int = 100) -> float:
    x = (torch.rand(batch, 28, 28) < 0.3).float()
    with FlopCounterMode(display=False) as counter:
        (-model.elbo(x).mean()).backward()
    return counter.get_total_flops() / batch / 1e9


if __name__ == "__main__":
    torch.manual_seed(0)
    model = NotebookVRNN()
    print(f"as benchmarked (nn.LSTM uncounted): {gflop_per_image(model):.4f} GFLOP per image")
    model.f = CellStack(model.f)
    print(f"nn.LSTM as two LSTMCells (counted):  {gflop_per_image(model):.4f} GFLOP per image")
