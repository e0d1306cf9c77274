"""
Which initialization trains? Evaluation on scikit-learn's digits
================================================================

:func:`initlab.evaluate` trains the same network once per initialization and seed on the 8×8
digits that ship with scikit-learn (nothing is downloaded) and compares loss curves, accuracy and
early gradient norms. Here a 10-layer tanh MLP, three initializations, two seeds, 150 steps.
Needs ``initlab[evaluate]``.
"""

import initlab


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


ev = initlab.evaluate("mlp", ["normal:std=0.001", "xavier_normal", "lsuv"], seeds=2, steps=150,
                      depth=10, activation="tanh", progress=False)
print(ev)
show(ev.plot())

# %%
# With σ = 0.001 the signal dies in the first layers and the network stays at chance; Xavier and
# LSUV train. The same numbers come back for the same seeds on every run.
