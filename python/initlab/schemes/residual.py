"""Schemes for deep residual networks: Fixup, SkipInit, ReZero, zero-init residual, depth-scaled
residual outputs (GPT-2, DeepNet).

Every function takes an :mod:`initlab.nn` network or a ``torch.nn.Module``, changes it in place
and returns an :class:`initlab.manifest.Manifest` with one entry per parameter written
(including each scalar it added) and the parameters it left alone, with the reason.

Residual blocks are recognized by structure: ``initlab.nn.Residual``; in torch, blocks with
``conv1/bn1/conv2/bn2(/conv3/bn3)`` (torchvision and timm ``BasicBlock``/``Bottleneck``, the
skip path in ``downsample``) and ``nn.TransformerEncoderLayer``/``DecoderLayer``. Others are named
with ``blocks=`` (module types or qualified-name globs); in such a block the weight layers
(Linear/Conv/HF Conv1D) in registration order form the branch, sub-modules named
``downsample``/``shortcut``/``skip`` the skip path, and the branch's last weight layer must be
its last operation.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..generator import SeedLike
from ..manifest import Manifest
from ._common import (Plan, check_blocks_arg, framework, he_std, in_shortcut, select_blocks, set_submodule, under)

__all__ = ["fixup", "skipinit", "rezero", "zero_init_residual", "scaled_residual"]

_NORM_MODES = ("remove", "keep")


def _check_norm(norm: str) -> None:
    if norm not in _NORM_MODES:
        raise ValueError(f"norm must be one of {_NORM_MODES}, got {norm!r}")


# --------------------------------------------------------------------------------------------
# initlab.nn helpers


def _nn_types() -> Any:
    from .. import nn

    return nn


def _nn_weight_layers(root: Any, prefix: str = "") -> list[tuple[str, Any]]:
    nn = _nn_types()
    return [(f"{prefix}.{n}" if prefix and n else (n or prefix), m) for n, m in root.named_modules()
            if isinstance(m, (nn.Linear, nn.Conv2d))]


def _nn_blocks(model: Any, blocks: list | None) -> list[tuple[str, Any]]:
    nn = _nn_types()
    sel = select_blocks(model, blocks, lambda n, m: isinstance(m, nn.Residual))
    bad = [f"{n} ({type(m).__name__})" for n, m in sel if not isinstance(m, nn.Residual)]
    if bad:
        raise TypeError(f"in initlab.nn models the residual blocks are initlab.nn.Residual modules; blocks= also "
                        f"selected: {', '.join(bad)}")
    return sel


def _nn_remove_norms(block_name: str, block: Any, plan: Plan) -> None:
    """Replace every LayerNorm/BatchNorm in the branch by Identity (the paper's normalization-free net)."""
    nn = _nn_types()
    for rel, m in list(block.branch.named_modules()):
        if isinstance(m, (nn.LayerNorm, nn.BatchNorm)):
            set_submodule(block.branch, rel, nn.Identity())
            for p in m._param_names:
                plan.leave(f"{block_name}.branch.{rel}.{p}", "normalization removed (norm='remove')")


def _nn_insert_biases(block: Any) -> int:
    """Fixup's scalar biases before each Linear/Conv2d and activation of a Sequential branch."""
    nn = _nn_types()
    from ..nn.layers import ScalarBias

    br = block.branch
    if not isinstance(br, nn.Sequential):
        return 0
    layers: list[Any] = []
    added = 0
    for m in br:
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.Activation)) and not (layers and isinstance(layers[-1], ScalarBias)):
            layers.append(ScalarBias(dtype=_dtype_of(m, block)))
            added += 1
        layers.append(m)
    br._children = {str(i): m for i, m in enumerate(layers)}
    return added


def _dtype_of(m: Any, block: Any) -> Any:
    for p in list(m._param_names) or []:
        return getattr(m, p).dtype
    return block.alpha.dtype


def _he_steps(shape: tuple[int, ...], mode: str, factor: float = 1.0) -> tuple[list, dict]:
    std, fan = he_std(shape, mode)
    steps = [("normal", std * factor)]
    params = {"std": std * factor, mode: fan, "gain": math.sqrt(2.0)}
    if factor != 1.0:
        params["scale"] = factor
    return steps, params


