"""The `aevb` command line: train, evaluate, sample, figures, reproduce, sweep, pretrained.

Usage and input errors print one line on stderr and exit with code 2; nothing is half-written.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import typing
from pathlib import Path

from aevb import distributed, initialise, models
from aevb.config import DataConfig, TrainConfig, build_config, field_types, flag, read_toml, sections
from aevb.errors import AevbError, Interrupted

# Flags common to every `aevb train MODEL`, with their help (config.sections finds each one's section).
_TRAIN_FLAGS = {
    "dataset": "dataset name (mnist, fashion-mnist, mnist-sample, fa-synthetic) or an .npz",
    "data_dir": "data root holding one folder per dataset (also: $AEVB_DATA_DIR)",
    "preprocess": "none, unit, dequantize, binarize-threshold or binarize-dynamic",
    "epochs": "passes over the training split",
    "max_steps": "stop after this many gradient steps in total",
    "batch_size": "datapoints per gradient step",
    "lr": "Adam learning rate",
    "seed": "seed for initialisation, batching, noise and sampling",
    "device": "auto, cpu, cuda or mps",
    "train_samples": "samples of z per datapoint in the training ELBO",
    "eval_samples": "samples of z per test point in the logged test ELBO",
    "precision": ("auto (bf16 where the CPU or GPU has bf16 hardware, else fp32), fp32, or "
                  "bf16 for the networks' layers (densities stay fp32)"),
    "compile": ("torch.compile the ELBO and its gradient; unset: for runs of 2000+ steps "
                "(on a GPU 30000+, from the second epoch)"),
    "cuda_graphs": ("replay each training step as one CUDA graph; unset: on a CUDA device in "
                    "one process"),
    "clip_grad": "rescale each gradient to at most this L2 norm",
    "on_nan": ("stop, or rollback: on a NaN/inf loss or gradient, restore the last checkpoint "
               "and halve the learning rate"),
    "freeze": ("parameters held fixed for the first --freeze-epochs epochs: comma-separated "
               "module names, e.g. qy"),
    "freeze_epochs": "epochs during which the --freeze parameters do not learn",
    "lr_decay_from": ("from this epoch, lower the learning rate along a half cosine to 0 "
                      "at the last step; unset: constant"),
}


_DATA_DIR_HELP = "data root for the run's dataset (default: the run's, $AEVB_DATA_DIR or the cache)"


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line on stderr and exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _add_typed(parser, name: str, kind, default, help_text: str) -> None:
    """Add one option for a config field; `default` is only shown, never applied by argparse."""
    base = next((t for t in typing.get_args(kind) or (kind,) if t is not type(None)), str)
    shown = f"{help_text} (default: {default})"
    if base is bool:
        parser.add_argument(flag(name), dest=name, action=argparse.BooleanOptionalAction,
                            default=None, help=shown)
    else:
        parser.add_argument(flag(name), dest=name, type=base, default=None,
                            metavar=name.upper(), help=shown)


# The training flags `reproduce` and `sweep` let a user change in a recipe (sweep sets the seed).
_REPRODUCE_FLAGS = ("epochs", "max_steps", "seed", "precision", "compile", "cuda_graphs")
_SWEEP_FLAGS = ("epochs", "max_steps", "precision", "compile", "cuda_graphs")


def _add_recipe_run_flags(parser, flags: tuple[str, ...]) -> None:
    """The options of a command that runs a recipe: data root, device, `flags`, --quiet."""
    parser.add_argument("--data-dir", default=None, help=_DATA_DIR_HELP)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default: auto)")
    types = field_types(TrainConfig)
    for key in flags:
        _add_typed(parser, key, types[key], "the recipe's", _TRAIN_FLAGS[key])
    parser.add_argument("--quiet", action="store_true", help="no progress bars or epoch lines")


def _recipe_overrides(args, flags: tuple[str, ...]) -> dict:
    return {k: getattr(args, k) for k in flags if getattr(args, k) is not None}


def _train_parser(sub, name: str, cls) -> None:
    recipe = {**dataclasses.asdict(DataConfig()), **dataclasses.asdict(TrainConfig()),
              **cls.recipe.get("data", {}), **cls.recipe.get("train", {})}
    doc = (cls.__doc__ or "").strip().splitlines()[0]
    p = sub.add_parser(name, help=doc, description=f"Train {name}: {doc}")
    p.add_argument("--config", metavar="FILE.toml", help="recipe file; flags override it")
    p.add_argument("--out", metavar="RUN_DIR", help="run directory (default: runs/MODEL-TIME)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--overwrite", action="store_true", help="replace the run in --out with a new one")
    p.add_argument("--quiet", action="store_true", help="no progress bar or epoch lines")
    types = {**field_types(DataConfig), **field_types(TrainConfig)}
    for key, help_text in _TRAIN_FLAGS.items():
        _add_typed(p, key, types[key], recipe[key], help_text)
    group = p.add_argument_group(f"{name} options")
    model_defaults = cls.Config()
    for f in dataclasses.fields(cls.Config):
        _add_typed(group, f.name, field_types(cls.Config)[f.name],
                   getattr(model_defaults, f.name), f"model option {f.name}")


class _Version(argparse.Action):
    """`aevb --version`: aevb's, torch's (with its build, e.g. +cpu or +cu124) and Python's versions.
    torch's own __version__ carries the build suffix that its package metadata drops."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, help="show the versions and exit")

    def __call__(self, parser, namespace, values, option_string=None):
        import torch

        from aevb import __version__

        print(f"aevb {__version__} (torch {torch.__version__}, Python {sys.version.split()[0]})")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="aevb", description="Latent-variable models trained with "
                     "Auto-Encoding Variational Bayes.")
    parser.add_argument("--version", action=_Version)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("train", help="train a model; `aevb train MODEL --help` for its options")
    msub = p.add_subparsers(dest="model", required=True, metavar="MODEL", parser_class=_Parser)
    for name, cls in models.MODELS.items():
        _train_parser(msub, name, cls)

    run_help = "a run directory, or pretrained:NAME for a shipped model"
    p = sub.add_parser("evaluate", help="ELBO, IWAE bound and exact log-likelihood of a run")
    p.add_argument("run", metavar="RUN_DIR", help=run_help)
    p.add_argument("--split", choices=("test", "train"), default="test", help="(default: test)")
    p.add_argument("--iwae-samples", type=int, default=0, metavar="K",
                   help="also report the IWAE bound with K samples (default: 0, off)")
    p.add_argument("--elbo-samples", type=int, default=None, metavar="K",
                   help="draws of z per datapoint in the ELBO estimate (default: ten times the run's "
                        "--eval-samples: 100 for the VAE recipe, 10 for GMVAE and VRNN)")
    p.add_argument("--batch-size", type=int, default=None, help="(default: the run's)")
    p.add_argument("--subset", type=int, default=None, metavar="N",
                   help="only the split's first N datapoints, for a quick check (default: all)")
    p.add_argument("--seed", type=int, default=0, help="(default: 0)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default: auto)")
    p.add_argument("--data-dir", default=None, help=_DATA_DIR_HELP)
    p.add_argument("--dataset", default=None, metavar="NAME|FILE.npz",
                   help="evaluate on other data of the same shape, read with the run's preprocessing "
                        "(default: the run's own)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")

    p = sub.add_parser("sample", help="draw x ~ p(x) from a trained model")
    p.add_argument("run", metavar="RUN_DIR", help=run_help)
    p.add_argument("--n", type=int, default=64, help="number of samples (default: 64)")
    p.add_argument("--out", required=True, metavar="FILE", help=".png for a figure, .npy for the array")
    p.add_argument("--mode", choices=("sample", "mean", "param"), default="sample",
                   help="a draw from p(x|z), its mean, or the decoder's parameter (default: sample)")
    p.add_argument("--label", type=int, default=None,
                   help="condition a label-conditioned model (cvae) on this class")
    p.add_argument("--cluster", type=int, default=None,
                   help="draw from one mixture component of a clustering model (gmvae)")
    p.add_argument("--seed", type=int, default=0, help="(default: 0)")

    p = sub.add_parser("figures", help="write the model's figures")
    p.add_argument("run", metavar="RUN_DIR", help=run_help)
    p.add_argument("--out", metavar="DIR",
                   help="(default: RUN_DIR/figures; figures/NAME for pretrained:NAME)")
    p.add_argument("--data-dir", default=None, help=_DATA_DIR_HELP)
    p.add_argument("--dataset", default=None, metavar="NAME|FILE.npz",
                   help="draw the data figures from other data of the same shape (default: the run's own)")

    p = sub.add_parser("reproduce", help="train a published recipe (or fetch its shipped model), "
                       "then write its figures and results.json")
    p.add_argument("name", nargs="?", metavar="NAME", help="a recipe under configs/ (see --list)")
    p.add_argument("--list", action="store_true", help="list the recipes and what they reproduce")
    p.add_argument("--pretrained", action="store_true", help="use the recipe's shipped model, train nothing")
    p.add_argument("--out", metavar="DIR", help="(default: runs/reproduce/NAME)")
    p.add_argument("--resume", action="store_true", help="continue the training run in DIR/run")
    _add_recipe_run_flags(p, _REPRODUCE_FLAGS)

    p = sub.add_parser("sweep", help="train a recipe from several seeds and tabulate their results")
    p.add_argument("name", metavar="NAME", help="a recipe under configs/, or a .toml file")
    p.add_argument("--seeds", required=True, help="a range like 0-4 or a list like 0,3,7")
    p.add_argument("--out", metavar="DIR", help="(default: runs/sweep/NAME)")
    _add_recipe_run_flags(p, _SWEEP_FLAGS)

    p = sub.add_parser("pretrained", help="the shipped pretrained models")
    psub = p.add_subparsers(dest="action", required=True, parser_class=_Parser)
    q = psub.add_parser("list", help="the shipped models and their metrics")
    q.add_argument("--json", action="store_true", help="print the model cards as one JSON object")
    q = psub.add_parser("export", help="(for maintainers) ship a finished run as a pretrained model")
    q.add_argument("run", metavar="RUN_DIR")
    q.add_argument("name", metavar="NAME", help="e.g. vae-mnist")
    q.add_argument("--recipe", required=True, help="the recipe under configs/ the run was trained from")
    q.add_argument("--iwae-samples", type=int, default=0, metavar="K",
                   help="also measure the IWAE bound with K samples for the card (default: 0)")
    q.add_argument("--data-dir", default=None, help=_DATA_DIR_HELP)
    q.add_argument("--out", metavar="DIR", help="(default: the package's pretrained_models/ folder)")
    q.add_argument("--note", default="", help="a remark for the model card")
    return parser


