"""python/initlab/_core.pyi lists exactly the public names of the compiled initlab._core."""

from __future__ import annotations

import ast
import pathlib

import initlab
from initlab import _core

PYI = pathlib.Path(initlab.__file__).with_name("_core.pyi")


def _stub_names(path):
    tree = ast.parse(path.read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return {n for n in names if not n.startswith("_")}


def test_stub_names_match_core():
    # the .pyi installed next to the compiled module (same build as the _core it describes)
    stub = _stub_names(PYI)
    core = {n for n in dir(_core) if not n.startswith("_")}
    assert stub - core == set(), f"in _core.pyi but not in _core: {sorted(stub - core)}"
    assert core - stub == set(), f"in _core but not in _core.pyi: {sorted(core - stub)}"


def test_installed_stub_is_packaged():
    assert PYI.exists()
    assert (PYI.parent / "py.typed").exists()
