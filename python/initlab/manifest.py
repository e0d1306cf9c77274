"""The record of what a whole-model initialization did: :class:`Manifest`.

One :class:`Entry` per parameter that was (or, for a dry run, would be) written, and one
:class:`LeftAlone` per parameter or buffer that was not, with the reason. Framework-neutral:
``initlab.torch`` (recipes, ``materialize``) and ``initlab.schemes`` produce the same object,
so a user can check a model's initialization line by line against a paper or a library's
convention.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator

__all__ = ["Entry", "LeftAlone", "Manifest"]


def _num(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


@dataclass(frozen=True)
class Entry:
    """One parameter written by an initialization.

    Attributes
    ----------
    name : str
        Qualified name relative to the root model (``"h.0.attn.c_attn.weight"``).
    shape : tuple of int
        The parameter's (global) shape.
    dtype : str
        ``"float32"``, ``"bfloat16"``, ...
    module : str
        Type name of the module that owns it.
    role : str or None
        Its role (``"weight"``, ``"bias"``, ``"embedding"``, ``"norm_weight"``, ``"scalar"``, ...).
    rule : str
        What matched: the recipe and rule that decided (``"hf: linear weight"``).
    init : str
        The initializer (``"normal"``, ``"trunc_normal"``, ``"constant"``, ``"orthogonal"``,
        ``"callable"``, ...).
    params : dict
        Its resolved numbers: ``std``/``mean``/``a``/``b`` or ``bound``, ``fan_in``/``fan_out``,
        ``gain``, ``value``, ``scale``, whatever applies.
    stream : int or None
        The Philox stream the values were drawn from (``None`` for deterministic fills).
    tied : tuple of str
        Other names of the same tensor (filled once, under ``name``).
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    module: str
    role: str | None
    rule: str
    init: str
    params: dict[str, Any] = field(default_factory=dict)
    stream: int | None = None
    tied: tuple[str, ...] = ()

    def describe(self) -> str:
        """The initializer and its numbers in one short string (``"normal(std=0.02)"``)."""
        inner = ", ".join(f"{k}={_num(v)}" for k, v in self.params.items())
        return f"{self.init}({inner})"

    def __str__(self) -> str:
        return f"{self.name} {tuple(self.shape)} {self.dtype}: {self.describe()}  [{self.rule}]"


@dataclass(frozen=True)
class LeftAlone:
    """A parameter or buffer the initialization did not write, and why.

    Attributes
    ----------
    name : str
        Qualified name.
    kind : str
        ``"parameter"`` or ``"buffer"``.
    reason : str
        Why it was left as it is (``"rule 'keep'"``, ``"no rule (unknown='skip')"``,
        ``"not selected by only="``, ...).
    """

    name: str
    kind: str
    reason: str

    def __str__(self) -> str:
        return f"{self.name} ({self.kind}): {self.reason}"


