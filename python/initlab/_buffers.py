"""Destinations: turn a NumPy array or a torch CPU tensor into a zero-copy view the core can fill,
and a torch tensor on any other device into a :class:`DeviceTarget` (``initlab.device``).

The core works on raw memory with signed element strides, so any layout is filled in place:
no temporary, no silent copy. bfloat16 (``ml_dtypes.bfloat16`` arrays, ``torch.bfloat16``
tensors) is passed as a ``uint16`` view of the same memory.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from .device import device_backend

# Codes shared with the core (csrc/include/initlab/distributions.hpp: DType).
F32, F64, F16, BF16 = 0, 1, 2, 3
_NP_CODES = {np.dtype(np.float32): F32, np.dtype(np.float64): F64, np.dtype(np.float16): F16}
_ACCEPTED = "float32, float64, float16 or bfloat16"


@dataclass
class Target:
    """A writable, zero-copy NumPy view of the user's destination."""

    obj: Any  # what the user passed (returned unchanged)
    array: np.ndarray  # view of the same memory; uint16 for bfloat16
    code: int  # F32 / F64 / F16 / BF16

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)

    @property
    def size(self) -> int:
        return int(self.array.size)

    @property
    def ndim(self) -> int:
        return int(self.array.ndim)


def _is_torch_tensor(t: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(t, torch.Tensor)


_TORCH_CODES: dict[Any, int] = {}


def _torch_code(t: Any) -> int:
    if not _TORCH_CODES:
        import torch

        _TORCH_CODES.update({torch.float32: F32, torch.float64: F64, torch.float16: F16, torch.bfloat16: BF16})
    code = _TORCH_CODES.get(t.dtype)
    if code is None:
        raise TypeError(f"unsupported dtype {t.dtype}; accepted: {_ACCEPTED}")
    return code


def _check_torch_layout(t: Any, action: str) -> None:
    import torch

    if t.is_nested:
        raise ValueError(f"nested tensors cannot be {action} in place; fill each component tensor (t.unbind())")
    if t.is_sparse or t.layout != torch.strided:
        raise ValueError(f"only dense strided tensors are supported, got layout {t.layout}")


def _torch_view(t: Any, action: str) -> tuple[np.ndarray, int]:
    """Zero-copy NumPy view of a dense CPU float tensor's memory and its dtype code."""
    import torch

    _check_torch_layout(t, action)
    if t.device.type != "cpu":
        raise ValueError(f"only CPU tensors can be {action} in place, got a tensor on {t.device} (call .cpu() first)")
    code = _torch_code(t)
    d = t.detach()
    # .numpy() shares memory (never copies) for CPU tensors; bfloat16 goes through an int16 view.
    return (d.view(torch.int16).numpy().view(np.uint16) if code == BF16 else d.numpy()), code


class DeviceTarget:
    """A torch tensor filled off the core route (``"triton"`` or ``"staged"``, see
    :func:`initlab.device_backend`): on a GPU or another device, or a CPU tensor forced there.

    Random and constant fills go to the device directly (``initlab.device.fill``). Operations that
    compute values on the host (orthogonal, eye, dirac, sparse masks, LSUV's rescaling) work on
    ``array``: a host copy made on first use, written back to the device by :func:`mark_written`.
    So every operation gives the CPU's bits and an error before ``mark_written`` leaves the
    device tensor untouched.
    """

    def __init__(self, obj: Any, code: int, route: str) -> None:
        self.obj = obj
        self.code = code
        self.route = route
        self.tensor = obj.detach()
        self._mirror: Any = None  # host torch tensor (C-contiguous copy)
        self._array: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(n) for n in self.tensor.shape)

    @property
    def size(self) -> int:
        return int(self.tensor.numel())

    @property
    def ndim(self) -> int:
        return int(self.tensor.dim())

    @property
    def has_mirror(self) -> bool:
        return self._mirror is not None

    @property
    def array(self) -> np.ndarray:
        """Host copy of the tensor's values (bfloat16 as uint16 bits), made on first access."""
        if self._array is None:
            self._set_mirror(self.tensor.to("cpu", copy=True).contiguous())
        assert self._array is not None
        return self._array

    def overwrite(self) -> np.ndarray:
        """``array`` for an operation that writes every element: an uninitialized host buffer,
        without first copying the device tensor's values to the host."""
        if self._array is None:
            import torch

            self._set_mirror(torch.empty(self.tensor.shape, dtype=self.tensor.dtype, device="cpu"))
        assert self._array is not None
        return self._array

    def _set_mirror(self, m: Any) -> None:
        import torch

        self._mirror = m
        self._array = m.view(torch.int16).numpy().view(np.uint16) if self.code == BF16 else m.numpy()

    def commit(self) -> None:
        """Copy the host copy back to the device tensor (no-op without one)."""
        if self._mirror is None:
            return
        import torch

        with torch.no_grad():
            self.tensor.copy_(self._mirror)


