"""Sphinx configuration for initlab's documentation.

Build: ``pip install ".[docs]" && python -m sphinx -W -b html docs <out>``; the guide's code
blocks run with ``python -m sphinx -W -b doctest -D plot_gallery=0 docs <out>``. Both import the
*installed* initlab (nothing here puts ``python/`` on the path), so they document what users get.
"""

from __future__ import annotations

import importlib.util
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "jax" if importlib.util.find_spec("jax") else "numpy")

import initlab  # noqa: E402

project = "initlab"
author = "the initlab developers"
copyright = "2026, the initlab developers"
release = initlab.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.doctest",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py", "auto_examples/*.zip"]
myst_enable_extensions = ["colon_fence", "dollarmath"]
myst_heading_anchors = 3

# The API reference: one page per public name, from the docstrings (numpydoc sections).
autosummary_generate = True
autosummary_imported_members = True
autodoc_typehints = "none"  # the signature line shows them; numpydoc's Parameters say the rest
autodoc_default_options = {"members": False}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# Adapters whose framework is not installed are documented from mocks (CI installs them all).
autodoc_mock_imports = [m for m in ("jax", "flax", "keras", "dask", "distributed", "torch", "transformers")
                        if importlib.util.find_spec(m) is None]

# The examples gallery: every examples/plot_*.py is executed at build time, figures embedded.
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "abort_on_example_error": True,
    "min_reported_time": 1,
    "matplotlib_animations": False,
}

# The guide's ```{testcode}``` blocks run in a scratch directory (they write files).
doctest_global_setup = """
import os, tempfile
os.chdir(tempfile.mkdtemp(prefix="initlab-doctest-"))
import numpy as np
import initlab
"""

html_theme = "pydata_sphinx_theme"
html_title = f"initlab {release}"
html_theme_options = {
    "navbar_end": ["navbar-icon-links"],
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_static_path: list[str] = []
html_show_sourcelink = False
