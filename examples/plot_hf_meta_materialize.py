"""
A Hugging Face model built on the meta device, then materialized
================================================================

A GPT-2 built from a config under ``torch.device("meta")`` costs no memory and no init work;
:func:`initlab.torch.materialize` allocates it, restores tied weights, recomputes buffers and
initializes every parameter by the ``"hf"`` recipe (the model's own conventions, read from its
config and ``_init_weights``). The result equals the eagerly built model initialized with the same
recipe and seed, bit for bit, and the manifest says what was done to every parameter.
Needs ``initlab[torch,hf]``.
"""

import torch
from transformers import GPT2Config, GPT2LMHeadModel

import initlab
import initlab.torch


def show(fig):
    """initlab's plot methods return a Figure they own; draw it on a pyplot figure so the
    gallery (which collects pyplot figures) embeds it."""
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    buf.seek(0)
    w, h = fig.get_size_inches()
    plt.figure(figsize=(w, h))
    plt.imshow(plt.imread(buf))
    plt.axis("off")
    plt.tight_layout(pad=0)
    plt.show()


config = GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=1000)
eager = GPT2LMHeadModel(config)
initlab.torch.init_module(eager, "hf", seed=0)

with torch.device("meta"):
    lazy = GPT2LMHeadModel(config)
initlab.torch.materialize(lazy, "hf", seed=0)
assert all(torch.equal(a, b) for a, b in zip(eager.parameters(), lazy.parameters()))

manifest = initlab.torch.plan(lazy, "hf", seed=0)
print(manifest.table())

# %%
# The statistics of one forward and backward pass on token ids, from the embedding's output on:
trace = initlab.torch.analyze(lazy, torch.randint(0, 1000, (4, 16)))
show(trace.plot())
