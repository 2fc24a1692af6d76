"""The README's result tables, each from recorded results stores in ``bench/results/``.

    python bench/tables.py evidence [--record bench/results/evidence]
    python bench/tables.py lora [--lora bench/results/lora] [--full bench/results/evidence]
    python bench/tables.py variants [--record bench/results/variants] [--plot PNG]
    python bench/tables.py user [--record bench/results/user] [--benchmark bench/results/evidence]
    python bench/tables.py eigensam [--record bench/results/eigensam]
        [--variants bench/results/variants]
    python bench/tables.py tasksam [--record bench/results/tasksam]

``evidence`` (:func:`evidence_table`): over the (task, size) strata where every method has
every seed, each method's paired gain over the baseline per stratum (95% t interval; bold
where it excludes zero), the mean over those strata (95% stratified bootstrap interval,
the report's), each method's time per training step over the baseline's on them (the
report's ratio), and the share of SAM's gain each other method keeps (given only where
SAM's mean gain is significantly above zero). Strata still running are named, not used.

``lora`` (:func:`lora_table`): LoRA against LoRA + SAM against full fine-tuning without
and with SAM, per task at the lora preset's size, from the lora preset's store and the
evidence grid's, whose full fine-tuning cells have the same tasks, size, seeds and so the
same training subsets and validation samples: each arm's score (mean ± sd over the seeds
all four arms have), SAM's paired gain over its baseline within LoRA and within full
fine-tuning, and LoRA's paired gain over full fine-tuning (both without SAM), each with
its 95% t interval, each gain's mean over the tasks with its stratified bootstrap
interval; then SAM's time per training step over its baseline in each regime. A task
whose arms are not all finished is listed as such.

``variants`` (:func:`variants_table`): each method's mean gain over the baseline across
the variants grid's strata (95% stratified bootstrap interval), the share of SAM's gain
it keeps, its forward-backward passes and time per training step over the baseline's,
and whether it meets the target: at least 80% of SAM's gain at no more than 1.15x the
baseline's time per step. The share is judged only where SAM's own mean gain is
significantly above zero, over the same strata; the target is met where the share and
the time per step both are, missed where either misses (a time per step over 1.15x
misses it whatever the share), and otherwise not judged, saying why. Time per step:
GSAM's and LookSAM's as timed on one machine (``timing.jsonl`` in the store; the
variants' cells have no baseline cell run beside them), over the baseline's timed there;
AE-SAM's estimated from its cells' share ``s`` of SAM steps as
``1 + s (t_SAM / t_baseline - 1)`` with those timings; the core methods' from the grid's
pairs of cells run on one machine (``Analysis.time_ratio``). ``--plot`` also draws each
method's mean gain (95% interval) against its time per step, the target's cost shaded.
How each store was made: ``bench/README.md``.

``user`` (:func:`user_table`): the user-data answer (``bench/results/protocol_user.md``):
SAM's paired gain per complete user stratum, the tuned baseline's validation accuracy (at
its selected checkpoint) beside the majority class's on the same validation sample
(marked "not learned" within 5 points; kept in the means), and SAM's mean gain over the
user strata, over the evidence grid's complete strata and over both together.

``eigensam`` and ``tasksam``: the evidence table (:func:`evidence_table`) of the grids that
issue 35's presets grow by one method (the evidence grid with Eigen-SAM, and GSAM beside it
from the variants grid, :func:`eigensam_table`; the mixture grid, one stratum, with
TaskSAM beside pooled SAM).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from pathlib import Path

import numpy as np

from samlm.compare import store
from samlm.compare.report import analyse
from samlm.compare.report.analysis import Analysis, gain_over_baseline, share_of_sam_gain
from samlm.compare.report.tables import gain_interval, number
from samlm.compare.stats import aggregate_gain, paired_differences, paired_gain, summarize

try:
    from bench.evidence import RESULTS, require_store
except ModuleNotFoundError as e:  # run as `python bench/tables.py`: bench/ is on the path
    if e.name != "bench":
        raise
    from evidence import RESULTS, require_store

TIMING_FILE = "timing.jsonl"  # a store's variants timed on one machine

# -- evidence ----------------------------------------------------------------------------

NAMES = {"glue/sst2": "SST-2", "superglue/cb": "CB", "superglue/rte": "RTE"}
LABELS = {
    "sam": "SAM",
    "sam_quarter": "SAM(0.25)",
    "asam": "ASAM",
    "gsam": "GSAM",
    "eigensam": "Eigen-SAM",
    "tasksam": "TaskSAM",
}


def complete_strata(a: Analysis) -> list[tuple[str, int]]:
    """The strata, in the grid's order, where every method has every seed's score."""
    seeds = set(a.spec.seed_list())
    return [
        key
        for key in a.spec.strata()
        if all(seeds <= set(a.scores.get(key, {}).get(m, {})) for m in a.spec.methods)
    ]


def task_label(task: str) -> str:
    """A table's name for a task: the benchmark's short name, a task file's stem in
    capitals, a mixture's tasks' names joined by ``+``."""
    if "+" in task:
        return "+".join(task_label(t) for t in task.split("+"))
    if task.endswith((".yaml", ".yml")):
        return Path(task).stem.upper()
    return NAMES.get(task, task)


def progress(a: Analysis, done: list[tuple[str, int]], strata: str) -> str:
    """A table's last line: how many of the grid's strata are complete, which still run."""
    running = [f"{task_label(t)} {s}" for t, s in a.spec.strata() if (t, s) not in done]
    return (
        f"{len(done)} of {len(a.spec.strata())} {strata} complete ({a.spec.seeds} seeds each)"
        + (f"; still running: {', '.join(running)}" if running else "")
        + ". Gains in points; bold: the 95% interval excludes zero."
    )


def evidence_table(record: Path, beside: Analysis | None = None, borrowed=()) -> str:
    """The evidence table of ``record``'s grid; with ``beside``, another grid grown from the
    same one (the same baseline cells, checked), its ``borrowed`` methods as more columns,
    over the strata complete in both."""
    a = analyse(record)
    columns = [(a, m) for m in a.spec.methods if m != "baseline"]
    columns += [(beside, m) for m in borrowed]
    done = complete_strata(a)
    if beside is not None:
        done = [k for k in done if k in complete_strata(beside)]
        for key in done:
            if a.scores[key]["baseline"] != beside.scores[key]["baseline"]:
                raise ValueError(f"{key}: the two grids' baseline cells differ")
    if not done:
        return "No stratum is complete yet."
    labels = [LABELS.get(m, m) for _, m in columns]
    lines = ["| stratum | " + " | ".join(labels) + " |", "|---" * (1 + len(columns)) + "|"]
    for task, size in done:
        gains = [gain_over_baseline(an.scores[(task, size)], m) for an, m in columns]
        name = f"{task_label(task)}, {size} examples"
        lines.append(f"| {name} | " + " | ".join(gain_interval(g) for g in gains) + " |")
    grids = {id(an): an for an, _ in columns}  # each grid's means computed once
    over = {
        key: dataclasses.replace(an, scores={k: an.scores[k] for k in done}).overall()
        for key, an in grids.items()
    }
    overall = {m: over[id(an)][m] for an, m in columns}
    mean = f"mean over the {len(done)} (stratified bootstrap)" if len(done) > 1 else "mean"
    lines.append(f"| {mean} | " + " | ".join(gain_interval(overall[m]) for _, m in columns) + " |")
    cost = [number(an.time_ratio(m, done), ".2f", "x") for an, m in columns]
    lines.append("| time per step vs baseline | " + " | ".join(cost) + " |")
    shares = []
    for _, m in columns:
        kept, why = share_of_sam_gain(overall, m) if m != "sam" else (None, "")
        shares.append("" if m == "sam" else number(kept, ".0%") if kept is not None else why)
    lines.append("| share of SAM's gain kept | " + " | ".join(shares) + " |")
    lines += ["", progress(a, done, "strata")]
    return "\n".join(lines)


def eigensam_table(record: Path, variants: Path) -> str:
    """The eigensam grid's evidence table with GSAM beside Eigen-SAM: GSAM's cells are the
    variants grid's, which grew the same evidence grid (its strata, seeds and baseline
    cells). GSAM's time per step is n/a here (no baseline cell ran beside its cells); its
    timing is the variants table's."""
    return evidence_table(record, beside=analyse(variants), borrowed=("gsam",))


