"""The core's floating-point constants, rounded exactly as the C++ compiler rounds them.

A C++ literal with an ``f`` suffix (``0.333333333f``) is the decimal rounded once to float32; a
double literal cast to float (``T(2.81022636e-08)`` with ``T = float``) is rounded to float64
first, then to float32. The two can differ in the last bit, so the device kernels take each
constant from the function that matches how the core spells it. Every value returned here is a
Python float exactly representable in the target format, so handing it to Triton (fp32 or fp64)
involves no further rounding.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np


def f32_literal(text: str) -> float:
    """``<text>f`` in C++: the decimal ``text`` rounded once to the nearest float32 (ties to even)."""
    exact = Fraction(text)
    guess = np.float32(float(exact))
    cands = [np.nextafter(guess, np.float32(-np.inf)), guess, np.nextafter(guess, np.float32(np.inf))]
    best = min(cands, key=lambda c: (abs(Fraction(float(c)) - exact), int(np.array(c).view(np.uint32)) & 1))
    return float(best)


def f32_of_double(x: float) -> float:
    """``static_cast<float>(x)`` for a double ``x`` (round to nearest even)."""
    return float(np.float32(x))
