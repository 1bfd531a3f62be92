"""Atomic file writes: write a temporary file beside the target, flush it to disk, rename it.

A reader then sees either the old file or the complete new one, never half of one: downloads,
checkpoints, configs, metrics, figures and samples all go through here. A write that fails with an
OS error (a full disk) leaves nothing behind and raises `WriteError` naming the file.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aevb.errors import WriteError


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path` (same suffix); if the block succeeds, rename it onto `path`.
    An OSError, in the block or in the rename, becomes a `WriteError` naming `path`."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".part{path.suffix}")
    except OSError as e:
        raise WriteError.of(path, e) from None
    os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give the mode a plain open() would
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)  # the rename itself survives a power cut
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise WriteError.of(path, e) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_dir(path: str | Path, replace: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; if the block succeeds, rename it onto `path`.

    `path` may be absent or an empty folder; with `replace`, a folder already there is moved aside
    and deleted once the new one is in place. OSError from creating the folder propagates; a
    FileExistsError says another process put something at `path` meanwhile.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # mkdir's word for a file where a folder of the path should be
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(path.parent)) from None
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part"))
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700
        yield tmp
        old = None
        if replace and path.exists():
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".old"))
            os.replace(path, old / path.name)
        try:
            os.replace(tmp, path)  # POSIX rename may replace an empty folder
        except OSError as e:  # a folder that is not empty now: another process made it meanwhile
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            raise FileExistsError(errno.EEXIST, "created by another process meanwhile", str(path)) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def remove_leftovers(folder: str | Path) -> None:
    """Delete the temporary files of writes that a crash (SIGKILL, power loss) cut short."""
    for tmp in Path(folder).glob(".*.part*"):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


def write_bytes(path: str | Path, payload: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(payload)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