# --------------------------------------------------------------------------------------------
# Fixup


def fixup(model: Any, *, blocks: Any = None, seed: SeedLike = None, mode: str = "fan_out", norm: str = "remove",
          add_scalars: bool = True) -> Manifest:
    """Fixup initialization (Zhang, Dauphin, Ma, ICLR 2019) of a residual network, in place.

    With ``L`` residual branches of ``m`` weight layers each:

    1. the classification layer (the last Linear outside every block) and the last layer of each
       branch are set to 0 (weights and biases);
    2. the other branch layers get He normal (``std = sqrt(2 / fan)``, ``fan = mode``) scaled by
       ``L ** (-1 / (2m - 2))`` (m=2: ``L^-1/2``; m=3: ``L^-1/4``); every other weight layer (stem,
       ``downsample``/``shortcut`` projections) He normal unscaled; biases 0;
    3. a scalar multiplier (1) per branch and scalar biases (0) before each convolution/linear
       layer and activation and after the multiplier, added where the model lacks them:
       ``initlab.nn``: the :class:`~initlab.nn.Residual`'s ``alpha`` (set to 1) and ``bias``, and
       :class:`~initlab.nn.ScalarBias` layers inserted into a ``Sequential`` branch; torch
       ResNet blocks: ``convK`` becomes ``PreShift(convK)`` (``bias_in`` of conv1 shared with the
       downsample conv, as the reference's ``bias1a``), ``bnK`` a ``Shift`` and the last ``bn`` a
       ``ScaleShift`` (multiplier, then ``bias2b``); other torch blocks: each branch weight layer
       wrapped in ``PreShift`` and the last in ``ScaledOutput(..., ScaleShift())``
       (see :mod:`initlab.schemes.torch_modules`).

    ``mode="fan_out"`` follows the reference code (``fixup_resnet_imagenet.py``).

    Parameters
    ----------
    model : initlab.nn.Module or torch.nn.Module
    blocks : type, str or sequence, optional
        The residual blocks (module types or qualified-name globs) where they are not recognized.
    seed : int, initlab.Generator or None
        Each parameter draws from its own stream derived from its final qualified name.
    mode : {"fan_out", "fan_in"}, default "fan_out"
    norm : {"remove", "keep"}, default "remove"
        Fixup trains without normalization: ``"remove"`` takes the normalization layers out of
        the blocks (the last becomes the scalar multiplier); ``"keep"`` leaves them.
    add_scalars : bool, default True
        Add the scalar multiplier and biases (step 3).

    Returns
    -------
    Manifest
        Each weight with its std, fan and ``scale = L^(-1/(2m-2))``; zeroed layers; each scalar.

    Raises
    ------
    ValueError
        No block found, or blocks with fewer than two weight layers (all listed).
    """
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    _check_norm(norm)
    bl = check_blocks_arg(blocks)
    if framework(model) == "nn":
        return _fixup_nn(model, bl, seed, mode, norm, add_scalars)
    return _fixup_torch(model, bl, seed, mode, norm, add_scalars)


