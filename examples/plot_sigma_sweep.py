"""
The σ sweep: how the scale of a Gaussian init decides a ReLU network's signal
=============================================================================

The classic experiment: a plain ReLU network (8 layers of 10 units, biases 0) fed a fixed input,
its weights drawn from N(0, σ²) for σ from 1e-3 to 0.5. At 10 units a ReLU layer multiplies the
mean square of the signal by 5σ², so σ = √(1/5) ≈ 0.447 keeps it (that is He's init), anything
smaller makes it vanish geometrically and anything larger makes it explode. ``initlab demo``
runs the full version with standard errors; here every σ is averaged over 256 weight draws.
Needs only the plain install.
"""

import matplotlib.pyplot as plt
import numpy as np

import initlab

depth, width, draws = 8, 10, 256
x = np.arange(1.0, width + 1)[None, :] / width          # one fixed input row
sigmas = [1e-3, 0.1, 0.3, 0.447, 0.5]
gen = initlab.Generator(0)

fig, ax = plt.subplots(figsize=(6.4, 4.0), layout="constrained")
for sigma in sigmas:
    ms = np.zeros(depth)
    for _ in range(draws):
        h = x
        for layer in range(depth):
            w = gen.normal((width, width), std=sigma)    # one stream per call: every draw differs
            h = np.maximum(h @ w, 0.0)
            ms[layer] += np.mean(h**2) / draws
    ax.semilogy(np.arange(1, depth + 1), ms, "o-", label=f"σ = {sigma:g} (×{5 * sigma**2:.2g} / layer)")
ax.set_xlabel("layer")
ax.set_ylabel("mean square of the ReLU output")
ax.set_title("Signal through a ReLU network, N(0, σ²) weights")
ax.legend(fontsize=8)
plt.show()

# %%
# Only σ ≈ 0.447 (5σ² = 1) holds the signal level; the others change it by the same factor at
# every layer, which is a straight line on this log scale.
