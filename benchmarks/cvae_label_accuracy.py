"""How often a digit classifier reads a CVAE's generations as the label they were drawn for.

Trains a small CNN (two 5x5 convolutions, 2 epochs, about 99% on MNIST's test set) on the training
pixels scaled to [0, 1], reports its test accuracy, then draws N generations per label from
p(x | y) in each mode and prints one table: the fraction classified as their label, per label and
overall.

    python benchmarks/cvae_label_accuracy.py pretrained:cvae-mnist --data-dir DIR
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from aevb.data import load
from aevb.runs import load_model


def train_classifier(data, epochs: int = 2, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Unflatten(1, (1, 28, 28)), nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(64 * 7 * 7, 256), nn.ReLU(), nn.Linear(256, 10))
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
    p.add_argument("--modes", default="param,mean,sample", help="comma-separated: param, mean, sample")
    p.add_argument("--epochs", type=int, default=2, help="the classifier's training epochs")
    args = p.parse_args()
    data = load(args.dataset, args.data_dir)
    net = train_classifier(data, args.epochs)
    torch.set_grad_enabled(False)  # training is done; the rest only scores
    acc = (net(data.test.x.float() / 255.0).argmax(1) == data.test.y).float().mean().item()
    print(f"classifier test accuracy on real MNIST digits: {acc:.4f}")
    model, cfg, _ = load_model(args.run)
    print(f"| mode | overall | {' | '.join(str(k) for k in range(10))} |")
    print("| --- " * 12 + "|")
    for mode in args.modes.split(","):
        torch.manual_seed(0)
        per_label = []
        for label in range(10):
            c = torch.full((args.per_label,), label)
            x = model.sample(args.per_label, c, mode).clamp(0, 1)
            per_label.append((net(x).argmax(1) == label).float().mean().item())
        print(f"| {mode} | {sum(per_label) / 10:.4f} | " + " | ".join(f"{a:.3f}" for a in per_label) + " |")


if __name__ == "__main__":
    main()
