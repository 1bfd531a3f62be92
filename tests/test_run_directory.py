"""A run directory under stress: two processes on one run, and writes that fail for want of disk
space. Each is refused with one line naming the run or the file and the cause, exit code 2, and
the run keeps its last good state, from which --resume goes on."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors import SafetensorError

from aevb.api import Run
from aevb.cli import main
from aevb.errors import AevbError
from aevb.runs import checkpoints
from aevb.runs.directory import CHECKPOINT, FIGURES, METRICS, OWN, TENSORBOARD, RunDirectory
from aevb.runs.load import load_checkpoint

FA = ["train", "fa", "--quiet"]


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("aevb: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


# -- two processes ------------------------------------------------------------------------------


def test_a_locked_run_is_refused_naming_the_holder_and_left_unchanged(tmp_path, capsys):
    run = tmp_path / "run"
    assert main([*FA, "--epochs", "2", "--out", str(run)]) == 0
    before = files(run)
    holder = RunDirectory(run)
    holder.lock()  # as a training process holds it
    try:
        assert main([*FA, "--resume", "--epochs", "4", "--out", str(run)]) == 2
        err = one_error_line(capsys)
        assert f"{run} is being trained by process {os.getpid()}" in err
        assert files(run) == before
        assert main([*FA, "--overwrite", "--out", str(run)]) == 2  # nor may another replace it
        assert f"{run} is being trained by process {os.getpid()}" in one_error_line(capsys)
        assert files(run) == before
    finally:
        holder.release()
    assert main([*FA, "--resume", "--epochs", "4", "--out", str(run)]) == 0


def test_a_lock_dies_with_its_process_even_by_sigkill(tmp_path):
    run = tmp_path / "run"
    assert main([*FA, "--epochs", "1", "--out", str(run)]) == 0
    script = ("import sys, time; from aevb.runs.directory import RunDirectory; "
              "RunDirectory(sys.argv[1]).lock(); print('locked', flush=True); time.sleep(600)")
    child = subprocess.Popen([sys.executable, "-c", script, str(run)], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "locked"
    with pytest.raises(Exception, match=f"process {child.pid}"):
        RunDirectory(run).lock()
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=60)
    RunDirectory(run).lock()  # free again


def test_two_resumes_started_together_train_the_run_once(tmp_path):
    run = tmp_path / "run"
    assert main([*FA, "--epochs", "1", "--out", str(run)]) == 0
    argv = [sys.executable, "-m", "aevb", *FA, "--resume", "--epochs", "150", "--out", str(run)]
    procs = [subprocess.Popen(argv, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    done = [(p.wait(timeout=600), p.stderr.read()) for p in procs]
    assert sorted(code for code, _ in done) == [0, 2], done
    err = next(e for code, e in done if code == 2)
    assert err.count("\n") == 1 and f"{run} is being trained by process" in err
    epochs = [json.loads(s)["epoch"] for s in (run / "metrics.jsonl").read_text().splitlines()]
    assert epochs == list(range(1, 151))  # each epoch once


# -- a full disk, as safetensors reports it (a patched writer) ------------------------------------


def full_disk_at(monkeypatch, write_number: int) -> None:
    """Checkpoint writes fail from write `write_number` on, as safetensors fails on a full disk."""
    real, calls = checkpoints.save_file, [0]

    def save_file(tensors, path, metadata=None):
        calls[0] += 1
        if calls[0] >= write_number:
            Path(path).write_bytes(b"half a checkpoint")
            raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
        real(tensors, path, metadata=metadata)

    monkeypatch.setattr(checkpoints, "save_file", save_file)


def test_a_full_disk_at_the_first_checkpoint_writes_nothing(tmp_path, monkeypatch, capsys):
    full_disk_at(monkeypatch, 1)
    assert main([*FA, "--out", str(tmp_path / "run")]) == 2
    err = one_error_line(capsys)
    assert f"cannot write {tmp_path / 'run' / 'checkpoint.safetensors'} (No space left on device" in err
    assert "nothing was written" in err
    assert list(tmp_path.iterdir()) == []  # no run, no temporary folder


def test_a_full_disk_mid_run_keeps_the_last_checkpoint_and_resume_goes_on(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    full_disk_at(monkeypatch, 3)  # step 0 and epoch 1 are saved; epoch 2's save fails
    assert main([*FA, "--epochs", "3", "--out", str(run)]) == 2
    err = one_error_line(capsys)
    assert f"cannot write {run / 'checkpoint.safetensors'} (No space left on device" in err
    assert "the run keeps its checkpoint of step 32: free some disk space, then continue it with --resume" \
        in err
    assert load_checkpoint(run)[1]["step"] == 32
    assert sorted(p.name for p in run.iterdir()) == [".lock", "checkpoint.safetensors", "config.json",
                                                     "metrics.jsonl"]  # no temporary file
    monkeypatch.undo()
    assert main([*FA, "--resume", "--out", str(run)]) == 0
    assert load_checkpoint(run)[1]["step"] == 96


# -- a real full disk: a small tmpfs, filled once the run exists ------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(folder: Path) -> Path:
    """Write a file into `folder` until the disk is full; returns it."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    return filler


def test_a_disk_that_fills_mid_run_is_one_line_and_resume_goes_on(small_disk, monkeypatch, capsys):
    run = small_disk / "run"
    create = RunDirectory.create
    fillers = []

    def create_then_fill(self, *args, **kwargs):
        create(self, *args, **kwargs)
        fillers.append(fill(small_disk))

    monkeypatch.setattr(RunDirectory, "create", create_then_fill)
    assert main([*FA, "--epochs", "2", "--out", str(run)]) == 2
    err = one_error_line(capsys)
    assert f"cannot write {run / 'metrics.jsonl'} (No space left on device)" in err, err
    assert "the run keeps its checkpoint of step 0" in err
    assert load_checkpoint(run)[1]["step"] == 0
    assert not [p for p in run.iterdir() if ".part" in p.name]
    fillers[0].unlink()
    monkeypatch.undo()
    time.sleep(0.1)
    assert main([*FA, "--resume", "--out", str(run)]) == 0
    assert load_checkpoint(run)[1]["step"] == 64


