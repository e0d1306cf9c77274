"""Release hygiene: one version, and introspection (``help``, ``dir``) that works with any set of
extras installed. Each check runs in a fresh interpreter, so lazy adapters start unloaded."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import initlab

# Hides the optional packages from the import system, as on a plain `pip install initlab`.
BLOCK = """
import sys, importlib.abc
class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {'torch', 'jax', 'keras', 'dask', 'flax', 'transformers'}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, _Block())
"""

INTROSPECT = """
import pydoc, initlab
text = pydoc.render_doc(initlab, renderer=pydoc.plaintext)   # what help(initlab) prints
assert "initlab" in text and "kaiming_normal_" in text
for name in dir(initlab):                  # everything dir() lists can be fetched, or is an adapter
    try:                                   # whose package is installed but fails to import (Keras
        getattr(initlab, name)             # without a backend): an AttributeError, as pydoc expects
    except initlab.MissingOptionalDependency:
        pass
print(sorted(n for n in ("torch", "jax", "keras", "dask", "schemes") if n in dir(initlab)))
"""


def _run(code: str) -> str:
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout.strip()


def test_version_has_one_source():
    from importlib.metadata import version

    from initlab._version import __version__

    assert initlab.__version__ == __version__ == version("initlab")


def test_help_and_dir_without_extras():
    listed = _run(BLOCK + INTROSPECT)
    assert listed == "['schemes']"


def test_missing_adapter_is_an_attribute_error_naming_the_extra():
    out = _run(BLOCK + """
import initlab
assert not hasattr(initlab, "torch") and "torch" not in dir(initlab)
try:
    initlab.torch.init_module
except AttributeError as e:
    assert isinstance(e, initlab.MissingOptionalDependency) and isinstance(e.__cause__, ImportError)
    print(e)
try:
    import initlab.torch
except ImportError:
    print("import raises ImportError")
""")
    assert "pip install initlab[torch]" in out and "import raises ImportError" in out


@pytest.mark.slow
def test_help_and_dir_with_whatever_is_installed():
    # With the test extras this imports torch, jax, keras and dask adapters (when they import).
    _run(INTROSPECT)
