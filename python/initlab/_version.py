"""The one place initlab's version is written.

The build reads it (``pyproject.toml``: ``[tool.scikit-build.metadata.version]``, regex provider),
so the wheel's metadata, ``initlab.__version__`` and ``initlab --version`` always agree.
"""

__version__ = "0.1.0"
