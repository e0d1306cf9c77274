"""
Fixup and ReZero on a deep residual network without normalization
=================================================================

Fifty residual blocks with no normalization, He-initialized: every block adds its branch's
variance to the trunk, so the signal grows with depth. Fixup (Zhang et al. 2019) scales the
branches by L^(-1/(2m-2)) and zeroes their last layer; ReZero starts every branch behind a
scalar α = 0. Both return a :class:`~initlab.Manifest` of what they changed. Needs only the plain
install (the same functions take torch modules with ``initlab[torch]``).
"""

import matplotlib.pyplot as plt
import numpy as np

import initlab

x = np.random.default_rng(0).normal(size=(128, 32))
curves = {}
for scheme in ["He only", "fixup", "rezero"]:
    net = initlab.nn.residual_mlp(32, 64, 50, 10, norm=None, seed=0)
    if scheme == "fixup":
        manifest = initlab.schemes.fixup(net, seed=0)
    elif scheme == "rezero":
        initlab.schemes.rezero(net)
    tr = initlab.analyze(net, x)
    blocks = [lay for lay in tr.layers if lay.type == "Residual"]
    curves[scheme] = [lay.post["var"] for lay in blocks]

fig, ax = plt.subplots(figsize=(6.4, 3.8), layout="constrained")
for scheme, v in curves.items():
    ax.semilogy(np.arange(1, len(v) + 1), v, label=scheme)
ax.set(xlabel="residual block", ylabel="variance of the trunk", title="50 blocks, no normalization")
ax.legend()
plt.show()

# %%
# Fixup's manifest lists every parameter it touched, with the resulting scale:
print(manifest["1.branch.3.weight"])