def _check_torch_writable(t: Any) -> None:
    import torch

    if t.is_conj() or t.is_neg():
        raise ValueError("tensors with a lazy conjugate/negative bit cannot be filled in place")
    if t.is_inference() and not torch.is_inference_mode_enabled():
        # torch refuses this too; inside torch.inference_mode() the fill goes ahead (as torch's).
        raise ValueError(
            "cannot fill an inference tensor outside torch.inference_mode() (torch refuses in-place updates "
            "there as well): fill it inside `with torch.inference_mode():`, or fill a clone"
        )


def core_torch_target(t: Any) -> Target:
    """:func:`as_target` of a torch tensor whose route the caller knows is ``"core"`` (a CPU
    tensor, ``INITLAB_DEVICE_BACKEND`` unset): the same checks and the same view, without asking
    :func:`initlab.device_backend` again (a whole-model call asks once, not per parameter)."""
    _check_torch_writable(t)
    arr, code = _torch_view(t, "filled")
    check_no_overlap(arr)
    return Target(t, arr, code)


def _torch_target(t: Any) -> Target | DeviceTarget:
    _check_torch_writable(t)
    route = device_backend(t)
    if route == "core":
        arr, code = _torch_view(t, "filled")
        check_no_overlap(arr)
        return Target(t, arr, code)
    _check_torch_layout(t, "filled")
    code = _torch_code(t)
    check_layout_no_overlap(tuple(t.shape), tuple(s * t.element_size() for s in t.stride()), t.element_size(),
                            t.is_contiguous())
    return DeviceTarget(t, code, route)


_EXACT_OVERLAP_CHECK = 1 << 22  # up to this many elements an inconclusive layout is checked exactly


def check_no_overlap(arr: np.ndarray) -> None:
    """Raise ``ValueError`` if two elements of ``arr`` share memory (zero strides, overlapping
    ``as_strided`` views): a fill would then race between threads and depend on their number.

    Sufficient test first: with the axes sorted by |stride|, each stride must exceed the extent
    of all smaller ones. Layouts it cannot clear (interleaved but disjoint) are checked exactly
    by enumerating the offsets when they are small enough, and rejected otherwise.
    """
    flags = arr.flags
    if flags.c_contiguous or flags.f_contiguous:
        return  # (a contiguous array's elements are distinct by construction)
    check_layout_no_overlap(tuple(arr.shape), tuple(arr.strides), arr.itemsize, False)


def check_layout_no_overlap(shape: tuple[int, ...], strides: tuple[int, ...], itemsize: int,
                            contiguous: bool) -> None:
    """:func:`check_no_overlap` on a layout (shape, byte strides, item size) of any device."""
    size = 1
    for n in shape:
        size *= int(n)
    if size <= 1 or contiguous:
        return  # (a contiguous array's elements are distinct by construction)
    dims = sorted((abs(int(st)), int(n)) for n, st in zip(shape, strides) if n > 1)
    if any(st == 0 for st, _ in dims):
        raise ValueError("destination has overlapping elements (a zero stride, e.g. from expand or broadcast_to); "
                         "fill a contiguous copy instead")
    extent = itemsize
    ok = True
    for st, n in dims:
        if st < extent:
            ok = False
            break
        extent = st * (n - 1) + extent
    if ok:
        return
    if size <= _EXACT_OVERLAP_CHECK:
        offs = np.zeros(1, np.int64)
        for st, n in dims:
            offs = (offs[:, None] + st * np.arange(n, dtype=np.int64)[None, :]).ravel()
        offs.sort()
        if np.all(np.diff(offs) >= itemsize):
            return
    raise ValueError(
        f"destination elements overlap in memory (shape {shape}, byte strides {strides}, e.g. an "
        "as_strided view): the result would depend on the thread count; fill a contiguous copy instead"
    )


def mark_written(t: Target | DeviceTarget) -> None:
    """Tell autograd a torch tensor was written through raw memory (bump its version counter);
    for a :class:`DeviceTarget`, first copy its host copy (if one was made) to the device.

    Inference tensors have no version counter (and can only be written inside inference mode).
    """
    if isinstance(t, DeviceTarget):
        t.commit()
        if t.obj.is_inference():
            return
    elif t.obj is t.array or not _is_torch_tensor(t.obj) or t.obj.is_inference():
        return  # (reading ``_version`` of an inference tensor raises)
    import torch

    inc = getattr(torch.autograd.graph, "increment_version", None)
    if inc is not None:
        inc(t.obj)


