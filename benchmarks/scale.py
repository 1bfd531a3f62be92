"""Memory and throughput as the data grow: `aevb train` on 1x, 10x and 50x MNIST-sized inputs, and
on a folder of 64x64 colour images, with each process's peak memory sampled from /proc.

    python benchmarks/scale.py --data-dir DIR                     # 1x, 10x, 50x MNIST as .npz
    python benchmarks/scale.py --data-dir DIR --folder 200000     # and a folder of 200,000 PNGs
    python benchmarks/scale.py --data-dir DIR --src OLD/src       # the same with another aevb's code
    python benchmarks/scale.py --dataset mnist-sample --scales 1 2 --folder 40 --steps 3   # a smoke run

The inputs are MNIST's training images repeated (uint8, an uncompressed .npz as numpy.savez
writes it) and its test images; the folder holds MNIST digits scaled to 64x64 and tinted, one
PNG each. Every case trains a VAE for `--steps` gradient steps at batch 100 in a fresh process
(`aevb train vae --max-steps`, scoring the test split in batches of 100: a 64x64 colour
convolutional model's activations for the default 1,000 images at once take gigabytes), while
this script reads the process's resident memory every 20 ms: anonymous memory (the heap: what
the process holds) and file-backed pages (a memory-mapped file's pages, which the kernel drops
and reads again as it needs the room). It prints the
start-up seconds (process start to the first step: loading, checks, the decoded folder), the
training images/s, and the peaks. Nothing else should run on the machine meanwhile.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from aevb.data import Data
from aevb.data.idx import load_idx_dataset

MIB = 2**20


def peak_memory(pid: int, stop: threading.Event, peaks: dict) -> None:
    """Sample /proc/PID/status until `stop`: the largest RssAnon, RssFile and VmRSS seen (MiB)."""
    while not stop.is_set():
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                key, _, value = line.partition(":")
                if key in ("RssAnon", "RssFile", "VmRSS"):
                    peaks[key] = max(peaks.get(key, 0), int(value.split()[0]) / 1024)
        except (FileNotFoundError, ProcessLookupError):
            return
        time.sleep(0.02)


def train(dataset: Path, out: Path, steps: int, extra: list[str], src: str | None) -> dict:
    """One `aevb train vae` in a fresh process: its start-up and training seconds, images/s, peaks."""
    env = dict(os.environ, **({"PYTHONPATH": src} if src else {}))
    cmd = [sys.executable, "-m", "aevb", "train", "vae", "--dataset", str(dataset), "--out", str(out),
           "--max-steps", str(steps), "--batch-size", "100", "--eval-batch-size", "100", "--epochs", "1",
           "--no-compile",
           "--quiet", *extra]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peaks, stop = {}, threading.Event()
    watcher = threading.Thread(target=peak_memory, args=(proc.pid, stop, peaks))
    watcher.start()
    output = proc.communicate()[0]
    stop.set()
    watcher.join()
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{output}")
    last = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    return {"startup_s": wall - last["seconds"], "images_per_s": 100 * last["step"] / last["seconds"],
            **{k: peaks.get(k, 0.0) for k in ("RssAnon", "RssFile", "VmRSS")}}


def mnist_npz(path: Path, data: Data, times: int) -> int:
    """The training images repeated `times` times and the test images, uncompressed; bytes."""
    x = np.concatenate([data.train.x.numpy()] * times)
    np.savez(path, x_train=x, x_test=data.test.x.numpy())
    return x.nbytes


def image_folder(folder: Path, data: Data, n: int) -> int:
    """n PNGs of the training digits scaled to 64x64 and tinted (colour); the decoded bytes."""
    from PIL import Image

    mnist = data.train.x.numpy().reshape(-1, 28, 28)
    tints = np.random.default_rng(0).uniform(0.3, 1.0, size=(n, 1, 1, 3))
    folder.mkdir()
    for i in range(n):
        grey = np.asarray(Image.fromarray(mnist[i % len(mnist)]).resize((64, 64)))
        Image.fromarray((grey[..., None] * tints[i]).astype(np.uint8)).save(folder / f"{i:06d}.png")
    return n * 64 * 64 * 3


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", help="a data root holding the dataset")
    p.add_argument("--dataset", default="mnist", help="the images repeated (default: mnist)")
    p.add_argument("--scales", type=int, nargs="+", default=[1, 10, 50])
    p.add_argument("--folder", type=int, default=0, help="also train on a folder of this many PNGs")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--src", help="PYTHONPATH of another aevb's code, to compare")
    p.add_argument("--tmp", help="where the inputs are written (default: the system's temporary folder)")
    args = p.parse_args()
    rows, data = [], load_idx_dataset(args.dataset, args.data_dir)
    n = len(data.train)
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        tmp = Path(tmp)
        for times in args.scales:
            path = tmp / f"x{times}.npz"
            size = mnist_npz(path, data, times)
            rows.append((f"{args.dataset} x{times} (.npz, {n * times:,} images)", size,
                         train(path, tmp / f"run-x{times}", args.steps, [], args.src)))
            path.unlink()
        if args.folder:
            folder = tmp / "images"
            made = time.perf_counter()
            size = image_folder(folder, data, args.folder)
            print(f"wrote {args.folder:,} PNGs in {time.perf_counter() - made:.0f} s", file=sys.stderr)
            rows.append((f"folder of {args.folder:,} 64x64 colour PNGs, --arch conv", size,
                         train(folder, tmp / "run-folder", args.steps,
                               ["--arch", "conv", "--preprocess", "dequantize"], args.src)))
    print("| data | decoded size | start-up | training | peak anonymous memory | peak mapped file pages |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, size, r in rows:
        print(f"| {name} | {size / MIB:,.1f} MiB | {r['startup_s']:.1f} s "
              f"| {r['images_per_s']:,.0f} images/s | {r['RssAnon']:,.0f} MiB | {r['RssFile']:,.0f} MiB |")


if __name__ == "__main__":
    main()
