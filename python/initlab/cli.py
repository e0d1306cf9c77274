"""The ``initlab`` command line: ``initlab demo``, ``initlab evaluate`` and ``initlab bench``.

Every output path is checked before any work starts: a missing directory, an unwritable file or
directory (tried for real), or an unknown extension is an error (exit status 2) that names the
path; a name without an extension gets the default one, an existing directory gets the default
file name inside it, and the name printed is the name written. Counts (``--draws``,
``--threads``, ``--size``, ...) must be integers >= 1 (argparse refuses ``0`` and ``1.5``, exit
status 2). Ctrl-C exits with status 130 and one line, no traceback; running out of memory or
disk is a one-line error (exit status 1).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["main", "check_output_path"]

FIGURE_SUFFIXES = (".png", ".svg", ".pdf", ".jpg", ".jpeg", ".eps", ".ps", ".tif", ".tiff", ".webp")


def check_output_path(path: str | os.PathLike[str], *, default_suffix: str = ".png",
                      suffixes: Sequence[str] = FIGURE_SUFFIXES, what: str = "figure",
                      default_name: str | None = None) -> str:
    """Validate an output path before any work; return the path that will be written.

    A name without an extension gets ``default_suffix`` (``"noext"`` -> ``"noext.png"``). An
    existing directory gets ``default_name`` inside it (``-o figs`` -> ``figs/initlab-demo.png``);
    without ``default_name``, or when the directory's own name has an accepted extension
    (``d.png/``), a directory is an error. Writability is tried for real (a file is
    created and removed in the directory, an existing file opened for appending, nothing
    truncated), so a read-only file system or a file the user cannot write is found before the
    work starts.

    Raises
    ------
    ValueError
        The directory does not exist or is not a directory, the path is a directory (and no
        ``default_name``), the file or directory is not writable, or the extension is not one of
        ``suffixes``.
    """
    p = Path(os.fspath(path)).expanduser()
    if default_name is not None and p.is_dir() and p.suffix.lower() not in suffixes:
        p = p / default_name  # "-o figs": into the directory ("-o d.png" naming a directory stays an error)
    if not p.name or p.name in (".", ".."):
        raise ValueError(f"{what} path {str(path)!r} names no file")
    if not p.suffix:
        p = p.with_name(p.name + default_suffix)
    elif p.suffix.lower() not in suffixes:
        raise ValueError(f"{what} path {str(path)!r} has the extension {p.suffix!r}; accepted: {', '.join(suffixes)}")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.exists():
        raise ValueError(f"cannot write the {what} to {str(p)!r}: the directory {str(parent)!r} does not exist")
    if not parent.is_dir():
        raise ValueError(f"cannot write the {what} to {str(p)!r}: {str(parent)!r} is not a directory")
    if p.is_dir():
        raise ValueError(f"cannot write the {what} to {str(p)!r}: it is a directory")
    if p.exists() and not p.is_file():
        raise ValueError(f"cannot write the {what} to {str(p)!r}: it is not a regular file")
    if p.exists():
        try:
            with open(p, "ab"):
                pass
        except OSError as e:
            raise ValueError(f"cannot write the {what} to {str(p)!r}: the file is not writable ({e.strerror})") from None
    else:
        import tempfile

        try:
            with tempfile.TemporaryFile(dir=parent):
                pass
        except OSError as e:
            raise ValueError(f"cannot write the {what} to {str(p)!r}: the directory {str(parent)!r} is not writable "
                             f"({e.strerror})") from None
    return str(p)


def _count(minimum: int) -> Callable[[str], int]:
    """An argparse type: an int >= ``minimum`` written as an integer ("1.5", "1e6", "0" refused)."""
    def parse(text: str) -> int:
        try:
            v = int(text.strip().replace("_", ""), 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if v < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}")
        return v

    parse.__name__ = "integer"
    return parse


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (v > 0 and v != float("inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return v


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _version() -> str:
    from . import __version__

    return f"initlab {__version__}"


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="initlab", description="initlab: fast, reproducible weight initialization.")
    ap.add_argument("--version", action="version", version=_version())
    sub = ap.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="show what initialization does to the signal of a deep network",
                       description="Per-layer variance of a deep network fed X = [1, 2, 3, 4, 5] under N(0, sigma^2), "
                                   "Xavier, He, orthogonal and LSUV weights, averaged over many draws, with theory and "
                                   "verdicts; draws a figure.")
    d.add_argument("--depth", type=_count(1), default=8, help="layers (default 8)")
    d.add_argument("--width", type=_count(1), default=10, help="units per layer (default 10)")
    d.add_argument("--activation", default="relu", help="relu, leaky_relu, tanh, sigmoid, selu, gelu or linear (default relu)")
    d.add_argument("--seed", type=_count(0), default=0, help="seed of the weights (default 0)")
    d.add_argument("--draws", type=_count(1), default=None, help="independent weight draws per row (default 4096)")
    d.add_argument("--sigmas", type=_floats, default=None, help="comma-separated sigmas (default 1e-5,1e-3,1e-2,1e-1,0.5)")
    d.add_argument("--output", "-o", default="initlab-demo.png", help="figure path (default initlab-demo.png)")
    d.add_argument("--no-plot", action="store_true", help="do not write a figure")
    e = sub.add_parser("evaluate", help="train the same network once per init and seed on the digits and compare",
                       description="Train an MLP on scikit-learn's digits once per init and seed (NumPy, SGD with momentum "
                                   "or Adam, fixed step budget); print a table, draw a figure, optionally save JSON.")
    e.add_argument("--inits", nargs="+", default=None, metavar="SPEC",
                   help="init specs, e.g. normal:std=0.01 xavier_normal kaiming_normal:nonlinearity=tanh lsuv auto "
                        "(default: normal:std=0.01 xavier_normal kaiming_normal orthogonal lsuv)")
    e.add_argument("--depth", type=_count(1), default=10, help="hidden layers (default 10)")
    e.add_argument("--width", type=_count(1), default=64, help="units per hidden layer (default 64)")
    e.add_argument("--activation", default="tanh", help="activation (default tanh)")
    e.add_argument("--seeds", type=_count(1), default=3, help="seeds per init: 0 .. N-1 (default 3)")
    e.add_argument("--steps", type=_count(1), default=None, help="training steps (default 600)")
    e.add_argument("--epochs", type=_positive_float, default=None, help="budget in passes over the training split instead of --steps")
    e.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd", help="sgd (momentum 0.9) or adam (default sgd)")
    e.add_argument("--lr", type=float, default=None, help="learning rate (default 0.01 for sgd, 0.001 for adam)")
    e.add_argument("--batch-size", type=_count(1), default=64, help="mini-batch size (default 64)")
    e.add_argument("--threshold", type=float, default=0.1, help="training-loss threshold for 'steps to threshold' (default 0.1)")
    e.add_argument("--output", "-o", default="initlab-evaluate.png", help="figure path (default initlab-evaluate.png)")
    e.add_argument("--no-plot", action="store_true", help="do not write a figure")
    e.add_argument("--json", default=None, metavar="PATH", help="also write the results as JSON")
    e.add_argument("--no-progress", action="store_true", help="no progress bar")
    b = sub.add_parser("bench", help="throughput of initlab's fills and orthogonal against NumPy (and torch)",
                       description="Same buffers, same thread count, best of --repeat runs. Fills in Gs/s (10^9 samples "
                                   "per second), orthogonal in ms and GFLOP/s, as in the README.")
    b.add_argument("--size", type=_count(1), default=1 << 24, help="elements per fill (default 2**24)")
    b.add_argument("--matrix", type=_count(1), default=1024, help="orthogonal matrix size n (n x n, default 1024)")
    b.add_argument("--threads", type=_count(1), default=None, help="threads (default: initlab.get_num_threads())")
    b.add_argument("--repeat", type=_count(1), default=3, help="runs per measurement, best kept (default 3)")
    b.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    return ap


def _paths(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """Check every output path of the command at once; report all bad ones together."""
    fig = js = None
    errors = []
    if getattr(args, "output", None) is not None and not getattr(args, "no_plot", False):
        try:
            fig = check_output_path(args.output, default_name=f"initlab-{args.command}.png")
        except ValueError as e:
            errors.append(str(e))
    if getattr(args, "json", None) is not None:
        try:
            js = check_output_path(args.json, default_suffix=".json", suffixes=(".json",), what="JSON",
                                   default_name=f"initlab-{args.command}.json")
        except ValueError as e:
            errors.append(str(e))
    if fig is not None and js is not None and os.path.abspath(fig) == os.path.abspath(js):
        errors.append(f"the figure and the JSON would both be written to {fig!r}")
    if errors:
        raise ValueError("; ".join(errors))
    return fig, js


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``initlab`` console script (and ``python -m initlab``)."""
    args = _parser().parse_args(argv)
    try:
        fig, js = _paths(args)
        if args.command == "demo":
            from .demo import DEFAULT_DRAWS, DEFAULT_SIGMAS, run_demo

            run_demo(depth=args.depth, width=args.width, activation=args.activation, seed=args.seed,
                     draws=args.draws or DEFAULT_DRAWS, sigmas=args.sigmas or DEFAULT_SIGMAS, output=fig)
        elif args.command == "evaluate":
            _evaluate(args, fig, js)
        else:
            bench(size=args.size, matrix=args.matrix, threads=args.threads, repeat=args.repeat, dtype=args.dtype)
    except KeyboardInterrupt:
        print(f"initlab {args.command}: interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, ImportError) as e:
        print(f"initlab {args.command}: error: {e}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"initlab {args.command}: error: not enough memory for this size; try smaller values "
              "(e.g. --size, --matrix)", file=sys.stderr)
        return 1
    except OSError as e:  # e.g. the disk filled up while writing the figure or the JSON
        print(f"initlab {args.command}: error: {e}", file=sys.stderr)
        return 1
    return 0


def _evaluate(args: argparse.Namespace, fig: str | None, js: str | None) -> None:
    import json

    from .evaluation import DEFAULT_INITS, evaluate

    t0 = time.perf_counter()
    ev = evaluate("mlp", args.inits or DEFAULT_INITS, seeds=args.seeds, steps=args.steps, epochs=args.epochs,
                  optimizer=args.optimizer, lr=args.lr, batch_size=args.batch_size, threshold=args.threshold,
                  progress=not args.no_progress, depth=args.depth, width=args.width, activation=args.activation)
    print(ev)
    if fig:
        ev.plot(fig)
        print(f"\nfigure written to {fig}")
    if js:
        with open(js, "w") as f:
            json.dump(ev.to_dict(), f, indent=1)
        print(f"results written to {js}")
    print(f"total {time.perf_counter() - t0:.1f} s")


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
    need = (size + matrix * matrix * 3) * dt.itemsize  # the fill buffer, the matrix and the QR's scratch
    avail = _available_memory()
    if avail is not None and need > avail:
        raise ValueError(f"--size {size:,} and --matrix {matrix} need about {need / 2**30:.3g} GiB, more than the "
                         f"{avail / 2**30:.3g} GiB of memory available; choose smaller sizes")
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
    flops = 4.0 * matrix**3 / 3.0  # forming Q of an n x n matrix from n reflectors: 2mn^2 - 2n^3/3 at m = n
    for op, nbytes, _ in cases:
        t = {lib: s for o, lib, s in rows if o == op}
        if op == "orthogonal":
            line = [op, "ms"] + [f"{t[lib] * 1e3:.1f}" if lib in t else "-" for lib in libs]
            table.append(line + [f"{t[lib] / t['initlab']:.2f}x" if lib in t else "-" for lib in libs[1:]])
            table.append(["", "GFLOP/s"] + [f"{flops / t[lib] / 1e9:.1f}" if lib in t else "-" for lib in libs] + [""] * (len(libs) - 1))
            continue
        line = [op, "Gs/s"] + [f"{size / t[lib] / 1e9:.3f}" if lib in t else "-" for lib in libs]
        table.append(line + [f"{t[lib] / t['initlab']:.2f}x" if lib in t else "-" for lib in libs[1:]])
    w = [max(len(r[k]) for r in table) for k in range(len(head))]
    for i, r in enumerate(table):
        print("  ".join(c.ljust(w[k]) if k < 2 else c.rjust(w[k]) for k, c in enumerate(r)), file=out)
        if i == 0:
            print("  ".join("-" * x for x in w), file=out)
    print("(fills: Gs/s = 10^9 samples written per second, higher is better; orthogonal: ms per matrix, lower is better, "
          "and GFLOP/s counted as 4n^3/3 for every library; numbers vary with machine load)", file=out)
    return rows


def _available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux: MemAvailable), or None when unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _numpy_orthogonal(rng: np.random.Generator, mat: np.ndarray) -> None:
    # The usual recipe (torch's orthogonal_): QR of a Gaussian matrix, signs fixed by diag(R).
    a = rng.standard_normal(mat.shape, dtype=mat.dtype)
    q, r = np.linalg.qr(a)
    mat[...] = q * np.sign(np.diag(r))
