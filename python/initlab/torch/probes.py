"""Hook-based probing of a ``torch.nn.Module``: the torch side of initlab's probe engine.

What every data-dependent tool (:func:`initlab.torch.analyze`, :func:`initlab.torch.lsuv`, the
schemes) needs from a real model, in one place:

* calling a model on a batch: a tensor is passed positionally, a mapping (``{"input_ids": ...}``,
  a Hugging Face ``BatchEncoding``) as keyword arguments (:func:`call`);
* picking the tensor to study from what the model returns: a tensor, a tuple/list (its first
  tensor), or a mapping / Hugging Face ``ModelOutput`` (``logits`` by default, or a chosen key)
  (:func:`select_output`);
* recognizing the layers by structure: ``Linear``, ``ConvNd``/``ConvTransposeNd``,
  ``MultiheadAttention`` and Hugging Face's ``Conv1D`` (a linear layer whose weight is stored
  ``(in, out)``), without importing ``transformers`` (:func:`is_layer`, :func:`is_conv1d`);
* forward hooks that are always removed (:func:`forward_hooks`), a train/eval/BatchNorm/no-grad
  state that is always restored (:func:`model_state`), the first floating-point tensor of a
  forward pass, so that integer token ids are never summarized (:class:`FirstFloat`), and a
  recorder of every module's output (and chosen modules' inputs) with their gradients, in
  execution order (:class:`Recorder`).

The statistics themselves are framework-neutral (:func:`initlab.stats`,
:mod:`initlab.analysis.trace`, :mod:`initlab.lsuv`); this module only moves tensors to them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, cast

import torch
from torch import nn

from .roles import is_hf_conv1d

__all__ = ["call", "check_batch", "select_output", "output_keys", "is_conv1d", "is_layer", "layer_weight",
           "layer_bias", "bias_dim", "without_bias", "is_pooling", "first_tensor", "batch_size", "forward_hooks",
           "model_state", "FirstFloat", "Event", "Recorder"]

_CONV = (nn.modules.conv._ConvNd,)  # Conv1d/2d/3d and ConvTranspose1d/2d/3d (and their lazy forms)
# Pooling modules: they legitimately shrink the activation and gradient scale (analysis discounts them).
_POOLS = (nn.modules.pooling._AvgPoolNd, nn.modules.pooling._AdaptiveAvgPoolNd, nn.modules.pooling._MaxPoolNd,
          nn.modules.pooling._AdaptiveMaxPoolNd, nn.modules.pooling._LPPoolNd)


# ---- inputs and outputs ----------------------------------------------------------------------


def call(module: nn.Module, batch: Any) -> Any:
    """Run ``module`` on one batch: a mapping is passed as keyword arguments, anything else positionally."""
    if isinstance(batch, Mapping):
        return module(**batch)
    return module(batch)


def check_batch(batch: Any, what: str = "x") -> None:
    """TypeError unless ``batch`` is a tensor or a mapping of names to tensors (and other values)."""
    if isinstance(batch, torch.Tensor):
        return
    if isinstance(batch, Mapping):
        if not any(isinstance(v, torch.Tensor) for v in batch.values()):
            raise TypeError(f"{what} is a mapping without any tensor (keys: {sorted(map(str, batch))}); "
                            "give the model's inputs, e.g. {'input_ids': ids}")
        return
    raise TypeError(f"{what} must be a torch.Tensor batch or a mapping of keyword inputs such as "
                    f"{{'input_ids': ...}}, got {type(batch).__name__}")


def first_tensor(obj: Any) -> torch.Tensor | None:
    """The tensor a module produced: itself, or the first tensor of a tuple/list (MHA, RNNs) or mapping."""
    if isinstance(obj, torch.Tensor):
        return obj
    if isinstance(obj, (tuple, list)):
        for o in obj:
            if isinstance(o, torch.Tensor):
                return o
        return None
    if isinstance(obj, Mapping):
        for o in obj.values():
            if isinstance(o, torch.Tensor):
                return o
    return None


def batch_size(batch: Any) -> int:
    """Leading dimension of the batch (of its first tensor for a mapping); 1 for a 0-d tensor."""
    t = batch if isinstance(batch, torch.Tensor) else first_tensor(batch)
    return int(t.shape[0]) if t is not None and t.dim() else 1


def output_keys(out: Any) -> list[str]:
    """Names of the tensor entries of a mapping / ``ModelOutput`` (in order)."""
    return [str(k) for k, v in out.items() if isinstance(v, torch.Tensor)] if isinstance(out, Mapping) else []


def select_output(out: Any, output: str | int | None = None) -> torch.Tensor:
    """The tensor to study in a model's return value.

    Parameters
    ----------
    out : tensor, tuple/list or mapping (Hugging Face ``ModelOutput`` included)
    output : str, int or None
        ``None``: the tensor itself, the ``"logits"`` entry of a mapping, the first element of a
        tuple/list. A string: that key of a mapping (``"last_hidden_state"``,
        ``"pooler_output"``, ...). An int: that position of a tuple/list.

    Raises
    ------
    ValueError
        The entry does not exist or is not a tensor; the message lists the available keys.
    TypeError
        ``output`` of another type.
    """
    if output is not None and (isinstance(output, bool) or not isinstance(output, (str, int))):
        raise TypeError(f"output must be a key (str), a position (int) or None, got {output!r}")
    if isinstance(out, torch.Tensor):
        if output is not None:
            raise ValueError(f"output={output!r} was given, but the model returns a single tensor "
                             f"(shape {tuple(out.shape)}); leave output=None")
        return out
    if isinstance(out, Mapping):
        keys = output_keys(out)
        key = "logits" if output is None else output
        if not isinstance(key, str):
            raise ValueError(f"the model returns a mapping ({type(out).__name__}); choose an entry by name, "
                             f"one of {keys}, not output={output!r}")
        v = out.get(key) if key in out else None
        if isinstance(v, torch.Tensor):
            return v
        hint = "" if output is not None else " (the default is 'logits')"
        raise ValueError(f"the model's output ({type(out).__name__}) has no tensor entry {key!r}{hint}; "
                         f"pass output=<key>, one of {keys}")
    if isinstance(out, (tuple, list)):
        idx = 0 if output is None else output
        kinds = [type(o).__name__ for o in out]
        if not isinstance(idx, int):
            raise ValueError(f"the model returns a {type(out).__name__} of {len(out)} items ({kinds}); choose "
                             f"one by position (output=0, 1, ...), not output={output!r}")
        if not -len(out) <= idx < len(out) or not isinstance(out[idx], torch.Tensor):
            raise ValueError(f"output={idx} does not select a tensor of the model's {type(out).__name__} of "
                             f"{len(out)} items ({kinds})")
        return out[idx]
    raise ValueError(f"the model returned a {type(out).__name__}, not a tensor, tuple or mapping of tensors")


# ---- layers, recognized by structure ---------------------------------------------------------


# One definition of HF Conv1D, shared with the rule engine's roles.
is_conv1d = is_hf_conv1d


def is_layer(m: nn.Module) -> bool:
    """A layer in the sense of LSUV and the analysis: ``Linear``, ``ConvNd``/``ConvTransposeNd``,
    ``MultiheadAttention`` (through its output projection) or Hugging Face ``Conv1D``."""
    if isinstance(m, nn.MultiheadAttention):
        return True
    if isinstance(m, (nn.Linear, *_CONV)) or is_conv1d(m):
        return isinstance(getattr(m, "weight", None), torch.Tensor)
    return False


def layer_weight(m: nn.Module) -> torch.Tensor:
    """The weight whose scale sets the layer's output (MHA: ``out_proj.weight``)."""
    # (cast: Module.__getattr__ is typed Tensor | Module)
    return m.out_proj.weight if isinstance(m, nn.MultiheadAttention) else cast(torch.Tensor, m.weight)