@pytest.fixture(scope="module")
def fa_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("fa") / "run"
    assert main([*FA, "--max-steps", "5", "--out", str(run)]) == 0
    return run


@pytest.mark.parametrize("command", [
    ["sample", "{run}", "--n", "8", "--out", "{disk}/samples.npy"],
    ["sample", "{run}", "--n", "8", "--out", "{disk}/samples.png"],
    ["figures", "{run}", "--out", "{disk}"],
    ["pretrained", "export", "{run}", "tiny", "--recipe", "fa-tutorial", "--out", "{disk}"],
    ["reproduce", "fa-tutorial", "--max-steps", "3", "--out", "{disk}"],
])
def test_every_other_write_on_a_full_disk_is_one_line_naming_the_file(small_disk, fa_run, capsys, command):
    filler = fill(small_disk)
    argv = [a.format(run=fa_run, disk=small_disk) for a in command]
    assert main(argv) == 2
    err = one_error_line(capsys)
    assert f"{small_disk}/" in err and "No space left on device" in err, err
    written = sorted(p.name for p in small_disk.rglob("*") if p.is_file())
    assert written == [filler.name]  # nothing half-written


# -- a run directory is untrusted input: links planted in it are never followed -----------------


def tree(folder: Path) -> dict[str, bytes | str]:
    """Every path under `folder` (links not followed): a file's bytes, a link's target."""
    return {str(p.relative_to(folder)): (os.readlink(p) if p.is_symlink() else p.read_bytes())
            for p in sorted(folder.rglob("*")) if p.is_symlink() or p.is_file()}


@pytest.mark.parametrize("name", OWN)
def test_a_link_planted_in_a_run_is_refused_and_never_followed(tmp_path, fa_run, capsys, name):
    run, outside = tmp_path / "run", tmp_path / "outside"
    shutil.copytree(fa_run, run)
    (outside / "folder").mkdir(parents=True)
    (outside / "secret.txt").write_text("not aevb's")
    target = outside / ("folder" if name in (FIGURES, TENSORBOARD) else "secret.txt")
    if (run / name).is_file():
        (run / name).unlink()
    (run / name).symlink_to(target)
    before, theirs = tree(run), tree(outside)
    assert main([*FA, "--resume", "--epochs", "2", "--tensorboard", "--out", str(run)]) == 2
    err = one_error_line(capsys)
    assert f"{run / name} is a symbolic link; aevb never follows a link inside a run directory" in err
    assert main([*FA, "--overwrite", "--max-steps", "2", "--out", str(run)]) == 2
    one_error_line(capsys)
    if name in (FIGURES, CHECKPOINT):  # `aevb figures` writes into RUN/figures (FA's take a while)
        assert main(["figures", str(run)]) == 2
    assert main(["evaluate", str(run), "--subset", "10"]) == (2 if name == CHECKPOINT else 0)
    capsys.readouterr()
    if name == METRICS:
        with pytest.raises(AevbError, match="is a symbolic link"):
            _ = Run(run).metrics
    assert tree(outside) == theirs  # nothing outside the run was read into it or written
    after = tree(run)
    assert {k: v for k, v in after.items() } == before


def test_an_out_that_is_the_users_own_link_to_a_folder_is_followed(tmp_path, capsys):
    (tmp_path / "disk").mkdir()
    (tmp_path / "runs").symlink_to(tmp_path / "disk")
    (tmp_path / "disk" / "run").mkdir()
    (tmp_path / "mine").symlink_to(tmp_path / "disk" / "run")
    assert main([*FA, "--max-steps", "2", "--out", str(tmp_path / "mine")]) == 0
    assert main([*FA, "--max-steps", "2", "--out", str(tmp_path / "runs" / "other")]) == 0
    assert (tmp_path / "disk" / "run" / CHECKPOINT).is_file()
    assert (tmp_path / "disk" / "other" / CHECKPOINT).is_file()


def test_two_new_runs_into_one_out_say_so(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    real = os.replace

    def first_the_other(src, dst):  # another process's run lands just before ours
        if Path(dst) == run:
            run.mkdir()
            (run / "config.json").write_text("{}")
        real(src, dst)

    monkeypatch.setattr(os, "replace", first_the_other)
    assert main([*FA, "--max-steps", "2", "--out", str(run)]) == 2
    err = one_error_line(capsys)
    assert "another process created it while this run was being set up; nothing was written" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_damaged_metrics_file_is_named_and_the_run_goes_on(tmp_path, capsys):
    run = tmp_path / "run"
    assert main([*FA, "--epochs", "3", "--out", str(run)]) == 0
    lines = (run / METRICS).read_text().splitlines()
    (run / METRICS).write_text("\n".join(lines[:2]) + "\n" + lines[2][:40])  # the last line cut short
    with pytest.raises(AevbError, match=r"metrics.jsonl: line 3 is damaged \(.*\); the checkpoint is whole"):
        _ = Run(run).metrics
    assert main(["evaluate", str(run), "--subset", "10"]) == 0
    assert main(["sample", str(run), "--n", "3", "--out", str(tmp_path / "s.npy")]) == 0
    assert main([*FA, "--resume", "--epochs", "4", "--out", str(run)]) == 0
    assert [m["epoch"] for m in Run(run).metrics] == [1, 2, 3, 4]
