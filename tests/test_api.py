"""The public namespace: every exported name exists and is documented."""

import inspect

import initlab


def test_all_names_exist():
    missing = [n for n in initlab.__all__ if not hasattr(initlab, n)]
    assert missing == []


def test_public_callables_have_docstrings():
    undocumented = []
    for name in initlab.__all__:
        obj = getattr(initlab, name)
        if callable(obj) or inspect.ismodule(obj):
            doc = inspect.getdoc(obj)
            if not doc or len(doc.strip()) < 20:
                undocumented.append(name)
    assert undocumented == []


def test_docstrings_state_the_determinism_contract_for_random_fills():
    # Random initializers promise bit-identical results; their module docstring says so and
    # each random function documents the seed.
    assert "bit-identical" in initlab.init.__doc__
    for name in ("uniform_", "normal_", "trunc_normal_", "xavier_uniform_", "kaiming_normal_", "orthogonal_"):
        doc = inspect.getdoc(getattr(initlab, name)) or ""
        sig = inspect.signature(getattr(initlab, name))
        assert "seed" in sig.parameters and sig.parameters["seed"].kind is inspect.Parameter.KEYWORD_ONLY, name
        assert doc, name
