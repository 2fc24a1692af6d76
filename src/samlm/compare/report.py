"""``samlm report``: the comparison's numbers as a terminal table, markdown and a
self-contained HTML page (plots inlined as PNG data, no scripts, no fonts from elsewhere)."""

from __future__ import annotations

import base64
import html
import io
import math
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from . import store
from .grid import METHODS, GridSpec
from .mixtures import describe_mixing, is_mixture
from .stats import (
    AggregateGain,
    PairedGain,
    Summary,
    aggregate_gain,
    benchmark_scores,
    paired_differences,
    paired_gain,
    summarize,
)
from .store import SPEC_FILE
from .tuning import Choice, choose


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
    # "task|size|method" -> the setting its seeds ran at, with its trials
    choices: dict[str, Choice] = field(default_factory=dict)
    # (task, size) -> which examples trained, selected and were reported on
    examples: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    # (mixture, size) -> method -> its task -> {seed: score}
    per_task: dict[tuple[str, int], dict[str, dict[str, dict[int, float]]]] = field(
        default_factory=dict
    )

    def overall(self) -> dict[str, AggregateGain]:
        """Per method, the mean gain over the grid's (task, size) strata with a stratified
        bootstrap interval (seeds resampled within each stratum)."""
        out = {}
        for method in self.spec.methods:
            if method == "baseline":
                continue
            strata = {
                key: d
                for key, by_method in self.scores.items()
                if method in by_method
                and "baseline" in by_method
                and (d := paired_differences(by_method[method], by_method["baseline"]))
            }
            if strata:
                out[method] = aggregate_gain(strata)
        return out

    def without_results(self) -> dict[str, str]:
        """Methods with no finished cell, each with why: ``{"asam": "4 failed, 2 not run yet"}``."""
        per_method = len(self.spec.strata()) * self.spec.seeds
        out = {}
        for method in self.spec.methods:
            if any(by_method.get(method) for by_method in self.scores.values()):
                continue
            failed = sum(1 for f in self.failures if f.get("method") == method)
            why = [f"{failed} failed"] if failed else []
            why += [f"{per_method - failed} not run yet"] if per_method > failed else []
            out[method] = ", ".join(why)
        return out

    def benchmarks(self) -> dict[tuple[str, int], dict[str, dict[int, float]]]:
        """Benchmark-average scores per (benchmark, size) and method, where the grid has
        two or more tasks of a benchmark."""
        from ..tasks import get_task

        out: dict[tuple[str, int], dict[str, dict[int, float]]] = defaultdict(dict)
        for size in dict.fromkeys(s for _, s in self.spec.strata()):
            for method in self.spec.methods:
                per_task = {
                    t: self.scores.get((t, size), {}).get(method, {})
                    for t in self.spec.tasks
                    if not is_mixture(t)
                }
                per_task = {t: v for t, v in per_task.items() if v}
                bench_of = {t: get_task(t).benchmark for t in per_task}
                for bench, seeds in benchmark_scores(per_task, bench_of).items():
                    if seeds:
                        out[(f"{bench} average", size)][method] = seeds
        return dict(out)


def step_seconds(record: dict[str, Any]) -> float | None:
    """A finished cell's seconds per training step, evaluations left out:
    ``(train_time_s - eval_time_s) / timed_steps`` (:func:`samlm.compare.cell.timing`).
    A record from before those fields counts its steps from the checkpoint it resumed
    and its evaluations as training; ``None`` where no step was timed."""
    start = record.get("resumed_from")
    steps = record.get("timed_steps")
    if steps is None:
        steps = record["steps"] - (int(start.rsplit("-", 1)[1]) if start else 0)
    if not steps or record.get("train_time_s") is None:
        return None
    return (record["train_time_s"] - record.get("eval_time_s", 0.0)) / steps


