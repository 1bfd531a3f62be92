"""How often a digit classifier reads a CVAE's generations as the label they were drawn for.

Trains a small MLP classifier (784-512-10, 3 epochs) on MNIST's training pixels scaled to [0, 1],
reports its test accuracy, then draws N generations per label from p(x | y) in the chosen mode and
reports the fraction classified as y, per label and overall.

    python benchmarks/cvae_label_accuracy.py runs/cvae-mnist --data-dir ../shared/data
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from aevb.data import load
from aevb.runs import load_model


def train_classifier(data, epochs: int = 3, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 10))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x, y = data.train.x.float() / 255.0, data.train.y
    for _ in range(epochs):
        for idx in torch.randperm(len(x)).split(128):
            loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--dataset", default="mnist", help="the classifier's digits: mnist, or mnist-sample "
                   "for a quick check")
    p.add_argument("--per-label", type=int, default=1000)
    p.add_argument("--mode", choices=("param", "mean", "sample"), default="param")
    args = p.parse_args()
    data = load(args.dataset, args.data_dir)
    net = train_classifier(data)
    torch.set_grad_enabled(False)  # training is done; the rest only scores
    acc = (net(data.test.x.float() / 255.0).argmax(1) == data.test.y).float().mean().item()
    print(f"classifier test accuracy on real MNIST digits: {acc:.4f}")
    model, cfg, _ = load_model(args.run)
    torch.manual_seed(0)
    per_label = []
    for label in range(10):
        c = torch.full((args.per_label,), label)
        x = model.sample(args.per_label, c, args.mode).clamp(0, 1)
        per_label.append((net(x).argmax(1) == label).float().mean().item())
    print(f"generations ({args.mode}) read as their label, per label 0-9: "
          + " ".join(f"{a:.3f}" for a in per_label))
    print(f"overall: {sum(per_label) / 10:.4f} over {10 * args.per_label} generations")


if __name__ == "__main__":
    main()
