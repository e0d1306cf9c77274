# Type stubs for initlab's compiled core (csrc/bindings). Kept in sync by tests/test_stubs.py.
from typing import Sequence

import numpy as np
import numpy.typing as npt

# --- random (csrc/bindings/register_random.cpp) ---
def philox4x32_10(ctr: Sequence[int], key: Sequence[int]) -> list[int]: ...
def fill(
    out: npt.NDArray[np.generic],
    dtype: int,
    dist: int,
    p0: float,
    p1: float,
    lo: float,
    hi: float,
    seed: int,
    stream: int,
    gstrides: Sequence[int],
    gbase: int,
    n_threads: int,
    isa: int,
) -> None: ...
def openmp_enabled() -> bool: ...
def max_threads() -> int: ...
def num_procs() -> int: ...
def isa_supported(isa: int) -> bool: ...
def best_isa() -> int: ...
def eval_detmath(name: str, x: npt.ArrayLike) -> npt.NDArray[np.float64]: ...

# --- linalg (csrc/bindings/register_linalg.cpp) ---
def orthogonal(
    out: npt.NDArray[np.floating], transpose: bool, gain: float, seed: int, stream: int, n_threads: int, isa: int
) -> None: ...
def householder_qr(a: npt.NDArray[np.floating], q: npt.NDArray[np.floating], n_threads: int, isa: int) -> None: ...
def gemm(
    a: npt.NDArray[np.floating], b: npt.NDArray[np.floating], c: npt.NDArray[np.floating], mode: int, n_threads: int, isa: int
) -> None: ...

# --- stats (csrc/bindings/register_stats.cpp) ---
def reduce_stats(
    a: npt.NDArray[np.generic], dtype: int, reduce: Sequence[int], n_threads: int, isa: int
) -> dict[str, npt.NDArray[np.generic]]: ...
def read_probe(a: npt.NDArray[np.generic], n_threads: int) -> int: ...