def analyse(folder: str | Path) -> Analysis:
    folder = Path(folder)
    spec_path = folder / SPEC_FILE
    if not spec_path.is_file():
        raise ValueError(f"{folder} is not a samlm compare folder (no {SPEC_FILE})")
    spec = GridSpec(**yaml.safe_load(spec_path.read_text()))
    records = store.read(folder)
    result = Analysis(spec, choices=choose(spec, records))
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
        if r.get("examples"):
            result.examples.setdefault(key, r["examples"])
        result.scores.setdefault(key, {}).setdefault(cell.method, {})[cell.seed] = r["score"]
        for task, score in r.get("per_task", {}).items():  # a mixture's tasks
            by_task = result.per_task.setdefault(key, {}).setdefault(cell.method, {})
            by_task.setdefault(task, {})[cell.seed] = score
        result.curves.setdefault(key, {}).setdefault(cell.method, []).append(r.get("curve", []))
        if r.get("sharpness"):
            result.sharpness.setdefault(key, {}).setdefault(cell.method, []).append(r["sharpness"])
        if r.get("steps"):
            seconds = step_seconds(r)
            if seconds is not None:
                step_time[cell.method][key].append(seconds)
            passes[cell.method].append(r["passes"] / r["steps"])
        wall[cell.method].append(r["wall_time_s"])
    base = step_time.get("baseline", {})
    for method in spec.methods:
        ratios = [
            np.median(v) / np.median(base[k])
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

NA = "n/a"  # a number that does not exist (no result), never printed as "nan"


def _num(value: float | None, spec: str, suffix: str = "") -> str:
    """``value`` formatted with ``spec``, or "n/a" when it is missing or not finite."""
    if value is None or not math.isfinite(value):
        return NA
    return f"{value:{spec}}{suffix}"


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
                    "score": (
                        f"{s.mean:.2f} ± {s.std:.2f} (n={s.n})"
                        if math.isfinite(s.mean) and math.isfinite(s.std)
                        else f"{NA} (n={s.n})"
                    ),
                    "gain": _verdict(gain),
                    "win rate": _num(gain.win_rate, ".0%") if gain else "",
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


def _verdict(gain: PairedGain | None) -> str:
    if gain is None:
        return ""
    return gain.verdict() if math.isfinite(gain.mean) else NA


def _cost_rows(a: Analysis) -> list[dict[str, str]]:
    """One row per method; "n/a" where a method (or the baseline) has no finished cell."""
    return [
        {
            "method": m,
            "wall time per cell (s)": _num(c.get("wall_time_s"), ".1f"),
            "forward-backward passes per step": _num(c.get("passes_per_step"), ".2f"),
            "time per step vs baseline": _num(c.get("time_per_step_vs_baseline"), ".2f", "x"),
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
                return _num(float(np.mean(xs)), ".4g") if xs else NA

            rows.append(
                {
                    "task": key[0],
                    "size": str(key[1] or "all"),
                    "method": method,
                    "rho-sharpness": mean("sharpness"),
                    "lambda_max": mean("lambda_max"),
                    "trace": mean("trace"),
                    "gain": _num(gain.mean, "+.2f") if gain else "",
                }
            )
    return rows


def _table(rows: list[dict[str, str]]) -> str:
    if not rows:
        return NO_RESULTS
    cols = list(rows[0])
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in cols}
    line = "  ".join(c.ljust(widths[c]) for c in cols)
    body = ["  ".join(r[c].ljust(widths[c]) for c in cols) for r in rows]
    return "\n".join([line, "  ".join("-" * widths[c] for c in cols), *body])


def _markdown_table(rows: list[dict[str, str]]) -> str:
    if not rows:
        return NO_RESULTS
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(r[c] for c in cols) + " |" for r in rows]
    return "\n".join(lines)


NO_RESULTS = "(no results)"


def _status(a: Analysis) -> list[str]:
    lines = [f"{m}: no results ({why})." for m, why in a.without_results().items()]
    if a.missing:
        lines.append(f"{a.missing} cell(s) not run yet.")
    for f in a.failures:
        lines.append(f"FAILED {f['key']}: {f.get('error')}")
    return lines


NO_SHARE = "n/a: SAM's gain is not significantly above zero"


def _overall_rows(a: Analysis) -> list[dict[str, str]]:
    overall = a.overall()
    sam = overall.get("sam")
    rows = []
    for method, g in overall.items():
        share = ""
        if method not in ("baseline", "sam") and sam is not None:  # of a gain that is there
            significant = sam.significant and sam.low > 0
            share = _num(g.mean / sam.mean, ".0%") if significant else NO_SHARE
        rows.append(
            {
                "method": method,
                "mean gain": g.verdict(),
                "share of SAM's gain": share,
            }
        )
    return rows


SOURCES = {"train": "training pool", "dev": "dev set"}  # of a validation sample


def _per_task_rows(a: Analysis) -> list[dict[str, str]]:
    """Each task of a mixture, per method: its score, mean ± sd over seeds."""
    rows = []
    for (mixture, size), by_method in sorted(a.per_task.items()):
        for method in [m for m in a.spec.methods if m in by_method]:
            for task, seeds in by_method[method].items():
                s = summarize(list(seeds.values()))
                rows.append(
                    {
                        "mixture": mixture,
                        "size": str(size or "all"),
                        "method": method,
                        "task": task,
                        "score": f"{_num(s.mean, '.2f')} ± {_num(s.std, '.2f')} (n={s.n})",
                    }
                )
    return rows


def _example_rows(a: Analysis) -> list[dict[str, str]]:
    return [
        {
            "task": task,
            "size": str(size or "all"),
            "trained on": f"{e['train_examples']} (seeded subset per seed)",
            "selected on": f"{e['validation_examples']} held out of the "
            + SOURCES.get(e["validation_from"], "training pool or dev set, by task")
            if e["validation_from"] != "reported"
            else "the reported examples themselves (no validation sample)",
            "reported on": f"{e['reported_examples']} dev examples",
        }
        for (task, size), e in sorted(a.examples.items())
    ]


def _setting(setting: dict[str, Any] | None) -> tuple[str, str]:
    if not setting:
        return NA, NA
    lr = setting.get("learning_rate")
    rho = setting.get("rho")
    return (f"{lr:g}" if lr else "default"), (f"{rho:g}" if rho is not None else "")


def _setting_columns(key: str, setting: dict[str, Any] | None) -> dict[str, str]:
    """task, size, method (from a ``"task|size|method"`` key), learning rate, rho."""
    task, size, method = key.split("|")
    lr, rho = _setting(setting)
    return {
        "task": task,
        "size": str(int(size) or "all"),
        "method": method,
        "learning rate": lr,
        "rho": rho,
    }


def _setting_rows(a: Analysis) -> list[dict[str, str]]:
    return [
        {
            **_setting_columns(key, choice.setting),
            "source": choice.source + (f": {choice.error}" if choice.error else ""),
        }
        for key, choice in a.choices.items()
    ]


def _trial_rows(a: Analysis) -> list[dict[str, str]]:
    rows = []
    for key, choice in a.choices.items():
        for t in choice.trials:
            chosen = choice.setting is not None and all(
                choice.setting.get(k) == v for k, v in t["setting"].items()
            )
            rows.append(
                {
                    **_setting_columns(key, t["setting"]),
                    "validation score": _num(t["score"], ".2f")
                    if t["status"] == "ok"
                    else t["status"],
                    "chosen": "yes" if chosen else "",
                }
            )
    return rows


def sections(a: Analysis) -> list[tuple[str, str, list[dict[str, str]]]]:
    """The report's sections as (title, what it shows, table rows): one source for the
    terminal, markdown and HTML outputs."""
    validation = (
        f"a validation sample of at most {a.spec.validation_size} examples held out apart "
        "from the reported ones (the same for every method and seed)"
        if a.spec.validation_size
        else "the reported dev examples themselves (no validation sample: an optimistic selection)"
    )
    out = [
        (
            "Scores and gains",
            f"Model {a.spec.model}, seeds {a.spec.seed_list()}. Task score (0-100, the mean "
            "of a task's metrics where it has two) on the reported dev examples, mean ± sd "
            f"over seeds; checkpoints were selected on {validation}. A gain is the method's "
            "score minus the baseline's on the same seed (same training subset, same "
            "initialisation) with a 95% paired t interval over seeds; a gain whose interval "
            "includes zero is not significant.",
            _rows(a),
        ),
        (
            "Overall",
            "Mean gain over the grid's (task, size) strata, each counting once, with a 95% "
            "stratified bootstrap interval (seeds resampled within each stratum; Agarwal et "
            "al. 2021), and the share of SAM's mean gain each other method keeps (given "
            "only where SAM's gain is significantly positive).",
            _overall_rows(a),
        ),
        (
            "Examples",
            "Which examples each cell trained on, selected its checkpoint (and tuning its "
            "setting) on, and was scored on.",
            _example_rows(a),
        ),
        (
            "Settings",
            "The learning rate and radius each method's seeds ran at, and where they come from.",
            _setting_rows(a),
        ),
    ]
    if a.per_task:
        mixing = (a.spec.mixing, a.spec.mixing_limit, a.spec.temperature)
        out.insert(
            1,
            (
                "Mixtures by task",
                "A mixture's score above is the mean of its tasks' scores (GLUE/SuperGLUE "
                "style, one model trained on them all, each task at the row's size, the "
                f"tasks drawn {describe_mixing(*mixing)}); here each task's score, mean ± "
                "sd over seeds.",
                _per_task_rows(a),
            ),
        )
    if a.spec.tune:
        out.append(
            (
                "Tuning trials",
                "Every method had the same number of trials, on the tuning seed, scored on "
                "the validation sample; its seeds ran at the best one.",
                _trial_rows(a),
            )
        )
    out.append(
        (
            "Cost",
            "Time per step: a cell's training time without its evaluations over the "
            "steps it ran (a resumed cell: since its checkpoint), the median over each "
            "task and size's cells (trials included) over the baseline's, averaged over "
            "them. Cells share the machine, so this is a rough ratio; bench/step_overhead.py "
            "measures it side by side.",
            _cost_rows(a),
        )
    )
    if a.sharpness:
        out.append(
            (
                "Sharpness",
                "SAM's own rho-sharpness estimate (rho 0.05, one step), the Hessian's top "
                "eigenvalue and its trace on 64 training examples of each cell's best model, "
                "mean over seeds, next to the method's mean gain.",
                _sharpness_rows(a),
            )
        )
    return out


def terminal(a: Analysis) -> str:
    parts = []
    for title, text, rows in sections(a):
        parts += [title, text, _table(rows), ""]
    return "\n".join(parts + _status(a)).rstrip()


def markdown(a: Analysis, plots: dict[str, str]) -> str:
    parts = ["# SAM against its baseline", ""]
    for title, text, rows in sections(a):
        parts += [f"## {title}", "", text, "", _markdown_table(rows), ""]
    if _status(a):
        parts += ["## Status", "", *[f"- {s}" for s in _status(a)], ""]
    parts += ["## Plots", ""]
    parts += [f"![{CAPTIONS.get(name, name)}]({name}.png)" for name in plots] or [NO_RESULTS]
    return "\n".join(parts) + "\n"


# -- plots --------------------------------------------------------------------------------


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
    "gain_vs_size": "gain over the baseline against training-set size (95% interval)",
    "dev_metric_during_training": "validation metric (used for checkpoint selection) "
    "during training, mean over seeds",
    "cost_vs_gain": "time per step against mean gain",
}
DEV_CURVE_LABEL = "validation metric (used for selection), mean over seeds"


