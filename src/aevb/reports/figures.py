"""Which figures a trained run gets, and the numbers behind them. Drawing is in `aevb.reports.plots`.

Every run: the learning curve. Models of images: test digits, generations in the tutorial's three
modes (decoder parameter, mean, sample), and a t-SNE map of the test set's posterior means; a
label-conditioned model adds its label-by-label grid, a model with clusters its cluster-by-cluster
grid (rows ordered by the label each cluster is matched to) and the cluster proportions, a
sequential model an animation of images generated row by row (its t-SNE map concatenates the
posterior means of every step). Other data: samples over the data. Then whatever figures only the
model draws (`LatentModel.figure_sets`: FA's traced experiments).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from aevb import clustering
from aevb.evaluate import cluster_assignments, seeded
from aevb.objectives import name
from aevb.reports import fa_experiments, plots

# Figures that only some models draw, by the name a model lists in `figure_sets`.
FIGURE_SETS = {"fa-experiments": fa_experiments.figures}
TSNE_POINTS = 5000  # test points in the t-SNE map: enough to show the clusters; its time grows with it


@torch.no_grad()
def posterior_means(model, data, n: int, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Means of q(z|x[,y]) for a seeded random subset of n test points, with their labels."""
    s = data.test
    gen = torch.Generator(device=s.x.device).manual_seed(seed)
    idx = torch.randperm(len(s), generator=gen, device=s.x.device)[:n]
    means, labels = [], []
    for b in data.batches(s, 1000, gen, idx):
        means.append(model.posterior_mean(b.x, model.condition(b)).cpu())
        labels.append(None if b.y is None else b.y.cpu())
    y_all = None if labels[0] is None else torch.cat(labels).numpy()
    return torch.cat(means).numpy(), y_all


def tsne(points: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.manifold import TSNE

    if points.shape[1] == 2:  # already a plane: show it as it is
        return points
    if len(points) < 5:  # too few for t-SNE: their first two coordinates
        return np.pad(points[:, :2], ((0, 0), (0, max(0, 2 - points.shape[1]))))
    # perplexity: t-SNE's 30, or less on a small test split (it must stay below the points' count)
    perplexity = min(30.0, (len(points) - 1) / 3)
    return TSNE(n_components=2, init="pca", learning_rate="auto", perplexity=perplexity,
                random_state=seed).fit_transform(points)


def write(model, cfg, data, meta: dict, out: Path) -> list[Path]:
    """Write every figure of a trained model, as `aevb.runs.open_run` gives it, into `out`;
    returns the files written.

        >>> write(*open_run("pretrained:vae-mnist"), Path("figures/vae"))
    """
    info, seed = meta["data_info"], cfg.train.seed
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if meta["metrics"]:
        written.append(plots.learning_curve(meta["metrics"], out / "learning-curve.png",
                                            f"{cfg.model} on {info['dataset']}",
                                            name(cfg.train.objective, cfg.train.train_samples)))
    if data.image_shape is None:
        with seeded(seed, data.test.x.device):
            x = model.sample(len(data.test)).cpu().numpy()
        written.append(plots.scatter_over_data(x, data.test.x.cpu().numpy(),
                                               out / "samples-over-test-data.png"))
    else:
        written += _image_figures(model, cfg, data, info, out, seed)
    for figure_set in model.figure_sets:
        written += FIGURE_SETS[figure_set](type(model), cfg, data, out)
    return written


def _image_figures(model, cfg, data, info, out: Path, seed: int) -> list[Path]:
    shape = data.image_shape
    raw = data.test.x[:100].cpu().float()
    shown = raw / 255.0 if data.test.x.dtype == torch.uint8 else raw
    written = [plots.image_grid(shown.numpy(), shape, out / "test-digits.png", title="test digits")]
    for mode, what in (("param", "decoder parameter"), ("mean", "decoder mean"), ("sample", "samples")):
        with seeded(seed, data.test.x.device):
            x = model.sample(100, mode=mode).cpu().numpy()
        written.append(plots.image_grid(np.clip(x, 0, 1), shape, out / f"generations-{mode}.png",
                                        title=f"generations: {what}"))
    if model.uses_labels:
        rows, per_row = len(data.classes), 15
        c = torch.arange(rows, device=data.test.x.device).repeat_interleave(per_row)
        with seeded(seed, data.test.x.device):
            x = model.sample(len(c), c, mode="param").cpu().numpy()
        written.append(plots.image_grid(x, shape, out / "generations-per-label.png", ncols=per_row,
                                        title="p(x | y): one row per label", row_labels=data.classes))
    if model.has_clusters:
        written += _cluster_figures(model, data, out, seed)
    if model.sequential:
        with seeded(seed, data.test.x.device):
            x = model.sample(100, mode="mean").cpu().numpy()
        written.append(plots.row_by_row_animation(x, shape, out / "generations-row-by-row.gif",
                                                  title="generated row by row"))
    z, y = posterior_means(model, data, min(TSNE_POINTS, len(data.test)), seed)
    emb = tsne(z, seed)
    q = "q(z|x,y)" if model.uses_labels else "q(z|x)"
    if model.sequential:
        q = "per-step q(z_t|h_t,x_t)"  # the T means of one trajectory, concatenated
    for suffix in (".png", ".pdf"):
        written.append(plots.embedding(emb, y, data.classes, out / f"tsne-posterior-means{suffix}",
                                       f"t-SNE of {q} means, {len(z):,} test points"))
    return written


def cluster_order(model, data, seed: int) -> tuple[np.ndarray, list[str], dict]:
    """Clusters in the order of the test label each is matched to (unmatched ones last), a name
    for each ("3" for the cluster matched to label 3, "c7" for unmatched cluster 7), and the test
    set's assignments."""
    a = cluster_assignments(model, data, "test", seed=seed)
    n_clusters = model.n_clusters
    if data.test.y is None:
        return np.arange(n_clusters), [f"c{k}" for k in range(n_clusters)], a
    label_of = clustering.match(a["cluster"].numpy(), data.test.y.cpu().numpy(), n_clusters,
                                len(data.classes))
    order = np.lexsort((np.arange(n_clusters), np.where(label_of < 0, len(data.classes), label_of)))
    names = [data.classes[label_of[k]] if label_of[k] >= 0 else f"c{k}" for k in order]
    return order, names, a


def _cluster_figures(model, data, out: Path, seed: int, per_row: int = 15) -> list[Path]:
    order, names, a = cluster_order(model, data, seed)
    device = data.test.x.device
    c = torch.as_tensor(order, device=device).repeat_interleave(per_row)
    with seeded(seed, device):
        x = model.sample(len(c), c, mode="param").cpu().numpy()
    n_clusters = len(order)
    written = [plots.image_grid(x, data.image_shape, out / "generations-per-cluster.png", ncols=per_row,
                                title="p(x | y): one row per cluster, named by its matched label",
                                row_labels=names)]
    assigned = np.bincount(a["cluster"].numpy(), minlength=n_clusters) / len(a["cluster"])
    mean_q = a["q"].mean(0).numpy()
    written.append(plots.cluster_proportions(assigned[order], mean_q[order], names,
                                             out / "cluster-proportions.png",
                                             f"{n_clusters} clusters on {len(a['cluster']):,} test points"))
    return written
