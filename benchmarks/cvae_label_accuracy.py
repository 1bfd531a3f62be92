"""How often a digit classifier reads a CVAE's generations as the label they were drawn for.

Trains a small CNN (two 5x5 convolutions, 2 epochs, about 99% on MNIST's test set) on the training
pixels scaled to [0, 1], reports its test accuracy, then draws N generations per label from
p(x | y) in each mode and prints one table: the fraction classified as their label, per label and
overall. `--sources` adds rows whose z are drawn, per label, from a full-covariance Gaussian
(`gaussian`) or a 10-component mixture (`mixture`) fitted to draws of q(z|x,y) of that label's
training images, instead of the model's prior p(z|y): where the class's codes really lie.

    python benchmarks/cvae_label_accuracy.py pretrained:cvae-mnist --data-dir DIR
    python benchmarks/cvae_label_accuracy.py pretrained:cvae-mnist --sources prior,gaussian,mixture \
        --modes param --data-dir DIR
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
    p.add_argument("--sources", default="prior", help="where z comes from, comma-separated: prior "
                   "(the model's p(z|y)), gaussian or mixture (fitted to q(z|x,y) per label)")
    args = p.parse_args()
    data = load(args.dataset, args.data_dir)
    net = train_classifier(data, args.epochs)
    torch.set_grad_enabled(False)  # training is done; the rest only scores
    acc = (net(data.test.x.float() / 255.0).argmax(1) == data.test.y).float().mean().item()
    print(f"classifier test accuracy on real MNIST digits: {acc:.4f}")
    model, cfg, _ = load_model(args.run)
    print(f"| z from | mode | overall | {' | '.join(str(k) for k in range(10))} |")
    print("| --- " * 13 + "|")
    for source in args.sources.split(","):
        for mode in args.modes.split(","):
            torch.manual_seed(0)
            per_label = []
            for label in range(10):
                c = torch.full((args.per_label,), label)
                z = codes(model, data, label, source, args.per_label)
                x = model.decode(z, c, mode).clamp(0, 1)
                per_label.append((net(x).argmax(1) == label).float().mean().item())
            print(f"| {source} | {mode} | {sum(per_label) / 10:.4f} | "
                  + " | ".join(f"{a:.3f}" for a in per_label) + " |")


def codes(model, data, label: int, source: str, n: int) -> torch.Tensor:
    """n codes z for `label`: from the model's prior p(z|y), or from a density fitted to one draw of
    q(z|x,y) per training image of that label (dequantized at the bin centres)."""
    if source == "prior":
        return model.prior(torch.full((n,), label)).sample()
    from sklearn.mixture import GaussianMixture

    x = (data.train.x[data.train.y == label].float() + 0.5) / 256
    z = model.posterior(x, torch.full((len(x),), label)).sample().double().numpy()
    fit = GaussianMixture(1 if source == "gaussian" else 10, covariance_type="full", random_state=0).fit(z)
    return torch.from_numpy(fit.sample(n)[0]).float()


if __name__ == "__main__":
    main()
