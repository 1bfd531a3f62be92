"""The exceptions the command line turns into a one-line message: exit code 2, or 130 when stopped."""

from __future__ import annotations

import errno
from pathlib import Path

# What to do about an OS error, by its number: the reason the OS gave, never a guess at it.
_ADVICE = {
    errno.ENOSPC: "free some disk space",
    errno.EDQUOT: "free some of your disk quota",
    errno.EROFS: "the file system is read-only; write elsewhere",
    errno.EACCES: "you may not write there; fix its permissions or write elsewhere",
    errno.EPERM: "you may not write there; fix its permissions or write elsewhere",
    errno.ENOTDIR: "a part of the path is a file, not a folder; choose another path",
    errno.EISDIR: "a folder is in the way of the file; choose another path",
    errno.ENOTEMPTY: "another process wrote there meanwhile; choose another path",
    errno.EEXIST: "another process wrote there meanwhile; choose another path",
    errno.ELOOP: "the path holds a symbolic link that aevb does not follow; remove the link",
    errno.ENAMETOOLONG: "the path is too long; choose a shorter one",
}


def advice(error: OSError | int | None, otherwise: str = "check the path and write elsewhere") -> str:
    """What a user can do about an OS error (or its errno): "free some disk space" for ENOSPC ...

        >>> advice(errno.ENOSPC)
        'free some disk space'
    """
    number = error.errno if isinstance(error, OSError) else error
    return _ADVICE.get(number, otherwise)


INTERRUPTED = "aevb: interrupted; a run that had begun continues from its last checkpoint with --resume"


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
    """A file could not be written (a full disk, no permission): names the file, the OS's reason
    and what to do about it (`advice`).

    Every write goes through `aevb.atomic`, so the file's previous version, if any, is still whole.
    """

    def __init__(self, path: str | Path, cause: str, number: int | None = None):
        self.path, self.cause, self.errno = Path(path), cause, number  # number: the OSError's errno
        super().__init__(f"cannot write {path} ({cause}); {advice(number)}")

    @classmethod
    def of(cls, path: str | Path, error: OSError) -> WriteError:
        """The WriteError for `path` of an OSError, keeping its reason and number."""
        return cls(path, error.strerror or str(error), error.errno)


class Interrupted(AevbError):
    """Training stopped by SIGINT or SIGTERM after saving a checkpoint; the command line exits 130
    and prints `stopped` with the command that continues the run."""

    def __init__(self, stopped: str, resume_with: str | None = None):
        self.stopped = stopped
        super().__init__(stopped if resume_with is None else f"{stopped}; continue it with `{resume_with}`")
