"""The Python way in: `fit` a model to arrays or a dataset, `open` a run, and use it (`Run`).

    import aevb
    run = aevb.fit("vae", x_train, x_test, out="runs/mine", latent_dim=8, epochs=20)
    z = run.encode(x_test)                      # (N, 8) posterior means
    run.evaluate(iwae_samples=1000)["iwae"]     # nats per datapoint

Everything here is what the `aevb` command does, from Python; the command calls the same methods.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from aevb import encoding
from aevb.config import EncodeOptions, EvaluateOptions, RunConfig, SampleOptions, options
from aevb.data.npz import from_arrays
from aevb.errors import AevbError
from aevb.evaluate import evaluate
from aevb.reports import figures
from aevb.reports.console import bits_per_dim
from aevb.runs import launch, pretrained
from aevb.runs.directory import DATA, FIGURES, own, read_metrics
from aevb.runs.load import check_same_shape, checkpoint_file, load_model, open_run
from aevb.runs.parts import prepare_data
from aevb.runs.resolve import build_config, read_source, sections
from aevb.runtime import process
from aevb.runtime.devices import resolve_device

ArrayLike = np.ndarray | torch.Tensor | Sequence  # or anything else numpy.asarray takes


def fit(model: str, x_train: ArrayLike = None, x_test: ArrayLike = None, *, y_train: ArrayLike = None,
        y_test: ArrayLike = None, lengths_train: ArrayLike = None, lengths_test: ArrayLike = None,
        dataset: str | None = None, out: str | Path | None = None, config: str | Path | None = None,
        tensorboard: bool = False, overwrite: bool = False, quiet: bool = False, **settings) -> Run:
    """Train `model` on arrays, or on a named dataset or .npz file, and return the finished `Run`.

    Arrays are checked as an .npz would be and saved in the run as data.npz, so that `aevb evaluate
    RUN` and resuming work later. Sets the process-wide settings the command sets (denormals
    flushed, freed memory kept: `aevb.runtime.process`).

    Args:
        model: fa, vae, cvae, gmvae or vrnn; its recipe gives every setting not given here.
        x_train: training data, (N, D...) rows (pixels as 0..255 bytes, or values as the chosen
            ``preprocess`` reads them); (N, T, D) sequences for vrnn.
        x_test: test data of the same shape, scored after every epoch.
        y_train: integer labels 0..K-1, one per row of x_train (cvae needs them).
        y_test: labels of x_test.
        lengths_train: steps of each sequence of x_train, for ragged sequences (vrnn).
        lengths_test: steps of each sequence of x_test.
        dataset: instead of arrays, a dataset name (mnist, fashion-mnist, kmnist, mnist-sample),
            an .npz file (memory-mapped and recorded by its SHA-256, not copied: the way for large
            data), a .csv table or a folder of images.
        out: the run directory to create (default: runs/MODEL-TIME).
        config: a recipe name (`aevb reproduce --list`), a TOML file or a run's config.json, under
            ``settings``.
        tensorboard: log each epoch for TensorBoard in RUN/tensorboard.
        overwrite: replace a run already in ``out``.
        quiet: print nothing while training.
        **settings: any option of `aevb train MODEL` in snake case (``epochs=``, ``latent_dim=``,
            ``preprocess=``, ``lr=`` ...), checked as the command checks it; every key is listed in
            the docs' Config keys. ``encoder=`` and ``decoder=`` take a network class of your own
            (or its "pkg.module:Name"), ``encoder_args=`` and ``decoder_args=`` a dict.

    Returns:
        The finished run, as `aevb.open(out)` would give it.

    Example::

        >>> x = np.random.default_rng(0).normal(size=(200, 5))
        >>> run = fit("fa", x[:150], x[150:], out="runs/fa-mine", latent_dim=2, epochs=2, quiet=True)
        >>> run.encode(x[150:]).shape
        (50, 2)
    """
    process.configure()
    given = {"x_train": x_train, "x_test": x_test, "y_train": y_train, "y_test": y_test,
             "lengths_train": lengths_train, "lengths_test": lengths_test}
    arrays = {k: _array(k, v) for k, v in given.items() if v is not None}
    if arrays and dataset is not None:
        raise AevbError("aevb.fit: give arrays (x_train, x_test ...) or dataset=, not both")
    if arrays and (x_train is None or x_test is None):
        raise AevbError("aevb.fit: give both x_train and x_test (the test split is scored each epoch)")
    out = Path(out) if out is not None else launch.default_run_dir(model)
    for role in ("encoder", "decoder"):  # a class of the user's own, recorded by its import path
        if isinstance(settings.get(role), type):
            settings[role] = import_path(settings[role], role)
    if dataset is not None:
        settings["dataset"] = dataset
    if arrays:
        settings.update(dataset=str(out.absolute() / DATA), from_memory=True)
    if tensorboard:
        settings["tensorboard"] = True
    sources = [read_source(config)] if config is not None else []
    cfg = build_config(model, sources + [("aevb.fit", sections(model, settings))])
    launch.train(cfg, out, quiet, overwrite, arrays or None)
    return Run(out)


def import_path(cls: type, role: str) -> str:
    """"pkg.module:Name" for a class, which a run records and imports again when it is reopened."""
    if cls.__module__ == "__main__" or "<locals>" in cls.__qualname__:
        raise AevbError(f"aevb.fit: {role}={cls.__qualname__} is defined in a script or a function, "
                        "where a later process cannot import it; define it in a module")
    return f"{cls.__module__}:{cls.__qualname__}"


def open(run: str | Path) -> Run:  # noqa: A001 - aevb.open, as in the command's RUN argument
    """A trained run directory, or a shipped model as "pretrained:NAME" (`aevb pretrained list`).

    Args:
        run: a run directory written by `aevb train` or `fit`, or "pretrained:NAME".

    Returns:
        The `Run`; a missing run or unknown shipped model is an `AevbError` naming it.

    Example::

        >>> open("pretrained:vae-mnist").sample(4).shape
        (4, 784)
    """
    return Run(run)


def _array(name: str, value: ArrayLike) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as e:  # ragged lists and the like
        raise AevbError(f"aevb.fit: {name} is not an array ({e}); pass a numpy array or torch "
                        "tensor") from None


class Run:
    """A training run or shipped model: its config and metrics, and what can be done with it:
    `evaluate` (a dict, as `aevb evaluate --json`), `sample`, `encode`, `resume`, `figures`.

        >>> run = open("pretrained:vae-mnist")
        >>> run.config.model_config.latent_dim, run.sample(16, mode="param").shape
        (20, (16, 784))
        >>> pixels = (run.sample(3, mode="param") * 255).astype(np.uint8)   # data as MNIST's bytes
        >>> run.encode(pixels).shape                             # posterior means (N, Dz)
        (3, 20)
    """

    def __init__(self, path: str | Path):
        self.path = path if pretrained.is_name(path) else Path(path)
        checkpoint_file(self.path)  # a missing run (or unknown shipped model) fails here, in one line
        self._loaded: tuple | None = None  # (model, config, meta), read once

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    def _load(self) -> tuple:
        if self._loaded is None:
            self._loaded = load_model(self.path)
        return self._loaded

    @property
    def model(self):
        """The trained `aevb.models` model, in eval mode; on the CPU until `evaluate` or `encode`
        runs it on another device."""
        return self._load()[0]

    @property
    def meta(self) -> dict:
        """The checkpoint's record: data_info (shape, classes), step, epoch, versions ..."""
        return self._load()[2]

    @property
    def config(self) -> RunConfig:
        """The run's resolved config, as saved with it."""
        return self._load()[1]

    @property
    def metrics(self) -> list[dict]:
        """One record per logged epoch (metrics.jsonl); a shipped model's card metrics instead."""
        if pretrained.is_name(self.path):
            return [pretrained.card(str(self.path)[len(pretrained.PREFIX):])["metrics"]]
        return read_metrics(self.path)

    def evaluate(self, split: str = "test", iwae_samples: int = 0, elbo_samples: int | None = None,
                 batch_size: int | None = None, subset: int | None = None, seed: int = 0,
                 dataset: str | None = None, data_dir: str | None = None, device: str = "auto",
                 progress: bool = False) -> dict:
        """ELBO (and the IWAE bound, exact log p(x) where it exists) in nats per datapoint with
        standard errors, and cluster metrics for a model with clusters: the dict `aevb evaluate
        --json` prints. Each option is checked as `aevb evaluate`'s (`aevb.config.EvaluateOptions`).

        Args:
            split: "test" or "train".
            iwae_samples: also the IWAE bound with this many draws of z per datapoint (0: off).
            elbo_samples: draws of z per datapoint in the ELBO estimate (default: ten times the
                run's ``eval_samples``).
            batch_size: datapoints per batch (default: the run's ``eval_batch_size``).
            subset: only the split's first N datapoints, for a quick check.
            seed: seeds the draws of z and the preprocessing noise.
            dataset: other data of the same shape (a name or an .npz), read with the run's
                preprocessing (default: the run's own).
            data_dir: the data root to find the run's dataset in (default: the run's).
            device: auto, cpu, cuda, cuda:N or mps.
            progress: show a progress bar.

        Returns:
            A dict: "elbo", "elbo_se", "iwae" ..., "n", "step", "epoch", "bits_per_dim" for pixels.

        Example::

            >>> run = fit("fa", out="runs/fa-evaluate", epochs=2, quiet=True)
            >>> result = run.evaluate(iwae_samples=10)
            >>> result["n"], result["iwae_samples"], result["iwae"] >= result["elbo"] - 0.1
            (1000, 10, True)
        """
        o = options(EvaluateOptions, "Run.evaluate", split=split, iwae_samples=iwae_samples,
                    elbo_samples=elbo_samples, batch_size=batch_size, subset=subset, seed=seed)
        model, cfg, data, meta = open_run(self.path, device, data_dir=data_dir, dataset=dataset,
                                          loaded=self._load())
        result = {"model": cfg.model, "dataset": data.name}
        result.update(evaluate(model, data, o.split, o.batch_size or cfg.train.eval_batch_size,
                               o.iwae_samples, o.seed, progress=progress,
                               elbo_samples=o.elbo_samples or 10 * cfg.train.eval_samples, subset=o.subset))
        dims = math.prod(data.event_shape)
        for key, name in (("elbo", "bits_per_dim"), ("iwae", "iwae_bits_per_dim")):
            # the bound on the discrete 8-bit or binary pixels, in bits per dimension (docs: Concepts)
            bits = bits_per_dim(result[key], dims, cfg.data.preprocess) if key in result else None
            if bits is not None:
                result[name] = bits
        result["step"], result["epoch"] = meta["step"], meta["epoch"]
        return result

    def sample(self, n: int = 64, label: int | None = None, cluster: int | None = None,
               mode: str = "sample", seed: int = 0) -> np.ndarray:
        """n draws from p(x), p(x | label) or one mixture component, shaped (n, D...).

        Args:
            n: how many, 1 to 1,000,000.
            label: for a label-conditioned model (cvae), draw from p(x | y = label).
            cluster: for a model with clusters (gmvae), draw from one component p(x | y = cluster).
            mode: "sample", a draw from p(x|z); "mean", its mean; "param", the decoder's parameter.
            seed: seeds the draws.

        Returns:
            A numpy array (n, D...), as the data are shaped (pixels in [0, 1]).

        Example::

            >>> open("pretrained:cvae-mnist").sample(3, label=7, mode="param").shape
            (3, 784)
        """
        o = options(SampleOptions, "Run.sample", n=n, label=label, cluster=cluster, mode=mode, seed=seed)
        n, label, cluster = o.n, o.label, o.cluster
        model, cfg, meta = self._load()
        c = None
        if label is not None:
            n_classes = meta["data_info"].get("n_classes") or 0
            if not model.uses_labels:
                raise AevbError(f"--label: model {cfg.model} is not conditioned on labels")
            if not 0 <= label < n_classes:
                raise AevbError(f"--label {label}: labels of this run are 0..{n_classes - 1}")
            c = torch.full((n,), label, dtype=torch.long)
        if cluster is not None:
            if label is not None:
                raise AevbError("--label and --cluster cannot be combined; give one")
            if not model.has_clusters:
                raise AevbError(f"--cluster: model {cfg.model} has no discrete clusters")
            if not 0 <= cluster < model.n_clusters:
                raise AevbError(f"--cluster {cluster}: clusters of this run are 0..{model.n_clusters - 1}")
            c = torch.full((n,), cluster, dtype=torch.long)
        with torch.random.fork_rng():
            torch.manual_seed(o.seed)
            return model.sample(n, c, o.mode).cpu().numpy()

    def codes(self, x: ArrayLike = None, y: ArrayLike = None, lengths: ArrayLike = None, *,
              dataset: str | None = None, split: str = "test", batch_size: int = 1000, seed: int = 0,
              data_dir: str | None = None, device: str = "auto") -> dict[str, np.ndarray]:
        """Every array `aevb encode` writes: "z" (posterior means), and for a model with clusters
        "q_y" (N, C) and "cluster" (N,).

        Args:
            x: data as the run was given it (MNIST as 0..255 bytes), read with the run's
                preprocessing; without it, a split of ``dataset``.
            y: labels, one per row of x, for a label-conditioned model.
            lengths: steps of each sequence of x, for ragged sequences.
            dataset: the data to encode when ``x`` is not given (default: the run's own).
            split: "test" or "train", of ``dataset``.
            batch_size: datapoints per batch.
            seed: seeds the preprocessing noise and a sequential model's trajectory.
            data_dir: the data root to find ``dataset`` in.
            device: auto, cpu, cuda, cuda:N or mps.

        Returns:
            A dict of numpy arrays: "z" (N, Dz) or (N, T, Dz); "q_y" and "cluster" for clusters.

        Example::

            >>> codes = open("pretrained:gmvae-mnist").codes(np.full((2, 784), 200, np.uint8))
            >>> {k: v.shape for k, v in codes.items()}
            {'z': (2, 64), 'q_y': (2, 10), 'cluster': (2,)}
        """
        o = options(EncodeOptions, "Run.codes", split=split, batch_size=batch_size, seed=seed)
        split = o.split
        if x is None:
            model, _, data, _ = open_run(self.path, device, data_dir=data_dir, dataset=dataset,
                                         loaded=self._load())
        else:
            model, cfg, meta = self._load()
            if model.uses_labels and y is None:
                raise AevbError(f"encode: {cfg.model} is conditioned on labels; pass y, one label per "
                                "row of x")
            model = model.to(resolve_device(device))
            arrays = {"x": _array("x", x), "y": None if y is None else _array("y", y),
                      "lengths": None if lengths is None else _array("lengths", lengths)}
            named = {f"{k}_{s}": a for k, a in arrays.items() if a is not None for s in ("train", "test")}
            data = prepare_data(cfg, next(model.parameters()).device, from_arrays(named, "encode"))
            check_same_shape(data, model, meta["data_info"], self.path)
            split = "test"
        return encoding.encode(model, data, split, o.batch_size, o.seed)

    def encode(self, x: ArrayLike = None, y: ArrayLike = None, lengths: ArrayLike = None, **options):
        """Posterior means E_q[z | x], numpy (N, Dz) ((N, T, Dz) for sequences); for a model with
        clusters (the GMVAE) the pair (means, q(y | x) as (N, C)).

        Args:
            x: data as the run was given it (MNIST as 0..255 bytes), read with the run's
                preprocessing.
            y: labels, for a label-conditioned model.
            lengths: steps of each sequence, for ragged sequences.
            **options: as `codes` takes them (``dataset``, ``split``, ``batch_size``, ``seed``,
                ``data_dir``, ``device``).

        Example::

            >>> gmvae = open("pretrained:gmvae-mnist")
            >>> z, q_y = gmvae.encode((gmvae.sample(3, mode="param") * 255).astype(np.uint8))
            >>> z.shape, q_y.shape, bool(np.allclose(q_y.sum(1), 1))
            ((3, 64), (3, 10), True)
        """
        c = self.codes(x, y, lengths, **options)
        return (c["z"], c["q_y"]) if "q_y" in c else c["z"]

    def resume(self, quiet: bool = False, **settings) -> Run:
        """Train on from the last checkpoint; returns this run, reloaded.

        Args:
            quiet: print nothing while training.
            **settings: what may change when a run goes on, in snake case: ``epochs``,
                ``max_steps``, ``device``, ``compile``, ``cuda_graphs``, ``lr``, ``clip_grad``,
                ``on_nan``, ``tensorboard``, ``data_dir`` (docs: Config keys).

        Example::

            >>> run = fit("fa", out="runs/fa-resume", epochs=1, quiet=True)
            >>> [m["epoch"] for m in run.resume(epochs=3, quiet=True).metrics]
            [1, 2, 3]
        """
        if pretrained.is_name(self.path):
            raise AevbError(f"{self.path} is a shipped model; it cannot be resumed")
        process.configure()
        launch.resume(self.path, settings, quiet)
        self._loaded = None
        return self

    def figures(self, out: str | Path | None = None, dataset: str | None = None,
                data_dir: str | None = None) -> list[Path]:
        """Write the run's figures and return their paths.

        Args:
            out: the folder (default: RUN/figures; figures/NAME for a shipped model).
            dataset: draw the data figures from other data of the same shape.
            data_dir: the data root to find the run's dataset in.

        Example::

            >>> x = np.random.default_rng(0).random((300, 4))
            >>> run = fit("vae", x[:200], x[200:], out="runs/vae-figures", preprocess="none", epochs=1,
            ...           quiet=True)
            >>> [path.name for path in run.figures()]
            ['learning-curve.png', 'samples-over-test-data.png']
        """
        if out is not None:
            where = Path(out)
        elif pretrained.is_name(self.path):  # figures/NAME for pretrained:NAME
            where = Path(FIGURES) / str(self.path)[len(pretrained.PREFIX):]
        else:
            where = own(self.path / FIGURES)
        return figures.write(*open_run(self.path, data_dir=data_dir, dataset=dataset, loaded=self._load()),
                             where)
