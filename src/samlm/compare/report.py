"""``samlm report``: the comparison's numbers as a terminal table, markdown and a
self-contained HTML page (plots inlined as PNG data, no scripts, no fonts from elsewhere)."""

from __future__ import annotations

import base64
import html
import io
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from . import store
from .grid import GridSpec
from .runner import SPEC_FILE
from .stats import PairedGain, Summary, benchmark_scores, paired_gain, summarize


@dataclass
class Analysis:
    spec: GridSpec
    # (task, size) -> method -> {seed: score}
    scores: dict[tuple[str, int], dict[str, dict[int, float]]] = field(default_factory=dict)
    curves: dict[tuple[str, int], dict[str, list[list[list[float]]]]] = field(default_factory=dict)
    cost: dict[str, dict[str, float]] = field(default_factory=dict)
    # (task, size) -> method -> list of {"sharpness", "lambda_max", "trace"}
    sharpness: dict[tuple[str, int], dict[str, list[dict[str, float]]]] = field(
        default_factory=dict
    )
    failures: list[dict[str, Any]] = field(default_factory=list)
    missing: int = 0

    def benchmarks(self) -> dict[tuple[str, int], dict[str, dict[int, float]]]:
        """Benchmark-average scores per (benchmark, size) and method, where the grid has
        two or more tasks of a benchmark."""
        from ..tasks import get_task

        out: dict[tuple[str, int], dict[str, dict[int, float]]] = defaultdict(dict)
        for size in self.spec.sizes:
            for method in self.spec.methods:
                per_task = {
                    t: self.scores.get((t, size), {}).get(method, {}) for t in self.spec.tasks
                }
                per_task = {t: v for t, v in per_task.items() if v}
                bench_of = {t: get_task(t).benchmark for t in per_task}
                for bench, seeds in benchmark_scores(per_task, bench_of).items():
                    if seeds:
                        out[(f"{bench} average", size)][method] = seeds
        return dict(out)


def analyse(folder: str | Path) -> Analysis:
    folder = Path(folder)
    spec_path = folder / SPEC_FILE
    if not spec_path.is_file():
        raise ValueError(f"{folder} is not a samlm compare folder (no {SPEC_FILE})")
    spec = GridSpec(**yaml.safe_load(spec_path.read_text()))
    records = store.read(folder)
    result = Analysis(spec)
    step_time: dict[str, dict[tuple[str, int], list[float]]] = defaultdict(
        lambda: defaultdict(list)
    )
    passes: dict[str, list[float]] = defaultdict(list)
    wall: dict[str, list[float]] = defaultdict(list)
    for cell in spec.cells():
        r = records.get(cell.key)
        if r is None:
            result.missing += 1
            continue
        if r["status"] != "ok":
            result.failures.append(r)
            continue
        key = (cell.task, cell.size)
        result.scores.setdefault(key, {}).setdefault(cell.method, {})[cell.seed] = r["score"]
        result.curves.setdefault(key, {}).setdefault(cell.method, []).append(r.get("curve", []))
        if r.get("sharpness"):
            result.sharpness.setdefault(key, {}).setdefault(cell.method, []).append(r["sharpness"])
        if r.get("steps"):
            step_time[cell.method][key].append(r["train_time_s"] / r["steps"])
            passes[cell.method].append(r["passes"] / r["steps"])
        wall[cell.method].append(r["wall_time_s"])
    base = step_time.get("baseline", {})
    for method in spec.methods:
        ratios = [
            np.mean(v) / np.mean(base[k])
            for k, v in step_time.get(method, {}).items()
            if base.get(k)
        ]
        result.cost[method] = {
            "wall_time_s": float(np.mean(wall[method])) if wall[method] else float("nan"),
            "passes_per_step": float(np.mean(passes[method])) if passes[method] else float("nan"),
            "time_per_step_vs_baseline": float(np.mean(ratios)) if ratios else float("nan"),
        }
    return result


# -- text ---------------------------------------------------------------------------------


def _rows(a: Analysis) -> list[dict[str, str]]:
    rows = []
    groups = {**a.scores, **a.benchmarks()}
    for key in sorted(groups):
        task, size = key
        for method in a.spec.methods:
            s = _summary(groups[key], method)
            if s is None:
                continue
            gain = _gain(groups[key], method) if method != "baseline" else None
            rows.append(
                {
                    "task": task,
                    "size": str(size or "all"),
                    "method": method,
                    "score": f"{s.mean:.2f} ± {s.std:.2f} (n={s.n})",
                    "gain": gain.verdict() if gain else "",
                    "win rate": f"{gain.win_rate:.0%}" if gain else "",
                }
            )
    return rows


