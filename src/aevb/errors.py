"""The exceptions the command line turns into a one-line message: exit code 2, or 130 when stopped."""

from __future__ import annotations

from pathlib import Path


class AevbError(Exception):
    """A problem with the user's input or environment: the message names it and says what to do
    (the command prints it as one line and exits with 2).

        >>> import aevb
        >>> try:
        ...     aevb.open("no/such/run")
        ... except aevb.AevbError as e:
        ...     print(e)
        no/such/run: no checkpoint here; give a run directory made by `aevb train`
    """


class WriteError(AevbError):
    """A file could not be written (a full disk, no permission): names the file and the OS's reason.

    Every write goes through `aevb.atomic`, so the file's previous version, if any, is still whole.
    """

    def __init__(self, path: str | Path, cause: str):
        self.path, self.cause = Path(path), cause
        super().__init__(f"cannot write {path} ({cause}); free some disk space or write elsewhere")


class Interrupted(AevbError):
    """Training stopped by SIGINT or SIGTERM after saving a checkpoint; the command line exits 130
    and prints `stopped` with the command that continues the run."""

    def __init__(self, stopped: str, resume_with: str | None = None):
        self.stopped = stopped
        super().__init__(stopped if resume_with is None else f"{stopped}; continue it with `{resume_with}`")
