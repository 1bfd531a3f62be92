"""What a finished run ends with, for tests that compare two runs (resumed, killed, distributed)."""

import json
from pathlib import Path

import torch

from aevb.runs.load import load_checkpoint


def outcome(run: Path) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """The final model tensors and the metrics lines without wall times."""
    tensors, _ = load_checkpoint(run)
    model = {k: v for k, v in tensors.items() if k.startswith("model/")}
    records = [{k: v for k, v in json.loads(s).items() if k != "seconds"}
               for s in (run / "metrics.jsonl").read_text().splitlines()]
    return model, records


def assert_same(run: Path, reference: Path) -> None:
    """Bit-identical model tensors and metrics (as on one CPU, same seed)."""
    (model, records), (ref_model, ref_records) = outcome(run), outcome(reference)
    assert records == ref_records
    assert model.keys() == ref_model.keys()
    for k in model:
        assert torch.equal(model[k], ref_model[k]), k