def layer_bias(m: nn.Module) -> torch.Tensor | None:
    """The bias added to the layer's output (MHA: ``out_proj.bias``), or None."""
    b = m.out_proj.bias if isinstance(m, nn.MultiheadAttention) else getattr(m, "bias", None)
    return b if isinstance(b, torch.Tensor) else None


def bias_dim(m: nn.Module, out: torch.Tensor) -> int | None:
    """Dimension of ``out`` along which the layer's bias varies (None: it cannot be aligned)."""
    b = layer_bias(m)
    if b is None or out.dim() == 0:
        return None
    if isinstance(m, _CONV):  # channel dim: 1 batched, 0 unbatched
        w = m.weight
        dim = 1 if out.dim() == w.dim() else 0
    else:
        dim = out.dim() - 1
    return dim if out.shape[dim] == b.numel() else None


def without_bias(m: nn.Module, out: torch.Tensor) -> torch.Tensor:
    """``out`` minus the layer's bias (broadcast along :func:`bias_dim`): the part the weight made."""
    b = layer_bias(m)
    dim = bias_dim(m, out)
    if b is None or dim is None:
        return out
    shape = [1] * out.dim()
    shape[dim] = b.numel()
    return out - b.detach().reshape(shape).to(out.dtype)


def is_pooling(m: nn.Module) -> bool:
    """torch's pooling modules (average, adaptive, max, LP)."""
    return isinstance(m, _POOLS)