def method_colour(method: str) -> str:
    """The colour of ``method`` in every plot (a hex string)."""
    if method in METHOD_COLOURS:
        return METHOD_COLOURS[method]
    return SPARE_COLOURS[zlib.crc32(method.encode()) % len(SPARE_COLOURS)]


def figures(a: Analysis) -> dict:
    """The report's matplotlib figures by name (the caller closes them): gain against
    size, the validation metric during training, cost against gain. Each method is drawn
    in :func:`method_colour`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: dict = {}
    methods = [m for m in a.spec.methods if m != "baseline"]
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
        out["gain_vs_size"] = fig

    keys = sorted(k for k, runs in a.curves.items() if any(any(r) for r in runs.values()))
    if keys:
        fig, axes = plt.subplots(
            1, len(keys), figsize=(4 * len(keys), 3.4), squeeze=False, layout="constrained"
        )
        for ax, key in zip(axes[0], keys, strict=True):
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
        out["dev_metric_during_training"] = fig

    points = []
    for m in methods:
        gains = [g.mean for by_method in a.scores.values() if (g := _gain(by_method, m))]
        cost = a.cost.get(m, {}).get("time_per_step_vs_baseline", float("nan"))
        if gains and np.isfinite(cost) and np.isfinite(np.mean(gains)):
            points.append((m, cost, float(np.mean(gains))))
    if points:
        fig, ax = plt.subplots(figsize=(4.5, 3.2))
        for m, x, y in points:
            ax.scatter([x], [y], color=method_colour(m), label=m)
            ax.annotate(m, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xlabel("time per step relative to baseline")
        ax.set_ylabel("mean gain over tasks and sizes")
        ax.set_title("cost against gain")
        out["cost_vs_gain"] = fig
    return out


def plots(a: Analysis) -> dict[str, bytes]:
    """The figures of :func:`figures` as PNG data."""
    figs = figures(a)  # selects the Agg backend before pyplot is imported here
    import matplotlib.pyplot as plt

    out: dict[str, bytes] = {}
    for name, fig in figs.items():
        out[name] = _png(fig)
        plt.close(fig)
    return out


def html_page(a: Analysis, images: dict[str, bytes]) -> str:
    def table(rows: list[dict[str, str]]) -> str:
        if not rows:
            return f"<p>{NO_RESULTS}</p>"
        head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in r.values()) + "</tr>"
            for r in rows
        )
        return f"<table><tr>{head}</tr>{body}</table>"

    figures = (
        "".join(
            f'<figure><img alt="{name}" src="data:image/png;base64,'
            f'{base64.b64encode(png).decode()}"><figcaption>'
            f"{html.escape(CAPTIONS.get(name, name.replace('_', ' ')))}</figcaption></figure>"
            for name, png in images.items()
        )
        or f"<p>{NO_RESULTS}</p>"
    )
    status = "".join(f"<li>{html.escape(s)}</li>" for s in _status(a))
    style = (
        "body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:"
        "collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}"
        "img{max-width:100%}"
    )
    body = "".join(
        f"<h2>{html.escape(title)}</h2><p>{html.escape(text)}</p>{table(rows)}"
        for title, text, rows in sections(a)
    )
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>samlm report</title>"
        f"<style>{style}</style></head><body><h1>SAM against its baseline</h1>{body}"
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