def _fixup_nn(model: Any, bl: list | None, seed: SeedLike, mode: str, norm: str, add_scalars: bool) -> Manifest:
    nn = _nn_types()
    from ..nn.layers import ScalarBias

    sel = _nn_blocks(model, bl)
    ms = {name: len(_nn_weight_layers(blk.branch)) for name, blk in sel}
    short = [f"{n} (m={m})" for n, m in ms.items() if m < 2]
    if short:
        raise ValueError(f"Fixup needs at least 2 weight layers per residual branch; blocks with fewer: {', '.join(short)}")
    L = len(sel)
    plan = Plan(model, "fixup", seed)
    for name, blk in sel:
        if norm == "remove":
            _nn_remove_norms(name, blk, plan)
        if add_scalars:
            _nn_insert_biases(blk)
            blk.add_bias(0.0)
    block_names = [n for n, _ in sel]
    layers = _nn_weight_layers(model)
    outside = [(n, m) for n, m in layers if not any(under(n, b) for b in block_names)]
    head = outside[-1][0] if outside and layers and outside[-1][0] == layers[-1][0] and isinstance(outside[-1][1], nn.Linear) else None
    for qn, layer in layers:
        blk_name = next((b for b in block_names if under(qn, b)), None)
        if qn == head:
            plan.add(layer.weight, layer, "head", "classifier = 0", "constant", [("const", 0.0)], {"value": 0.0})
        elif blk_name is None:
            steps, params = _he_steps(layer.weight.shape, mode)
            plan.add(layer.weight, layer, "weight", "outside the residual branches: He", "normal", steps, params)
        else:
            blk = model.get_submodule(blk_name)
            rel = qn[len(blk_name) + 1:]
            branch_layers = [n for n, _ in _nn_weight_layers(blk.branch, f"{blk_name}.branch")]
            m = len(branch_layers)
            if not rel.startswith("branch."):
                steps, params = _he_steps(layer.weight.shape, mode)
                plan.add(layer.weight, layer, "weight", "shortcut projection: He, unscaled", "normal", steps, params)
            elif qn == branch_layers[-1]:
                plan.add(layer.weight, layer, "residual_out", "last layer of the branch = 0", "constant",
                         [("const", 0.0)], {"value": 0.0})
            else:
                f = L ** (-1.0 / (2 * m - 2))
                steps, params = _he_steps(layer.weight.shape, mode, f)
                params.update({"L": L, "m": m})
                plan.add(layer.weight, layer, "weight", f"branch layer: He x L^(-1/(2m-2)) (L={L}, m={m})", "normal",
                         steps, params)
        if layer.bias is not None:
            plan.add(layer.bias, layer, "bias", "bias = 0", "constant", [("const", 0.0)], {"value": 0.0})
    for name, blk in sel:
        plan.add(blk.alpha, blk, "scalar", "branch multiplier = 1", "constant", [("const", 1.0)], {"value": 1.0})
        if blk.bias is not None:
            plan.add(blk.bias, blk, "scalar", "scalar bias after the multiplier = 0", "constant", [("const", 0.0)],
                     {"value": 0.0})
    for qn, m in model.named_modules():
        if isinstance(m, ScalarBias):
            plan.add(m.bias, m, "scalar", "scalar bias before a layer = 0", "constant", [("const", 0.0)], {"value": 0.0})
    _leave_rest_nn(model, plan, "not part of Fixup's rule")
    return plan.execute()


def _leave_rest_nn(model: Any, plan: Plan, reason: str) -> None:
    for n, p in model.named_parameters():
        if p not in plan and not any(x.name == n for x in plan.left):
            plan.leave(n, reason)


def _leave_rest_torch(model: Any, plan: Plan, reason: str) -> None:
    seen = {x.name for x in plan.left}
    for n, p in model.named_parameters():
        if p not in plan and n not in seen:
            plan.leave(n, reason)


def _torch_blocks(model: Any, bl: list | None, *, transformer: bool = False) -> list[tuple[str, Any]]:
    from ._torch_struct import resnet_convs, transformer_layer_kind

    def rec(n: str, m: Any) -> bool:
        return resnet_convs(m) is not None or (transformer and transformer_layer_kind(m) is not None)

    return select_blocks(model, bl, rec)


