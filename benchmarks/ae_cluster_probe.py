"""How well do an autoencoder's codes cluster MNIST? The start a VaDE-style GMVAE would get.

    python benchmarks/ae_cluster_probe.py --data-dir DIR                      # 500-500-2000-10
    python benchmarks/ae_cluster_probe.py --data-dir DIR --hidden 512 512 --latent-dim 64

VaDE (Jiang et al. 2017) reaches 0.945 cluster accuracy by starting its Gaussian mixture from a GMM
fitted to a pretrained autoencoder's codes. Before building that start into aevb's GMVAE, this
measures what such a start gives here: a deterministic autoencoder trained end to end on
threshold-binarized MNIST (Bernoulli reconstruction, Adam 1e-3, batch 256, bf16 autocast), then
k-means and Gaussian mixtures (scikit-learn, K = 10) fitted to the 60,000 training codes and scored
on the test codes with the GMVAE's cluster accuracy (`aevb.clustering.accuracy`).
"""

from __future__ import annotations

import argparse
import os
import time

import torch
import torch.nn.functional as F
from sklearn.cluster import KMeans
from sklearn.mixture import GaussianMixture
from torch import nn

from aevb.clustering import accuracy
from aevb.data import load, preprocess
from aevb.runtime import process


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=os.environ.get("AEVB_DATA_DIR"))
    p.add_argument("--dataset", default="mnist", help="mnist, or mnist-sample for a quick check")
    p.add_argument("--hidden", type=int, nargs="+", default=[500, 500, 2000])
    p.add_argument("--latent-dim", type=int, default=10)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    process.configure()
    data = load(args.dataset, args.data_dir)
    x_train, x_test = (preprocess(s.x.reshape(len(s), -1), "binarize-threshold")
                       for s in (data.train, data.test))
    torch.manual_seed(args.seed)
    encoder = mlp([784, *args.hidden, args.latent_dim])
    decoder = mlp([args.latent_dim, *args.hidden[::-1], 784])
    params = [*encoder.parameters(), *decoder.parameters()]
    opt = torch.optim.Adam(params, lr=1e-3, fused=True)
    start = time.perf_counter()
    for epoch in range(args.epochs):
        total = torch.zeros(())
        for idx in torch.randperm(len(x_train)).split(256):
            x = x_train[idx]
            with torch.autocast("cpu", dtype=torch.bfloat16):
                logits = decoder(encoder(x))
            loss = F.binary_cross_entropy_with_logits(logits.float(), x, reduction="sum") / len(x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach() * len(x)
        print(f"epoch {epoch + 1}: reconstruction {total.item() / len(x_train):.2f} nats "
              f"({time.perf_counter() - start:.0f} s)", flush=True)
    with torch.no_grad():
        z_train, z_test = encoder(x_train).numpy(), encoder(x_test).numpy()
    y_test = data.test.y.numpy()
    arch = "-".join(map(str, [784, *args.hidden, args.latent_dim]))
    print("| autoencoder | epochs | clustering of the codes | test cluster accuracy |")
    print("| --- | --- | --- | --- |")
    for name, fit in [("k-means", KMeans(10, n_init=10, random_state=args.seed)),
                      ("GMM, diagonal", GaussianMixture(10, covariance_type="diag", n_init=3,
                                                        random_state=args.seed)),
                      ("GMM, full covariance", GaussianMixture(10, covariance_type="full", n_init=3,
                                                               random_state=args.seed))]:
        fit.fit(z_train)
        acc = accuracy(fit.predict(z_test), y_test, 10, 10)
        print(f"| {arch} | {args.epochs} | {name} | {acc:.3f} |", flush=True)


if __name__ == "__main__":
    main()
