"""A run directory and everything written into it: its file names, its lock, and writes that are
atomic and fail with one line naming the file.

    RUN/config.json              the resolved config (`aevb.config.RunConfig.to_dict`)
    RUN/metrics.jsonl            one JSON line per epoch (and one for a run stopped mid-epoch)
    RUN/checkpoint.safetensors   the training state (`aevb.training.trainer`, `aevb.runs.checkpoints`)
    RUN/data.npz                 the arrays a run was given in memory (`aevb.fit`), when it was
    RUN/.lock                    held by the process training the run, which it names
    RUN/figures/  RUN/tensorboard/   written by `aevb figures` and `--tensorboard`

A new run appears whole or not at all: its files are written into a hidden folder beside it that
is then renamed. While a process trains a run it holds an OS lock on RUN/.lock (released when the
process ends, however it ends), so a second process cannot train it too.

A run directory is untrusted input (it may come from anyone): aevb never follows a symbolic link
among its files, reading or writing (`own`); a file is replaced by a rename within the run.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
from collections.abc import Callable
from pathlib import Path

import torch

from aevb import atomic
from aevb.errors import AevbError, WriteError, advice
from aevb.runs import checkpoints

CONFIG, METRICS, CHECKPOINT, LOCK = "config.json", "metrics.jsonl", "checkpoint.safetensors", ".lock"
DATA, FIGURES, TENSORBOARD = "data.npz", "figures", "tensorboard"
OWN = (CONFIG, METRICS, CHECKPOINT, LOCK, DATA, FIGURES, TENSORBOARD)  # every name aevb uses in a run


def own(path: Path) -> Path:
    """`path`, a file or folder inside a run, refused in one line if it is a symbolic link.

        own(Path("runs/mine/metrics.jsonl")).read_text()
    """
    if path.is_symlink():
        raise AevbError(f"{path} is a symbolic link; aevb never follows a link inside a run directory, "
                        "so replace it with the file itself or remove it")
    return path


def read_metrics(run: Path) -> list[dict]:
    """RUN/metrics.jsonl's records; a damaged line is an AevbError naming it (the checkpoint keeps
    every completed epoch's record, and a resumed run rewrites the file from it)."""
    path = own(run / METRICS)
    records = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            why = None if isinstance(record, dict) else "not a JSON object"
        except json.JSONDecodeError as e:
            why = e.msg.lower()
        if why:
            raise AevbError(f"{path}: line {number} is damaged ({why}); the checkpoint is whole, so "
                            "evaluate, sample and --resume still work, and a resumed run rewrites the file")
        records.append(record)
    return records


