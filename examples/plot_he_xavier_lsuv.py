"""
He vs Xavier vs LSUV on a deep ReLU network
===========================================

A 30-layer ReLU MLP (width 256) initialized three ways: Xavier (variance 2/(fan_in + fan_out),
made for tanh), He (variance 2/fan_in, made for ReLU) and LSUV (orthogonal, then every layer
rescaled on a batch until its output variance is 1). :func:`initlab.analyze` runs one forward
and backward pass and records each layer's statistics. Needs only the plain install.
"""

import matplotlib.pyplot as plt
import numpy as np

import initlab
from initlab import nn

x = np.random.default_rng(0).standard_normal((256, 256))
runs = {}
for label in ["xavier_normal", "kaiming_normal", "lsuv"]:
    net = nn.mlp(256, 256, 30, 10, activation="relu")
    if label == "lsuv":
        initlab.lsuv(net, x, seed=0)
    else:
        nn.init_weights(net, label, seed=0)
    runs[label] = initlab.analyze(net, x)

fig, (a, b) = plt.subplots(1, 2, figsize=(8.5, 3.6), layout="constrained")
for label, tr in runs.items():
    depth = [lay.index for lay in tr.layers]
    a.semilogy(depth, [lay.pre["var"] for lay in tr.layers], label=label)
    b.semilogy(depth, [lay.grad_pre["ms"] for lay in tr.layers], label=label)
a.set(xlabel="layer", ylabel="variance of the pre-activation", title="Forward signal")
b.set(xlabel="layer", ylabel="mean square of dL/dpre", title="Backward signal")
a.legend()
plt.show()

# %%
# Xavier loses half the variance per ReLU layer (2⁻³⁰ after 30 layers); He and LSUV keep it.
print(runs["xavier_normal"].diagnose())
