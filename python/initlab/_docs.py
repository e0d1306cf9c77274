"""Docstring entries shared by several public functions, written once.

A docstring names an entry by a line ``{{name}}`` at the indentation of its section's items;
:func:`shared_doc` replaces it with the entry below, so every initializer documents ``seed``,
``global_shape``/``offset``, ``layout`` ... with the same words and a fix lands everywhere.
"""

from __future__ import annotations

from typing import Callable, TypeVar

F = TypeVar("F", bound=Callable)

# name -> the entry, as it appears in a numpydoc section (items indented by 4 spaces)
ENTRIES: dict[str, str] = {
    "seed": """\
    seed : int, Generator or None, keyword-only
        ``int`` in ``[0, 2**64)``: stateless (key = seed, stream 0), the same call gives the same
        numbers. :class:`~initlab.Generator`: the call takes its next stream, so successive
        calls differ and the whole sequence is reproducible. ``None`` (default): the
        module-wide :func:`~initlab.default_generator` (reseed it with
        :func:`~initlab.manual_seed`).""",
    "offset": """\
    offset : tuple of int, optional, keyword-only
        Start of the block in each dimension of ``global_shape`` (default: all zeros). Only
        with ``global_shape``.""",
    "global_shape": """\
    global_shape : tuple of int, optional, keyword-only
        Shape of the full tensor of which ``tensor`` is one block: the block gets exactly its
        part of the full fill (and the fans come from ``global_shape``). Default: ``tensor.shape``.""",
    "layout": """\
    layout : {"torch", "keras", "jax"} or (in_axis, out_axis), keyword-only
        How the fans are read from the shape (:func:`~initlab.compute_fans`): ``"torch"``
        (default) reads ``(out, in, *k)``, ``"keras"``/``"jax"`` read ``(*k, in, out)``; a pair
        of axes (ints or tuples of ints) names them, the other axes counting as receptive field.""",
    "raises_type": """\
    TypeError
        ``tensor`` is not a NumPy array or torch tensor, or its dtype is not float32, float64,
        float16 or bfloat16 (integer, bool, complex, object); a parameter that is not a real number; ``seed`` is not an int,
        Generator or None.""",
    "tensor": """\
    tensor : numpy.ndarray or torch.Tensor
        Destination, filled in place: a writable float32, float64, float16 or bfloat16
        (``ml_dtypes.bfloat16``, ``torch.bfloat16``) array or tensor of any memory layout (C,
        Fortran, strided views). Torch tensors and ``nn.Parameter`` on any device (zero-copy on
        the CPU; autograd sees the write, the graph is untouched).
        At least 2 dimensions.""",
    "a": """\
    a : float, default 0
        Negative slope of the rectifier that follows the layer; used only with
        ``nonlinearity="leaky_relu"`` (where ``a=0`` is the ReLU).""",
    "mode": """\
    mode : {"fan_in", "fan_out", "fan_avg", "fan_geo_avg"}, default "fan_in"
        Which fan normalizes the variance (case-insensitive, as torch). ``"fan_in"`` preserves
        the variance of the activations in the forward pass, ``"fan_out"`` that of the
        gradients in the backward pass. ``"fan_avg"`` (``(fan_in + fan_out) / 2``) and
        ``"fan_geo_avg"`` (``sqrt(fan_in * fan_out)``) are **initlab extensions**: torch raises
        for them.""",
    "nonlinearity": """\
    nonlinearity : str, default "leaky_relu"
        The nonlinearity after the layer, giving ``gain = calculate_gain(nonlinearity, a)``
        (:func:`~initlab.calculate_gain`, torch's table): ``"relu"`` (√2), ``"leaky_relu"``
        (``sqrt(2 / (1 + a**2))``), ``"tanh"`` (5/3), ``"selu"`` (3/4), ``"linear"``,
        ``"sigmoid"``, ``"conv*"`` (1). torch recommends ``"relu"`` or ``"leaky_relu"``.""",
}


def shared_doc(fn: F) -> F:
    """Replace every ``{{name}}`` line of ``fn.__doc__`` by ``ENTRIES[name]``; an unknown name raises
    (at import), so no placeholder can reach the rendered documentation."""
    doc = fn.__doc__ or ""
    out = []
    for line in doc.split("\n"):
        s = line.strip()
        if s.startswith("{{") and s.endswith("}}"):
            out.append(ENTRIES[s[2:-2]])  # KeyError: a misspelt entry name
        else:
            out.append(line)
    fn.__doc__ = "\n".join(out)
    return fn
