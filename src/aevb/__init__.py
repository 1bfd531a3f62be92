"""aevb: latent-variable models (FA, VAE, CVAE, GMVAE, VRNN) trained with Auto-Encoding Variational Bayes.

    import aevb
    model = aevb.load_pretrained("vae-mnist")     # a shipped model, SHA-256 checked, in eval mode

The command line is `aevb --help`; the modules are listed in the README's architecture section.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("aevb")
except PackageNotFoundError:  # pragma: no cover (running from a source tree that is not installed)
    __version__ = "0+unknown"


def load_pretrained(name: str, device: str = "cpu"):
    """The shipped model `name` (see `aevb pretrained list`), ready for sampling and evaluation."""
    from aevb.pretrained import load_pretrained as load

    return load(name, device)


__all__ = ["__version__", "load_pretrained"]
