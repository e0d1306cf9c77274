"""Issue 18's acceptance matrix: every model, the library's own init, materialize, LSUV, diagnose.

For each model (tiny Hugging Face configs; the rebuilt timm/torchvision structures of
``tests/_zoo.py``) it measures:

* ``recipe``: parameters whose values after ``init_module(model, recipe)`` differ from the
  library's own init — HF: against a fresh construction (a value the library computes
  deterministically must be equal bit for bit; a random one must have the same mean and std
  within 6 standard errors of the sample); zoo: the manifest's fill against what the library's
  code wrote (kind and numbers);
* ``own``: the same for ``recipe="own"`` (``factory=`` for the zoo models);
* ``materialize``: meta + ``materialize`` equals ``init_module`` on the eager model, bit for bit;
* ``lsuv``: the range of LSUV's final output variances (target 1, tolerance 0.1);
* ``diagnose``: findings on the healthy model (own init), and whether a middle layer whose weight
  is multiplied by 1e-4 is named.

Run: ``python tools/model_matrix.py [name ...]`` (prints a Markdown table; ~2 minutes).
"""

from __future__ import annotations

import math
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import initlab.torch as itorch  # noqa: E402

warnings.simplefilter("ignore")


def _hf_models() -> dict[str, tuple[Callable[[], nn.Module], Callable[[], Any]]]:
    import transformers as tr

    tr.logging.set_verbosity_error()
    ids = lambda v=64: {"input_ids": torch.randint(0, v, (2, 12), generator=torch.Generator().manual_seed(0))}  # noqa: E731
    small = dict(num_hidden_layers=2, hidden_size=32, intermediate_size=64, num_attention_heads=2, vocab_size=64)
    whisper = tr.WhisperConfig(d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
                               decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, num_mel_bins=8,
                               max_source_positions=16, max_target_positions=16, vocab_size=64, pad_token_id=1,
                               bos_token_id=2, eos_token_id=2, decoder_start_token_id=3)
    return {
        "hf_gpt2": (lambda: tr.GPT2LMHeadModel(tr.GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=64,
                                                             n_positions=16)), ids),
        "hf_llama": (lambda: tr.LlamaForCausalLM(tr.LlamaConfig(num_key_value_heads=1, **small)), ids),
        "hf_bert": (lambda: tr.BertModel(tr.BertConfig(**small)), ids),
        "hf_vit": (lambda: tr.ViTModel(tr.ViTConfig(num_hidden_layers=2, hidden_size=32, intermediate_size=64,
                                                    num_attention_heads=2, image_size=16, patch_size=4)),
                   lambda: {"pixel_values": torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))}),
        "hf_deberta_v2": (lambda: tr.DebertaV2Model(tr.DebertaV2Config(**small)), ids),
        "hf_whisper": (lambda: tr.WhisperModel(whisper),
                       lambda: {"input_features": torch.randn(2, 8, 32, generator=torch.Generator().manual_seed(0)),
                                "decoder_input_ids": torch.randint(0, 64, (2, 6), generator=torch.Generator().manual_seed(1))}),
        "hf_mamba": (lambda: tr.MambaModel(tr.MambaConfig(hidden_size=32, num_hidden_layers=2, vocab_size=64,
                                                          state_size=4, expand=2)), ids),
        "hf_gemma": (lambda: tr.GemmaForCausalLM(tr.GemmaConfig(num_key_value_heads=1, head_dim=16, **small)), ids),
        "hf_mistral": (lambda: tr.MistralForCausalLM(tr.MistralConfig(num_key_value_heads=1, **small)), ids),
        "hf_qwen2": (lambda: tr.Qwen2ForCausalLM(tr.Qwen2Config(num_key_value_heads=1, **small)), ids),
        "hf_gpt_neox": (lambda: tr.GPTNeoXForCausalLM(tr.GPTNeoXConfig(**small)), ids),
        "hf_t5": (lambda: tr.T5ForConditionalGeneration(tr.T5Config(num_layers=2, d_model=32, d_ff=64, num_heads=2,
                                                                    d_kv=16, vocab_size=64)),
                  lambda: {**ids(), "decoder_input_ids": torch.randint(0, 64, (2, 6), generator=torch.Generator().manual_seed(1))}),
        "hf_clip": (lambda: tr.CLIPModel(tr.CLIPConfig(
            text_config=dict(num_hidden_layers=2, hidden_size=32, intermediate_size=64, num_attention_heads=2, vocab_size=64),
            vision_config=dict(num_hidden_layers=2, hidden_size=32, intermediate_size=64, num_attention_heads=2,
                               image_size=16, patch_size=4), projection_dim=16)),
                    lambda: {**ids(), "pixel_values": torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))}),
        "hf_mixtral": (lambda: tr.MixtralForCausalLM(tr.MixtralConfig(num_key_value_heads=1, num_local_experts=4,
                                                                      num_experts_per_tok=2, **small)), ids),
    }