def _cmd_train(args) -> int:
    from aevb import runs

    cls = models.get(args.model)
    names = [*_TRAIN_FLAGS, *(f.name for f in dataclasses.fields(cls.Config))]
    flags = sections(args.model, cls, {k: getattr(args, k) for k in names if getattr(args, k) is not None})
    if args.resume:  # the command that started the run continues it; only some values may change
        if args.out is None:
            raise AevbError("--resume needs --out RUN_DIR, the run to continue")
        if args.overwrite:
            raise AevbError("--resume continues the run in --out and --overwrite replaces it; give one")
        repeated = {s: {} for s in flags}
        for source in ([read_toml(args.config)] if args.config else []) + [flags]:
            for section in repeated:
                repeated[section].update(source.get(section, {}))
        runs.resume(Path(args.out), quiet=args.quiet, model=args.model, given=repeated)
        return 0
    sources = []
    if args.config:
        sources.append((args.config, read_toml(args.config)))
    sources.append(("command line", flags))
    cfg = build_config(args.model, cls, sources)
    out = Path(args.out) if args.out else runs.default_run_dir(args.model)
    runs.train(cfg, out, args.quiet, overwrite=args.overwrite)
    if not args.quiet and distributed.is_main():
        print(f"run saved in {out}", file=sys.stderr)
    return 0


