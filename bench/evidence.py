"""The evidence grid (``samlm compare --preset evidence``), or another tuned preset's
(``--preset lora``, ``--preset mixture``), run across sessions.

    python bench/evidence.py --data-dir ../shared/data [--preset evidence] [--output DIR]

The recorded runs, one after the other (each resumes; a finished one only reports;
variants refuses to start before evidence is complete, hence the ``|| break``):

    for p in evidence mixture lora variants; do
        python bench/evidence.py --preset $p --data-dir ../shared/data || break
    done

The grid runs in ``--output`` (models and checkpoints stay there); its results store
(``compare.yaml``, ``results.jsonl``) is mirrored to ``--record`` (default
``bench/results/PRESET``, committed) every time a cell finishes, and the report is
written there when the grid is done. A later run, on this machine or another, starts
by taking the recorded store back into ``--output``, so finished cells never run twice
(a cell interrupted midway starts again unless its checkpoints are still in
``--output``). Extra arguments go to ``samlm compare`` (e.g. ``--workers 1``).

``python bench/tables.py evidence`` gives the evidence grid's answer over its complete
strata (the README's table).

The lora preset's LoRA cells and the evidence grid's full fine-tuning cells make the
four-arm LoRA table: ``python bench/tables.py lora``.

The user-data evidence (``--preset user``, run from the repository root): baseline against
SAM on TREC, SUBJ, CR and MPQA (``../shared/data/user``, through ``bench/user_tasks/``) at
250 and 100 examples, 5 seeds, tuned, under ``bench/results/protocol_user.md``.

Eigen-SAM on the evidence strata (``--preset eigensam``) and TaskSAM on the task mixture
(``--preset tasksam``) grow the evidence and mixture grids by one method each, tuned
alike, from their recorded stores; ``python bench/tables.py eigensam`` (``tasksam``)
prints each one's table.

The variants comparison (``--preset variants``: the evidence grid with GSAM, LookSAM and
AE-SAM added) starts from the evidence grid's recorded store, so its core methods' cells
are not run again; it refuses to start before the evidence grid is complete; ``python
bench/tables.py variants`` then gives its table (gain, share of SAM's gain, cost, and the
target), with the variants' time per step from the store's ``timing.jsonl`` (their
baseline cells ran on other machines; ``bench/README.md`` says how it was timed).

    python bench/evidence.py --export-settings

writes the settings the evidence grid's tuning chose, per (task, size, method) whose
trials are all done, into ``src/samlm/compare/recorded.json`` (package data read by
``samlm.compare.recorded``; the default preset runs at them).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from samlm.compare import PRESETS, GridSpec, store
from samlm.compare.grid import PROTOCOL
from samlm.compare.tuning import choose

RECORDED = Path(__file__).resolve().parents[1] / "src" / "samlm" / "compare" / "recorded.json"
RESULTS = Path(__file__).resolve().parent / "results"  # the committed stores, one per preset

FILES = (store.SPEC_FILE, store.FILE)
REPORT = (
    "report.md",
    "report.html",
    "gain_by_stratum.png",
    "gain_vs_size.png",
    "dev_metric_during_training.png",
    "cost_vs_gain.png",
)


# The user-data evidence (bench/results/protocol_user.md, written before any of its
# cells ran): the evidence protocol on the four sets of ../shared/data/user, read through
# the task files in bench/user_tasks (paths from the repository root: run from there)
USER_TASKS = [f"bench/user_tasks/{name}.yaml" for name in ("trec", "subj", "cr", "mpqa")]
BENCH_PRESETS = {
    "user": {
        "tasks": USER_TASKS,
        "sizes": [250, 100],
        "methods": ["baseline", "sam"],
        "seeds": 5,
        "tune": True,
        **PROTOCOL,
    },
    # Issue 35's recorded comparisons, under bench/results/protocol.md's protocol (every
    # method on the same 4 trials): Eigen-SAM on the evidence strata beside the evidence
    # grid's methods; TaskSAM on the task mixture beside pooled SAM (the mixture preset's
    # 3 seeds). Each starts from the recorded grid it grows (BUILDS_ON).
    "eigensam": {**PRESETS["evidence"], "methods": [*PRESETS["evidence"]["methods"], "eigensam"]},
    "tasksam": {**PRESETS["mixture"], "methods": [*PRESETS["mixture"]["methods"], "tasksam"]},
}


# a preset whose grid contains another's: its run starts from that one's recorded store
BUILDS_ON = {"variants": "evidence", "eigensam": "evidence", "tasksam": "mixture"}


def grid_of(preset: str) -> dict:
    """The grid of a library preset or of one of bench's own."""
    return BENCH_PRESETS.get(preset) or PRESETS[preset]


def compare_args(preset: str) -> list[str]:
    """``samlm compare``'s arguments for ``preset`` (bench's own are spelled as flags)."""
    if preset not in BENCH_PRESETS:
        return ["--preset", preset]
    grid = BENCH_PRESETS[preset]
    if preset in BUILDS_ON:  # a library preset's grid with more methods
        return ["--preset", BUILDS_ON[preset], "--methods", ",".join(grid["methods"])]
    flags = {
        "--tasks": ",".join(grid["tasks"]),
        "--sizes": ",".join(map(str, grid["sizes"])),
        "--methods": ",".join(grid["methods"]),
        "--seeds": str(grid["seeds"]),
        "--min-steps": str(grid["min_steps"]),
        "--save-steps": str(grid["save_steps"]),
        "--validation-size": str(grid["validation_size"]),
    }
    return [x for pair in flags.items() for x in pair] + (["--tune"] if grid["tune"] else [])


