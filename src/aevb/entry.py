"""The `aevb` program's first lines. Loading torch and the libraries takes seconds, and some of them
swallow a KeyboardInterrupt raised in their import and carry on half-loaded; so while they load,
Ctrl-C ends the process at once (nothing is written yet): one line and exit code 130."""

from __future__ import annotations

import os
import signal
import sys

from aevb.argparser import is_top_level_help, top_level
from aevb.errors import INTERRUPTED

STARTING = "aevb: interrupted while starting; nothing was written"


def console() -> int:
    """The `aevb` command (`aevb.cli.console`), with Ctrl-C before or around it one line too;
    `aevb` and `aevb --help` list the commands without loading torch."""
    if is_top_level_help(sys.argv[1:]):
        print(top_level()[0].format_help().rstrip())
        return 0
    loading = signal.getsignal(signal.SIGINT) is signal.default_int_handler  # not ignored by a shell
    if loading:
        signal.signal(signal.SIGINT, _while_loading)
    from aevb import cli  # torch, numpy, tqdm ... load here

    if loading:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return cli.console()  # the command turns its own interrupts into one line and 130
    except KeyboardInterrupt:  # before the command began (parsing) or as it ended
        print(INTERRUPTED, file=sys.stderr)
        return 130


def _while_loading(signum, frame) -> None:
    os.write(sys.stderr.fileno(), (STARTING + "\n").encode())
    os._exit(130)
