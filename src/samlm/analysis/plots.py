"""PNG plots of the loss landscape (matplotlib's Agg canvas; pyplot is never imported, so
no global backend or figure state changes)."""

from __future__ import annotations

from pathlib import Path

from .landscape import Landscape1D, Landscape2D


def _figure():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def plot_landscape_1d(result: Landscape1D, path: str | Path, title: str | None = None) -> Path:
    """Line plot of ``L(w + a d)`` against ``a``, the origin ``L(w)`` marked."""
    path = Path(path)
    fig = _figure()
    ax = fig.subplots()
    ax.plot(result.alphas, result.losses, marker="o", markersize=3)
    ax.scatter([0.0], [result.loss_at_origin], color="red", zorder=3, label="w")
    ax.set_xlabel("a (filter-normalised direction d)")
    ax.set_ylabel("loss L(w + a d)")
    ax.set_title(title or "loss along a random direction")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def plot_landscape_2d(
    result: Landscape2D, path: str | Path, title: str | None = None, levels: int = 20
) -> Path:
    """Filled contour plot of ``L(w + a d1 + b d2)`` over ``(a, b)``, ``w`` marked."""
    import numpy as np

    path = Path(path)
    losses = np.asarray(result.losses, dtype=float).T  # rows b, columns a
    fig = _figure()
    ax = fig.subplots()
    if np.isfinite(losses).any() and np.nanmax(losses) > np.nanmin(losses):
        filled = ax.contourf(result.alphas, result.betas, losses, levels=levels, cmap="viridis")
        ax.contour(result.alphas, result.betas, losses, levels=levels, colors="k", linewidths=0.3)
        fig.colorbar(filled, ax=ax, label="loss")
    else:  # a flat (or empty) surface has no contours
        ax.imshow(losses, extent=(-result.span, result.span, -result.span, result.span))
    ax.plot([0.0], [0.0], marker="*", color="red", markersize=10, label="w")
    ax.set_xlabel("a (direction d1)")
    ax.set_ylabel("b (direction d2)")
    ax.set_title(title or "loss around w, two random directions")
    ax.set_aspect("equal")
    ax.legend(loc="upper right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path