# -- lora --------------------------------------------------------------------------------

ARMS = {  # arm -> (store, method)
    "full": ("full", "baseline"),
    "full + SAM": ("full", "sam"),
    "LoRA": ("lora", "baseline"),
    "LoRA + SAM": ("lora", "sam"),
}
GAINS = {  # gain -> (arm, over arm)
    "SAM within LoRA": ("LoRA + SAM", "LoRA"),
    "SAM within full": ("full + SAM", "full"),
    "LoRA over full": ("LoRA", "full"),
}


def lora_table(lora: Path, full: Path) -> str:
    stores = {"lora": analyse(lora), "full": analyse(full)}
    size = stores["lora"].spec.sizes[0]
    lines = [
        "| task | seeds | " + " | ".join(ARMS) + " | " + " | ".join(GAINS) + " |",
        "|---" * (2 + len(ARMS) + len(GAINS)) + "|",
    ]
    differences: dict[str, dict[str, dict[int, float]]] = {gain: {} for gain in GAINS}
    for task in stores["lora"].spec.tasks:
        scores = {
            arm: stores[where].scores.get((task, size), {}).get(method, {})
            for arm, (where, method) in ARMS.items()
        }
        seeds = sorted(set.intersection(*(set(s) for s in scores.values())))
        if not seeds:
            missing = [arm for arm, s in scores.items() if not s]
            why = "not finished: " + ", ".join(missing) if missing else "no common seed"
            cells = [why] + ["-"] * (len(ARMS) + len(GAINS) - 1)
            lines.append(f"| {task} | 0 | " + " | ".join(cells) + " |")
            continue
        row = [task, str(len(seeds))]
        for arm in ARMS:
            s = summarize([scores[arm][k] for k in seeds])
            row.append(f"{s.mean:.2f} ± {s.std:.2f}")
        for gain, (arm, over) in GAINS.items():
            pair = [{k: scores[a][k] for k in seeds} for a in (arm, over)]
            differences[gain][task] = paired_differences(*pair)
            row.append(gain_interval(paired_gain(*pair)))
        lines.append("| " + " | ".join(row) + " |")
    done = differences["SAM within LoRA"]
    if len(done) > 1:  # each gain's mean over the tasks that have all four arms
        means = [gain_interval(aggregate_gain(d)) for d in differences.values()]
        row = [f"mean over the {len(done)} tasks (stratified bootstrap)", ""]
        lines.append("| " + " | ".join(row + [""] * len(ARMS) + means) + " |")
    strata = [(task, size) for task in stores["lora"].spec.tasks]  # both regimes: these
    cost = {where: number(a.time_ratio("sam", strata), ".2f", "x") for where, a in stores.items()}
    lines += [
        "",
        f"Size {size}; gains in points with 95% paired t intervals (bold: excludes zero). "
        f"SAM's time per training step over its baseline on these tasks: {cost['lora']} "
        f"with LoRA, {cost['full']} with full fine-tuning.",
    ]
    return "\n".join(lines)