class Manifest:
    """What an initialization did (or, from a dry run, will do) to each parameter.

    Iterating gives the :class:`Entry` objects in model order; ``manifest[name]`` looks one
    up by qualified name (also by a tied alias), or gives the :class:`LeftAlone` record of a
    parameter or buffer that was not written. ``left_alone`` lists what was not written.

    Parameters
    ----------
    entries : iterable of Entry
    left_alone : iterable of LeftAlone
    recipe : str
        The recipe's name (or ``"custom"`` for a list of rules, or the scheme's name).
    seed : object
        The seed as given (an int, ``None`` or a description of a Generator).
    """

    def __init__(self, entries=(), left_alone=(), *, recipe: str = "", seed: Any = None) -> None:
        self.entries: list[Entry] = list(entries)
        self.left_alone: list[LeftAlone] = list(left_alone)
        self.recipe = recipe
        self.seed = seed
        #: an optional report attached by the producer (``recipe="auto"``: the validation Trace)
        self.validation: Any = None
        #: what a data-driven correction did after the fills (``recipe="auto"`` with an example
        #: input: the method, its target and each corrected layer's scale), or None
        self.correction: dict[str, Any] | None = None
        #: True for a dry run (``initlab.torch.plan``): the table says "would be written"
        self.dry_run = False
        self._index: dict[str, Entry] = {}
        for e in self.entries:
            self._index[e.name] = e
            for alias in e.tied:
                self._index.setdefault(alias, e)

    # --- container protocol -------------------------------------------------
    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __getitem__(self, name: str) -> Entry | LeftAlone:
        """The :class:`Entry` of a written parameter (also by a tied alias), or, for a parameter
        or buffer the initialization left alone, its :class:`LeftAlone` record (``.reason`` says
        why). ``name in manifest`` and iteration cover the written entries only."""
        try:
            return self._index[name]
        except KeyError:
            pass
        for x in self.left_alone:
            if x.name == name:
                return x
        raise KeyError(f"no manifest entry for {name!r}: neither written nor listed as left alone") from None

    def names(self) -> list[str]:
        """Qualified names of the written parameters, in order."""
        return [e.name for e in self.entries]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Manifest):
            return NotImplemented
        return self.entries == other.entries and self.left_alone == other.left_alone

    # --- output -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict: ``recipe``, ``seed``, ``entries``, ``left_alone``."""
        seed = self.seed if isinstance(self.seed, (int, type(None))) else repr(self.seed)
        out: dict[str, Any] = {
            "recipe": self.recipe,
            "seed": seed,
            "entries": [dict(asdict(e), shape=list(e.shape), tied=list(e.tied)) for e in self.entries],
            "left_alone": [asdict(x) for x in self.left_alone],
        }
        if self.correction is not None:
            out["correction"] = self.correction
        return out

    def to_json(self, **kwargs: Any) -> str:
        """:meth:`to_dict` as a JSON string (``kwargs`` go to :func:`json.dumps`)."""
        return json.dumps(self.to_dict(), default=str, **kwargs)

    def _rows(self) -> list[tuple[str, ...]]:
        return [(e.name + (f" (= {', '.join(e.tied)})" if e.tied else ""), "x".join(map(str, e.shape)) or "()",
                 e.dtype, e.module, e.role or "-", e.describe(), e.rule) for e in self.entries]

    _HEAD = ("parameter", "shape", "dtype", "module", "role", "init", "rule")

    def table(self) -> str:
        """A fixed-width text table: one line per written parameter, then what was left alone."""
        rows = [self._HEAD] + self._rows()
        widths = [max(len(r[i]) for r in rows) for i in range(len(self._HEAD))]
        verb = "would be written (dry run)" if self.dry_run else "written"
        lines = [f"Manifest: recipe {self.recipe!r}, seed {self.seed!r}, {len(self.entries)} parameters {verb}, "
                 f"{len(self.left_alone)} left alone"]
        for k, r in enumerate(rows):
            lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
            if k == 0:
                lines.append("  ".join("-" * w for w in widths))
        if self.left_alone:
            lines.append("left alone:")
            lines.extend(f"  {x}" for x in self.left_alone)
        if self.correction is not None:
            c = self.correction
            lines.append(f"correction: {c.get('method')} on the example input"
                         + (f", target variance {c['target_var']:g}" if c.get("applied") else
                            f" failed ({c.get('error')}); the scheme's values were kept"))
            for name, r in c.get("layers", {}).items():
                lines.append(f"  {name}: x{r['scale']:.4g} (variance {r['var_before']:.4g} -> {r['var_after']:.4g})")
        if self.validation is not None:
            lines.append("validation:")
            lines.extend(f"  {line}" for line in str(self.validation).splitlines())
        return "\n".join(lines)

    def to_markdown(self) -> str:
        """The table as GitHub-flavoured Markdown (written parameters, then what was left alone)."""
        esc = lambda s: s.replace("|", "\\|")  # noqa: E731
        lines = ["| " + " | ".join(self._HEAD) + " |", "|" + "---|" * len(self._HEAD)]
        lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in self._rows()]
        if self.left_alone:
            lines += ["", "| left alone | kind | reason |", "|---|---|---|"]
            lines += [f"| {esc(x.name)} | {x.kind} | {esc(x.reason)} |" for x in self.left_alone]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        return (f"Manifest(recipe={self.recipe!r}, {len(self.entries)} written, "
                f"{len(self.left_alone)} left alone)")
