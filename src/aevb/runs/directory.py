"""A run directory and everything written into it: its file names, its lock, and writes that are
atomic and fail with one line naming the file.

    RUN/config.json              the resolved config (`aevb.config.RunConfig.to_dict`)
    RUN/metrics.jsonl            one JSON line per epoch (and one for a run stopped mid-epoch)
    RUN/checkpoint.safetensors   the training state (`aevb.training.state`, `aevb.runs.checkpoints`)
    RUN/data.npz                 the arrays a run was given in memory (`aevb.fit`), when it was
    RUN/.lock                    held by the process training the run, which it names

A new run appears whole or not at all: its files are written into a hidden folder beside it that
is then renamed. While a process trains a run it holds an OS lock on RUN/.lock (released when the
process ends, however it ends), so a second process cannot train it too.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable
from pathlib import Path

import torch

from aevb import atomic
from aevb.errors import AevbError, WriteError
from aevb.runs import checkpoints

CONFIG, METRICS, CHECKPOINT, LOCK = "config.json", "metrics.jsonl", "checkpoint.safetensors", ".lock"
DATA = "data.npz"


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
        return self.path / CHECKPOINT

    def has_checkpoint(self) -> bool:
        return self.checkpoint.exists()

    def check_new(self, overwrite: bool) -> bool:
        """Whether the folder holds a run that `overwrite` replaces; refuse anything else there."""
        if not self.path.exists():
            return False
        if not self.path.is_dir():
            raise AevbError(f"--out {self.path} is a file; give a directory for the run")
        if self.has_checkpoint() or (self.path / CONFIG).exists():
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
            name = e.path.name if isinstance(e, WriteError) else None
            cause = e.cause if isinstance(e, WriteError) else e.strerror or str(e)
            where = self.path / name if name else f"the run directory {self.path}"
            raise AevbError(f"cannot write {where} ({cause}); nothing was written: free some disk space "
                            "or choose another --out") from None
        old.release()  # the replaced run's folder is gone
        self.saved_step = meta["step"]

    def lock(self) -> None:
        """Hold the run's lock until `release` or the end of this process; if another process holds
        it, an AevbError naming that process."""
        self._take_lock(self.path / LOCK)

    def _take_lock(self, path: Path) -> None:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as e:
            raise WriteError(path, e.strerror or str(e)) from None
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
        path = self.path / METRICS
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
            raise AevbError(f"cannot write {e.path} ({e.cause}); the run keeps {kept}: free some disk "
                            "space and continue it with --resume") from None