# -- variants ----------------------------------------------------------------------------

TARGET_SHARE = 0.80
TARGET_COST = 1.15
SHARE_ESTIMATED = ("aesam",)  # timed from its share of SAM steps (module docstring)


def timings(record: Path) -> dict[tuple[str, int, str, str], float]:
    """``(task, size, method, machine) -> CPU seconds per step`` from ``record``'s
    ``timing.jsonl`` (the last line of a key wins); empty where there is none."""
    path = record / TIMING_FILE
    if not path.is_file():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {(r["task"], r["size"], r["method"], r["machine"]): r["cpu_step_s"] for r in rows}


def timed_over_baseline(timed: dict[tuple[str, int, str, str], float], method: str) -> float:
    """The mean over the timed (stratum, machine)s of ``method``'s time over the baseline's."""
    ratios = [
        t / timed[(task, size, "baseline", machine)]
        for (task, size, m, machine), t in timed.items()
        if m == method and (task, size, "baseline", machine) in timed
    ]
    return float(np.mean(ratios)) if ratios else float("nan")


def time_ratio(
    a: Analysis, method: str, timed: dict[tuple[str, int, str, str], float]
) -> tuple[float, str]:
    """``method``'s time per step over the baseline's and where it comes from (module
    docstring): ``"timed"``, ``"estimated"`` or ``"grid"`` (also a method the timings
    lack)."""
    if method != "sam" and any(m == method for _, _, m, _ in timed):
        return timed_over_baseline(timed, method), "timed"
    if method in SHARE_ESTIMATED and not math.isnan(sam := timed_over_baseline(timed, "sam")):
        share = a.cost.get(method, {}).get("passes_per_step", float("nan")) - 1.0
        return 1.0 + share * (sam - 1.0), "estimated"
    return a.time_ratio(method), "grid"


def timing_check(timed: dict[tuple[str, int, str, str], float]) -> str:
    """SAM's time per step over the baseline's as timed on one machine."""
    ratio = timed_over_baseline(timed, "sam")
    return "" if math.isnan(ratio) else f"{ratio:.2f}x"