def _fixup_torch(model: Any, bl: list | None, seed: SeedLike, mode: str, norm: str, add_scalars: bool) -> Manifest:
    from torch import nn as tnn

    from ._torch_struct import is_norm, is_weight_layer, remove_norm, resnet_convs
    from .torch_modules import PreShift, ScaledOutput, ScaleShift, Shift

    sel = _torch_blocks(model, bl)
    done = [n for n, b in sel if any(type(m).__name__ in ("PreShift", "ScaledOutput") for m in b.modules())]
    if done:
        raise ValueError(f"blocks already carry Fixup's scalars (apply fixup to a freshly built model): {', '.join(done)}")
    info: dict[str, tuple[list[str], list[str]]] = {}  # block -> (branch layer rel names, shortcut rel names)
    short = []
    for name, blk in sel:
        rc = resnet_convs(blk)
        if rc is not None:
            branch = rc
        else:
            branch = [r for r, m in blk.named_modules() if r and is_weight_layer(m) and not in_shortcut(r)
                      and type(m).__name__ != "PreShift"]
        sc = [r for r, m in blk.named_modules() if r and is_weight_layer(m) and in_shortcut(r)]
        info[name] = (branch, sc)
        if len(branch) < 2:
            short.append(f"{name} (m={len(branch)})")
    if short:
        raise ValueError(f"Fixup needs at least 2 weight layers per residual branch; blocks with fewer: {', '.join(short)}")
    L = len(sel)
    plan = Plan(model, "fixup", seed)
    # 1. structure: scalars in, normalization out
    layer_objs: dict[int, tuple[str, str]] = {}  # id(layer) -> (block, role tag)
    for name, blk in sel:
        branch, sc = info[name]
        m = len(branch)
        for k, rel in enumerate(branch):
            layer_objs[id(blk.get_submodule(rel))] = (name, "last" if k == m - 1 else f"branch:{m}")
        for rel in sc:
            layer_objs[id(blk.get_submodule(rel))] = (name, "shortcut")
        rc = resnet_convs(blk)
        if norm == "remove":
            norms = [r for r, mm in blk.named_modules() if r and is_norm(mm)]
            for r in norms:
                for pn, _ in blk.get_submodule(r).named_parameters():
                    plan.leave(f"{name}.{r}.{pn}", "normalization removed (norm='remove')")
        if rc is not None:
            shared = None
            for k, rel in enumerate(rc):
                bn_rel = rel.replace("conv", "bn")
                if add_scalars:
                    wrapped: Any = PreShift(blk.get_submodule(rel))
                    if k == 0:
                        shared = wrapped.bias_in
                    set_submodule(blk, rel, wrapped)
                last = k == len(rc) - 1
                if norm == "remove":
                    new = (ScaleShift() if last else Shift()) if add_scalars else tnn.Identity()
                    set_submodule(blk, bn_rel, new)
                elif add_scalars and last:
                    set_submodule(blk, bn_rel, tnn.Sequential(blk.get_submodule(bn_rel), ScaleShift()))
            for rel in sc:
                if add_scalars:
                    set_submodule(blk, rel, PreShift(blk.get_submodule(rel), shared))
            if norm == "remove":
                for r, mm in list(blk.named_modules()):
                    if r and in_shortcut(r) and is_norm(mm):
                        remove_norm(blk, r)
        else:
            if norm == "remove":
                for r, mm in list(blk.named_modules()):
                    if r and is_norm(mm):
                        remove_norm(blk, r)
            if add_scalars:
                for k, rel in enumerate(branch):
                    wrapped = PreShift(blk.get_submodule(rel))
                    if k == len(branch) - 1:
                        wrapped = ScaledOutput(wrapped, ScaleShift())
                    set_submodule(blk, rel, wrapped)
    # 2. values
    block_names = [n for n, _ in sel]
    layers = [(n, m) for n, m in model.named_modules() if is_weight_layer(m)]
    outside = [(n, m) for n, m in layers if not any(under(n, b) for b in block_names)]
    head = None
    if outside and outside[-1][0] == layers[-1][0] and isinstance(outside[-1][1], tnn.Linear):
        head = outside[-1][0]
    for qn, layer in layers:
        w = layer.weight
        tag = layer_objs.get(id(layer))
        if qn == head:
            plan.add(w, layer, "head", "classifier = 0", "constant", [("const", 0.0)], {"value": 0.0})
        elif tag is None or tag[1] == "shortcut":
            steps, params = _he_steps(tuple(w.shape), mode)
            rule = "shortcut projection: He, unscaled" if tag else "outside the residual branches: He"
            plan.add(w, layer, "weight", rule, "normal", steps, params)
        elif tag[1] == "last":
            plan.add(w, layer, "residual_out", "last layer of the branch = 0", "constant", [("const", 0.0)], {"value": 0.0})
        else:
            m = int(tag[1].split(":")[1])
            f = L ** (-1.0 / (2 * m - 2))
            steps, params = _he_steps(tuple(w.shape), mode, f)
            params.update({"L": L, "m": m})
            plan.add(w, layer, "weight", f"branch layer: He x L^(-1/(2m-2)) (L={L}, m={m})", "normal", steps, params)
        if getattr(layer, "bias", None) is not None:
            plan.add(layer.bias, layer, "bias", "bias = 0", "constant", [("const", 0.0)], {"value": 0.0})
    for qn, mm in model.named_modules():
        if isinstance(mm, PreShift):
            plan.add(mm.bias_in, mm, "scalar", "scalar bias before the layer = 0", "constant", [("const", 0.0)], {"value": 0.0})
        elif isinstance(mm, Shift):
            plan.add(mm.bias, mm, "scalar", "scalar bias before the activation = 0", "constant", [("const", 0.0)],
                     {"value": 0.0})
        elif isinstance(mm, ScaleShift):
            plan.add(mm.scale, mm, "scalar", "branch multiplier = 1", "constant", [("const", 1.0)], {"value": 1.0})
            plan.add(mm.bias, mm, "scalar", "scalar bias after the multiplier = 0", "constant", [("const", 0.0)],
                     {"value": 0.0})
    _leave_rest_torch(model, plan, "not part of Fixup's rule")
    return plan.execute()