def missing_cells(preset: str, record: Path) -> int:
    """How many of ``preset``'s cells ``record``'s store lacks or holds failed."""
    done = store.read(record)
    cells = GridSpec(**grid_of(preset)).cells()
    return sum(done.get(c.key, {}).get("status") != "ok" for c in cells)


def merge(source: Path, target: Path) -> int:
    """Append to ``target``'s store the records of ``source`` it lacks; returns how many."""
    if not (source / store.FILE).is_file():
        return 0
    have = store.read(target)
    added = 0
    for key, record in store.read(source).items():
        if key not in have or (have[key]["status"] != "ok" and record["status"] == "ok"):
            store.append(target, record)
            added += 1
    return added


def seed(output: Path, record: Path, base_record: Path | None = None) -> None:
    """Start ``output`` from the recorded stores: the spec, then the records of ``record``
    and of ``base_record`` (the grid a preset builds on) that ``output`` lacks.

    The spec goes in before any record, as ``samlm compare`` refuses a folder of results
    without one; a fresh run of a preset that builds on another starts from that one's
    spec, which its own grid grows (more methods) as ``samlm compare`` accepts.
    """
    output.mkdir(parents=True, exist_ok=True)
    specs = [record / store.SPEC_FILE] + ([base_record / store.SPEC_FILE] if base_record else [])
    for spec in specs:
        if spec.is_file() and not (output / store.SPEC_FILE).is_file():
            shutil.copyfile(spec, output / store.SPEC_FILE)
    print(f"taken from {record}: {merge(record, output)} record(s)", flush=True)
    if base_record:
        print(f"taken from {base_record}: {merge(base_record, output)} record(s)", flush=True)


def require_store(parser: argparse.ArgumentParser, folder: Path, preset: str) -> None:
    """Exit 2, naming ``folder`` and the command that fills it, unless it holds a store."""
    if not (folder / store.SPEC_FILE).is_file():
        parser.exit(
            2,
            f"{parser.prog}: no recorded store in {folder}: run python bench/evidence.py "
            f"--preset {preset} --data-dir ../shared/data first\n",
        )


def mirror(output: Path, record: Path) -> None:
    record.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        if (output / name).is_file():
            shutil.copyfile(output / name, record / name)


def export_settings(record: Path, target: Path = RECORDED) -> dict[str, dict[str, float]]:
    """The settings the recorded tuning chose, written to ``recorded.json`` (the package
    data ``samlm.compare.recorded`` reads) with the store they come from."""
    spec = store.read_spec(record)
    chosen = {
        key: {k: v for k, v in c.setting.items() if v is not None}
        for key, c in sorted(choose(spec, store.read(record)).items())
        if c.setting is not None
    }
    source = str(record.relative_to(target.parents[3]))
    target.write_text(json.dumps({"source": source, "settings": chosen}, indent=2) + "\n")
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="required unless --export-settings")
    parser.add_argument(
        "--preset",
        default="evidence",
        choices=["evidence", "lora", "mixture", "variants", *BENCH_PRESETS],
    )
    parser.add_argument("--output", help="default: runs/PRESET")
    parser.add_argument("--record", help="default: bench/results/PRESET")
    parser.add_argument("--export-settings", action="store_true")
    args, extra = parser.parse_known_args()
    output = Path(args.output or f"runs/{args.preset}")
    record = Path(args.record or RESULTS / args.preset).resolve()
    if args.export_settings:
        if args.preset != "evidence":
            parser.error("--export-settings: the evidence grid's settings only")
        for key, setting in export_settings(record).items():
            print(key, setting)
        return
    if not args.data_dir:
        parser.error("--data-dir is required")
    base = BUILDS_ON.get(args.preset)
    if base:
        base_record = record.parent / base
        missing = missing_cells(base, base_record)
        if missing:
            print(
                f"evidence.py: --preset {args.preset} builds on the {base} grid, which lacks "
                f"{missing} cell(s) in {base_record} (the store beside --record): finish "
                f"it first (--preset {base}; failed cells run again)",
                file=sys.stderr,
            )
            sys.exit(2)
    seed(output, record, base_record if base else None)
    command = [sys.executable, "-m", "samlm", "compare", *compare_args(args.preset)]
    command += ["--data-dir", args.data_dir, "--output", str(output), *extra]
    process = subprocess.Popen(command)
    seen = -1.0
    while process.poll() is None:
        time.sleep(20)
        path = output / store.FILE
        if path.is_file() and path.stat().st_mtime != seen:
            seen = path.stat().st_mtime
            mirror(output, record)
    mirror(output, record)
    for name in REPORT:
        if (output / name).is_file():
            shutil.copyfile(output / name, record / name)
    sys.exit(process.returncode)


if __name__ == "__main__":
    main()