class RunDirectory:
    """The folder of one training run.

        run = RunDirectory("runs/mine")
        run.lock()                          # or AevbError: another process trains it
        run.append_metrics({"epoch": 1, ...})
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.saved_step: int | None = None  # the step of the checkpoint on disk, once known
        self._lock: int | None = None  # the lock file's descriptor, while held

    def __str__(self) -> str:
        return str(self.path)

    @property
    def checkpoint(self) -> Path:
        return own(self.path / CHECKPOINT)

    def has_checkpoint(self) -> bool:
        return self.checkpoint.exists()

    def check_new(self, overwrite: bool) -> bool:
        """Whether the folder holds a run that `overwrite` replaces; refuse anything else there.
        A --out that is itself a link (the user's own) is followed: the run goes where it points."""
        if self.path.is_symlink():
            self.path = Path(os.path.realpath(self.path))
        if not self.path.exists():
            return False
        if not self.path.is_dir():
            raise AevbError(f"--out {self.path} is a file; give a directory for the run")
        if self.has_checkpoint() or own(self.path / CONFIG).exists():
            if not overwrite:
                raise AevbError(f"{self.path} already holds a run; pass --resume to continue it, "
                                "--overwrite to replace it, or choose another --out")
            return True
        if any(self.path.iterdir()):
            raise AevbError(f"{self.path} exists and holds other files; choose a new or empty --out")
        return False

    def create(self, config: dict, tensors: dict[str, torch.Tensor], meta: dict, replace: bool,
               files: dict[str, Callable[[Path], None]] | None = None) -> None:
        """Write config.json, an empty metrics.jsonl, a first checkpoint and `files` (name: a writer
        given the path) into a new run directory, all or nothing, and hold its lock. `replace`: the
        run already there goes, unless it is locked."""
        old = RunDirectory(self.path)
        if replace:
            old.lock()  # refuses a run that another process trains
        try:
            with atomic.atomic_dir(self.path, replace=replace) as tmp:
                self._take_lock(tmp / LOCK)
                atomic.write_text(tmp / CONFIG, json.dumps(config, indent=2) + "\n")
                (tmp / METRICS).write_text("")
                checkpoints.save(tmp / CHECKPOINT, tensors, meta)
                for name, write in (files or {}).items():
                    write(tmp / name)
        except (OSError, WriteError) as e:
            self.release()
            old.release()
            if isinstance(e, WriteError):  # one of its files, written in the hidden folder
                where, cause, number = self.path / e.path.name, e.cause, e.errno
            else:
                where, cause, number = f"the run directory {self.path}", e.strerror or str(e), e.errno
            if isinstance(e, FileExistsError):  # atomic_dir's word for another process's folder
                raise AevbError(f"cannot create {self.path}: another process created it while this run "
                                "was being set up; nothing was written: choose another --out") from None
            raise AevbError(f"cannot write {where} ({cause}); nothing was written: "
                            f"{advice(number, 'choose another --out')}") from None
        old.release()  # the replaced run's folder is gone
        self.saved_step = meta["step"]

    def lock(self) -> None:
        """Hold the run's lock until `release` or the end of this process; if another process holds
        it, an AevbError naming that process. A run holding a link among its files is refused."""
        for name in OWN:
            own(self.path / name)
        self._take_lock(self.path / LOCK)

    def _take_lock(self, path: Path) -> None:
        try:  # O_NOFOLLOW: a link planted after the check above is refused, not followed
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
        except OSError as e:
            if e.errno == errno.ELOOP:
                own(path)
            raise WriteError.of(path, e) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip()
            os.close(fd)
            raise AevbError(f"{self.path} is being trained by process {holder or 'unknown'}; wait for it "
                            "to finish or stop it, then continue the run with --resume") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock = fd

    def release(self) -> None:
        """Let go of the run's lock (the OS does too when the process ends)."""
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def remove_leftovers(self) -> None:
        """Delete the temporary files of writes that a crash (SIGKILL, power loss) cut short."""
        atomic.remove_leftovers(self.path)

    # -- writes while training: each atomic; a failure names the file and keeps the last state ---

    def write_config(self, config: dict) -> None:
        self._write(CONFIG, json.dumps(config, indent=2) + "\n")

    def append_metrics(self, record: dict) -> None:
        path = own(self.path / METRICS)
        text = path.read_text() if path.exists() else ""
        self._write(METRICS, text + json.dumps(record) + "\n")

    def write_metrics(self, records: list[dict]) -> None:
        self._write(METRICS, "".join(json.dumps(m) + "\n" for m in records))

    def save_checkpoint(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        self._failing_as_run(lambda: checkpoints.save(self.checkpoint, tensors, meta))
        self.saved_step = meta["step"]

    def _write(self, name: str, text: str) -> None:
        self._failing_as_run(lambda: atomic.write_text(self.path / name, text))

    def _failing_as_run(self, write) -> None:
        try:
            write()
        except WriteError as e:
            kept = ("its last checkpoint" if self.saved_step is None
                    else f"its checkpoint of step {self.saved_step}")
            raise AevbError(f"cannot write {e.path} ({e.cause}); the run keeps {kept}: "
                            f"{advice(e.errno)}, then continue it with --resume") from None