def _cmd_evaluate(args) -> int:
    from aevb.evaluate import evaluate
    from aevb.runs import open_run

    if args.iwae_samples < 0 or (args.elbo_samples is not None and args.elbo_samples < 1):
        raise AevbError("--iwae-samples must be >= 0 and --elbo-samples >= 1")
    if args.subset is not None and args.subset < 1:
        raise AevbError("--subset must be at least 1")
    model, cfg, data, meta = open_run(args.run, args.device, data_dir=args.data_dir, dataset=args.dataset)
    elbo_samples = args.elbo_samples or 10 * cfg.train.eval_samples
    result = {"model": cfg.model, "dataset": data.name}
    result.update(evaluate(model, data, args.split, args.batch_size or cfg.train.eval_batch_size,
                           args.iwae_samples, args.seed, progress=not args.json,
                           elbo_samples=elbo_samples, subset=args.subset))
    result["step"], result["epoch"] = meta["step"], meta["epoch"]
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>20}  {value:.4f}" if isinstance(value, float) else f"{key:>20}  {value}")
    return 0


def _cmd_sample(args) -> int:
    import numpy as np
    import torch

    from aevb import plots
    from aevb.checkpoints import load_model

    out = Path(args.out)
    if out.suffix not in (".png", ".npy", ".pdf"):
        raise AevbError(f"--out {out}: use a .png or .pdf file for a figure or .npy for the array")
    if args.n < 1:
        raise AevbError("--n must be at least 1")
    model, cfg, meta = load_model(args.run)
    c = None
    if args.label is not None:
        n_classes = meta["data_info"].get("n_classes") or 0
        if not model.uses_labels:
            raise AevbError(f"--label: model {cfg.model} is not conditioned on labels")
        if not 0 <= args.label < n_classes:
            raise AevbError(f"--label {args.label}: labels of this run are 0..{n_classes - 1}")
        c = torch.full((args.n,), args.label, dtype=torch.long)
    if args.cluster is not None:
        if args.label is not None:
            raise AevbError("--label and --cluster cannot be combined; give one")
        if not model.has_clusters:
            raise AevbError(f"--cluster: model {cfg.model} has no discrete clusters")
        if not 0 <= args.cluster < model.n_clusters:
            raise AevbError(f"--cluster {args.cluster}: clusters of this run are "
                            f"0..{model.n_clusters - 1}")
        c = torch.full((args.n,), args.cluster, dtype=torch.long)
    torch.manual_seed(args.seed)
    x = model.sample(args.n, c, args.mode).cpu()
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".npy":
        np.save(out, x.numpy())
    else:
        plots.samples(x, meta["data_info"], out)
    return 0