# --------------------------------------------------------------------------------------------
# SkipInit / ReZero


def skipinit(model: Any, *, alpha: float = 0.0, blocks: Any = None, norm: str = "remove") -> Manifest:
    """SkipInit (De & Smith, NeurIPS 2020): ``x + alpha * f(x)`` with a learnable scalar per block.

    ``alpha`` is 0 or a small constant (the paper: ``alpha <~ 1/sqrt(d)`` for ``d`` blocks).
    ``initlab.nn``: each :class:`~initlab.nn.Residual`'s ``alpha``. torch ResNet blocks: the last
    norm becomes (``norm="remove"``) or is followed by (``"keep"``) a
    :class:`~initlab.schemes.torch_modules.Scale`; ``nn.TransformerEncoderLayer``/``DecoderLayer``:
    a ``Scale`` before each sub-layer's dropout (one per sub-layer); other blocks
    (``blocks=``): the branch's last weight layer is wrapped in ``ScaledOutput(layer, Scale)``.

    Parameters
    ----------
    model : initlab.nn.Module or torch.nn.Module
    alpha : float, default 0.0
    blocks : type, str or sequence, optional
    norm : {"remove", "keep"}, default "remove"
        SkipInit replaces normalization: ``"remove"`` takes norm layers out of the blocks.

    Returns
    -------
    Manifest
    """
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha):
        raise ValueError(f"alpha must be a finite number, got {alpha!r}")
    return _scalar_branch(model, "skipinit", float(alpha), check_blocks_arg(blocks), norm, shared_per_layer=False)


def rezero(model: Any, *, blocks: Any = None, norm: str = "remove") -> Manifest:
    """ReZero (Bachlechner et al. 2020): ``x + alpha * F(x)`` with ``alpha`` initialized to 0.

    As :func:`skipinit` with ``alpha=0``, except that a transformer layer has **one** ``alpha``
    shared by its attention and feed-forward sub-layers (the official ``RZTXEncoderLayer``'s
    ``resweight``), applied before dropout, and LayerNorm is removed (``norm="remove"``).
    """
    return _scalar_branch(model, "rezero", 0.0, check_blocks_arg(blocks), norm, shared_per_layer=True)