def _distribution_off(mine: torch.Tensor, lib: torch.Tensor, lib2: torch.Tensor) -> bool:
    """Whether ``mine`` differs from the library's value ``lib`` (``lib2``: another construction)."""
    a, b, c = mine.detach().double().flatten(), lib.detach().double().flatten(), lib2.detach().double().flatten()
    if torch.equal(b, c):  # deterministic in the library: exact
        return not torch.equal(a, b)
    n = a.numel()
    if n < 8:
        return False  # too few values to judge a distribution
    sd = float(b.std())
    if abs(float(a.mean()) - float(b.mean())) > 6 * sd * math.sqrt(2.0 / n):
        return True
    return abs(float(a.std()) / sd - 1) > 6 * math.sqrt(1.0 / n) + 0.05 if sd > 0 else float(a.std()) != 0


def _hf_off(make: Callable[[], nn.Module], recipe: str, **opts: Any) -> tuple[int, list[str]]:
    torch.manual_seed(1)
    lib = make()
    torch.manual_seed(2)
    lib2 = make()
    mine = make()
    itorch.init_module(mine, recipe, seed=0, **opts)
    p2 = dict(lib2.named_parameters())
    off = [n for (n, p), (_, q) in zip(mine.named_parameters(), lib.named_parameters())
           if _distribution_off(p, q, p2[n])]
    return len(off), off


def _zoo_off(entry: Any, recipe: str, **opts: Any) -> tuple[int, list[str]]:
    model = entry.build()
    spec = entry.library_init(model)
    try:
        man = itorch.plan(model, recipe, seed=0, **opts)
    except Exception as e:  # noqa: BLE001 - reported in the table
        return len(spec), [f"error: {e}"[:120]]
    off = []
    for e in man.entries:
        kind, params = spec[e.name]
        if e.init != kind or not all(math.isclose(e.params.get(k, math.nan), v, rel_tol=1e-6, abs_tol=1e-12)
                                     for k, v in params.items()):
            off.append(e.name)
    # A parameter the recipe keeps holds what the library's constructor gave it (the model was
    # built by the library): not a difference. ``init_module`` on a model that was changed since
    # would leave such a parameter as it is; the manifest lists it.
    return len(off), off


def _materialize_ok(make: Callable[[], nn.Module], recipe: str, factory: Any = None) -> bool:
    eager = make()
    itorch.init_module(eager, recipe, seed=5)
    with torch.device("meta"):
        meta = make()
    itorch.materialize(meta, recipe, seed=5, factory=factory)
    return all(torch.equal(p.detach().contiguous().reshape(-1).view(torch.uint8),
                           q.detach().contiguous().reshape(-1).view(torch.uint8))
               for (_, p), (_, q) in zip(meta.named_parameters(), eager.named_parameters()))


