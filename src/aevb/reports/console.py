"""What a run says on the terminal: the line that starts it, the summary that ends it, and the table
of `aevb evaluate`, with units: nats per datapoint, and bits per dimension where the data are
discrete pixels.
"""

from __future__ import annotations

import math
import shlex
from pathlib import Path

# Pixel data as the model reads them: dequantized 8-bit values (a density on [0,1]^D in bins of
# 1/256, so log P(pixels) >= ELBO - D log 256) or binarized ones (a probability already).
BITS_OFFSET = {"dequantize": 8.0, "binarize-threshold": 0.0, "binarize-dynamic": 0.0}


def bits_per_dim(nats: float, dims: int, preprocess: str) -> float | None:
    """-log p in bits per dimension of the discrete data, for a log-likelihood (bound) in nats per
    datapoint; None where the data are not discrete pixels.

        >>> round(bits_per_dim(-100.0, 784, "binarize-threshold"), 4)
        0.184
    """
    if preprocess not in BITS_OFFSET:
        return None
    return -nats / (dims * math.log(2)) + BITS_OFFSET[preprocess]


def start_line(cfg, data, device, compile_from: int | None, out, resumed_from: int | None = None) -> str:
    """One line: model, data and sizes, device, precision, compiled or eager, run directory."""
    t = cfg.train
    if compile_from is None:
        mode = "eager"
    else:
        mode = "compiled" if compile_from == 0 else f"compiled from step {compile_from}"
    shape = "x".join(str(d) for d in data.event_shape)
    verb = "training" if resumed_from is None else f"resuming from step {resumed_from}:"
    return (f"aevb: {verb} {cfg.model} on {data.name} ({len(data.train):,} train, {len(data.test):,} "
            f"test, {shape} each) on {device}, {t.precision}, {mode}, {t.epochs} epochs -> {out}")


def end_lines(model: str, record: dict, dims: int, preprocess: str, out, hints: bool = True,
              tensorboard: Path | None = None) -> list[str]:
    """The final test metrics with their units, where the run and its TensorBoard logs are, and
    with `hints` the commands to try next."""
    elbo = record["test_elbo"]
    shown = f"test ELBO {elbo:.2f} nats per datapoint"
    bits = bits_per_dim(elbo, dims, preprocess)
    if bits is not None:
        shown += f" ({bits:.3f} bits per dimension)"
    for key, value in record.items():
        if key.startswith("test_") and key != "test_elbo" and isinstance(value, float):
            shown += f", {key[5:].replace('_', ' ')} {value:.3f}"
    run = shlex.quote(str(out))
    lines = [f"aevb: {model} finished at epoch {record['epoch']:.4g}, step {record['step']}, after "
             f"{record['seconds']:.1f} s of training: {shown}",
             f"run saved in {out}" + ("; try next:" if hints else "")]
    if hints:
        lines += [f"  aevb evaluate {run} --iwae-samples 1000", f"  aevb figures {run}",
                  f"  aevb sample {run} --out samples.png"]
    if tensorboard is not None:
        lines.append(f"  tensorboard --logdir {shlex.quote(str(tensorboard))}   # its curves")
    return lines


def evaluate_table(result: dict, dims: int, preprocess: str) -> str:
    """`aevb evaluate`'s result as a small table: each bound in nats per datapoint (with its
    standard error, and per step for sequences) and, for pixel data, in bits per dimension; then
    the other numbers, one per line."""
    get = result.get
    title = (f"{get('model', 'model')} on {get('dataset', 'data')}, {get('split', 'test')} split, "
             f"{get('n', '?')} datapoints")
    rows = [("", "nats/datapoint", "+-", "bits/dim")]
    for key, label in _BOUNDS.items():
        for suffix, unit in (("", ""), ("_per_step", " per step")):
            if f"{key}{suffix}" not in result:
                continue
            value, se = result[f"{key}{suffix}"], result[f"{key}{suffix}_se"]
            bits = bits_per_dim(value, dims, preprocess) if not suffix else None
            if key == "iwae":
                label = f"IWAE_{result['iwae_samples']}"
            rows.append((label + unit, f"{value:.4f}", f"{se:.4f}", "" if bits is None else f"{bits:.4f}"))
    shown = {f"{k}{s}{e}" for k in _BOUNDS for s in ("", "_per_step") for e in ("", "_se")}
    shown |= {"model", "dataset", "split", "n", "bits_per_dim", "iwae_bits_per_dim"}  # in the column
    rest = [(k, f"{v:.4f}" if isinstance(v, float) else str(v)) for k, v in result.items() if k not in shown]
    if preprocess not in BITS_OFFSET:  # no bits-per-dimension column
        rows = [r[:3] for r in rows]
    width = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    first = max(width[0], *(len(k) for k, _ in rest))
    lines = ["  ".join([r[0].rjust(first)] + [c.rjust(w) for c, w in zip(r[1:], width[1:], strict=True)])
             for r in rows]
    return "\n".join([title] + lines + [f"{k:>{first}}  {v}" for k, v in rest])


_BOUNDS = {"elbo": "ELBO", "iwae": "IWAE", "log_likelihood": "log p(x)"}