def variants_table(record: Path) -> str:
    a = analyse(record)
    timed = timings(record)
    overall = a.overall()
    lines = [
        "| method | mean gain [95%] | share of SAM's gain | passes per step | "
        "time per step vs baseline | target |",
        "|---|---|---|---|---|---|",
    ]
    strata = set(a.spec.strata())
    sources: dict[str, list[str]] = {}
    for method in a.spec.methods:
        if method == "baseline":
            continue
        g, cost = overall.get(method), a.cost.get(method, {})
        time, source = time_ratio(a, method, timed)
        sources.setdefault(source, []).append(method)
        passes = cost.get("passes_per_step", float("nan"))
        if g is None:
            lines.append(f"| {method} | no results | | | | |")
            continue
        gain = f"{g.mean:+.2f} [{g.low:+.2f}, {g.high:+.2f}]"
        mine = {key for key, _ in g.stratum_means}
        share, verdict = "", ""
        if method != "sam":
            kept, why = share_of_sam_gain(overall, method)
            share = number(kept, ".0%")
            if kept is None and time > TARGET_COST:  # the cost half fails on its own
                verdict = f"missed: {time:.2f}x > {TARGET_COST:.2f}x (share not judged: {why})"
            elif kept is None:
                verdict = f"not judged: {why}"
            elif not math.isfinite(time):
                verdict = "not judged: no time per step"
            else:
                verdict = "met" if kept >= TARGET_SHARE and time <= TARGET_COST else "missed"
        if method != "sam" and mine != strata:
            verdict += f" (partial: {len(mine)} of {len(strata)} strata)"
        cells = [gain, share, number(passes, ".2f"), number(time, ".2f", "x"), verdict]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"{len(strata)} (task, size) strata, {a.spec.seeds} seeds; target: at least "
        f"{TARGET_SHARE:.0%} of SAM's gain at no more than {TARGET_COST:.2f}x the "
        "baseline's time per step.",
    ]
    said = {
        "grid": "from the grid's cells (pairs run on one machine)",
        "timed": "timed on one machine (timing.jsonl)",
        "estimated": "estimated from its share of SAM steps and those timings",
    }
    where = "; ".join(f"{', '.join(ms)}: {said[k]}" for k, ms in sources.items())
    lines.append(f"Time per step: {where}.")
    if check := timing_check(timed):
        lines.append(f"SAM there: {check} the baseline's time per step.")
    return "\n".join(lines)


def cost_and_gain(record: Path) -> dict[str, tuple[float, str, float, float, float]]:
    """``method -> (time per step vs baseline, its source, mean gain, low, high)`` for
    every method with results (the table's figures; the baseline left out)."""
    a = analyse(record)
    timed, overall = timings(record), a.overall()
    return {
        m: (*time_ratio(a, m, timed), g.mean, g.low, g.high)
        for m in a.spec.methods
        if m != "baseline" and (g := overall.get(m)) is not None
    }


def plot(record: Path, path: Path) -> None:
    """Write :func:`cost_and_gain` as a PNG to ``path``: gain (95% interval) against
    time per step, the target's cost (at most 1.15x) shaded; a method without a time per
    step is left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from samlm.compare.report.plots import method_colour

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.axvspan(1.0, TARGET_COST, color="#2ca02c", alpha=0.12, label=f"cost <= {TARGET_COST}x")
    ax.axhline(0, color="grey", lw=0.8)
    for m, (time, source, mean, low, high) in cost_and_gain(record).items():
        if not math.isfinite(time):
            continue
        err = [[mean - low], [high - mean]]
        ax.errorbar([time], [mean], yerr=err, fmt="o", capsize=3, color=method_colour(m))
        label = m if source == "grid" else f"{m} ({source})"
        ax.annotate(label, (time, mean), textcoords="offset points", xytext=(5, 3), fontsize=8)
    ax.scatter([1.0], [0.0], color=method_colour("baseline"), zorder=3)
    ax.annotate("baseline", (1.0, 0.0), textcoords="offset points", xytext=(5, 3), fontsize=8)
    ax.margins(x=0.12)
    ax.set_xlabel("time per step relative to the baseline")
    ax.set_ylabel("mean gain over the baseline\n(points, 95% interval)")
    ax.set_title("the variants: cost against gain", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


# -- user --------------------------------------------------------------------------------

NOT_LEARNED = 5.0  # points over the majority class on the validation sample (protocol_user.md)


def validation_majority(task: str, size: int, validation_size: int) -> float:
    """The majority class's accuracy (%) on the stratum's validation sample: the sample is
    drawn with its own seed, the same for every run seed, so seed 0's is every seed's."""
    from collections import Counter

    from samlm.pipeline.data import run_splits
    from samlm.tasks import get_task

    splits = run_splits(
        get_task(task), None, train_size=size, seed=0, validation_size=validation_size
    )
    counts = Counter(example.label for example in splits.validation)
    return 100.0 * max(counts.values()) / len(splits.validation)


def baseline_validation(records: dict[str, dict], key: tuple[str, int]) -> float:
    """The tuned baseline's selection metric on the validation sample at its selected
    checkpoint (the best point of its ``curve``), mean over its seeds' ``records``."""
    task, size = key
    scores = [
        max(value for _, value in r["curve"])
        for r in records.values()
        if (r["task"], r["size"], r["method"], r.get("trial")) == (task, size, "baseline", None)
        and r["status"] == "ok"
    ]
    return float(np.mean(scores))


