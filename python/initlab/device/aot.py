"""Ahead-of-time compilation of every device kernel for a GPU target, without a GPU.

``triton.compile`` with an explicit ``GPUTarget`` runs Triton's whole NVIDIA pipeline (TTIR,
TTGIR, LLVM IR, PTX and, with ``ptxas``, a cubin) on any machine. The tests use it to prove that
what the interpreter checks bit for bit is what a GPU runs: the PTX must hold no fused
multiply-add (``fma``) and no approximate division, square root or transcendental instruction.
It also tells a user, before any launch, that their Triton can build initlab's kernels.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

# (kernel name, output dtype code, extra constexprs) for every variant a fill can launch.
_F32, _F64, _F16, _BF16 = 0, 1, 2, 3
_PTR = {_F32: "*fp32", _F64: "*fp64", _F16: "*i16", _BF16: "*i16"}

# PTX instructions that would break bit identity with the CPU core.
FORBIDDEN_PTX = ("fma.rn", "fma.rz", "mad.f32", "mad.rn", "div.approx", "div.full", "sqrt.approx", "rcp.approx",
                 "ex2.approx", "lg2.approx", "sin.approx", "cos.approx", ".ftz.")


def variants() -> Iterator[tuple[str, int, dict[str, Any]]]:
    """Every (kernel, output dtype, compile-time arguments) a fill can launch."""
    from .triton_route import _TILES

    yield "uniform_f32", _F32, {"S": _TILES["uniform_f32"]}
    yield "uniform_f64", _F64, {"B": _TILES["uniform_f64"]}
    for c in (_F16, _BF16):
        yield "uniform_16", c, {"S": _TILES["uniform_16"], "OUT": c}
    yield "normal_f32", _F32, {"B": _TILES["normal_f32"]}
    yield "normal_f64", _F64, {"B": _TILES["normal_f64"]}
    for c in (_F16, _BF16):
        yield "normal_16", c, {"S": _TILES["normal_16"], "OUT": c}
    for c in (_F32, _F16, _BF16):
        yield "trunc_inv", c, {"B": _TILES["trunc_inv"], "OUT": c}
    for c in (_F32, _F64, _F16, _BF16):
        for mode in (0, 1, 2):
            for flip in (False, True):
                yield "trunc_exact", c, {"T": _TILES["trunc_exact"], "OUT": c, "MODE": mode, "FLIP": flip}


def compile_kernel(name: str, code: int, meta: dict[str, Any], arch: int = 90, fp_fusion: bool = False) -> Any:
    """Compile one kernel variant for ``sm_<arch>``; return Triton's compiled kernel (``.asm``
    holds ``"ptx"`` and ``"cubin"``)."""
    import triton
    from triton.backends.compiler import GPUTarget

    from .triton_route import _kernels

    fn = _kernels()[name]
    sig = {"out_ptr": _PTR[code], "prm_ptr": "*fp64", "key_ptr": "*i64", "rowg_ptr": "*i64", "rowm_ptr": "*i64",
           "n": "i64", "stride": "i64", "tiles": "i64"}
    for k in meta:
        sig[k] = "constexpr"
    src = triton.compiler.ASTSource(fn=fn, signature=sig, constexprs=dict(meta))
    return triton.compile(src, target=GPUTarget("cuda", arch, 32), options={"enable_fp_fusion": fp_fusion})


def forbidden_instructions(ptx: str) -> list[str]:
    """The PTX instructions in ``ptx`` that would round differently from the core."""
    return sorted({op for op in FORBIDDEN_PTX if op in ptx})
