"""Every figure, drawn from arrays and written to a file. No training, no model code.

matplotlib is imported inside the functions, and only its object API is used (no pyplot), so
importing aevb never picks a backend and the figures render on machines without a display.
Each function returns the path it wrote; given no path, it returns the Figure instead, which a
notebook shows inline (after `%matplotlib inline`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aevb.atomic import atomic_path
from aevb.data.containers import as_hwc, chw


def figure(width: float, height: float):
    """A matplotlib Figure of this size in inches, laid out to fit its labels."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def save(fig, path: Path | None):
    """Write atomically, so a failure leaves no partial figure; no path: hand back the figure."""
    if path is None:
        return fig
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=150)
    return path


def learning_curve(metrics: list[dict], path: Path | None = None, title: str = "",
                   objective: str = "ELBO"):
    """The training objective (`objective` names it: ELBO, IWAE_5 ...) and the test ELBO per epoch,
    in nats per datapoint; beside it the test cluster accuracy (with purity and NMI) for models
    that log them."""
    clusters = any("test_cluster_accuracy" in m for m in metrics)
    fig = figure(10.0 if clusters else 5.5, 3.6)
    axes = fig.subplots(1, 2 if clusters else 1, squeeze=False)[0]
    epochs = [m["epoch"] for m in metrics]
    ax = axes[0]
    ax.plot(epochs, [m["train_elbo"] for m in metrics], label=f"train {objective}", color="0.6")
    ax.plot(epochs, [m["test_elbo"] for m in metrics], label="test ELBO", color="C0")
    ax.set_xlabel("epoch")
    ax.set_ylabel("nats per datapoint")
    ax.set_title(title or "learning curve")
    ax.legend()
    ax.grid(alpha=0.3)
    if clusters:
        ax = axes[1]
        for key, name, color in (("test_cluster_accuracy", "cluster accuracy", "C3"),
                                 ("test_cluster_purity", "cluster purity", "C1"),
                                 ("test_nmi", "NMI", "C2")):
            shown = [m for m in metrics if key in m]
            if shown:
                ax.plot([m["epoch"] for m in shown], [m[key] for m in shown], label=f"test {name}",
                        color=color)
        ax.set_xlabel("epoch")
        ax.set_ylim(0, 1)
        ax.set_title("clusters against the labels")
        ax.legend()
        ax.grid(alpha=0.3)
    return save(fig, path)


def cluster_proportions(assigned: np.ndarray, mean_q: np.ndarray, names: list[str],
                        path: Path | None = None, title: str = ""):
    """Bars: the share of datapoints whose most probable cluster is c; dots: the mean q(y=c|x)."""
    fig = figure(max(4.5, 0.45 * len(names) + 1.5), 3.4)
    ax = fig.subplots()
    pos = np.arange(len(names))
    ax.bar(pos, assigned, color="C0", label="share assigned (argmax q(y|x))")
    ax.plot(pos, mean_q, "o", color="C1", label="mean q(y|x)")
    ax.axhline(1 / len(names), color="k", ls=":", lw=1, label=f"uniform p(y) = 1/{len(names)}")
    ax.set_xticks(pos, names, fontsize=8, rotation=90 if max(map(len, names)) > 3 else 0)
    ax.set_ylabel("fraction of test points")
    ax.set_title(title or "cluster proportions")
    wide = len(names) >= 8  # the legend fits in one row above the bars; else in three
    ax.set_ylim(0, (1.45 if wide else 1.9) * max(assigned.max(), mean_q.max(), 1 / len(names)))
    ax.legend(fontsize=8, loc="upper left", ncols=3 if wide else 1)
    return save(fig, path)


def embedding(points: np.ndarray, labels, classes, path: Path | None = None, title: str = ""):
    """A 2-D map of points, coloured and labelled by class at each class's median position."""
    fig = figure(6.0, 5.6)
    ax = fig.subplots()
    if labels is None:
        ax.scatter(points[:, 0], points[:, 1], s=2, color="C0", lw=0)
    else:
        for k in np.unique(labels):
            pts = points[labels == k]
            name = classes[k] if classes is not None else str(k)
            ax.scatter(pts[:, 0], pts[:, 1], s=2, color=f"C{k % 10}", lw=0, label=name)
            mx, my = np.median(pts, axis=0)
            ax.text(mx, my, name, fontsize=11, weight="bold", ha="center", va="center",
                    bbox={"boxstyle": "round,pad=0.2", "fc": "white", "alpha": 0.7, "lw": 0})
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title)
    return save(fig, path)


def top_two_axes(x: np.ndarray) -> tuple[int, int]:
    """The two coordinates of largest variance: the view in which a 2-D scatter shows most."""
    i, j = sorted(np.argsort(x.var(axis=0))[::-1][:2])
    return int(i), int(j)


