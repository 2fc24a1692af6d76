"""The report's sections as tables of strings: the terminal table and markdown."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ..mixtures import describe_mixing
from ..stats import AggregateGain, PairedGain, Summary, summarize
from .analysis import (
    NO_SAM_GAIN,
    SAM_OTHER_STRATA,
    Analysis,
    gain_over_baseline,
    share_of_sam_gain,
)
from .answer import MEANING, TITLE, answer_lines

NA = "n/a"  # a number that does not exist (no result), never printed as "nan"


def number(value: float | None, spec: str, suffix: str = "") -> str:
    """``value`` formatted with ``spec``, or "n/a" when it is missing or not finite."""
    if value is None or not math.isfinite(value):
        return NA
    return f"{value:{spec}}{suffix}"


def gain_interval(gain: PairedGain | AggregateGain) -> str:
    """``+1.03 [-0.48, +2.55]``, in bold (markdown) where the interval excludes zero;
    no interval where a stratum has a single paired difference (one seed)."""
    if isinstance(gain, PairedGain) and len(gain.differences) < 2:
        return f"{gain.mean:+.2f} (one seed: no interval)"
    if isinstance(gain, AggregateGain) and gain.min_pairs < 2:
        return f"{gain.mean:+.2f} (a stratum has one seed: no interval)"
    bold = "**" if gain.significant else ""
    return f"{bold}{gain.mean:+.2f} [{gain.low:+.2f}, {gain.high:+.2f}]{bold}"


def _rows(a: Analysis) -> list[dict[str, str]]:
    rows = []
    groups = {**a.scores, **a.benchmarks()}
    for key in sorted(groups):
        task, size = key
        for method in a.spec.methods:
            s = _summary(groups[key], method)
            if s is None:
                continue
            gain = gain_over_baseline(groups[key], method) if method != "baseline" else None
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
                    "win rate": number(gain.win_rate, ".0%") if gain else "",
                }
            )
    return rows


def _summary(by_method: dict[str, dict[int, float]], method: str) -> Summary | None:
    values = by_method.get(method)
    return summarize(list(values.values())) if values else None


def _verdict(gain: PairedGain | None) -> str:
    if gain is None:
        return ""
    return gain.verdict() if math.isfinite(gain.mean) else NA


def _cost_rows(a: Analysis) -> list[dict[str, str]]:
    """One row per method; "n/a" where a method (or the baseline) has no finished cell."""
    return [
        {
            "method": m,
            "wall time per cell (s)": number(c.get("wall_time_s"), ".1f"),
            "forward-backward passes per step": number(c.get("passes_per_step"), ".2f"),
            "time per step vs baseline": number(c.get("time_per_step_vs_baseline"), ".2f", "x"),
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
            gain = (
                gain_over_baseline(a.scores.get(key, {}), method) if method != "baseline" else None
            )

            def mean(name: str, vals: list[dict[str, float]] = values) -> str:
                xs = [v[name] for v in vals if v.get(name) is not None]
                return number(float(np.mean(xs)), ".4g") if xs else NA

            rows.append(
                {
                    "task": key[0],
                    "size": str(key[1] or "all"),
                    "method": method,
                    "rho-sharpness": mean("sharpness"),
                    "lambda_max": mean("lambda_max"),
                    "trace": mean("trace"),
                    "gain": number(gain.mean, "+.2f") if gain else "",
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


def markdown_table(rows: list[dict[str, str]]) -> str:
    if not rows:
        return NO_RESULTS
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(r[c] for c in cols) + " |" for r in rows]
    return "\n".join(lines)


NO_RESULTS = "(no results)"


def status_lines(a: Analysis) -> list[str]:
    lines = [f"{m}: no results ({why})." for m, why in a.without_results().items()]
    if a.missing:
        lines.append(f"{a.missing} cell(s) not run yet.")
    for f in a.failures:
        lines.append(f"FAILED {f['key']}: {f.get('error')}")
    return lines


NO_SHARE = f"n/a: {NO_SAM_GAIN}"
OTHER_STRATA = f"n/a: {SAM_OTHER_STRATA}"


def overall_rows(a: Analysis) -> list[dict[str, str]]:
    overall = a.overall()
    rows = []
    for method, g in overall.items():
        share = ""
        if method not in ("baseline", "sam") and "sam" in overall:
            kept, why = share_of_sam_gain(overall, method)
            share = number(kept, ".0%") if kept is not None else f"n/a: {why}"
        rows.append(
            {
                "method": method,
                "mean gain": g.verdict(),
                "share of SAM's gain": share,
            }
        )
    return rows


# of a validation sample
SOURCES = {"train": "training pool", "dev": "dev set", "file": "validation file"}


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
                        "score": f"{number(s.mean, '.2f')} ± {number(s.std, '.2f')} (n={s.n})",
                    }
                )
    return rows


def _example_rows(a: Analysis) -> list[dict[str, str]]:
    return [
        {
            "task": task,
            "size": str(size or "all"),
            "trained on": f"{e['train_examples']} (seeded subset per seed"
            + (f"; classes {', '.join(e['labels'])})" if e.get("labels") else ")"),
            "selected on": (
                f"{e['validation_examples']} held out of the "
                + SOURCES.get(e["validation_from"], "training pool or dev set, by task")
                if e["validation_from"] != "reported"
                else "the reported examples themselves (no validation sample)"
            )
            + (f", by {e['selected_by']}" if e.get("selected_by") else ""),
            "reported on": f"{e['reported_examples']} dev examples"
            + (f" ({e['note']})" if e.get("note") else ""),
        }
        for (task, size), e in sorted(a.examples.items())
    ]


NO_RHO = "none (no ascent)"  # the baseline's radius


def _setting_columns(key: str, setting: dict[str, Any] | None) -> dict[str, str]:
    """task, size, method (from a ``"task|size|method"`` key), learning rate and rho as
    numbers ("n/a" where there is no setting yet)."""
    task, size, method = key.split("|")
    setting = setting or {}
    rho = setting.get("rho")
    return {
        "task": task,
        "size": str(int(size) or "all"),
        "method": method,
        "learning rate": number(setting.get("learning_rate"), "g"),
        "rho": NO_RHO if method == "baseline" else number(rho, "g"),
    }


def ran_setting(a: Analysis, key: str) -> tuple[dict[str, Any] | None, str]:
    """The setting a (task, size, method)'s seeds ran at, as numbers, and where it comes
    from: what its finished cells recorded, else its choice with ``samlm train``'s
    default learning rate where the choice gives none."""
    choice = a.choices[key]
    source = choice.source + (f": {choice.error}" if choice.error else "")
    if choice.setting is None:
        return None, source
    setting = {**choice.setting, **a.ran_at.get(key, {})}
    if setting.get("learning_rate") is None:
        lr, base = a.default_learning_rate
        setting["learning_rate"] = lr
        source += f" (learning rate: samlm train's default for {base})" if lr else f" ({base})"
    elif choice.setting.get("learning_rate") is None:
        source += " (learning rate: samlm train's default, as its cells recorded)"
    return setting, source


def _setting_rows(a: Analysis) -> list[dict[str, str]]:
    rows = []
    for key in a.choices:
        setting, source = ran_setting(a, key)
        rows.append({**_setting_columns(key, setting), "source": source})
    return rows


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
                    "validation score": number(t["score"], ".2f")
                    if t["status"] == "ok"
                    else t["status"],
                    "chosen": "yes" if chosen else "",
                }
            )
    return rows


# what each section with a fixed description shows
SECTION_TEXT = {
    "Overall": "Mean gain over the (task, size) strata, each counting once, with a 95% "
    "stratified bootstrap interval (seeds resampled within each stratum; Agarwal et al. "
    "2021; over one stratum: its paired t interval), and the share of SAM's mean gain each "
    "other method keeps (given only where SAM's gain is significantly positive, over the "
    "same strata).",
    "Examples": "Which examples each cell trained on, selected its checkpoint (and tuning "
    "its setting) on, and was scored on.",
    "Settings": "The learning rate and radius each method's seeds ran at, and where they "
    "come from.",
    "Tuning trials": "Every method had the same number of trials, on the tuning seed, scored "
    "on the validation sample; its seeds ran at the best one.",
    "Cost": "Time per step: a cell's training time without its evaluations over the steps "
    "it ran (a resumed cell: since its checkpoint), over the baseline cell's of the same "
    "seed; the median over seeds per task and size, averaged over them. Only pairs that ran "
    "on one machine count (n/a where none did: a grid grown from cells recorded elsewhere). "
    "Where both cells of a pair recorded their steps' CPU time (training on a CPU), the pair "
    "is timed by it, which a pause or another job does not inflate; other pairs by wall "
    "time, a rough ratio when cells share the machine. bench/step_overhead.py measures it "
    "side by side.",
    "Sharpness": "SAM's own rho-sharpness estimate (rho 0.05, one step), the Hessian's top "
    "eigenvalue and its trace on 64 training examples of each cell's best model, mean over "
    "seeds, next to the method's mean gain.",
}


def _scores_text(a: Analysis) -> str:
    """What the scores section shows: the model, seeds and where checkpoints were chosen."""
    validation = (
        f"a validation sample of at most {a.spec.validation_size} examples held out apart "
        "from the reported ones (the same for every method and seed)"
        if a.spec.validation_size
        else "the reported dev examples themselves (no validation sample: an optimistic selection)"
    )
    return (
        f"Model {a.spec.model}, seeds {a.spec.seed_list()}. Task score (0-100, the mean "
        "of a task's metrics where it has two) on the reported dev examples, mean ± sd "
        f"over seeds; checkpoints were selected on {validation}. A gain is the method's "
        "score minus the baseline's on the same seed (same training subset, same "
        "initialisation) with a 95% paired t interval over seeds; a gain whose interval "
        "includes zero is not significant."
    )


def _mixtures_text(a: Analysis) -> str:
    mixing = (a.spec.mixing, a.spec.mixing_limit, a.spec.temperature)
    return (
        "A mixture's score above is the mean of its tasks' scores (GLUE/SuperGLUE style, one "
        "model trained on them all, each task at the row's size, the tasks drawn "
        f"{describe_mixing(*mixing)}); here each task's score, mean ± sd over seeds."
    )


def sections(a: Analysis) -> list[tuple[str, str, list[dict[str, str]]]]:
    """The report's sections as (title, what it shows, table rows): one source for the
    terminal, markdown and HTML outputs; a section without rows to give is left out."""
    rows: list[tuple[str, Callable[[Analysis], list[dict[str, str]]], bool]] = [
        ("Scores and gains", _rows, True),
        ("Mixtures by task", _per_task_rows, bool(a.per_task)),
        ("Overall", overall_rows, True),
        ("Examples", _example_rows, True),
        ("Settings", _setting_rows, True),
        ("Tuning trials", _trial_rows, a.spec.tune),
        ("Cost", _cost_rows, True),
        ("Sharpness", _sharpness_rows, bool(a.sharpness)),
    ]
    texts = {"Scores and gains": _scores_text, "Mixtures by task": _mixtures_text}
    return [
        (title, texts[title](a) if title in texts else SECTION_TEXT[title], make(a))
        for title, make, shown in rows
        if shown
    ]


def terminal(a: Analysis) -> str:
    """The terminal summary: the answer's lines first (as ``report.md`` opens), then the
    sections' tables."""
    parts = [f"{TITLE}:", *[f"- {line}" for line in answer_lines(a)], MEANING, ""]
    for title, text, rows in sections(a):
        parts += [title, text, _table(rows), ""]
    return "\n".join(parts + status_lines(a)).rstrip()