def _analyze(model: nn.Module, x: Any) -> Any:
    try:
        return itorch.analyze(model, x)
    except ValueError as e:  # an encoder / backbone without logits: its last hidden state
        if "no tensor entry 'logits'" not in str(e):
            raise
        key = "logits_per_image" if "logits_per_image" in str(e) else "last_hidden_state"
        return itorch.analyze(model, x, output=key)


def _diagnose(model: nn.Module, x: Any) -> tuple[list[str], str]:
    tr = _analyze(model, x)
    healthy = [f.kind + "@" + str(f.layer) for f in tr.diagnose()]
    # a middle layer of the trace that owns a weight tensor
    names = [lay.name for lay in tr.layers
             if isinstance(getattr(model.get_submodule(lay.name), "weight", None), torch.Tensor)]
    target = names[len(names) // 2] if names else ""
    if not target:
        return healthy, "no layer"
    w = model.get_submodule(target).weight
    w0 = w.detach().clone()
    with torch.no_grad():
        w.mul_(1e-4)
    try:
        found = _analyze(model, x).diagnose()
    finally:
        with torch.no_grad():
            w.copy_(w0)
    named = any(str(f.layer) == target for f in found)
    return healthy, f"{'named' if named else 'MISSED'} {target}" + ("" if named else f" ({[str(f) for f in found][:2]})")


def _lsuv(model: nn.Module, x: Any) -> str:
    rep = itorch.lsuv(model, x, seed=0)
    v = [lay.var_after for lay in rep.layers if math.isfinite(lay.var_after)]
    return f"{min(v):.2f}-{max(v):.2f} ({len(v)})" if v else "no layer"


def main(argv: list[str]) -> None:
    from _zoo import ZOO

    rows = []
    hf = _hf_models()
    todo = argv or (list(hf) + sorted(ZOO))
    for name in todo:
        t0 = time.perf_counter()
        row: dict[str, Any] = {"model": name}
        try:
            if name in hf:
                make, inputs = hf[name]
                row["recipe"] = _hf_off(make, "hf")
                row["own"] = _hf_off(make, "own")
                row["materialize"] = _materialize_ok(make, "hf")
                m = make()
                itorch.init_module(m, "own", seed=0)
                x = inputs()
            else:
                entry = ZOO[name]
                lib = "timm" if name.startswith("timm_") else "torchvision"

                def factory(entry: Any = entry) -> nn.Module:
                    m = entry.build()
                    entry.library_init(m)
                    return m

                row["recipe"] = _zoo_off(entry, lib)
                row["own"] = _zoo_off(entry, "own", factory=factory)
                # buffers computed at construction (relative position indices) come from factory=
                row["materialize"] = _materialize_ok(entry.build, lib, factory=entry.build)
                m = factory()
                x = entry.example_input()
            row["diagnose"] = _diagnose(m, x)
            row["lsuv"] = _lsuv(factory() if name not in hf else make(), x)
        except Exception as e:  # noqa: BLE001 - reported in the table
            row["error"] = f"{type(e).__name__}: {e}"[:160]
        row["s"] = time.perf_counter() - t0
        rows.append(row)
        print(_line(row), flush=True)


def _line(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"| {r['model']} | ERROR {r['error']} |"
    rec, own = r["recipe"], r["own"]
    healthy, broken = r["diagnose"]
    return (f"| {r['model']} | {rec[0]} {rec[1][:2] if rec[0] else ''} | {own[0]} {own[1][:2] if own[0] else ''} | "
            f"{'equal' if r['materialize'] else 'DIFFERS'} | {r['lsuv']} | "
            f"{'silent' if not healthy else healthy[:2]} | {broken} | {r['s']:.1f} s |")


if __name__ == "__main__":
    print("| model | recipe: tensors off | own: tensors off | materialize vs eager | LSUV var after (layers) "
          "| diagnose healthy | diagnose x1e-4 | time |")
    print("|---|---|---|---|---|---|---|---|")
    main(sys.argv[1:])
