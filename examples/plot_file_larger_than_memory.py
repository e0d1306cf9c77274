"""
A file larger than memory
=========================

:func:`initlab.fill_file` writes an initialized tensor to a ``.npy`` file chunk by chunk, so
memory stays at about two chunks whatever the file's size, and the file holds exactly the
in-memory fill's bytes. Here a 64 MiB file written in 4 MiB chunks stands in for a file of
hundreds of GiB. Needs only the plain install.
"""

import os
import tempfile

import matplotlib.pyplot as plt
import numpy as np

import initlab

path = os.path.join(tempfile.mkdtemp(), "w.npy")
shape = (4096, 4096)
report = initlab.fill_file(path, shape, "trunc_normal", 0.0, 0.02, -0.04, 0.04, seed=7,
                           chunk_bytes=4 << 20, progress=False)
print(report)

w = np.load(path, mmap_mode="r")                     # never read whole
rows = slice(1000, 1016)                             # any block equals the in-memory fill of that block
block = initlab.trunc_normal_(np.empty((16, 4096), np.float32), 0.0, 0.02, -0.04, 0.04, seed=7,
                              global_shape=shape, offset=(1000, 0))
assert np.array_equal(w[rows], block)

fig, ax = plt.subplots(figsize=(6.0, 3.4), layout="constrained")
ax.hist(np.asarray(w[::64]).ravel(), bins=80, density=True)
ax.set(xlabel="value", ylabel="density", title="trunc_normal(0, 0.02) on [-0.04, 0.04], read back from the file")
plt.show()
os.remove(path)
