"""One look for initlab's figures (demo, evaluate): colours by init family, labelled axes."""

from __future__ import annotations

from typing import Any

# The same init gets the same colour in every figure.
_FAMILY = (
    ("lsuv", "#d62728"),
    ("kaiming", "#ff7f0e"),
    ("he", "#ff7f0e"),
    ("xavier", "#1f77b4"),
    ("glorot", "#1f77b4"),
    ("orthogonal", "#2ca02c"),
    ("lecun", "#8c564b"),
    ("auto", "#9467bd"),
    ("default", "#7f7f7f"),
)
_CYCLE = ("#17becf", "#bcbd22", "#e377c2", "#7f7f7f", "#9467bd", "#8c564b", "#000000")


def color_for(label: str, index: int = 0) -> str:
    """Colour of an init, by family name in its label (other labels cycle through a palette)."""
    low = label.lower()
    for key, col in _FAMILY:
        if low.startswith(key) or f" {key}" in low or f"({key}" in low:
            return col
    return _CYCLE[index % len(_CYCLE)]


def new_figure(n_panels: int, *, width: float, height: float, bottom: float = 0.1) -> tuple[Any, list[Any]]:
    """A figure with ``n_panels`` axes in a row (no pyplot state).

    Fixed margins instead of constrained layout: the figures have a known shape, and the layout
    engine costs as much CPU time as drawing them.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(left=0.055, right=0.99, top=0.87, bottom=bottom, wspace=0.26)
    axes = fig.subplots(1, n_panels)
    return fig, list(axes) if n_panels > 1 else [axes]


def finish_axes(ax: Any, xlabel: str | None, ylabel: str | None, title: str | None) -> None:
    """Labels, title and a light grid."""
    if xlabel:
        ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.grid(True, which="minor", alpha=0.1)