def _scalar_branch(model: Any, scheme: str, alpha: float, bl: list | None, norm: str, *, shared_per_layer: bool) -> Manifest:
    _check_norm(norm)
    plan = Plan(model, scheme, None)
    rule = f"residual multiplier alpha = {alpha:g}"
    if framework(model) == "nn":
        for name, blk in _nn_blocks(model, bl):
            if norm == "remove":
                _nn_remove_norms(name, blk, plan)
            plan.add(blk.alpha, blk, "scalar", rule, "constant", [("const", alpha)], {"value": alpha})
        _leave_rest_nn(model, plan, f"not part of {scheme}")
        return plan.execute()

    from torch import nn as tnn

    from ._torch_struct import is_norm, is_weight_layer, remove_norm, resnet_convs, transformer_layer_kind
    from .torch_modules import Scale, ScaledOutput

    sel = _torch_blocks(model, bl, transformer=True)
    scales = []
    for name, blk in sel:
        rc, tk = resnet_convs(blk), transformer_layer_kind(blk)
        if norm == "remove":
            for r, mm in list(blk.named_modules()):
                if r and is_norm(mm) and not in_shortcut(r):
                    for pn, _ in mm.named_parameters():
                        plan.leave(f"{name}.{r}.{pn}", "normalization removed (norm='remove')")
        if rc is not None:
            last_bn = rc[-1].replace("conv", "bn")
            if norm == "remove":
                for r in rc[:-1]:
                    set_submodule(blk, r.replace("conv", "bn"), tnn.Identity())
            s = Scale(alpha)
            set_submodule(blk, last_bn, s if norm == "remove" else tnn.Sequential(blk.get_submodule(last_bn), s))
            scales.append(s)
        elif tk is not None:
            drops = ["dropout1", "dropout2"] + (["dropout3"] if tk == "decoder" else [])
            shared = Scale(alpha)
            for d in drops:
                s = shared if shared_per_layer else Scale(alpha)
                set_submodule(blk, d, tnn.Sequential(s, blk.get_submodule(d)))
                if not shared_per_layer or d == drops[0]:
                    scales.append(s)
            if norm == "remove":
                for k in (1, 2, 3):
                    if isinstance(getattr(blk, f"norm{k}", None), tnn.Module):
                        remove_norm(blk, f"norm{k}")
        else:
            branch = [r for r, mm in blk.named_modules() if r and is_weight_layer(mm) and not in_shortcut(r)]
            if not branch:
                raise ValueError(f"block {name!r} has no weight layer to scale")
            if norm == "remove":
                for r, mm in list(blk.named_modules()):
                    if r and is_norm(mm) and not in_shortcut(r):
                        remove_norm(blk, r)
            s = Scale(alpha)
            set_submodule(blk, branch[-1], ScaledOutput(blk.get_submodule(branch[-1]), s))
            scales.append(s)
    for s in scales:
        plan.add(s.scale, s, "scalar", rule, "constant", [("const", alpha)], {"value": alpha})
    _leave_rest_torch(model, plan, f"not part of {scheme}")
    return plan.execute()


# --------------------------------------------------------------------------------------------
# zero-init residual


def zero_init_residual(model: Any, *, blocks: Any = None) -> Manifest:
    """Zero-init residual (Goyal et al. 2017; torchvision's ``zero_init_residual=True``).

    The scale (``weight``, gamma) of the **last** normalization layer of each residual branch is
    set to 0, so every block starts as its skip path. torch ResNet blocks: ``bn2`` (basic) or
    ``bn3`` (bottleneck); other blocks: the last norm outside the skip path.

    Raises
    ------
    ValueError
        Blocks without a normalization layer in their branch (all listed).
    """
    bl = check_blocks_arg(blocks)
    plan = Plan(model, "zero_init_residual", None)
    missing = []
    if framework(model) == "nn":
        nn = _nn_types()
        found = []
        for name, blk in _nn_blocks(model, bl):
            norms = [(r, m) for r, m in blk.branch.named_modules() if isinstance(m, (nn.LayerNorm, nn.BatchNorm))]
            if not norms or norms[-1][1].weight is None:
                missing.append(name)
            else:
                found.append(norms[-1][1])
        if missing:
            raise ValueError(f"zero_init_residual needs an affine normalization layer in each branch; none in: {', '.join(missing)}")
        for m in found:
            plan.add(m.weight, m, "norm_weight", "last norm of the branch: gamma = 0", "constant", [("const", 0.0)],
                     {"value": 0.0})
        _leave_rest_nn(model, plan, "not part of zero_init_residual")
        return plan.execute()

    from ._torch_struct import is_norm, resnet_convs

    found = []
    for name, blk in _torch_blocks(model, bl):
        rc = resnet_convs(blk)
        if rc is not None:
            m = blk.get_submodule(rc[-1].replace("conv", "bn"))
            cand = [m] if is_norm(m) else []
        else:
            cand = [mm for r, mm in blk.named_modules() if r and is_norm(mm) and not in_shortcut(r)][-1:]
        if not cand or getattr(cand[0], "weight", None) is None:
            missing.append(name)
        else:
            found.append(cand[0])
    if missing:
        raise ValueError(f"zero_init_residual needs an affine normalization layer in each branch; none in: {', '.join(missing)}")
    for m in found:
        plan.add(m.weight, m, "norm_weight", "last norm of the branch: gamma = 0", "constant", [("const", 0.0)],
                 {"value": 0.0})
    _leave_rest_torch(model, plan, "not part of zero_init_residual")
    return plan.execute()


