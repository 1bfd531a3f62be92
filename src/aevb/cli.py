"""The `aevb` command line: the parser, generated from the typed configs (every option of
`aevb train MODEL` is a config field, with the field's help and allowed values), and the boundary
where errors become one line on stderr and an exit code: 2 for bad input, 130 when stopped.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import typing

import torch

from aevb import commands
from aevb.argparser import Parser, top_level
from aevb.config import (
    DataConfig,
    EncodeOptions,
    EvaluateOptions,
    SampleOptions,
    TrainConfig,
    field_types,
    flag,
    flags,
    meta,
)
from aevb.errors import INTERRUPTED, AevbError, Interrupted, advice
from aevb.models import registry
from aevb.runtime import distributed, process

_DATA_DIR_HELP = "data root for the run's dataset (default: the run's, $AEVB_DATA_DIR or the cache)"
_RUN_HELP = "a run directory, or pretrained:NAME for a shipped model"
_DEVICE_HELP = meta(TrainConfig, "device")["help"] + " (default: auto)"


def add_field(parser, cls, name: str, default) -> None:
    """An option for config field `name` of `cls`: its help, its allowed values, and `default` as
    shown (argparse applies none: an option not given leaves the config's value)."""
    kind, m = field_types(cls)[name], meta(cls, name)
    base = next((t for t in typing.get_args(kind) or (kind,) if t is not type(None)), str)
    shown = m.get("help", "") + ("" if default in (None, "") else f" (default: {default})")
    if base is bool:
        parser.add_argument(flag(name), dest=name, action=argparse.BooleanOptionalAction, default=None,
                            help=shown)
    else:
        choices = m.get("choices")
        metavar = "{" + ",".join(choices) + "}" if choices else m.get("metavar") or name.upper()
        parser.add_argument(flag(name), dest=name, type=base, default=None, metavar=metavar, help=shown)


def _train_parser(sub, name: str, cls) -> None:
    recipe = cls.recipe
    doc = (cls.__doc__ or "").strip().splitlines()[0]
    p = sub.add_parser(name, help=doc, description=f"Train {name}: {doc}")
    p.add_argument("--config", metavar="NAME|FILE.toml|config.json",
                   help="a recipe (aevb reproduce --list), a TOML file or a run's config.json; flags "
                        "override it")
    p.add_argument("--out", metavar="RUN_DIR", help="run directory (default: runs/MODEL-TIME)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--overwrite", action="store_true", help="replace the run in --out with a new one")
    p.add_argument("--quiet", action="store_true", help="no start line, progress bar, epoch lines or summary")
    p.add_argument("--print-config", action="store_true", help="print the resolved config as TOML and exit")
    _shared_options(p, recipe)
    group = p.add_argument_group(f"{name} options")
    defaults = dataclasses.replace(cls.Config(), **recipe.get("model_config", {}))
    for f in flags(cls.Config):
        add_field(group, cls.Config, f, getattr(defaults, f))


def _shared_options(parser, recipe: dict | None) -> None:
    """The data and training options every model has, with `recipe`'s values shown as defaults
    (None: no defaults shown, since each model's recipe sets its own)."""
    for section, config in (("data", DataConfig()), ("training", TrainConfig())):
        group = parser.add_argument_group(f"{section} options")
        values = (recipe or {}).get("train" if section == "training" else section, {})
        for f in flags(type(config)):
            add_field(group, type(config), f, None if recipe is None else values.get(f, getattr(config, f)))


def _shared_help() -> str:
    """`aevb train --help`'s list of the options that every model takes after its name."""
    p = Parser(prog="aevb train MODEL", add_help=False)
    _shared_options(p, None)
    groups = p.format_help().split("\n\n", 1)[1]  # drop the usage line
    return ("every model also takes these options, after its name;\n`aevb train MODEL --help` shows "
            "its own options and its recipe's defaults:\n\n" + groups)


def _option_fields(parser, cls) -> None:
    """The options of a command that uses a run, one per field of `cls` (`aevb.config.EvaluateOptions`
    ...), with its default shown; not given, the field's default applies, checked in one place."""
    for f in flags(cls):
        add_field(parser, cls, f, getattr(cls(), f))


def _recipe_run_flags(parser, flags: tuple[str, ...]) -> None:
    """The options of a command that runs a recipe: data root, device, `flags`, --quiet."""
    parser.add_argument("--data-dir", default=None, help=_DATA_DIR_HELP)
    parser.add_argument("--device", default="auto", help=_DEVICE_HELP)
    for key in flags:
        add_field(parser, TrainConfig, key, "the recipe's")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or epoch lines")


def build_parser() -> argparse.ArgumentParser:
    parser, command = top_level()

    p = command["train"]
    p.description = "Train a model: aevb train MODEL [options]"
    p.appendix = "\n" + _shared_help()
    msub = p.add_subparsers(dest="model", required=True, metavar="MODEL", parser_class=Parser)
    for name, cls in registry.MODELS.items():
        _train_parser(msub, name, cls)

    p = command["evaluate"]
    p.add_argument("run", metavar="RUN_DIR", help=_RUN_HELP)
    _option_fields(p, EvaluateOptions)
    p.add_argument("--device", default="auto", help=_DEVICE_HELP)
    p.add_argument("--data-dir", default=None, help=_DATA_DIR_HELP)
    p.add_argument("--dataset", default=None, metavar="NAME|FILE.npz",
                   help="evaluate on other data of the same shape, read with the run's preprocessing "
                        "(default: the run's own)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")

    p = command["sample"]
    p.add_argument("run", metavar="RUN_DIR", help=_RUN_HELP)
    p.add_argument("--out", required=True, metavar="FILE", help=".png for a figure, .npy for the array")
    _option_fields(p, SampleOptions)

    p = command["encode"]
    p.add_argument("run", metavar="RUN_DIR", help=_RUN_HELP)
    p.add_argument("--out", required=True, metavar="FILE",
                   help=".npy (the means, N x Dz), .npz (z, and q_y and cluster where the model has "
                        "clusters) or .csv (one row per datapoint)")
    p.add_argument("--dataset", default=None, metavar="NAME|FILE.npz",
                   help="encode other data of the same shape, read with the run's preprocessing "
                        "(default: the run's own)")
    _option_fields(p, EncodeOptions)
    p.add_argument("--device", default="auto", help=_DEVICE_HELP)
    p.add_argument("--data-dir", default=None, help=_DATA_DIR_HELP)

    p = command["figures"]
    p.add_argument("run", metavar="RUN_DIR", help=_RUN_HELP)
    p.add_argument("--out", metavar="DIR",
                   help="(default: RUN_DIR/figures; figures/NAME for pretrained:NAME)")
    p.add_argument("--data-dir", default=None, help=_DATA_DIR_HELP)
    p.add_argument("--dataset", default=None, metavar="NAME|FILE.npz",
                   help="draw the data figures from other data of the same shape (default: the run's own)")

    p = command["reproduce"]
    p.add_argument("name", nargs="?", metavar="NAME", help="a recipe under configs/ (see --list)")
    p.add_argument("--list", action="store_true", help="list the recipes and what they reproduce")
    p.add_argument("--pretrained", action="store_true", help="use the recipe's shipped model, train nothing")
    p.add_argument("--out", metavar="DIR", help="(default: runs/reproduce/NAME)")
    p.add_argument("--resume", action="store_true", help="continue the training run in DIR/run")
    _recipe_run_flags(p, commands.REPRODUCE_FLAGS)

    p = command["sweep"]
    p.add_argument("name", metavar="NAME", help="a recipe under configs/, or a .toml file")
    p.add_argument("--seeds", required=True, help="a range like 0-4 or a list like 0,3,7")
    p.add_argument("--out", metavar="DIR", help="(default: runs/sweep/NAME)")
    _recipe_run_flags(p, commands.SWEEP_FLAGS)

    p = command["pretrained"]
    psub = p.add_subparsers(dest="action", required=True, parser_class=Parser)
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


def console() -> int:
    """The `aevb` command: `main` in a process set up for fast training (`aevb.runtime.process`)."""
    process.configure()  # before any parallel torch operation starts the thread pool
    if not torch.cuda.is_available():  # torch's "No CUDA runtime is found, using CUDA_HOME" is noise here
        logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    code = main()
    if distributed.launched():
        # Leave without Python's shutdown: gloo's worker threads may still be freeing the last
        # collective's tensors, and a thread that takes the GIL during shutdown aborts the process.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code





def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # bare `aevb`: what there is to do, and a first run
        print(parser.format_help().rstrip())
        return 0
    try:
        if distributed.launched() and args.command != "train":
            raise AevbError(f"only `aevb train` runs under torchrun; run `aevb {args.command}` as one "
                            "process")
        return commands.COMMANDS[args.command](args)
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
        print(f"aevb: error: {where}{e.strerror or e}; {advice(e, 'check the path')}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return 130
    finally:
        distributed.finish()
