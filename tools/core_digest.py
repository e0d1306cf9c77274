"""Print a SHA-256 digest of what the compiled core computes, case by case, on every SIMD path this
CPU runs: uniform/normal/truncated-normal fills in the four dtypes (tail and far-tail intervals
included, at an offset inside a larger tensor), orthogonal matrices and statistics.

Two builds of the core give the same bits exactly when their outputs are identical, e.g. the GCC
build and a Clang build (tools/check_clang.sh runs this against both and compares):

    python tools/core_digest.py > gcc.txt

It imports the installed ``initlab``; with ``PYTHONPATH`` set, the editable install's import hook
is dropped first so that ``PYTHONPATH`` decides (the first line says which core was used).
"""

from __future__ import annotations

import hashlib
import os
import sys

if os.environ.get("PYTHONPATH"):
    sys.meta_path[:] = [f for f in sys.meta_path if not type(f).__module__.startswith("_editable_")]

import ml_dtypes  # noqa: E402
import numpy as np  # noqa: E402

import initlab  # noqa: E402
import initlab._core  # noqa: E402


def _h(*arrays: np.ndarray) -> str:
    d = hashlib.sha256()
    for a in arrays:
        d.update(np.ascontiguousarray(a).view(np.uint8).tobytes())
    return d.hexdigest()[:16]


def main() -> None:
    print("core", initlab._core.__file__)
    dtypes = {"f32": np.float32, "f64": np.float64, "f16": np.float16, "bf16": ml_dtypes.bfloat16}
    for path in initlab.available_simd_paths():
        initlab.set_simd_path(path)
        for dn, dt in dtypes.items():
            def block() -> np.ndarray:
                return np.empty((37, 1001), dt)
            kw = {"seed": 20240917, "global_shape": (100, 1001), "offset": (29, 0)}
            cases = {
                "uniform": lambda a: initlab.uniform_(a, -1.5, 2.0, **kw),
                "normal": lambda a: initlab.normal_(a, 0.25, 3.0, **kw),
                "trunc_std": lambda a: initlab.trunc_normal_(a, 0.0, 1.0, -2.0, 2.0, **kw),
                "trunc_narrow": lambda a: initlab.trunc_normal_(a, 0.0, 1.0, 0.1, 0.2, **kw),
                "trunc_tail": lambda a: initlab.trunc_normal_(a, 0.0, 1.0, 3.0, 9.0, **kw),
                "trunc_far": lambda a: initlab.trunc_normal_(a, 0.0, 1.0, 12.0, 13.0, **kw),
                "trunc_onesided": lambda a: initlab.trunc_normal_(a, 1.0, 2.0, -20.0, 0.5, **kw),
            }
            for name, fill in cases.items():
                a = block()
                fill(a)
                print(path, dn, name, _h(a))
            if dn in ("f32", "f64"):
                for shape in ((64, 48), (300, 257)):
                    a = np.empty(shape, dt)
                    initlab.orthogonal_(a, 1.3, seed=5)
                    print(path, dn, "orthogonal", shape, _h(a))
            a = block()
            initlab.normal_(a, 1.0, 2.0, seed=3)
            for axis in (None, 0, 1):
                s = initlab.stats(a, axis=axis)
                vals = [np.asarray(getattr(s, k), np.float64) for k in ("mean", "var", "min", "max", "rms")]
                print(path, dn, "stats", axis, _h(*vals))


if __name__ == "__main__":
    main()