def sam_differences(a: Analysis, strata: list[tuple[str, int]]) -> dict:
    """``(task, size) -> {seed: SAM's score - the baseline's}`` over ``strata``."""
    return {k: paired_differences(a.scores[k]["sam"], a.scores[k]["baseline"]) for k in strata}


def user_table(record: Path, benchmark: Path, majority=validation_majority) -> str:
    """The user-data answer (``protocol_user.md``): SAM's paired gain per complete stratum,
    the tuned baseline's selected validation accuracy beside the majority class's (a
    stratum within :data:`NOT_LEARNED` points of it is marked, and stays in the means),
    then SAM's mean gain over the user strata, the benchmark strata (``benchmark``'s
    complete ones) and both together (stratified bootstrap).
    ``majority(task, size, validation_size)``."""
    a = analyse(record)
    done = complete_strata(a)
    if not done:
        return "No stratum is complete yet."
    lines = [
        "| stratum | SAM's gain | tuned baseline, validation accuracy | majority class, same |",
        "|---|---|---|---|",
    ]
    records = store.read(record)
    for key in done:
        base, floor = baseline_validation(records, key), majority(*key, a.spec.validation_size)
        mark = " (not learned)" if base - floor < NOT_LEARNED else ""
        gain = gain_interval(gain_over_baseline(a.scores[key], "sam"))
        name = f"{task_label(key[0])}, {key[1]} examples"
        lines.append(f"| {name} | {gain} | {base:.1f}{mark} | {floor:.1f} |")
    bench = analyse(benchmark)
    families = {"user": sam_differences(a, done)}
    families["benchmark"] = sam_differences(bench, complete_strata(bench))
    families["all"] = {
        (family, *k): d for family in ("user", "benchmark") for k, d in families[family].items()
    }
    lines += ["", "| SAM's mean gain over | strata | gain (stratified bootstrap) |"]
    lines.append("|---|---|---|")
    for family, strata in families.items():
        name = {"all": "user and benchmark strata together"}.get(family, f"the {family} strata")
        lines.append(f"| {name} | {len(strata)} | {gain_interval(aggregate_gain(strata))} |")
    lines += ["", progress(a, done, "user strata")]
    return "\n".join(lines)


# -- the command line --------------------------------------------------------------------

# section -> its stores: (option, the preset whose recorded store is its default)
STORES = {
    "evidence": [("record", "evidence")],
    "lora": [("lora", "lora"), ("full", "evidence")],
    "variants": [("record", "variants")],
    "user": [("record", "user"), ("benchmark", "evidence")],
    "eigensam": [("record", "eigensam"), ("variants", "variants")],
    "tasksam": [("record", "tasksam")],
}
TABLES = {
    "evidence": evidence_table,
    "lora": lora_table,
    "variants": variants_table,
    "user": user_table,
    "eigensam": eigensam_table,  # the evidence grid with Eigen-SAM and GSAM beside SAM
    "tasksam": evidence_table,  # the mixture grid with TaskSAM beside pooled SAM
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sections = parser.add_subparsers(dest="section", required=True)
    for section, stores in STORES.items():
        p = sections.add_parser(section, help=f"the {section} table")
        for option, preset in stores:
            p.add_argument(f"--{option}", type=Path, default=RESULTS / preset)
        if section == "variants":
            p.add_argument("--plot", type=Path, help="also write the cost-gain plot here (PNG)")
    args = parser.parse_args(argv)
    folders = [getattr(args, option) for option, _ in STORES[args.section]]
    for folder, (_, preset) in zip(folders, STORES[args.section], strict=True):
        require_store(parser, folder, preset)
    print(TABLES[args.section](*folders))
    if getattr(args, "plot", None):
        plot(args.record, args.plot)


if __name__ == "__main__":
    main()
