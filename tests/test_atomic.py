"""Atomic writes: a failure mid-write leaves the old file intact and no temporary behind."""

import pytest

from aevb import atomic


def test_success_replaces(tmp_path):
    path = tmp_path / "f.txt"
    path.write_text("old")
    atomic.write_text(path, "new")
    assert path.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_failure_keeps_old_file_and_cleans_up(tmp_path):
    path = tmp_path / "f.png"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic.atomic_path(path) as tmp:
        assert tmp.suffix == ".png" and tmp.parent == tmp_path  # same folder: rename is atomic
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["f.png"]


def test_written_files_get_the_mode_a_plain_open_would(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    atomic.write_text(tmp_path / "atomic.txt", "x")
    assert (tmp_path / "atomic.txt").stat().st_mode == plain.stat().st_mode
