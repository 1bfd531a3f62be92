"""aevb: latent-variable models (FA, VAE, CVAE, GMVAE, VRNN) trained with Auto-Encoding Variational Bayes.

    import aevb
    run = aevb.fit("vae", x_train, x_test, out="runs/mine", latent_dim=8, epochs=20)
    run.evaluate(iwae_samples=1000); run.sample(16); run.encode(x_test)
    run = aevb.open("pretrained:vae-mnist")       # a shipped model, SHA-256 checked

The command line is `aevb --help`. The packages: `models` (the five models and what they share),
`objectives` (ELBO and IWAE), `data`, `training` (the loop), `runs` (configs, run directories,
checkpoints, pretrained models), `runtime` (devices, compiling, processes), `reports` (figures).
"""

from __future__ import annotations

from aevb.api import Run, fit, open
from aevb.errors import AevbError
from aevb.provenance import aevb_version
from aevb.runs.load import load_pretrained

__version__ = aevb_version()


__all__ = ["AevbError", "Run", "__version__", "fit", "load_pretrained", "open"]