def _summary(by_method: dict[str, dict[int, float]], method: str) -> Summary | None:
    values = by_method.get(method)
    return summarize(list(values.values())) if values else None


def _gain(by_method: dict[str, dict[int, float]], method: str) -> PairedGain | None:
    if method not in by_method or "baseline" not in by_method:
        return None
    if not set(by_method[method]) & set(by_method["baseline"]):
        return None
    return paired_gain(by_method[method], by_method["baseline"])


def _cost_rows(a: Analysis) -> list[dict[str, str]]:
    return [
        {
            "method": m,
            "wall time per cell (s)": f"{c['wall_time_s']:.1f}",
            "forward-backward passes per step": f"{c['passes_per_step']:.2f}",
            "time per step vs baseline": f"{c['time_per_step_vs_baseline']:.2f}x",
        }
        for m, c in a.cost.items()
    ]


def _sharpness_rows(a: Analysis) -> list[dict[str, str]]:
    """Sharpness per method next to its gain: does lower sharpness go with the gain?"""
    rows = []
    for key in sorted(a.sharpness):
        for method in a.spec.methods:
            values = a.sharpness[key].get(method)
            if not values:
                continue
            gain = _gain(a.scores.get(key, {}), method) if method != "baseline" else None

            def mean(name: str, vals: list[dict[str, float]] = values) -> str:
                xs = [v[name] for v in vals if v.get(name) is not None]
                return f"{np.mean(xs):.4g}" if xs else "n/a"

            rows.append(
                {
                    "task": key[0],
                    "size": str(key[1] or "all"),
                    "method": method,
                    "rho-sharpness": mean("sharpness"),
                    "lambda_max": mean("lambda_max"),
                    "trace": mean("trace"),
                    "gain": f"{gain.mean:+.2f}" if gain else "",
                }
            )
    return rows


def _table(rows: list[dict[str, str]]) -> str:
    if not rows:
        return "(no results yet)"
    cols = list(rows[0])
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in cols}
    line = "  ".join(c.ljust(widths[c]) for c in cols)
    body = ["  ".join(r[c].ljust(widths[c]) for c in cols) for r in rows]
    return "\n".join([line, "  ".join("-" * widths[c] for c in cols), *body])


