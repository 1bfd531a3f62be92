"""What a user waits for before anything happens: importing aevb, `aevb --help`, a bare `aevb`,
`aevb --version` (which loads torch), and a whole `aevb train` to the end of its first step and
the one evaluation after it. Each is a fresh process, timed in interleaved rounds; the table gives
the median and the range over the rounds.

    python benchmarks/startup.py                  # 5 rounds
    python benchmarks/startup.py --rounds 1       # a quick look
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

AEVB = [sys.executable, "-m", "aevb"]
CASES = {
    "python -c 'import aevb'": [sys.executable, "-c", "import aevb"],
    "python -c 'import aevb; aevb.fit'": [sys.executable, "-c", "import aevb; aevb.fit"],
    "aevb --help": [*AEVB, "--help"],
    "aevb (bare)": AEVB,
    "aevb --version": [*AEVB, "--version"],
    "aevb train vae, to its first step": [*AEVB, "train", "vae", "--dataset", "mnist-sample", "--max-steps",
                                          "1", "--eval-samples", "1", "--quiet", "--no-compile",
                                          "--overwrite", "--out", "{tmp}/run"],
}


def timed(command: list[str], tmp: str) -> float:
    began = time.perf_counter()
    done = subprocess.run([c.format(tmp=tmp) for c in command], capture_output=True, text=True)
    took = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {done.stderr[-500:]}")
    return took


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default: 5)")
    args = p.parse_args()
    tmp = tempfile.mkdtemp(prefix="aevb-startup-")
    try:
        times: dict[str, list[float]] = {name: [] for name in CASES}
        for _ in range(args.rounds):
            for name, command in CASES.items():
                times[name].append(timed(command, tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"Python {sys.version.split()[0]}, {args.rounds} rounds, seconds of wall time per process")
    print("| what | median s | range s |")
    print("| --- | --- | --- |")
    for name, ts in times.items():
        print(f"| {name} | {statistics.median(ts):.2f} | {min(ts):.2f} to {max(ts):.2f} |")


if __name__ == "__main__":
    main()
