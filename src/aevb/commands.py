"""What each `aevb` command does, given its parsed arguments; `aevb.cli` builds the parser and
turns errors into exit codes. Each function returns the command's exit code."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import torch

from aevb import atomic, reproduce, sweep
from aevb.config import DataConfig, TrainConfig
from aevb.errors import AevbError, Interrupted
from aevb.evaluate import evaluate
from aevb.models import registry
from aevb.reports import figures, plots
from aevb.runs import export, pretrained
from aevb.runs.launch import default_run_dir, resume, train
from aevb.runs.load import load_model, open_run
from aevb.runs.resolve import build_config, read_toml, sections
from aevb.runtime import distributed

# The training flags `reproduce` and `sweep` let a user change in a recipe (sweep sets the seed).
REPRODUCE_FLAGS = ("epochs", "max_steps", "seed", "precision", "compile", "cuda_graphs")
SWEEP_FLAGS = ("epochs", "max_steps", "precision", "compile", "cuda_graphs")


def train_flags(model: str) -> list[str]:
    """Every option of `aevb train MODEL`: the data's, training's and the model's config fields."""
    return [f.name for cls in (DataConfig, TrainConfig, registry.get(model).Config)
            for f in dataclasses.fields(cls)]


def cmd_train(args) -> int:
    given = {k: getattr(args, k) for k in train_flags(args.model) if getattr(args, k) is not None}
    sources = [(args.config, read_toml(args.config))] if args.config else []
    sources.append(("command line", sections(args.model, given)))
    out = Path(args.out) if args.out else default_run_dir(args.model)
    try:
        if args.resume:  # the command that started the run continues it; only some values may change
            if args.out is None:
                raise AevbError("--resume needs --out RUN_DIR, the run to continue")
            if args.overwrite:
                raise AevbError("--resume continues the run in --out and --overwrite replaces it; give one")
            resume(out, quiet=args.quiet, model=args.model, sources=sources)
            return 0
        train(build_config(args.model, sources), out, args.quiet, overwrite=args.overwrite)
    except Interrupted as e:
        if not e.stopped.endswith("saved"):
            raise
        raise Interrupted(e.stopped, f"aevb train {args.model} --resume --out {out}") from None
    if not args.quiet and distributed.is_main():
        print(f"run saved in {out}", file=sys.stderr)
    return 0


def cmd_evaluate(args) -> int:
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


def cmd_sample(args) -> int:
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
        with atomic.atomic_path(out) as tmp, open(tmp, "wb") as f:
            np.save(f, x.numpy())
    else:
        plots.samples(x, meta["data_info"], out)
    return 0


def cmd_figures(args) -> int:
    out = Path(args.out) if args.out else figures.default_out(args.run)
    for path in figures.write(args.run, out, data_dir=args.data_dir, dataset=args.dataset):
        print(path)
    return 0


def _recipe_overrides(args, flags: tuple[str, ...]) -> dict:
    return {k: getattr(args, k) for k in flags if getattr(args, k) is not None}


def cmd_reproduce(args) -> int:
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
                                      _recipe_overrides(args, REPRODUCE_FLAGS), args.resume,
                                      args.device, args.quiet)
    except Interrupted as e:
        raise Interrupted(e.stopped, f"aevb reproduce {args.name} --resume --out {out}") from None
    ref = results["reference"]
    if ref and "ours" in ref:
        print(f"{args.name}: {ref['metric']} {ref['ours']:.4g} (reference {ref['value']:g}: "
              f"{ref['source']})")
    print(f"results in {out / 'results.json'}, figures in {out / 'figures'}", file=sys.stderr)
    return 0


def cmd_sweep(args) -> int:
    seeds = sweep.parse_seeds(args.seeds)
    out = Path(args.out) if args.out else Path("runs") / "sweep" / Path(args.name).stem
    try:
        result = sweep.sweep(args.name, seeds, out, args.data_dir,
                             _recipe_overrides(args, SWEEP_FLAGS), args.device, args.quiet)
    except Interrupted as e:  # the same command again keeps finished seeds and resumes this one
        raise Interrupted(e.stopped, f"aevb sweep {args.name} --seeds {args.seeds} --out {out}") from None
    print(sweep.table(result))
    print(f"all seeds' results in {out / 'sweep.json'}", file=sys.stderr)
    return 0


def cmd_pretrained(args) -> int:
    if args.action == "export":
        raw = reproduce.recipe(args.recipe)
        out = Path(args.out) if args.out else pretrained.DIR
        the_card = export.export(args.run, args.name, args.recipe, raw.get("description", ""),
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
        minutes = pretrained.training_seconds(c) / 60
        print(f"{name:<{w}} {c['model']:<6} {', '.join(shown):<58} {minutes:>6.1f} min  {c['recipe']}")
    return 0


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "sample": cmd_sample, "figures": cmd_figures,
            "reproduce": cmd_reproduce, "sweep": cmd_sweep, "pretrained": cmd_pretrained}