def _cmd_figures(args) -> int:
    from aevb import figures
    from aevb.pretrained import PREFIX

    if args.out:
        out = Path(args.out)
    elif args.run.startswith(PREFIX):
        out = Path("figures") / args.run[len(PREFIX):]
    else:
        out = Path(args.run) / "figures"
    for path in figures.write(args.run, out, data_dir=args.data_dir, dataset=args.dataset):
        print(path)
    return 0


def _cmd_reproduce(args) -> int:
    from aevb import reproduce

    if args.list:
        for name in reproduce.names():
            raw = reproduce.recipe(name)
            shipped = f" [pretrained: {raw['pretrained']}]" if raw.get("pretrained") else ""
            print(f"{name:<16} {raw['model']:<6}{shipped}\n    {raw.get('description', '')}")
        return 0
    if args.name is None:
        raise AevbError("give a recipe NAME, or --list to see them")
    out = Path(args.out) if args.out else reproduce.default_out(args.name)
    try:
        results = reproduce.reproduce(args.name, out, args.pretrained, args.data_dir,
                                      _recipe_overrides(args, _REPRODUCE_FLAGS), args.resume,
                                      args.device, args.quiet)
    except Interrupted as e:
        raise Interrupted(e.stopped, f"aevb reproduce {args.name} --resume --out {out}") from None
    ref = results["reference"]
    if ref and "ours" in ref:
        print(f"{args.name}: {ref['metric']} {ref['ours']:.4g} (reference {ref['value']:g}: "
              f"{ref['source']})")
    print(f"results in {out / 'results.json'}, figures in {out / 'figures'}", file=sys.stderr)
    return 0


