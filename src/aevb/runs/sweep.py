"""`aevb sweep NAME --seeds 0-4`: one recipe trained from several seeds, their results in one table.

    OUT/seed-S/       `aevb reproduce NAME --seed S` without figures: run/ and results.json
    OUT/sweep.json    each seed's metrics, and per metric the median, minimum and maximum

Seeds run one after another (each uses every core). A sweep continues where it stopped: a seed
with a results.json is kept, a seed with a run but none is resumed.
"""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

from aevb import atomic
from aevb.errors import AevbError
from aevb.runs import reproduce
from aevb.runs.directory import RunDirectory
from aevb.runs.resolve import RESUMABLE


def parse_seeds(text: str) -> list[int]:
    """"0-4" -> [0, 1, 2, 3, 4]; "0,3,7" -> [0, 3, 7]."""
    seeds: list[int] = []
    for part in text.split(","):
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part.strip())
        if m is None:
            raise AevbError(f"--seeds {text!r}: give a range like 0-4 or a list like 0,3,7")
        seeds += range(int(m[1]), int(m[2] or m[1]) + 1)
    if not seeds or len(set(seeds)) != len(seeds):
        raise AevbError(f"--seeds {text!r}: give distinct seeds >= 0, like 0-4")
    return seeds


def summarise(per_seed: dict[int, dict]) -> dict[str, dict]:
    """Median, min and max over seeds of every numeric metric that all seeds have (standard
    errors left out; a seed evaluated by an older aevb may lack a newer metric)."""
    keys = [k for k, v in next(iter(per_seed.values())).items()
            if isinstance(v, float) and not k.endswith("_se")
            and all(k in m for m in per_seed.values())]
    return {k: {"median": statistics.median(m[k] for m in per_seed.values()),
                "min": min(m[k] for m in per_seed.values()),
                "max": max(m[k] for m in per_seed.values())} for k in keys}


def sweep(name: str, seeds: list[int], out: Path, data_dir: str | None = None,
          train_overrides: dict | None = None, device: str = "auto", quiet: bool = False) -> dict:
    """Train recipe `name` once per seed into OUT/seed-S, then write OUT/sweep.json."""
    reproduce.recipe(name)  # an unknown recipe fails before anything is written
    overrides = dict(train_overrides or {})
    if "seed" in overrides:
        raise AevbError("give the seeds with --seeds, not --seed")
    per_seed: dict[int, dict] = {}
    for seed in seeds:
        where = out / f"seed-{seed}"
        done = where / "results.json"
        if not done.is_file():
            resume = RunDirectory(where / "run").has_checkpoint()
            flags = ({k: v for k, v in overrides.items() if k in RESUMABLE} if resume
                     else {**overrides, "seed": seed})
            reproduce.reproduce(name, where, data_dir=data_dir, train_overrides=flags, resume=resume,
                                device=device, quiet=quiet, with_figures=False)
        per_seed[seed] = json.loads(done.read_text())["metrics"]
    result = {"recipe": Path(name).stem, "seeds": seeds, "per_seed": per_seed,
              "summary": summarise(per_seed)}
    atomic.write_text(out / "sweep.json", json.dumps(result, indent=2) + "\n")
    return result


def table(result: dict, keys: list[str] | None = None) -> str:
    """A markdown table: one row per seed, then the median and the range."""
    summary = result["summary"]
    keys = keys or [k for k in ("cluster_accuracy", "elbo_cluster_accuracy", "cluster_agreement",
                                "cluster_purity", "nmi", "elbo", "iwae", "log_likelihood")
                    if k in summary]
    lines = ["| seed | " + " | ".join(keys) + " |", "| --- |" + " --- |" * len(keys)]
    for seed, m in result["per_seed"].items():
        lines.append(f"| {seed} | " + " | ".join(f"{m[k]:.4g}" for k in keys) + " |")
    lines.append("| median | " + " | ".join(f"{summary[k]['median']:.4g}" for k in keys) + " |")
    lines.append("| range | " + " | ".join(f"{summary[k]['min']:.4g} to {summary[k]['max']:.4g}"
                                          for k in keys) + " |")
    return "\n".join(lines)