def _markdown_table(rows: list[dict[str, str]]) -> str:
    if not rows:
        return "(no results yet)"
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(r[c] for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def _status(a: Analysis) -> list[str]:
    lines = []
    if a.missing:
        lines.append(f"{a.missing} cell(s) not run yet.")
    for f in a.failures:
        lines.append(f"FAILED {f['key']}: {f.get('error')}")
    return lines


def terminal(a: Analysis) -> str:
    parts = [
        "Task score (0-100, mean ± sd over seeds); gain = method - baseline, paired by "
        "seed, with a 95% bootstrap interval",
        _table(_rows(a)),
        "",
        "Cost",
        _table(_cost_rows(a)),
    ]
    if a.sharpness:
        parts += [
            "",
            "Sharpness of the selected models (mean over seeds)",
            _table(_sharpness_rows(a)),
        ]
    if _status(a):
        parts += ["", *_status(a)]
    return "\n".join(parts)


def markdown(a: Analysis, plots: dict[str, str]) -> str:
    parts = [
        "# SAM against its baseline",
        "",
        f"Model `{a.spec.model}`, {a.spec.seeds} seed(s), methods {', '.join(a.spec.methods)}. "
        "Scores are the task's official metrics on its dev set (0-100, the mean of a task's "
        "metrics where it has two). A gain is the method's score minus the baseline's on the "
        "same seed (same training subset, same initialisation); its 95% interval is a "
        "bootstrap over seeds, and a gain whose interval includes zero is not significant.",
        "",
        _markdown_table(_rows(a)),
        "",
        "## Cost",
        "",
        "Time per step includes the periodic dev evaluation, which dilutes the ratio.",
        "",
        _markdown_table(_cost_rows(a)),
    ]
    if a.sharpness:
        parts += [
            "",
            "## Sharpness",
            "",
            "SAM's own rho-sharpness estimate (rho 0.05, one step), the Hessian's top "
            "eigenvalue and its trace on 64 training examples of each cell's best "
            "model, mean over seeds, next to the method's mean gain.",
            "",
            _markdown_table(_sharpness_rows(a)),
        ]
    if _status(a):
        parts += ["", "## Status", "", *[f"- {s}" for s in _status(a)]]
    parts += ["", "## Plots", ""] + [f"![{name}]({name}.png)" for name in plots]
    return "\n".join(parts) + "\n"


# -- plots --------------------------------------------------------------------------------


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def plots(a: Analysis) -> dict[str, bytes]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: dict[str, bytes] = {}
    methods = [m for m in a.spec.methods if m != "baseline"]
    colour = {m: f"C{i}" for i, m in enumerate(a.spec.methods)}  # one colour per method
    tasks = sorted({t for t, _ in a.scores})
    if tasks:
        fig, axes = plt.subplots(1, len(tasks), figsize=(4 * len(tasks), 3.2), squeeze=False)
        for ax, task in zip(axes[0], tasks, strict=True):
            sizes = sorted(s for t, s in a.scores if t == task)
            for i, m in enumerate(methods):
                gains = [_gain(a.scores[(task, s)], m) for s in sizes]
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
                    )
            ax.axhline(0, color="grey", lw=0.8)
            ax.set_xticks(range(len(sizes)), [str(s or "all") for s in sizes])
            ax.set_title(task)
            ax.set_xlabel("training examples")
            ax.set_ylabel("gain over baseline (95% CI)")
            ax.legend(fontsize=8)
        out["gain_vs_size"] = _png(fig)
        plt.close(fig)

    keys = sorted(a.curves)
    if keys:
        fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.2), squeeze=False)
        for ax, key in zip(axes[0], keys, strict=True):
            for m, runs in a.curves[key].items():
                runs = [r for r in runs if r]
                if not runs:
                    continue
                steps = sorted({s for r in runs for s, _ in r})
                mean = [np.mean([v for r in runs for s2, v in r if s2 == s]) for s in steps]
                ax.plot(steps, mean, marker=".", label=m, color=colour[m])
            ax.set_title(f"{key[0]}, n={key[1] or 'all'}")
            ax.set_xlabel("step")
            ax.set_ylabel("dev metric (mean over seeds)")
            ax.legend(fontsize=8)
        out["dev_metric_during_training"] = _png(fig)
        plt.close(fig)

    points = []
    for m in methods:
        gains = [g.mean for by_method in a.scores.values() if (g := _gain(by_method, m))]
        cost = a.cost.get(m, {}).get("time_per_step_vs_baseline", float("nan"))
        if gains and np.isfinite(cost):
            points.append((m, cost, float(np.mean(gains))))
    if points:
        fig, ax = plt.subplots(figsize=(4.5, 3.2))
        for m, x, y in points:
            ax.scatter([x], [y], color=colour[m])
            ax.annotate(m, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xlabel("time per step relative to baseline")
        ax.set_ylabel("mean gain over tasks and sizes")
        ax.set_title("cost against gain")
        out["cost_vs_gain"] = _png(fig)
        plt.close(fig)
    return out


def html_page(a: Analysis, images: dict[str, bytes]) -> str:
    def table(rows: list[dict[str, str]]) -> str:
        if not rows:
            return "<p>(no results yet)</p>"
        head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in r.values()) + "</tr>"
            for r in rows
        )
        return f"<table><tr>{head}</tr>{body}</table>"

    figures = "".join(
        f'<figure><img alt="{name}" src="data:image/png;base64,'
        f'{base64.b64encode(png).decode()}"><figcaption>{name.replace("_", " ")}</figcaption>'
        "</figure>"
        for name, png in images.items()
    )
    status = "".join(f"<li>{html.escape(s)}</li>" for s in _status(a))
    style = (
        "body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:"
        "collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}"
        "img{max-width:100%}"
    )
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>samlm report</title>"
        f"<style>{style}</style></head><body><h1>SAM against its baseline</h1>"
        f"<p>Model {html.escape(a.spec.model)}, {a.spec.seeds} seed(s). Gains are paired by "
        "seed with a 95% bootstrap interval; one that includes zero is not significant.</p>"
        f"{table(_rows(a))}<h2>Cost</h2>{table(_cost_rows(a))}"
        f"{'<h2>Sharpness</h2>' + table(_sharpness_rows(a)) if a.sharpness else ''}"
        f"{'<h2>Status</h2><ul>' + status + '</ul>' if status else ''}"
        f"<h2>Plots</h2>{figures}</body></html>"
    )


def write_report(folder: str | Path) -> Analysis:
    """Write ``report.md``, its PNGs and ``report.html`` into ``folder``; return the analysis."""
    folder = Path(folder)
    a = analyse(folder)
    images = plots(a)
    for name, png in images.items():
        (folder / f"{name}.png").write_bytes(png)
    (folder / "report.md").write_text(markdown(a, images))
    (folder / "report.html").write_text(html_page(a, images))
    return a
