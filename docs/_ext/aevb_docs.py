"""Pages generated at build time from what commands wrote, so that no number is copied by hand:
the results tables (docs/gallery/*/results.json, `benchmarks/results_table.py`), one page per
shipped model (its card), and the table of config keys (the config dataclasses' fields).

The tables are written to docs/_generated/ and included by pages; the model pages to
docs/guides/models/. Both folders are ignored by git.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path

from aevb.config import DataConfig, TrainConfig, flag, flags, meta
from aevb.models import registry
from aevb.runs import pretrained

DOCS = Path(__file__).resolve().parents[1]
OUT = DOCS / "_generated"


def results_tables() -> tuple[str, str]:
    """The results table of every recipe (with the metrics' definitions), and Fashion-MNIST's."""
    script = DOCS.parent / "benchmarks" / "results_table.py"
    spec = importlib.util.spec_from_file_location("results_table", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return (module.table(DOCS / "gallery") + "\n\n" + module.definitions() + "\n",
            module.table(DOCS / "gallery", "fashion-mnist") + "\n")


def model_page(name: str) -> str:
    card = pretrained.card(name)
    m = card["metrics"]
    rows = "\n".join(f"| `{k}` | {v:.4f} |" if isinstance(v, float) else f"| `{k}` | {v} |"
                     for k, v in m.items())
    cfg = card["config"]
    settings = "\n".join(f"| {section} | `{k}` | `{json.dumps(v)}` |"
                         for section in ("model_config", "data", "train")
                         for k, v in cfg.get(section, {}).items())
    minutes = pretrained.training_seconds(card) / 60
    code = card["code_version"]
    return f"""# `{name}`

{card['description']}

```bash
aevb evaluate pretrained:{name} --json       # {card['metrics_command']}
aevb figures pretrained:{name}
{card['reproduce']}                  # train it again
```

```python
import aevb
run = aevb.open("pretrained:{name}")
```

| | |
| --- | --- |
| model | `{card['model']}` |
| recipe | `{card['recipe']}` |
| dataset | `{card['dataset']}` (`--preprocess {card['preprocess']}`) |
| training | {card['epochs']} epochs, {card['steps']:,} steps, {minutes:.1f} min on a {card['trained_on']} |
| weights | {card['weights_dtype']}, {card['bytes']:,} bytes, SHA-256 `{card['sha256'][:16]}...` |
| code | aevb {code['aevb']}, torch {code['torch']}, git `{code['git'][:10]}` |

## Test metrics

In nats per datapoint, on the {m.get('n', '')} test points (`{card['metrics_command']}`):

| metric | value |
| --- | --- |
{rows}

## Config

| section | key | value |
| --- | --- | --- |
{settings}

{('**Note.** ' + card['note']) if card.get('note') else ''}
"""


def config_keys() -> str:
    parts = []
    sections = [("`[data]`", DataConfig), ("`[train]`", TrainConfig)]
    sections += [(f"`[model_config]` for `{name}`", cls.Config) for name, cls in registry.MODELS.items()]
    for title, cls in sections:
        parts += [f"## {title}", "", "| key | flag | default | allowed | what it does |",
                  "| --- | --- | --- | --- | --- |"]
        defaults = cls()
        for f in dataclasses.fields(cls):
            info = meta(cls, f.name)
            shown = flag(f.name) if f.name in flags(cls) else "(recorded, not a flag)"
            choices = ", ".join(f"`{c}`" for c in info.get("choices") or ())
            if info.get("low") is not None:
                choices = choices or (f">= {info['low']}" if info.get("high") is None
                                      else f"{info['low']} to {info['high']:,}")
            if info.get("positive"):
                choices = choices or "> 0"
            help_text = info.get("help", "").replace("|", "\\|")
            default = json.dumps(getattr(defaults, f.name))
            parts.append(f"| `{f.name}` | `{shown}` | `{default}` | {choices} | {help_text} |")
        parts.append("")
    return "\n".join(parts)


def generate() -> None:
    OUT.mkdir(exist_ok=True)
    every, fashion = results_tables()
    (OUT / "results-table.md").write_text(every)
    (OUT / "fashion-table.md").write_text(fashion)
    (OUT / "config-keys.md").write_text(config_keys())
    models = DOCS / "guides" / "models"
    models.mkdir(exist_ok=True)
    for name in pretrained.names():
        (models / f"{name}.md").write_text(model_page(name))


def setup(app):
    generate()  # at load, before Sphinx looks for source files, so the model pages are found
    return {"parallel_read_safe": True}