def _cmd_sweep(args) -> int:
    from aevb import sweep

    seeds = sweep.parse_seeds(args.seeds)
    out = Path(args.out) if args.out else Path("runs") / "sweep" / Path(args.name).stem
    try:
        result = sweep.sweep(args.name, seeds, out, args.data_dir,
                             _recipe_overrides(args, _SWEEP_FLAGS), args.device, args.quiet)
    except Interrupted as e:  # the same command again keeps finished seeds and resumes this one
        raise Interrupted(e.stopped, f"aevb sweep {args.name} --seeds {args.seeds} --out {out}") from None
    print(sweep.table(result))
    print(f"all seeds' results in {out / 'sweep.json'}", file=sys.stderr)
    return 0


def _cmd_pretrained(args) -> int:
    from aevb import pretrained, reproduce

    if args.action == "export":
        raw = reproduce.recipe(args.recipe)
        out = Path(args.out) if args.out else pretrained.DIR
        the_card = pretrained.export(args.run, args.name, args.recipe, raw.get("description", ""),
                                     args.iwae_samples, args.data_dir, out, note=args.note)
        print(json.dumps({k: the_card[k] for k in ("name", "weights_dtype", "bytes", "sha256")}))
        return 0
    cards = {name: pretrained.card(name) for name in pretrained.names()}
    if args.json:
        print(json.dumps(cards))
        return 0
    w = max([14, *(len(name) for name in cards)])  # the name column fits the longest name
    print(f"{'name':<{w}} {'model':<6} {'test metrics (aevb evaluate)':<58} {'trained':>9}  recipe")
    for name, c in cards.items():
        m = c["metrics"]
        shown = [f"ELBO {m['elbo']:.2f}"]
        if "iwae" in m:
            shown.append(f"IWAE_{m['iwae_samples']} {m['iwae']:.2f}")
        if "cluster_accuracy" in m:
            shown.append(f"cluster acc {m['cluster_accuracy']:.3f}")
        minutes = initialise.total_seconds(c) / 60
        print(f"{name:<{w}} {c['model']:<6} {', '.join(shown):<58} {minutes:>6.1f} min  {c['recipe']}")
    return 0


def console() -> int:
    """The `aevb` command: `main` in a process set up for fast training (`aevb.process`)."""
    from aevb import process

    process.configure()  # before any parallel torch operation starts the thread pool
    code = main()
    if distributed.launched():
        # Leave without Python's shutdown: gloo's worker threads may still be freeing the last
        # collective's tensors, which takes the GIL, and a thread that does so while the
        # interpreter shuts down aborts the process ("terminate called without an active
        # exception"; a core dump of a rank showed it). The run is written and the group left.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = {"train": _cmd_train, "evaluate": _cmd_evaluate, "sample": _cmd_sample,
               "figures": _cmd_figures, "reproduce": _cmd_reproduce, "sweep": _cmd_sweep,
               "pretrained": _cmd_pretrained}[args.command]
    try:
        if distributed.launched() and args.command != "train":
            raise AevbError(f"only `aevb train` runs under torchrun; run `aevb {args.command}` as one "
                            "process")
        return command(args)
    except Interrupted as e:
        print(f"aevb: {e}", file=sys.stderr)
        return 130
    except AevbError as e:
        print(f"aevb: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader of our output left (`aevb ... | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # or exit's flush fails too
        return 141  # as a command killed by SIGPIPE
    except OSError as e:  # a path we could not read or write: disk full, permissions, a folder as file
        where = f"{e.filename}: " if e.filename else ""
        print(f"aevb: error: {where}{e.strerror or e}; check the path, its permissions and the free "
              "disk space", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("aevb: interrupted; a run continues from its last checkpoint with --resume",
              file=sys.stderr)
        return 130
    finally:
        distributed.finish()
