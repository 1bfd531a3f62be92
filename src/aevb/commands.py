"""What each `aevb` command does, given its parsed arguments; `aevb.cli` builds the parser and
turns errors into exit codes. Each function returns the command's exit code."""

from __future__ import annotations

import json
import math
import shlex
import sys
from pathlib import Path

import numpy as np
import torch

from aevb import atomic, encoding
from aevb.api import Run
from aevb.config import (
    DataConfig,
    EncodeOptions,
    EvaluateOptions,
    SampleOptions,
    TrainConfig,
    flags,
    options,
    to_toml,
)
from aevb.errors import AevbError, Interrupted
from aevb.models import registry
from aevb.reports import console, plots
from aevb.runs import export, pretrained, reproduce, sweep
from aevb.runs.launch import default_run_dir, resume, train
from aevb.runs.resolve import build_config, read_source, sections

# The training flags `reproduce` and `sweep` let a user change in a recipe (sweep sets the seed).
REPRODUCE_FLAGS = ("epochs", "max_steps", "seed", "precision", "compile", "cuda_graphs")
SWEEP_FLAGS = ("epochs", "max_steps", "precision", "compile", "cuda_graphs")


def train_flags(model: str) -> list[str]:
    """Every option of `aevb train MODEL`: the data's, training's and the model's config fields."""
    return [f for cls in (DataConfig, TrainConfig, registry.get(model).Config) for f in flags(cls)]


def cmd_train(args) -> int:
    given = {k: getattr(args, k) for k in train_flags(args.model) if getattr(args, k) is not None}
    sources = [read_source(args.config)] if args.config else []
    sources.append(("command line", sections(args.model, given)))
    if args.print_config:  # the options a user sets, not the facts a run records (from_memory)
        resolved = build_config(args.model, sources).to_dict()
        resolved["data"] = {k: v for k, v in resolved["data"].items() if k in flags(DataConfig)}
        print(to_toml(resolved), end="")
        return 0
    out = Path(args.out) if args.out else default_run_dir(args.model)
    try:
        if args.resume:  # the command that started the run continues it; only some values may change
            if args.out is None:
                raise AevbError("--resume needs --out RUN_DIR, the run to continue")
            if args.overwrite:
                raise AevbError("--resume continues the run in --out and --overwrite replaces it; give one")
            resume(out, quiet=args.quiet, model=args.model, sources=sources, hints=True)
            return 0
        train(build_config(args.model, sources), out, args.quiet, overwrite=args.overwrite, hints=True)
    except Interrupted as e:
        if not e.stopped.endswith("saved"):
            raise
        raise Interrupted(e.stopped, f"aevb train {args.model} --resume --out {out}") from None
    return 0


def given(args, cls) -> dict:
    """The options of `cls` (EvaluateOptions ...) given on the command line; the rest keep their
    defaults. `Run`'s methods check them, so the command and Python share one validation."""
    return {k: getattr(args, k) for k in flags(cls) if getattr(args, k) is not None}


def cmd_evaluate(args) -> int:
    run = Run(args.run)
    result = run.evaluate(**given(args, EvaluateOptions), dataset=args.dataset, data_dir=args.data_dir,
                          device=args.device, progress=not args.json)
    if args.json:
        print(json.dumps(result))
    else:
        info = run.meta["data_info"]
        print(console.evaluate_table(result, math.prod(info["event_shape"]), run.config.data.preprocess))
    return 0


def cmd_sample(args) -> int:
    out = Path(args.out)
    if out.suffix not in (".png", ".npy", ".pdf"):
        raise AevbError(f"--out {out}: use a .png or .pdf file for a figure or .npy for the array")
    run = Run(args.run)
    x = run.sample(**given(args, SampleOptions))
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".npy":
        with atomic.atomic_path(out) as tmp, open(tmp, "wb") as f:
            np.save(f, x)
    else:
        plots.samples(torch.from_numpy(x), run.meta["data_info"], out)
    print(out)
    return 0


def cmd_encode(args) -> int:
    out = encoding.check_out(args.out)  # before the model and data are read
    codes = Run(args.run).codes(dataset=args.dataset, data_dir=args.data_dir, device=args.device,
                                **given(args, EncodeOptions))
    encoding.write(codes, out)
    shapes = ", ".join(f"{k} {'x'.join(map(str, v.shape))}" for k, v in codes.items())
    print(f"{out} ({shapes})")
    return 0


def cmd_figures(args) -> int:
    for path in Run(args.run).figures(args.out, args.dataset, args.data_dir):
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
        beside = (f"reference {ref['value']:g}: {ref['source']}" if "value" in ref
                  else "no published reference")
        print(f"{args.name}: {ref['metric']} {ref['ours']:.4g} ({beside})")
    run = shlex.quote(results["source"] if args.pretrained else str(out / "run"))
    print(f"results in {out / 'results.json'}, figures in {out / 'figures'}; try next:\n"
          f"  aevb evaluate {run} --iwae-samples 1000\n  aevb sample {run} --out samples.png",
          file=sys.stderr)
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
        options(EvaluateOptions, "aevb pretrained export", iwae_samples=args.iwae_samples)
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


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "sample": cmd_sample, "encode": cmd_encode,
            "figures": cmd_figures,
            "reproduce": cmd_reproduce, "sweep": cmd_sweep, "pretrained": cmd_pretrained}
