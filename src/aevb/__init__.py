"""aevb: latent-variable models (FA, VAE, CVAE, GMVAE, VRNN) trained with Auto-Encoding Variational Bayes.

    import aevb
    run = aevb.fit("vae", x_train, x_test, out="runs/mine", latent_dim=8, epochs=20)
    run.evaluate(iwae_samples=1000); run.sample(16); run.encode(x_test)
    run = aevb.open("pretrained:vae-mnist")       # a shipped model, SHA-256 checked

The command line is `aevb --help`. The packages: `models` (the five models and what they share),
`objectives` (ELBO and IWAE), `data`, `training` (the loop), `runs` (configs, run directories,
checkpoints, pretrained models), `runtime` (devices, compiling, processes), `reports` (figures).
The public names load on first use, so that the `aevb` program answers Ctrl-C while torch loads.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aevb.api import Run, fit, open
    from aevb.errors import AevbError
    from aevb.runs.load import load_pretrained

_WHERE = {"Run": "aevb.api", "fit": "aevb.api", "open": "aevb.api", "AevbError": "aevb.errors",
          "load_pretrained": "aevb.runs.load"}

__all__ = ["AevbError", "Run", "__version__", "fit", "load_pretrained", "open"]


def __getattr__(name: str):
    if name == "__version__":
        return importlib.import_module("aevb.provenance").aevb_version()
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    if importlib.util.find_spec(f"aevb.{name}") is not None:  # a subpackage: aevb.runs, aevb.data ...
        return importlib.import_module(f"aevb.{name}")
    raise AttributeError(f"module 'aevb' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
