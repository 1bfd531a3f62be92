"""Which code made a run: aevb's version, the git commit of a source checkout, and torch's version."""

from __future__ import annotations

import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch


def aevb_version() -> str:
    """The installed aevb's version ("0+unknown" in a source tree that is not installed)."""
    try:
        return version("aevb")
    except PackageNotFoundError:  # pragma: no cover
        return "0+unknown"


def git_commit() -> str | None:
    """The commit of the checkout aevb runs from (with "-dirty" if it has changes), or None."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("-dirty" if dirty else "")


def versions() -> dict:
    """{"aevb", "git", "torch"}: saved with every run and in every model card."""
    return {"aevb": aevb_version(), "git": git_commit(), "torch": torch.__version__}