# ---- hooks and state -------------------------------------------------------------------------


@contextlib.contextmanager
def forward_hooks(pairs: Iterable[tuple[nn.Module, Callable[..., Any]]]) -> Iterator[None]:
    """Register ``fn`` as a forward hook of each ``module``; all of them are removed on exit, also
    after an error (the user's own hooks are left as they are)."""
    handles = []
    try:
        for m, fn in pairs:
            handles.append(m.register_forward_hook(fn))
        yield
    finally:
        for h in handles:
            h.remove()


@contextlib.contextmanager
def model_state(module: nn.Module, *, mode: str = "keep", batchnorm: str | None = None,
                grad: bool = False) -> Iterator[None]:
    """Set the module up for probing and restore everything on exit (also after an error).

    Parameters
    ----------
    mode : {"keep", "eval"}
        ``"eval"``: every submodule in evaluation mode (no dropout) for the duration.
    batchnorm : {"train", "eval"} or None
        Override for BatchNorm layers (``"train"``: normalize with the batch's statistics). Their
        running statistics are restored afterwards whenever the module's BatchNorms could update them.
    grad : bool
        Run with autograd enabled (analysis) or disabled (LSUV).

    The MultiheadAttention fast path is disabled meanwhile (the fused kernel skips the
    submodules' hooks) and restored.
    """
    modes = [(m, m.training) for m in module.modules()]
    bns = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [{k: v.detach().clone() for k, v in m.named_buffers(recurse=False) if v is not None} for m in bns]
    fast = torch.backends.mha.get_fastpath_enabled()
    try:
        if mode == "eval":
            module.eval()
        if batchnorm is not None:
            for bn in bns:
                bn.train(batchnorm == "train")
        torch.backends.mha.set_fastpath_enabled(False)
        with torch.set_grad_enabled(grad):
            yield
    finally:
        torch.backends.mha.set_fastpath_enabled(fast)
        for m, t in modes:
            m.training = t
        with torch.no_grad():
            for bn, buf in zip(bns, saved):
                for k, v in buf.items():
                    getattr(bn, k).copy_(v)