# --------------------------------------------------------------------------------------------
# depth-scaled residual outputs


def _deepnet_constants(n_enc: int, n_dec: int) -> dict[str, tuple[float, float]]:
    """DeepNet (Wang et al. 2022, Table 1): (alpha, beta) per stack."""
    if n_enc and n_dec:
        a = 0.81 * (n_enc**4 * n_dec) ** (1 / 16)
        b = 0.87 * (n_enc**4 * n_dec) ** (-1 / 16)
        return {"encoder": (a, b), "decoder": ((3 * n_dec) ** 0.25, (12 * n_dec) ** -0.25)}
    n = n_enc or n_dec
    return {"encoder": ((2 * n) ** 0.25, (8 * n) ** -0.25), "decoder": ((2 * n) ** 0.25, (8 * n) ** -0.25)}


def scaled_residual(model: Any, *, rule: str = "gpt2", std: float = 0.02, n_layers: int | None = None,
                    seed: SeedLike = None) -> Manifest:
    """Depth-scaled initialization of residual output projections: GPT-2 or DeepNet.

    ``rule="gpt2"`` (Radford et al. 2019; nanoGPT/Megatron ``0.02/sqrt(2N)``): every residual
    output projection (attention output and MLP output: ``c_proj``, ``out_proj``, ``o_proj``,
    ``fc2``, ``down_proj``, ``linear2``, ``attention.output.dense``, ...; in ``initlab.nn`` the last
    weight layer of each ``Residual`` branch) gets ``N(0, std / sqrt(R))`` with ``R`` the number of
    residual branches, ``R = 2 * n_layers`` when given (two per transformer layer), otherwise the
    number of projections found. Only those weights are written (names are matched on the full
    qualified name, so ``h.0.attn.c_proj.weight`` is found).

    ``rule="deepnet"`` (Wang et al. 2022, DeepNorm for post-norm Transformers): Xavier normal with
    gain ``beta`` for value, output and MLP weights and gain 1 for query/key; biases 0.
    ``beta = (8N)^(-1/4)`` for an encoder or decoder stack of ``N`` layers, and the encoder-decoder
    constants ``0.87 (N^4 M)^(-1/16)`` / ``(12 M)^(-1/4)``. The forward multiplier
    ``alpha`` (``x * alpha + f(x)`` before the post-norm) is **not** something an init can set: it
    is recorded in each entry (``residual_alpha``) for the model's forward.

    Returns
    -------
    Manifest
    """
    if rule not in ("gpt2", "deepnet"):
        raise ValueError(f"rule must be 'gpt2' or 'deepnet', got {rule!r}")
    if isinstance(std, bool) or not isinstance(std, (int, float)) or not (std > 0 and math.isfinite(std)):
        raise ValueError(f"std must be a finite number > 0, got {std!r}")
    if n_layers is not None and (isinstance(n_layers, bool) or not isinstance(n_layers, (int, np.integer)) or n_layers < 1):
        raise ValueError(f"n_layers must be a positive int or None, got {n_layers!r}")
    plan = Plan(model, f"scaled_residual({rule})", seed)
    if framework(model) == "nn":
        blocks = _nn_blocks(model, None)
        R = 2 * int(n_layers) if n_layers else len(blocks)
        n = int(n_layers) if n_layers else len(blocks)
        alpha, beta = _deepnet_constants(n, 0)["encoder"]
        for name, blk in blocks:
            wl = _nn_weight_layers(blk.branch)
            for k, (_, layer) in enumerate(wl):
                if rule == "gpt2":
                    if k == len(wl) - 1:
                        s = std / math.sqrt(R)
                        plan.add(layer.weight, layer, "residual_out", f"std/sqrt(2N) (R={R})", "normal", [("normal", s)],
                                 {"std": s, "base_std": std, "R": R})
                else:
                    fi, fo = layer.weight.shape[1], layer.weight.shape[0]
                    s = beta * math.sqrt(2.0 / (fi + fo))
                    plan.add(layer.weight, layer, "weight", f"xavier_normal(gain=beta), beta=(8N)^(-1/4), N={n}", "normal",
                             [("normal", s)], {"std": s, "gain": beta, "fan_in": fi, "fan_out": fo, "residual_alpha": alpha})
                    if layer.bias is not None:
                        plan.add(layer.bias, layer, "bias", "bias = 0", "constant", [("const", 0.0)], {"value": 0.0})
        _leave_rest_nn(model, plan, "not a residual output projection")
        return plan.execute()
    return _scaled_residual_torch(model, plan, rule, std, n_layers)


