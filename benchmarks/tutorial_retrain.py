"""Train the tutorial's VAE and CVAE again, as its notebooks did, and save their weights in the
layout of the tutorial's own files, for `tutorial_side_by_side.py --retrained DIR` to score.

The VAE is `tutorial_loops.NotebookVAE` (z = 20, 784-500-500 ReLU networks with dropout 0.1, two
Adams at 3e-4, batch 32) for the 46 epochs its notebook ran; the CVAE is `NotebookCVAE` below, the
code of `03_cvae/cvae.ipynb` (the same networks reading [x, y] and [y, z], a learned Gaussian
p(z|y), one Adam at 3e-4, batch 100) for 69 epochs. Both train on the training set dequantized once
with numpy's noise and read in a fixed order, with torch's clamped continuous-Bernoulli
normaliser, as the notebooks did. After each epoch the test ELBO with torch's normaliser (one draw,
dropout off: the number the notebooks plotted) goes into DIR/log.json with the training seconds.

    python benchmarks/tutorial_retrain.py --data-dir DIR --out runs/tutorial-retrained
    python benchmarks/tutorial_side_by_side.py --weights WEIGHTS \
        --retrained runs/tutorial-retrained --data-dir DIR
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file
from torch.distributions import ContinuousBernoulli, Independent, Normal
from torch.distributions import kl_divergence as kl
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tutorial_loops import GaussianNet, NotebookVAE, ProbsNet, prepared  # noqa: E402

from aevb.data import load  # noqa: E402

EPOCHS = {"vae": 46, "cvae": 69}  # as long as each notebook trained the weights it shipped


class NotebookCVAE:
    """`03_cvae/cvae.ipynb`'s `ImageDLVM`: q(z|x,y), a learned p(z|y) and p(x|y,z) reading [y, z]."""

    batch_size = 100

    def __init__(self, lr: float = 3e-4):
        self.q_z_given_x_y = GaussianNet(784 + 10, 500, 20, dropout=0.1)
        self.p_z_given_y = nn.ModuleDict({"mus": nn.Linear(10, 20),
                                          "sigmas": nn.Sequential(nn.Linear(10, 20), nn.Softplus())})
        self.p_x_given_z_y = ProbsNet(10 + 20, 500, 784, ContinuousBernoulli, dropout=0.1)
        self.nets = [self.p_z_given_y, self.p_x_given_z_y, self.q_z_given_x_y]
        self.opt = torch.optim.Adam([p for n in self.nets for p in n.parameters()], lr=lr)

    def prior(self, ys: torch.Tensor) -> Independent:
        return Independent(Normal(self.p_z_given_y["mus"](ys), self.p_z_given_y["sigmas"](ys)), 1)

    def elbo(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        posterior = self.q_z_given_x_y(torch.cat([xs, ys], 1))
        zs = posterior.rsample()
        return self.p_x_given_z_y(torch.cat([ys, zs], 1)).log_prob(xs) - kl(posterior, self.prior(ys))

    def step(self, xs: torch.Tensor, ys: torch.Tensor) -> None:
        for net in self.nets:
            net.train()
        loss = -self.elbo(xs, ys).mean()  # the notebook's -(rec.mean() - kl.mean()): the same value
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()


def tutorial_layout(name: str, model) -> dict[str, torch.Tensor]:
    """The weights under the names of the tutorial's files, as its safetensors hold them."""
    def prefixed(prefix: str, net: nn.Module) -> dict[str, torch.Tensor]:
        return {f"{prefix}.{k.replace('probs.', 'lambdas.')}": v.detach().clone().contiguous()
                for k, v in net.state_dict().items()}
    if name == "vae":
        return prefixed("q_z_given_x", model.encoder) | prefixed("p_x_given_z", model.decoder)
    return (prefixed("q_z_given_x_y", model.q_z_given_x_y) | prefixed("p_x_given_z_y", model.p_x_given_z_y)
            | prefixed("p_z_given_y", model.p_z_given_y))


@torch.no_grad()
def notebook_test_elbo(name: str, model, x: torch.Tensor, y: torch.Tensor) -> float:
    """The mean test ELBO the notebooks logged: one draw, dropout off, torch's normaliser."""
    for net in model.nets:
        net.eval()
    args = (x,) if name == "vae" else (x, y)
    values = [model.elbo(*(a[i:i + 1000] for a in args)) for i in range(0, len(x), 1000)]
    return float(torch.cat(values).mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=None)
    p.add_argument("--dataset", default="mnist", help="mnist, or mnist-sample for a quick check")
    p.add_argument("--out", type=Path, required=True, help="folder for vae.safetensors, cvae.safetensors, "
                   "log.json")
    p.add_argument("--models", nargs="+", default=["vae", "cvae"], choices=list(EPOCHS))
    p.add_argument("--epochs", type=int, default=None, help="instead of the notebooks' 46 and 69")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    data = load(args.dataset, args.data_dir, "none")  # raw 8-bit pixels; `prepared` dequantizes them
    onehot = {s: F.one_hot(getattr(data, s).y, 10).float() for s in ("train", "test")}
    x_test = prepared(data.test.x.flatten(1), "dequantize", args.seed + 1)
    args.out.mkdir(parents=True, exist_ok=True)
    log = {}
    for name in args.models:
        torch.manual_seed(args.seed)
        model = NotebookVAE() if name == "vae" else NotebookCVAE()
        x = prepared(data.train.x.flatten(1), "dequantize", args.seed)
        tensors = (x,) if name == "vae" else (x, onehot["train"])
        # in a fixed order, as the notebooks read it
        loader = DataLoader(TensorDataset(*tensors), batch_size=model.batch_size)
        curve, seconds = [], 0.0
        for epoch in range(1, (args.epochs or EPOCHS[name]) + 1):
            start = time.perf_counter()
            for batch in loader:
                model.step(*batch)
            seconds += time.perf_counter() - start
            curve.append(notebook_test_elbo(name, model, x_test, onehot["test"]))
            print(f"{name} epoch {epoch}: test ELBO (torch's normaliser) {curve[-1]:.2f}, {seconds:.0f} s",
                  flush=True)
        save_file(tutorial_layout(name, model), args.out / f"{name}.safetensors")
        log[name] = {"epochs": len(curve), "training_seconds": round(seconds, 1),
                     "threads": torch.get_num_threads(),
                     "test_elbo_torch_normaliser": [round(v, 2) for v in curve]}
    (args.out / "log.json").write_text(json.dumps(log, indent=1) + "\n")


if __name__ == "__main__":
    main()