class FirstFloat:
    """The first floating-point tensor of a forward pass (the model's input when it is float,
    otherwise the first float activation, e.g. an embedding's output for token ids).

    Use :meth:`hooks` with :func:`forward_hooks` (it inspects every leaf module's inputs and
    outputs), or :meth:`offer` for tensors known before the pass.

    Attributes
    ----------
    tensor : torch.Tensor or None
        A detached copy.
    name : str
        Where it came from (``"input"``, ``"output of transformer.wte (Embedding)"``).
    """

    def __init__(self) -> None:
        self.tensor: torch.Tensor | None = None
        self.name = ""

    def offer(self, t: Any, name: str) -> bool:
        if self.tensor is None and isinstance(t, torch.Tensor) and (t.is_floating_point() or t.is_complex()):
            self.tensor, self.name = t.detach().clone(), name
        return self.tensor is not None

    def hooks(self, module: nn.Module) -> list[tuple[nn.Module, Callable[..., Any]]]:
        def make(name: str) -> Callable[..., None]:
            def hook(mod: nn.Module, inp: Any, out: Any) -> None:
                if self.tensor is not None:
                    return
                for t in inp if isinstance(inp, tuple) else (inp,):
                    if self.offer(t, f"input of {name or '(root)'} ({type(mod).__name__})"):
                        return
                self.offer(first_tensor(out), f"output of {name or '(root)'} ({type(mod).__name__})")

            return hook

        return [(m, make(n)) for n, m in module.named_modules() if not any(True for _ in m.children())]


@dataclass
class Event:
    """One module call seen by a :class:`Recorder`.

    Attributes
    ----------
    name : str
        Qualified name of the module.
    module : torch.nn.Module
    output : torch.Tensor
        Detached copy of its (first) floating-point output, taken the moment it returned (an
        in-place activation after it cannot change it).
    input : torch.Tensor or None
        Detached copy of its first positional input, for the modules the recorder keeps inputs
        of (floating-point inputs only).
    input_shape : tuple of int or None
        Shape of the first positional input when it is floating-point.
    """

    name: str
    module: nn.Module
    output: torch.Tensor
    input: torch.Tensor | None = None
    input_shape: tuple[int, ...] | None = None


class Recorder:
    """Forward events of one pass, in execution order, and the gradients w.r.t. them.

    Hooks the given modules (see :meth:`hooks`, to use with :func:`forward_hooks`); each call
    with a floating-point output becomes an :class:`Event`. With ``backward=True`` tensor hooks
    capture ``dL/d(output)`` per event (:attr:`grads`, so a module called twice keeps the
    gradient of each call) and, for modules whose inputs are kept, ``dL/d(input)``
    (:attr:`grads_in`; the gradient w.r.t. the input tensor, i.e. summed over all its consumers).
    A hook registered before an in-place op receives the gradient w.r.t. the value before that
    op: ``dL/d(pre-activation)`` even under ``ReLU(inplace=True)``.
    """

    def __init__(self, *, backward: bool, keep_input: Callable[[nn.Module], bool] = lambda m: False) -> None:
        self.backward = backward
        self.keep_input = keep_input
        self.events: list[Event] = []
        self.grads: dict[int, torch.Tensor] = {}
        self.grads_in: dict[int, torch.Tensor] = {}

    def _hook(self, name: str) -> Callable[..., None]:
        def hook(mod: nn.Module, inp: Any, out: Any) -> None:
            o = first_tensor(out)
            if not isinstance(o, torch.Tensor) or not o.is_floating_point():
                return
            k = len(self.events)
            x = inp[0] if isinstance(inp, tuple) and inp else None
            ev = Event(name, mod, o.detach().clone())
            if isinstance(x, torch.Tensor) and x.is_floating_point():
                ev.input_shape = tuple(x.shape)
                if self.keep_input(mod):
                    ev.input = x.detach().clone()
                    if self.backward and x.requires_grad:
                        x.register_hook(lambda g, k=k: self.grads_in.__setitem__(k, g.detach().clone()))
            self.events.append(ev)
            if self.backward and o.requires_grad:
                o.register_hook(lambda g, k=k: self.grads.__setitem__(k, g.detach().clone()))

        return hook

    def hooks(self, modules: Iterable[tuple[str, nn.Module]]) -> list[tuple[nn.Module, Callable[..., Any]]]:
        """(module, hook) pairs for :func:`forward_hooks`, one per ``(name, module)``."""
        return [(m, self._hook(n)) for n, m in modules]
