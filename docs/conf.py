"""Sphinx configuration for aevb's documentation: MyST pages, the notebooks executed by MyST-NB,
autodoc with type hints, the command line from its own parser (sphinx-argparse), and the results
table and model pages generated from the files commands wrote (`_ext/aevb_docs.py`).

    pip install -e ".[docs]"
    python -m sphinx -W -b html docs docs/_build/html
"""

import os
import sys
import warnings
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))

import aevb  # noqa: E402

project = "aevb"
author = "The aevb maintainers"
copyright = "2026, the aevb maintainers"
release = version = aevb.__version__

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx_autodoc_typehints",
    "sphinxarg.ext",
    "aevb_docs",
]
exclude_patterns = ["_build", "_generated", "**/.ipynb_checkpoints", "tutorials/runs"]
myst_enable_extensions = ["dollarmath", "amsmath", "html_image", "colon_fence", "deflist"]
myst_heading_anchors = 3

# The tutorials run in their quick mode at every build; a failing cell fails the build.
nb_execution_mode = os.environ.get("AEVB_DOCS_EXECUTE", "force")
nb_execution_timeout = 600
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True
nb_output_stderr = "remove"  # progress bars and run summaries; errors still fail the build
nb_execution_in_temp = True  # the notebooks write runs/ into a temporary folder, not into docs/

autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "undoc-members": False}
typehints_fully_qualified = False
always_document_param_types = False
autodoc_typehints = "description"
nitpicky = False
viewcode_follow_imported_members = False  # re-exported names (aevb.fit) link to no other module's source
smartquotes = False  # "--flag" stays two hyphens, as typed, in the CLI and API references

html_theme = "furo"
html_title = f"aevb {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
mathjax_path = "mathjax/tex-chtml-full.js"  # served with the site, so the maths renders offline too
suppress_warnings = ["mystnb.unknown_mime_type"]


def literal_blocks(app, what, name, obj, options, lines):
    """aevb's docstrings show code and formulas as indented plain text after a paragraph; make each
    such block a literal block, as it reads in the source."""
    for i in range(len(lines) - 2):
        first, blank, block = lines[i], lines[i + 1], lines[i + 2]
        indent = len(first) - len(first.lstrip())
        if first.strip() and not blank.strip() and block.strip() and \
                len(block) - len(block.lstrip()) > indent and not first.rstrip().endswith("::"):
            lines[i] = first.rstrip() + (":" if first.rstrip().endswith(":") else " ::")


def setup(app):
    app.connect("autodoc-process-docstring", literal_blocks)


try:  # sphinx-autodoc-typehints calls an API that Sphinx 10 removes; its warning is not ours
    from sphinx.deprecation import RemovedInSphinx10Warning

    warnings.filterwarnings("ignore", category=RemovedInSphinx10Warning)
except ImportError:
    pass
