"""The ``initlab`` command line: ``initlab demo`` and ``initlab bench``."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = ["main"]


def _sigmas(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="initlab", description="initlab: fast, reproducible weight initialization.")
    sub = ap.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="show what initialization does to the signal of a deep network",
                       description="Per-layer variance of a deep network under N(0, sigma^2), Xavier, He and orthogonal weights.")
    d.add_argument("--depth", type=int, default=8, help="hidden layers (default 8)")
    d.add_argument("--width", type=int, default=10, help="units per hidden layer (default 10)")
    d.add_argument("--activation", default="relu", help="relu, leaky_relu, tanh, sigmoid, selu, gelu or linear (default relu)")
    d.add_argument("--batch", type=int, default=1, help="1: the input X = [1, 2, 3, 4, 5]; more: X plus standard normal samples")
    d.add_argument("--seed", type=int, default=0, help="seed of the weights (default 0)")
    d.add_argument("--trials", type=int, default=16, help="independent weight draws averaged per init (default 16)")
    d.add_argument("--sigmas", type=_sigmas, default=None, help="comma-separated sigmas (default 1e-5,1e-3,1e-2,1e-1,0.5)")
    d.add_argument("--output", "-o", default="initlab-demo.png", help="figure path (default initlab-demo.png)")
    d.add_argument("--no-plot", action="store_true", help="do not write a figure")
    b = sub.add_parser("bench", help="throughput of initlab's fills and orthogonal against NumPy (and torch)",
                       description="Same buffers, same thread count, best of --repeat runs.")
    b.add_argument("--size", type=int, default=1 << 24, help="elements per fill (default 2**24)")
    b.add_argument("--matrix", type=int, default=1024, help="orthogonal matrix size n (n x n, default 1024)")
    b.add_argument("--threads", type=int, default=None, help="threads (default: initlab.get_num_threads())")
    b.add_argument("--repeat", type=int, default=3, help="runs per measurement, best kept (default 3)")
    b.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``initlab`` console script (and ``python -m initlab``)."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "demo":
            from .demo import DEFAULT_SIGMAS, run_demo

            run_demo(depth=args.depth, width=args.width, activation=args.activation, batch=args.batch, seed=args.seed, trials=args.trials,
                     sigmas=args.sigmas or DEFAULT_SIGMAS, output=None if args.no_plot else args.output)
        else:
            bench(size=args.size, matrix=args.matrix, threads=args.threads, repeat=args.repeat, dtype=args.dtype)
    except (ValueError, TypeError) as e:
        print(f"initlab {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


def _best(fn: Callable[[], Any], repeat: int) -> float:
    fn()  # warm-up: thread pools, page faults
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def bench(*, size: int = 1 << 24, matrix: int = 1024, threads: int | None = None, repeat: int = 3,
          dtype: str = "float32", out: Any = None) -> list[tuple[str, str, float]]:
    """Print a throughput table of initlab against NumPy (and torch when installed).

    Fills write the same prefaulted buffer; orthogonal is an ``n x n`` matrix. Returns
    ``(operation, library, seconds)`` rows.
    """
    import initlab

    out = out or sys.stdout
    if size < 1 or matrix < 1 or repeat < 1:
        raise ValueError(f"size, matrix and repeat must be >= 1, got {size}, {matrix}, {repeat}")
    nt = threads or initlab.get_num_threads()
    dt = np.dtype(dtype)
    buf = np.zeros(size, dt)  # prefaulted
    mat = np.zeros((matrix, matrix), dt)
    rng = np.random.default_rng(0)
    try:
        import torch
    except ImportError:
        torch = None
    rows: list[tuple[str, str, float]] = []
    tb = torch.from_numpy(buf) if torch is not None else None
    tm = torch.from_numpy(mat) if torch is not None else None
    cases: list[tuple[str, int, list[tuple[str, Callable[[], Any]]]]] = [
        ("uniform", buf.nbytes, [("initlab", lambda: initlab.uniform_(buf, seed=1)),
                                 ("numpy", lambda: rng.random(out=buf, dtype=dt))]),
        ("normal", buf.nbytes, [("initlab", lambda: initlab.normal_(buf, seed=1)),
                                ("numpy", lambda: rng.standard_normal(out=buf, dtype=dt))]),
        ("trunc_normal", buf.nbytes, [("initlab", lambda: initlab.trunc_normal_(buf, seed=1)),
                                      ("numpy", lambda: np.clip(rng.standard_normal(out=buf, dtype=dt), -2, 2, out=buf))]),
        ("orthogonal", mat.nbytes, [("initlab", lambda: initlab.orthogonal_(mat, seed=1)),
                                    ("numpy", lambda: _numpy_orthogonal(rng, mat))]),
    ]
    if torch is not None:
        cases[0][2].append(("torch", lambda: torch.nn.init.uniform_(tb)))
        cases[1][2].append(("torch", lambda: torch.nn.init.normal_(tb)))
        cases[2][2].append(("torch", lambda: torch.nn.init.trunc_normal_(tb)))
        cases[3][2].append(("torch", lambda: torch.nn.init.orthogonal_(tm)))
    prev_torch = torch.get_num_threads() if torch is not None else None
    try:
        if torch is not None:
            torch.set_num_threads(nt)
        with initlab.num_threads(nt):
            for op, nbytes, impls in cases:
                for lib, fn in impls:
                    rows.append((op, lib, _best(fn, repeat)))
    finally:
        if torch is not None:
            torch.set_num_threads(prev_torch)
    libs = ["initlab", "numpy"] + (["torch"] if torch is not None else [])
    print(f"initlab bench: {dtype}, fills of {size:,} elements ({buf.nbytes / 2**20:.0f} MiB), orthogonal {matrix}x{matrix}, "
          f"{nt} thread(s) for initlab and torch (NumPy's generator is single-threaded; numpy.linalg uses its BLAS's threads)",
          file=out)
    head = ["operation", "unit"] + libs + [f"initlab speed-up vs {lib}" for lib in libs[1:]]
    table = [head]
    for op, nbytes, _ in cases:
        t = {lib: s for o, lib, s in rows if o == op}
        if op == "orthogonal":
            line = [op, "ms"] + [f"{t[lib] * 1e3:.1f}" if lib in t else "-" for lib in libs]
        else:
            line = [op, "GB/s"] + [f"{nbytes / t[lib] / 1e9:.2f}" if lib in t else "-" for lib in libs]
        line += [f"{t[lib] / t['initlab']:.1f}x" if lib in t else "-" for lib in libs[1:]]
        table.append(line)
    w = [max(len(r[k]) for r in table) for k in range(len(head))]
    for i, r in enumerate(table):
        print("  ".join(c.ljust(w[k]) if k < 2 else c.rjust(w[k]) for k, c in enumerate(r)), file=out)
        if i == 0:
            print("  ".join("-" * x for x in w), file=out)
    print("(fills: GB/s written, higher is better; orthogonal: ms per matrix, lower is better; numbers vary with machine load)", file=out)
    return rows


def _numpy_orthogonal(rng: np.random.Generator, mat: np.ndarray) -> None:
    # The usual recipe (torch's orthogonal_): QR of a Gaussian matrix, signs fixed by diag(R).
    a = rng.standard_normal(mat.shape, dtype=mat.dtype)
    q, r = np.linalg.qr(a)
    mat[...] = q * np.sign(np.diag(r))
