"""The report's plots: each stratum's gain (a forest plot), gain against size, the
validation metric during training, cost against gain (with the gains' intervals); one
colour per method in all of them."""

from __future__ import annotations

import io
import zlib

import numpy as np

from ..grid import METHODS
from ..stats import AggregateGain, PairedGain
from .analysis import Analysis, gain_over_baseline


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


# One colour per method, the same in every plot and every grid, whatever subset of
# METHODS a grid runs: matplotlib's tab10 in the order of METHODS (baseline blue, SAM
# orange, ...); a method unknown here gets one of the other tab10 colours, by its name.
TAB10 = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)  # fmt: skip
METHOD_COLOURS: dict[str, str] = {m: TAB10[i % len(TAB10)] for i, m in enumerate(METHODS)}
SPARE_COLOURS = tuple(c for c in TAB10 if c not in METHOD_COLOURS.values()) or TAB10

CAPTIONS = {
    "gain_by_stratum": "each task and size's gain over the baseline (95% paired t interval) "
    "and the mean over them (95% stratified bootstrap interval), per method",
    "gain_vs_size": "gain over the baseline against training-set size (95% interval)",
    "dev_metric_during_training": "validation metric (used for checkpoint selection) "
    "during training, mean over seeds",
    "cost_vs_gain": "time per step against the mean gain over tasks and sizes (95% interval)",
}
DEV_CURVE_LABEL = "validation metric (used for selection), mean over seeds"
CURVE_COLUMNS = 4  # panels per row of the validation curves (8 strata: 2 rows, not a strip)


def method_colour(method: str) -> str:
    """The colour of ``method`` in every plot (a hex string)."""
    if method in METHOD_COLOURS:
        return METHOD_COLOURS[method]
    return SPARE_COLOURS[zlib.crc32(method.encode()) % len(SPARE_COLOURS)]


