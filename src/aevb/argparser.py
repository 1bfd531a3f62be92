"""The command line's argument parser: argparse with one-line usage errors that suggest the closest
flag, command or model, and no abbreviated flags; and the top level of `aevb` (its commands and
their one-line help), which `aevb` and `aevb --help` print without loading torch."""

from __future__ import annotations

import argparse
import difflib
import sys

EXAMPLE = """example:
  aevb train vae --dataset mnist-sample --epochs 3 --out runs/first
  aevb evaluate runs/first && aevb sample runs/first --out samples.png"""

# Each command's one-line help, in the order `aevb --help` lists them.
COMMANDS = {
    "train": "train a model; `aevb train MODEL --help` for its options",
    "evaluate": "ELBO, IWAE bound and exact log-likelihood of a run",
    "sample": "draw x ~ p(x) from a trained model",
    "encode": "write the latent codes of a dataset: posterior means, and for models with clusters "
              "q(y|x) and each point's cluster",
    "figures": "write the model's figures",
    "reproduce": "train a published recipe (or fetch its shipped model), then write its figures and "
                 "results.json",
    "sweep": "train a recipe from several seeds and tabulate their results",
    "pretrained": "the shipped pretrained models",
}


def top_level() -> tuple[Parser, dict[str, Parser]]:
    """`aevb`'s parser with its commands, each still without options (`aevb.cli.build_parser`
    adds them): enough for `aevb --help`, which then answers without importing torch.

        parser, commands = top_level()
        commands["evaluate"].add_argument("run")
    """
    parser = Parser(prog="aevb", epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter,
                    description="Latent-variable models trained with Auto-Encoding Variational Bayes.")
    parser.add_argument("--version", action=_Version)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    return parser, {name: sub.add_parser(name, help=text) for name, text in COMMANDS.items()}


def is_top_level_help(argv: list[str]) -> bool:
    """Whether argv asks only for the list of commands (`aevb`, `aevb --help`)."""
    return argv in ([], ["-h"], ["--help"])


class _Version(argparse.Action):
    """`aevb --version`: aevb's, torch's (with its build, e.g. +cpu or +cu124) and Python's versions."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, help="show the versions and exit")

    def __call__(self, parser, namespace, values, option_string=None):
        import torch  # only when asked: the rest of the top level answers without it

        from aevb.provenance import aevb_version

        # torch.__version__ carries the build suffix (+cpu, +cu124) that its package metadata drops
        print(f"aevb {aevb_version()} (torch {torch.__version__}, Python {sys.version.split()[0]})")
        parser.exit()


class Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line on stderr and exit code 2, an unknown flag gets the
    closest known one suggested, and no flag may be abbreviated (`--epoch` is not `--epochs`)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, allow_abbrev=False, **kwargs)

    def parse_args(self, args=None, namespace=None):
        self._argv = list(sys.argv[1:] if args is None else args)  # for `error` to find the command
        return super().parse_args(args, namespace)

    def error(self, message: str):
        if message.startswith("unrecognized arguments: "):
            unknown = [a.split("=")[0] for a in message.split(": ", 1)[1].split() if a.startswith("-")]
            words, parser = self._command(getattr(self, "_argv", []))
            known = sorted(parser._all_flags())
            close = next((m for a in unknown for m in difflib.get_close_matches(a, known, 1, 0.6)), None)
            if close:
                message += f"; did you mean {close}?"
            elif unknown and unknown[0] in self._all_flags():
                command = " ".join(["aevb", *words])
                message += f"; {unknown[0]} is not an option of `{command}` (see its --help)"
        for action in self._actions:  # a missing or mistyped command or model: name the choices
            if isinstance(action, argparse._SubParsersAction) and action.metavar in message:
                wrong = message.split("invalid choice: '", 1)[-1].split("'")[0]
                close = difflib.get_close_matches(wrong, list(action.choices), 1, 0.6)
                if close and "invalid choice" in message:
                    message += f"; did you mean {close[0]}?"
                elif "required" in message:
                    message += f" (one of {', '.join(action.choices)})"
        self.exit(2, f"{self.prog}: error: {message}\n")

    def format_help(self) -> str:
        """argparse's help, then `appendix` where a parser has one (`aevb train`'s shared options;
        kept out of the epilog, which the docs render as reStructuredText)."""
        return super().format_help() + getattr(self, "appendix", "")

    def _command(self, argv: list[str]) -> tuple[list[str], Parser]:
        """The command words in argv (["pretrained", "export"]) and the parser that reads the rest."""
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                for i, word in enumerate(argv):
                    if word in action.choices:
                        words, parser = action.choices[word]._command(argv[i + 1:])
                        return [word, *words], parser
        return [], self

    def _all_flags(self) -> set[str]:
        """Every option string of this parser and of the commands under it."""
        found = set()
        for action in self._actions:
            found.update(s for s in action.option_strings if s.startswith("--"))
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    found |= sub._all_flags()
        return found
