"""The VAE recipe's seed noise in fp32 beside its precision gap: fp32 seed 0, fp32 seed 1 and the
shipped bf16 seed 0, scored as benchmarks/precision_pretrained.py scores (precision.score), paired.
Run from the repository root, after `aevb reproduce vae-tutorial --precision fp32 [--seed 1]
--data-dir ../shared/data --out /tmp/p/vae-fp32[-s1]` (output: vae-seeds.txt beside this file)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from precision import score  # noqa: E402

from aevb import process, runs  # noqa: E402
from aevb.evaluate import mean_se  # noqa: E402

process.configure()
runs_ = {"fp32 seed 0": "/tmp/p/vae-fp32/run", "fp32 seed 1": "/tmp/p/vae-fp32-s1/run",
         "bf16 seed 0 (shipped)": "pretrained:vae-mnist"}
v = {}
for label, where in runs_.items():
    model, cfg, data, meta = runs.open_run(where, data_dir="../shared/data")
    v[label] = score(model, data, cfg)["elbo"]
    m, se = mean_se(v[label])
    print(f"{label}: {where}, {cfg.train.precision}, seed {cfg.train.seed}, {meta['epoch']:g} epochs: "
          f"test ELBO {m:.2f} ± {se:.2f}", flush=True)
for a, b in (("fp32 seed 1", "fp32 seed 0"), ("bf16 seed 0 (shipped)", "fp32 seed 0"),
             ("bf16 seed 0 (shipped)", "fp32 seed 1")):
    m, se = mean_se(v[a] - v[b])
    print(f"{a} - {b}: {m:+.2f} ± {se:.2f}")