def _scaled_residual_torch(model: Any, plan: Plan, rule: str, std: float, n_layers: int | None) -> Manifest:
    from ._torch_struct import fans, is_weight_layer, layer_kind, projection_kind

    layers = [(n, m) for n, m in model.named_modules() if is_weight_layer(m) or type(m).__name__ == "MultiheadAttention"]
    if rule == "gpt2":
        outs = [(n, m) for n, m in layers if is_weight_layer(m) and projection_kind(n) in ("att_out", "mlp_out")]
        if not outs:
            raise ValueError("scaled_residual found no residual output projection (c_proj, out_proj, o_proj, fc2, down_proj, "
                             "linear2, attention.output.dense, ...)")
        R = 2 * int(n_layers) if n_layers else len(outs)
        s = std / math.sqrt(R)
        for n, m in outs:
            plan.add(m.weight, m, "residual_out", f"std/sqrt(2N) (R={R} residual branches)", "normal", [("normal", s)],
                     {"std": s, "base_std": std, "R": R})
        _leave_rest_torch(model, plan, "not a residual output projection")
        return plan.execute()

    # DeepNet
    found: list[tuple[str, str]] = []
    for n, m in model.named_modules():
        k = layer_kind(n, m)
        if k is not None and not any(under(n, p) for p, _ in found):
            found.append((n, k))
    enc = [n for n, k in found if k == "encoder"]
    dec = [n for n, k in found if k == "decoder"]
    if not enc and not dec:
        raise ValueError("scaled_residual(rule='deepnet') found no transformer layer (nn.TransformerEncoderLayer/DecoderLayer, "
                         "or a module whose class name ends in Layer/Block with attention projections)")
    ne, nd = len(enc), len(dec)
    if n_layers and not (ne and nd):  # one stack: n_layers overrides its count
        ne, nd = (int(n_layers), 0) if ne else (0, int(n_layers))
    consts = _deepnet_constants(ne, nd)
    layer_names = [(n, "encoder") for n in enc] + [(n, "decoder") for n in dec]
    for ln, kind in layer_names:
        alpha, beta = consts[kind]
        layer = model.get_submodule(ln)
        for rel, m in layer.named_modules():
            if type(m).__name__ == "MultiheadAttention" and getattr(m, "in_proj_weight", None) is not None:
                d = m.embed_dim
                xb = math.sqrt(6.0 / (2 * d))
                plan.add(m.in_proj_weight, m, "attention_qkv", f"packed q,k (gain 1), v (gain beta={beta:.6g})", "uniform_rows",
                         [("rows_uniform", [(0, 2 * d, xb), (2 * d, 3 * d, beta * xb)])],
                         {"bound_qk": xb, "bound_v": beta * xb, "gain_v": beta, "residual_alpha": alpha})
                if m.in_proj_bias is not None:
                    plan.add(m.in_proj_bias, m, "bias", "bias = 0", "constant", [("const", 0.0)], {"value": 0.0})
                continue
            if not is_weight_layer(m):
                continue
            pk = projection_kind(rel)
            fi, fo = fans(m, m.weight)
            g = beta if pk in ("v", "att_out", "mlp_in", "mlp_out") else 1.0
            s = g * math.sqrt(2.0 / (fi + fo))
            plan.add(m.weight, m, "weight", f"xavier_normal(gain={'beta' if g != 1.0 else '1'}) [{pk or 'other'}]",
                     "normal", [("normal", s)], {"std": s, "gain": g, "fan_in": fi, "fan_out": fo, "residual_alpha": alpha})
            if getattr(m, "bias", None) is not None:
                plan.add(m.bias, m, "bias", "bias = 0", "constant", [("const", 0.0)], {"value": 0.0})
    _leave_rest_torch(model, plan, "outside the transformer layers")
    return plan.execute()