def image_grid(x: np.ndarray, image_shape, path: Path | None = None, ncols: int = 10, title: str = "",
               row_labels=None):
    """Datapoints shown as images in a grid, in their own shape and colour (grey: 0 = black and
    1 = white); rows optionally named. `image_shape` is (C, H, W) (or (H, W) for grey)."""
    n = len(x)
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    _, h, _ = chw(image_shape)
    canvas = _canvas(x, image_shape, ncols)
    fig = figure(ncols * 0.5 + 0.4, nrows * 0.5 + (0.5 if title else 0.2))
    ax = fig.subplots()
    ax.imshow(canvas, cmap="gray" if canvas.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    if row_labels is not None:
        ax.set_yticks([1 + r * (h + 1) + h / 2 for r in range(nrows)], list(row_labels)[:nrows])
        ax.tick_params(left=False, labelsize=8)
    if title:
        ax.set_title(title)
    return save(fig, path)


def _canvas(x: np.ndarray, image_shape, ncols: int) -> np.ndarray:
    """Images tiled into one array with 1-pixel white borders: (rows, cols) for grey images,
    (rows, cols, C) for colour ones."""
    n = len(x)
    nrows = -(-n // ncols)
    ch, h, w = chw(image_shape)
    canvas = np.ones((nrows * (h + 1) + 1, ncols * (w + 1) + 1, ch))
    for k, img in enumerate(np.clip(as_hwc(x, image_shape), 0, 1)):
        r, c = divmod(k, ncols)
        canvas[1 + r * (h + 1): 1 + r * (h + 1) + h, 1 + c * (w + 1): 1 + c * (w + 1) + w] = img
    return canvas[..., 0] if ch == 1 else canvas


def row_by_row_animation(x: np.ndarray, image_shape, path: Path, ncols: int = 10, title: str = "",
                         fps: int = 8) -> Path:
    """An animated GIF of sequences (n, T, D) drawn as images row by row: frame t shows rows
    1..t of every image (the tutorial's VRNN animation). Pillow writes it; no ImageMagick."""
    from matplotlib.animation import FuncAnimation, PillowWriter

    x = np.clip(np.asarray(x), 0, 1)
    steps = x.shape[1]
    ncols = min(ncols, len(x))
    nrows = -(-len(x) // ncols)
    fig = figure(ncols * 0.5 + 0.4, nrows * 0.5 + (0.5 if title else 0.2))
    ax = fig.subplots()
    shown = np.zeros_like(x)
    first = _canvas(shown, image_shape, ncols)
    image = ax.imshow(first, cmap="gray" if first.ndim == 2 else None, vmin=0, vmax=1,
                      interpolation="nearest")
    ax.set_axis_off()
    heading = ax.set_title(title)

    def frame(t: int):
        shown[:, : t + 1] = x[:, : t + 1]
        image.set_data(_canvas(shown, image_shape, ncols))
        heading.set_text(f"{title}  (step {t + 1}/{steps})" if title else f"step {t + 1}/{steps}")
        return (image, heading)

    frames = list(range(steps)) + [steps - 1] * (fps * 2)  # then hold the finished digits 2 s
    animation = FuncAnimation(fig, frame, frames=frames, blit=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        animation.save(tmp, writer=PillowWriter(fps=fps), dpi=100)
    return path


def scatter_over_data(samples: np.ndarray, data: np.ndarray, path: Path | None = None, title: str = ""):
    """Model samples over the data, on the data's two highest-variance coordinates."""
    i, j = top_two_axes(data)
    fig = figure(4.5, 4.2)
    ax = fig.subplots()
    scatter(ax, samples, data, i, j)
    ax.legend(loc="best", fontsize=8)
    ax.set_title(title or "samples from the model over the test data")
    return save(fig, path)


def scatter(ax, samples, data, i, j, size: float = 4.0) -> None:
    ax.scatter(data[:, i], data[:, j], s=size, color="0.6", alpha=0.5, label="data", lw=0)
    ax.scatter(samples[:, i], samples[:, j], s=size, color="C1", alpha=0.6, label="samples", lw=0)
    ax.set_xlabel(f"$x_{i + 1}$")
    ax.set_ylabel(f"$x_{j + 1}$")


def samples(x, data_info: dict, path: Path | None = None):
    """Samples as an image grid when the data are images, else as a scatter of two coordinates."""
    x = np.asarray(x)
    if data_info.get("image_shape"):
        return image_grid(np.clip(x, 0, 1), data_info["image_shape"], path, title="samples")
    i, j = top_two_axes(x) if len(x) > 1 else (0, min(1, x.shape[1] - 1))
    fig = figure(4.5, 4.2)
    ax = fig.subplots()
    ax.scatter(x[:, i], x[:, j], s=5, color="C1", lw=0)
    ax.set_xlabel(f"$x_{i + 1}$")
    ax.set_ylabel(f"$x_{j + 1}$")
    ax.set_title(f"{len(x)} samples from the model")
    return save(fig, path)
