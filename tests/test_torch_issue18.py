"""Issue 18, small items (4 and 5): fast_init and torch's random factories, materialize with
kept parameters of Hugging Face models, manifest lookups of left-alone parameters,
materialize with recipe "auto"."""

from __future__ import annotations

import warnings

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import initlab.torch as it  # noqa: E402
from initlab.manifest import LeftAlone  # noqa: E402


# ---- manifest[name] for a parameter left alone -----------------------------------------------

def test_manifest_getitem_left_alone_parameter():
    m = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
    man = it.plan(m, [it.Rule("normal", role="weight", std=0.02), it.Rule("keep")], seed=0)
    rec = man["1.bias"]
    assert isinstance(rec, LeftAlone) and rec.kind == "parameter" and rec.reason
    assert man["0.weight"].name == "0.weight"
    with pytest.raises(KeyError, match="nope"):
        man["nope"]
