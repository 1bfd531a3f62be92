"""aevb: latent-variable models (FA, VAE, CVAE, GMVAE, VRNN) trained with Auto-Encoding Variational Bayes.

    import aevb
    model = aevb.load_pretrained("vae-mnist")     # a shipped model, SHA-256 checked, in eval mode

The command line is `aevb --help`. The packages: `models` (the five models and what they share),
`objectives` (ELBO and IWAE), `data`, `training` (the loop), `runs` (configs, run directories,
checkpoints, pretrained models), `runtime` (devices, compiling, processes), `reports` (figures).
"""

from __future__ import annotations

from aevb.provenance import aevb_version
from aevb.runs.load import load_pretrained

__version__ = aevb_version()


__all__ = ["__version__", "load_pretrained"]
