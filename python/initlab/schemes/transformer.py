"""T-Fixup (Huang, Perez, Ba, Volkovs, ICML 2020): training Transformers without LayerNorm and warmup."""

from __future__ import annotations

import fnmatch
import math
from typing import Any

from ..generator import SeedLike
from ..manifest import Manifest
from ._common import Plan, check_blocks_arg, framework, under

__all__ = ["t_fixup"]


def t_fixup(model: Any, *, seed: SeedLike = None, blocks: Any = None, decoder_blocks: Any = None,
            projections: dict[str, Any] | None = None, norm: str = "remove") -> Manifest:
    """T-Fixup initialization of an encoder/decoder Transformer, in place (torch models).

    With ``N_e`` encoder and ``N_d`` decoder layers and model width ``d``:

    1. Xavier uniform for every weight of the transformer layers (each of a packed q/k/v
       projection's three ``d x d`` blocks on its own fans), biases 0; input embeddings
       ``N(0, d^(-1/2))`` (``std = embedding_dim ** -0.5``, padding row 0);
    2. decoder: the value and output projections of every attention block (self and cross), both
       MLP weight matrices, and the input embeddings scaled by ``(9 N_d)^(-1/4)``;
    3. encoder: the value and output projections and both MLP weight matrices scaled by
       ``0.67 N_e^(-1/4)``; query/key projections are not scaled.

    Embeddings whose name contains ``encoder`` are scaled by ``(9 N_e)^(-1/4)`` and those with
    ``decoder`` by ``(9 N_d)^(-1/4)`` (fairseq's code); a shared one by ``(9 N_d)^(-1/4)``, or
    ``(9 N_e)^(-1/4)`` without a decoder. Unlike fairseq, q/k/v are Xavier with gain 1 on their own
    ``d x d`` fans, so the value projection needs no extra ``sqrt(2)``.

    Layers are ``nn.TransformerEncoderLayer``/``DecoderLayer``, Hugging Face blocks (class name
    ending in ``Layer``/``Block`` with attention sub-modules; a decoder if its class name says so
    or it has cross-attention), or the modules named by ``blocks=`` (encoder) and
    ``decoder_blocks=``. Projections are recognized by their conventional names (``v_proj``,
    ``value``, ``out_proj``, ``o_proj``, ``attention.output.dense``, ``c_attn``/``in_proj`` packed,
    ``fc1``/``fc2``, ``linear1``/``linear2``, ``intermediate.dense``/``output.dense``, ``c_fc``/
    ``mlp.c_proj``, ...) or by ``projections=``.

    Parameters
    ----------
    model : torch.nn.Module
    seed : int, initlab.Generator or None
    blocks, decoder_blocks : type, str or sequence, optional
        Encoder / decoder layers (module types or qualified-name globs) where not recognized.
    projections : dict, optional
        ``{"v": globs, "out": globs, "mlp": globs}`` relative to a layer (e.g.
        ``{"v": "attn.to_v", "out": "attn.to_out", "mlp": ["ff.0", "ff.2"]}``); replaces the name
        conventions for the kinds given.
    norm : {"remove", "keep"}, default "remove"
        T-Fixup trains without LayerNorm: ``"remove"`` replaces the layers' norms by ``Identity``.

    Returns
    -------
    Manifest
        Each weight with its Xavier bound, the scale factor and the formula.
    """
    if framework(model) != "torch":
        raise TypeError("t_fixup initializes torch Transformers (initlab.nn has no attention layers)")
    if norm not in ("remove", "keep"):
        raise ValueError(f"norm must be 'remove' or 'keep', got {norm!r}")
    enc_sel, dec_sel = check_blocks_arg(blocks), check_blocks_arg(decoder_blocks)
    proj = _check_projections(projections)
    from torch import nn

    from ._torch_struct import (fans, is_hf_conv1d, is_norm, is_weight_layer, layer_kind, layer_weight_shape_out_in,
                                projection_kind, remove_norm)

    layers: list[tuple[str, str]] = []
    for n, m in model.named_modules():
        if any(under(n, p) for p, _ in layers):
            continue
        k = None
        if enc_sel is not None or dec_sel is not None:
            if dec_sel is not None and _hit(n, m, dec_sel):
                k = "decoder"
            elif enc_sel is not None and _hit(n, m, enc_sel):
                k = "encoder"
        else:
            k = layer_kind(n, m) if n else None
        if k:
            layers.append((n, k))
    if not layers:
        raise ValueError("t_fixup found no transformer layer; name them with blocks= (encoder) / decoder_blocks=")
    n_e = sum(k == "encoder" for _, k in layers)
    n_d = sum(k == "decoder" for _, k in layers)
    f_enc = 0.67 * n_e ** -0.25 if n_e else 1.0
    f_dec = (9 * n_d) ** -0.25 if n_d else 1.0
    plan = Plan(model, "t_fixup", seed)
    if norm == "remove":
        for ln, _ in layers:
            lay = model.get_submodule(ln)
            for r, mm in list(lay.named_modules()):
                if r and is_norm(mm):
                    for pn, _ in mm.named_parameters():
                        plan.leave(f"{ln}.{r}.{pn}", "LayerNorm removed (norm='remove')")
                    remove_norm(lay, r)

    def kind_of(rel: str, mod: Any) -> str | None:
        for k, globs in proj.items():
            if any(fnmatch.fnmatchcase(rel, g) for g in globs):
                return {"out": "att_out", "mlp": "mlp_in"}.get(k, k)
        pk = projection_kind(rel)
        if pk in ("v", "att_out", "mlp_in", "mlp_out", "qkv", "q", "k") and proj:
            # a kind the user named replaces the convention for that kind
            named = {"v": "v", "att_out": "out", "mlp_in": "mlp", "mlp_out": "mlp"}.get(pk)
            if named in proj:
                return "other"
        return pk

    for ln, lk in layers:
        lay = model.get_submodule(ln)
        f = f_dec if lk == "decoder" else f_enc
        formula = f"(9 N_d)^(-1/4), N_d={n_d}" if lk == "decoder" else f"0.67 N_e^(-1/4), N_e={n_e}"
        for rel, mod in lay.named_modules():
            if type(mod).__name__ == "MultiheadAttention" and getattr(mod, "in_proj_weight", None) is not None:
                d = mod.embed_dim
                b = math.sqrt(6.0 / (2 * d))
                plan.add(mod.in_proj_weight, mod, "attention_qkv", f"packed q,k: xavier; v: xavier x {formula}",
                         "uniform_rows", [("rows_uniform", [(0, d, b), (d, 2 * d, b), (2 * d, 3 * d, b * f)])],
                         {"bound_qk": b, "bound_v": b * f, "scale_v": f})
                if mod.in_proj_bias is not None:
                    plan.add(mod.in_proj_bias, mod, "bias", "bias = 0", "constant", [("const", 0.0)], {"value": 0.0})
                continue
            if not is_weight_layer(mod):
                continue
            w = mod.weight
            pk = kind_of(rel, mod)
            if pk == "qkv":
                out, inn = layer_weight_shape_out_in(mod, w)
                d = out // 3
                b = math.sqrt(6.0 / (2 * d)) if out == 3 * inn else math.sqrt(6.0 / (inn + d))
                blocks_ = [(0, d, b), (d, 2 * d, b), (2 * d, 3 * d, b * f)]
                step = "cols_uniform" if is_hf_conv1d(mod) else "rows_uniform"
                plan.add(w, mod, "attention_qkv", f"packed q,k: xavier; v: xavier x {formula}", "uniform_blocks",
                         [(step, blocks_)], {"bound_qk": b, "bound_v": b * f, "scale_v": f})
            else:
                fi, fo = fans(mod, w)
                b = math.sqrt(6.0 / (fi + fo))
                scaled = pk in ("v", "att_out", "mlp_in", "mlp_out")
                role = {"v": "attention_qkv", "q": "attention_qkv", "k": "attention_qkv", "att_out": "attention_out",
                        "mlp_in": "mlp_in", "mlp_out": "mlp_out"}.get(pk or "", "weight")
                if scaled:
                    plan.add(w, mod, role, f"xavier x {formula} [{pk}]", "uniform", [("uniform", b * f)],
                             {"bound": b * f, "xavier_bound": b, "scale": f, "fan_in": fi, "fan_out": fo})
                else:
                    plan.add(w, mod, role, f"xavier [{pk or 'other'}]", "uniform", [("uniform", b)],
                             {"bound": b, "fan_in": fi, "fan_out": fo})
            if getattr(mod, "bias", None) is not None:
                plan.add(mod.bias, mod, "bias", "bias = 0", "constant", [("const", 0.0)], {"value": 0.0})

    for n, m in model.named_modules():
        if not isinstance(m, nn.Embedding) or any(under(n, ln) for ln, _ in layers):
            continue
        d = m.embedding_dim
        low = n.lower()
        if "decoder" in low or ("encoder" not in low and n_d):
            f, why = (9 * max(n_d, 1)) ** -0.25, f"(9 N_d)^(-1/4), N_d={n_d}"
        else:
            f, why = (9 * max(n_e, 1)) ** -0.25, f"(9 N_e)^(-1/4), N_e={n_e}"
        std = d ** -0.5 * f
        steps: list = [("normal", std)]
        if m.padding_idx is not None:
            pad = int(m.padding_idx)
            steps.append(("fn", lambda t, g, pad=pad: t[pad].zero_()))
        plan.add(m.weight, m, "embedding", f"N(0, d^-1/2) x {why}", "normal", steps,
                 {"std": std, "base_std": d ** -0.5, "scale": f, "padding_idx": m.padding_idx})
    seen = {x.name for x in plan.left}
    for n, p in model.named_parameters():
        if p not in plan and n not in seen:
            plan.leave(n, "outside the transformer layers and not an embedding")
    return plan.execute()


def _hit(name: str, mod: Any, sel: list) -> bool:
    return any((isinstance(b, type) and isinstance(mod, b)) or (isinstance(b, str) and fnmatch.fnmatchcase(name, b))
               for b in sel)


def _check_projections(projections: Any) -> dict[str, list[str]]:
    if projections is None:
        return {}
    if not isinstance(projections, dict):
        raise TypeError(f"projections must be a dict {{'v'|'out'|'mlp': globs}}, got {type(projections).__name__}")
    bad = [k for k in projections if k not in ("v", "out", "mlp")]
    if bad:
        raise ValueError(f"projections keys must be 'v', 'out' or 'mlp'; got {bad}")
    out = {}
    for k, v in projections.items():
        globs = [v] if isinstance(v, str) else list(v)
        if not globs or not all(isinstance(g, str) for g in globs):
            raise TypeError(f"projections[{k!r}] must be a glob or a list of globs, got {v!r}")
        out[k] = globs
    return out