def figures(a: Analysis) -> dict:
    """The report's matplotlib figures by name (the caller closes them): each stratum's
    gain (forest plot), gain against size, the validation metric during training, cost
    against gain. Each method is drawn in :func:`method_colour`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: dict = {}
    methods = [m for m in a.spec.methods if m != "baseline"]
    if a.scores:
        out["gain_by_stratum"] = _forest(plt, a, methods)
    for name, fig in (
        ("gain_vs_size", _gain_vs_size(plt, a, methods)),
        ("dev_metric_during_training", _dev_curves(plt, a)),
        ("cost_vs_gain", _cost_vs_gain(plt, a, methods)),
    ):
        if fig is not None:
            out[name] = fig
    return out


def _gain_vs_size(plt, a: Analysis, methods: list[str]):
    """Per task, each method's gain over the baseline (95% CI) against the training size."""
    tasks = sorted({t for t, _ in a.scores})
    if not tasks:
        return None
    fig, axes = plt.subplots(1, len(tasks), figsize=(4 * len(tasks), 3.2), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        sizes = sorted(s for t, s in a.scores if t == task)
        for i, m in enumerate(methods):
            gains = [gain_over_baseline(a.scores[(task, s)], m) for s in sizes]
            xs = [j + 0.08 * (i - len(methods) / 2) for j, g in enumerate(gains) if g]
            g = [x for x in gains if x]
            if g:
                ax.errorbar(
                    xs,
                    [x.mean for x in g],
                    yerr=[[x.mean - x.low for x in g], [x.high - x.mean for x in g]],
                    fmt="o-",
                    capsize=3,
                    label=m,
                    color=method_colour(m),
                )
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xticks(range(len(sizes)), [str(s or "all") for s in sizes])
        ax.set_xlim(-0.5, len(sizes) - 0.5)  # the methods' offset points stay inside
        ax.set_title(task)
        ax.set_xlabel("training examples")
        ax.set_ylabel("gain over baseline (95% CI)")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    return fig


def _dev_curves(plt, a: Analysis):
    """Per stratum, each method's validation metric (mean over runs) during training, in
    rows of at most ``CURVE_COLUMNS`` panels."""
    keys = sorted(k for k, runs in a.curves.items() if any(any(r) for r in runs.values()))
    if not keys:
        return None
    cols = min(len(keys), CURVE_COLUMNS)
    rows = -(-len(keys) // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.4 * cols, 2.9 * rows), squeeze=False, layout="constrained"
    )
    for ax in axes.flat[len(keys) :]:  # the last row's spare panels
        ax.remove()
    for ax, key in zip(axes.flat[: len(keys)], keys, strict=True):
        for m in [m for m in a.spec.methods if m in a.curves[key]]:
            runs = [r for r in a.curves[key][m] if r]
            if not runs:
                continue
            steps = sorted({s for r in runs for s, _ in r})
            mean = [np.mean([v for r in runs for s2, v in r if s2 == s]) for s in steps]
            ax.plot(steps, mean, marker=".", label=m, color=method_colour(m))
        ax.set_title(f"{key[0]}, n={key[1] or 'all'}")
        ax.set_xlabel("step")
        ax.set_ylabel("validation metric\n(used for selection)")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle(DEV_CURVE_LABEL, fontsize=10)
    return fig


def _interval(ax, x: float, gain: PairedGain | AggregateGain, along: str, **style) -> None:
    """``gain``'s mean at ``x`` with its 95% interval as an error bar ``along`` "x" or "y"
    (a single seed: the point alone)."""
    bar = [[gain.mean - gain.low], [gain.high - gain.mean]]
    if along == "x":
        ax.errorbar([gain.mean], [x], xerr=bar, capsize=3, **style)
    else:
        ax.errorbar([x], [gain.mean], yerr=bar, capsize=3, **style)


def _forest(plt, a: Analysis, methods: list[str]):
    """A forest plot: a row per (task, size) stratum, each method's gain with its 95%
    paired t interval, offset within the row; a last row with the mean over the strata
    (diamonds, the stratified bootstrap interval); a line at zero."""
    keys = sorted(a.scores)
    overall = a.overall()
    rows = len(keys) + 1
    fig, ax = plt.subplots(figsize=(6.4, 0.9 + 0.55 * rows * max(1, len(methods)) ** 0.5))
    step = 0.7 / max(1, len(methods))
    for i, m in enumerate(methods):
        offset = (i - (len(methods) - 1) / 2) * step
        colour, labelled = method_colour(m), False
        for row, key in enumerate(keys):
            gain = gain_over_baseline(a.scores[key], m)
            if gain is not None:
                label = None if labelled else m
                _interval(ax, row + offset, gain, "x", fmt="o", color=colour, label=label)
                labelled = True
        if m in overall:
            label = None if labelled else m
            _interval(
                ax, len(keys) + offset, overall[m], "x", fmt="D", ms=7, color=colour, label=label
            )
    ax.axvline(0, color="grey", lw=0.8)
    ax.axhline(len(keys) - 0.5, color="#ccc", lw=0.8)
    names = [f"{t}, n={n or 'all'}" for t, n in keys] + ["mean over them"]
    ax.set_yticks(range(rows), names)
    ax.set_ylim(rows - 0.5, -0.5)  # the first stratum on top, the mean at the bottom
    ax.set_xlabel("gain over the baseline, score points (95% interval)")
    ax.set_title("gain per task and size")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))  # off the bars
    return fig


def _cost_vs_gain(plt, a: Analysis, methods: list[str]):
    """Each method's mean gain over the strata with its 95% interval against its time per
    step relative to the baseline's; None where no method has both."""
    overall = a.overall()
    points = [
        (m, ratio, overall[m])
        for m in methods
        if m in overall
        and np.isfinite(ratio := a.cost.get(m, {}).get("time_per_step_vs_baseline", np.nan))
    ]
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(4.8, 3.4))
    for m, x, gain in points:
        _interval(ax, x, gain, "y", fmt="o", color=method_colour(m), label=m)
        ax.annotate(m, (x, gain.mean), textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax.axhline(0, color="grey", lw=0.8)
    ax.axvline(1, color="#ccc", lw=0.8)  # the baseline's time per step
    ax.set_xlabel("time per step relative to the baseline")
    ax.set_ylabel("mean gain over tasks and sizes\n(95% interval)")
    ax.set_title("cost against gain")
    return fig


def plots(a: Analysis) -> dict[str, bytes]:
    """The figures of :func:`figures` as PNG data."""
    figs = figures(a)  # selects the Agg backend before pyplot is imported here
    import matplotlib.pyplot as plt

    out: dict[str, bytes] = {}
    for name, fig in figs.items():
        out[name] = _png(fig)
        plt.close(fig)
    return out
