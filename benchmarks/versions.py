"""Training throughput of two versions of aevb, in interleaved turns: this checkout against a git
revision (a change that should not alter speed must keep the ratio near 1).

    python benchmarks/versions.py --baseline f000718                 # vae, gmvae, vrnn at the recipe's batch
    python benchmarks/versions.py --baseline HEAD~3 --models vae --seconds 30

Each version trains in a process of its own (two versions of a package cannot share one), built
by that version's own `benchmarks/throughput.py` (`AevbLoop`: `Trainer.train_step` with the
recipe's precision and compile setting), from its own source tree: the baseline's is exported
with `git archive` into a temporary folder. The processes take turns of the same number of steps,
so that a noisy neighbour slows both alike; between turns the script pauses, so that one
process's idle threads stop spinning before the other starts. Besides the ratio of the total
rates it prints the median of the rounds' ratios and their middle half, which a burst of load
on the machine moves less.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Runs in each version's process: builds its AevbLoop, then answers "STEPS" with the seconds they took.
WORKER = """
import json, sys, time
import torch
from throughput import AevbLoop
name, batch, precision = sys.argv[1], int(sys.argv[2]), sys.argv[3]
try:
    from aevb.runtime import process
except ImportError:  # versions before the engine was rebuilt
    from aevb import process
process.configure()
torch.manual_seed(0)
loop = AevbLoop(name, batch, torch.device("cpu"), precision=precision, compile=True)
loop.run(5)
print("ready", flush=True)
for line in sys.stdin:
    steps = int(line)
    start = time.perf_counter()
    loop.run(steps)
    print(json.dumps(time.perf_counter() - start), flush=True)
"""


def export(revision: str, into: Path) -> Path:
    """The tree of `revision` of this repository, written into `into`."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision], capture_output=True, check=True)
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into


class Worker:
    """One version's training loop, in its own process."""

    def __init__(self, tree: Path, name: str, batch: int, precision: str):
        env = {**os.environ, "PYTHONPATH": f"{tree / 'src'}{os.pathsep}{tree / 'benchmarks'}"}
        self.proc = subprocess.Popen([sys.executable, "-c", WORKER, name, str(batch), precision],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
                                     cwd=tree / "benchmarks")
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"the loop of {tree} did not start (exit {self.proc.wait()})")

    def run(self, steps: int) -> float:
        self.proc.stdin.write(f"{steps}\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def compare(trees: dict[str, Path], name: str, batch: int, precision: str, seconds: float,
            rounds: int, pause: float) -> tuple[dict[str, float], list[float]]:
    """Images/s of each version from `rounds` interleaved turns of about seconds/rounds each, and
    each round's ratio of the second version's rate to the first's."""
    workers = {label: Worker(tree, name, batch, precision) for label, tree in trees.items()}
    try:
        per_step = max(w.run(3) / 3 for w in workers.values())
        steps = max(1, round(seconds / rounds / per_step))
        spent: dict[str, list[float]] = {label: [] for label in workers}
        for _ in range(rounds):
            for label, w in workers.items():
                time.sleep(pause)
                spent[label].append(w.run(steps))
    finally:
        for w in workers.values():
            w.close()
    first, second = spent.values()
    return ({label: rounds * steps * batch / sum(t) for label, t in spent.items()},
            [a / b for a, b in zip(first, second, strict=True)])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--baseline", required=True, help="a git revision of this repository, e.g. f000718")
    p.add_argument("--models", nargs="+", default=["vae", "gmvae", "vrnn"], choices=["vae", "gmvae", "vrnn"])
    p.add_argument("--seconds", type=float, default=30.0, help="timing per version and model (default: 30)")
    p.add_argument("--rounds", type=int, default=30, help="turns per version (default: 30)")
    p.add_argument("--pause", type=float, default=0.3, help="seconds between turns (default: 0.3)")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    args = p.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    import torch

    from aevb.models import registry
    from aevb.runtime.devices import resolve_precision

    precision = resolve_precision(args.precision, torch.device("cpu"))
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", args.baseline],
                            capture_output=True, text=True, check=True).stdout.strip()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {precision}, compiled; "
          f"baseline {commit}, this checkout {ROOT}")
    print("| model | batch | baseline img/s | this checkout img/s | ratio | median of the rounds' "
          "ratios | their middle half |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"baseline": export(args.baseline, Path(tmp)), "this": ROOT}
        for name in args.models:
            batch = registry.get(name).recipe["train"]["batch_size"]
            r, ratios = compare(trees, name, batch, precision, args.seconds, args.rounds, args.pause)
            q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
            print(f"| {name} | {batch} | {r['baseline']:,.0f} | {r['this']:,.0f} | "
                  f"{r['this'] / r['baseline']:.3f} | {statistics.median(ratios):.3f} | "
                  f"{q[0]:.3f} to {q[2]:.3f} |", flush=True)


if __name__ == "__main__":
    main()