def as_target(t: Any) -> Target | DeviceTarget:
    """Validate a destination and return its zero-copy view.

    Torch tensors on other devices (or forced off the core by ``INITLAB_DEVICE_BACKEND``) give a
    :class:`DeviceTarget`.

    Raises
    ------
    TypeError
        For anything that is not a NumPy array / torch tensor, or an unsupported dtype.
    ValueError
        For read-only arrays, meta or nested tensors, inference tensors outside
        ``torch.inference_mode()``, non-native byte order or elements that overlap in memory
        (zero strides, overlapping ``as_strided`` views).
    """
    if _is_torch_tensor(t):
        return _torch_target(t)
    if not isinstance(t, np.ndarray):
        raise TypeError(
            f"expected a NumPy array or a torch tensor, got {type(t).__name__}; "
            "initializers write in place, so a list or scalar cannot be filled"
        )
    dt = t.dtype
    if dt.byteorder not in ("=", "|") and dt.byteorder != ("<" if sys.byteorder == "little" else ">"):
        raise ValueError(f"array must be in native byte order, got dtype {dt.str}")
    if dt in _NP_CODES:  # (before dt.name, which costs microseconds)
        code = _NP_CODES[dt]
        arr = t
    elif dt.name == "bfloat16":
        code = BF16
        arr = t.view(np.uint16)
    else:
        raise TypeError(f"unsupported dtype {dt}; accepted: {_ACCEPTED}")
    if not t.flags.writeable:
        raise ValueError("destination array is read-only")
    check_no_overlap(t)  # empty arrays legitimately carry zero strides: checked only when non-empty
    if t.size and not t.flags.aligned:
        raise ValueError("destination array is not aligned")
    return Target(t, arr, code)


def as_source(a: Any) -> tuple[np.ndarray, int]:
    """A read-only view of an input's memory and its dtype code (bfloat16 as uint16 bits).

    Unlike :func:`as_target` it accepts read-only arrays, converts lists and scalars (integers and
    bools become float64; an integer *ndarray* is a ``TypeError``) and reads a copy where the
    memory cannot be read in place (non-native byte order, unaligned, lazily negated tensors).
    """
    if _is_torch_tensor(a):
        if a.device.type != "cpu" and a.device.type != "meta":
            a = a.detach().to("cpu")  # statistics of a device tensor are computed on a host copy
        return _torch_view(a.resolve_neg() if a.is_neg() else a, "read")
    if not isinstance(a, np.ndarray):
        arr = np.asarray(a)
        a = arr.astype(np.float64) if arr.dtype.kind in "biu" else arr
    dt = a.dtype
    if dt.name == "bfloat16":
        code, arr = BF16, a.view(np.uint16) if a.ndim else a.reshape(1).view(np.uint16).reshape(())
    elif dt.kind == "f" and dt.newbyteorder("=") in _NP_CODES:
        if not dt.isnative:
            a = a.astype(dt.newbyteorder("="))
        code, arr = _NP_CODES[a.dtype], a
    else:
        raise TypeError(f"unsupported dtype {dt}; accepted: {_ACCEPTED} (convert with .astype(np.float64))")
    if arr.size and (not arr.flags.aligned or any(s % arr.itemsize for s in arr.strides)):
        arr = np.array(arr, order="C")  # exotic byte strides: read a copy
    return arr, code


def c_strides(shape: tuple[int, ...]) -> list[int]:
    """C-order element strides of a shape."""
    out = [1] * len(shape)
    acc = 1
    for k in range(len(shape) - 1, -1, -1):
        out[k] = acc
        acc *= max(int(shape[k]), 1)
    return out


def f32_to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """Round float32 values to bfloat16 (nearest, ties to even) and return the uint16 bits."""
    b = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    nan = (b & 0x7FFFFFFF) > 0x7F800000
    r = ((b + 0x7FFF + ((b >> 16) & 1)) >> 16).astype(np.uint16)
    r[nan] = ((b[nan] >> 16) | 0x40).astype(np.uint16)
    return r


def store(target: Target | DeviceTarget, values: np.ndarray) -> None:
    """Write ``values`` (the destination's shape, logical order) into the destination.

    Values are rounded once to the destination dtype (nearest, ties to even); float16/bfloat16
    are rounded from float32 as the samplers do.
    """
    values = np.asarray(values)
    if values.shape != target.shape:
        raise ValueError(f"internal: values of shape {values.shape} for a destination of shape {target.shape}")
    if isinstance(target, DeviceTarget):
        target.overwrite()  # every element is written: no need to bring the old values to the host
    if target.code == F64:
        target.array[...] = values
    elif target.code == F32:
        target.array[...] = values.astype(np.float32)
    elif target.code == F16:
        target.array[...] = values.astype(np.float32).astype(np.float16)
    else:
        target.array[...] = f32_to_bf16_bits(values.astype(np.float32)).reshape(target.shape)


def load(target: Target | DeviceTarget) -> np.ndarray:
    """Read the destination's values as float32/float64 (a copy, logical order)."""
    if target.code == BF16:
        return (target.array.astype(np.uint32) << 16).view(np.float32)
    if target.code == F16:
        return target.array.astype(np.float32)
    return np.array(target.array)
