"""The ``samlm`` command line (``samlm.cli:entry``, also ``python -m samlm``):

* ``samlm train``: fine-tune a model on a task with SAM, ASAM or the base optimizer alone;
* ``samlm tasks``: list the tasks, their metrics and whether their data is found;
* ``samlm compare``: SAM against its baseline on a grid of tasks x sizes x methods x seeds;
* ``samlm report``: (re)write the report of a ``samlm compare`` folder;
* ``samlm sharpness``: the sharpness diagnostics of a finished ``samlm train`` run.

``train``'s, ``compare``'s, ``sharpness``'s and ``tasks``' options are generated from the
dataclasses that declare them (:mod:`samlm.options`): ``TrainConfig`` and ``DataFlags``,
``GridSpec`` and ``BackendOptions``, ``RunOptions`` and ``MeasureOptions``, ``LookOptions``;
this module adds each
command's own few (``--config``, ``--preset``, ``--output``, ``--overwrite``...).

The commands need the application's dependencies (``pip install 'samlm[all]'``), which
the optimizer alone (``pip install samlm``, torch only) leaves out. This module imports
them only inside the functions that use them, so that :func:`entry` can turn a missing one
into a one-line message instead of a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import fields
from typing import Any

# What ``pip install 'samlm[all]'`` adds to the torch-only core, by import name.
APPLICATION_MODULES = frozenset(
    {
        "accelerate",
        "datasets",
        "matplotlib",
        "numpy",
        "scipy",
        "sklearn",
        "tensorboard",
        "tqdm",
        "transformers",
        "yaml",
    }
)
INSTALL_HINT = "pip install 'samlm[all]'"


def _add_train_options(parser: argparse.ArgumentParser) -> None:
    """``samlm train``'s flags: the command's own, then one per :class:`TrainConfig`
    field, generated from its declaration (an option not given parses as None, so that
    ``--config``'s value stands)."""
    from .options import add_arguments
    from .pipeline.config import TrainConfig

    parser.add_argument("--config", help="YAML file of options (keys as below); flags win")
    parser.add_argument("--resume", action="store_true", help="continue the run in --output")
    parser.add_argument("--overwrite", action="store_true", help="replace --output")
    add_arguments(parser, TrainConfig)


def _add_data_flags(parser: argparse.ArgumentParser) -> None:
    from .options import add_arguments
    from .tasks.user_spec import DataFlags

    group = parser.add_argument_group(
        "your own data (instead of a task name; the same keys as a YAML task file)"
    )
    add_arguments(group, DataFlags, underscores=True)


def data_task(args: argparse.Namespace) -> str | None:
    """The task reference ``samlm train``'s data flags give (None: none given): the
    training file or ``hub:`` dataset (or ``--task``) with the other flags as keys."""
    from .tasks.user_spec import HUB, DataFlags, compose_ref

    given = _given(args, DataFlags)
    if not given:
        return None
    base = given.pop("train_file", None)
    if "dataset_name" in given:
        if base is not None:
            raise ValueError("give --train-file or --dataset-name, not both")
        base = HUB + given.pop("dataset_name")
    if base is not None and args.task:
        raise ValueError("give --task or --train-file (--dataset-name), not both")
    if base is None:
        if not args.task or "," in args.task:
            raise ValueError(
                f"{', '.join('--' + n.replace('_', '-') for n in given)}: give --train-file "
                "(or --dataset-name, or a data file or task file as --task) to apply them to"
            )
        base = args.task
    keys = {f.name: f.metadata["key"] for f in fields(DataFlags)}
    return compose_ref(base, {keys[name]: value for name, value in given.items()})


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .options import add_arguments
    from .pipeline.look import LookOptions

    parser = argparse.ArgumentParser(prog="samlm", description="Sharpness-aware fine-tuning.")
    parser.add_argument("--version", action="version", version=f"samlm {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="fine-tune on a task with SAM or its baseline")
    _add_train_options(train)
    _add_data_flags(train)
    tasks = sub.add_parser(
        "tasks",
        help="list the tasks, their metrics and data; or look at the tasks named (rows, "
        "labels, majority class, lengths in tokens, whether the sizes fit)",
    )
    tasks.add_argument(
        "task", nargs="*", help="tasks to look at: names, data files, YAML task files"
    )
    add_arguments(tasks, LookOptions, with_defaults=True)
    _add_compare_options(
        sub.add_parser(
            "compare", help="SAM against its baseline: a grid of tasks x sizes x methods x seeds"
        )
    )
    report = sub.add_parser("report", help="(re)write the report of a samlm compare folder")
    report.add_argument("run_dir", help="the --output folder of samlm compare")
    from .analysis.cli import add_sharpness_parser

    add_sharpness_parser(sub)
    return parser


def _add_compare_options(p: argparse.ArgumentParser) -> None:
    """``samlm compare``'s flags: the command's own, then one per declared field of
    :class:`GridSpec` and :class:`BackendOptions` (their help is there)."""
    from .compare.backends import BackendOptions
    from .compare.grid import PRESETS, GridSpec
    from .options import add_arguments

    p.description = (
        "SAM against its baseline on a grid of tasks x sizes x methods x seeds. The grid "
        "options left out (tasks, sizes, methods, seeds, steps, settings...) take the "
        "--preset's values."
    )
    p.add_argument(
        "--preset",
        choices=list(PRESETS),
        default="default",
        help="default: SST-2 at 250 examples, baseline / SAM / SAM(0.25), 3 seeds, at the "
        "evidence grid's tuned settings; evidence: every (task, size) the step sweep found "
        "learnable, 4 methods, 5 seeds, tuned (hours); lora: LoRA against LoRA + SAM on "
        "those tasks at 250 examples, 5 seeds, tuned; mixture: one model on SST-2 + CB + "
        "RTE at 250 examples each, baseline against SAM, 3 seeds, tuned; variants: the "
        "evidence grid with GSAM, LookSAM and AE-SAM added; paper: every local "
        "GLUE/SuperGLUE task at 250 examples and the full set, 5 seeds, tuned (days)",
    )
    add_arguments(p, GridSpec, show_defaults=False)  # a preset's value stands
    p.add_argument(
        "--output", default="runs/compare", help="results folder, resumable (default: %(default)s)"
    )
    add_arguments(p, BackendOptions, with_defaults=True, show_defaults=False)
    p.add_argument("--overwrite", action="store_true", help="replace --output")


def _compare(args: argparse.Namespace) -> int:
    from .compare import PRESETS, GridSpec, compare, lock, write_report
    from .compare.backends import BackendOptions
    from .compare.grid import with_recorded_settings
    from .compare.report import terminal
    from .compare.validate import check_grid
    from .options import check_inert, defaults
    from .pipeline.config import check_output_path
    from .tasks import resolve_data_dir

    backend = _options(args, BackendOptions).make()  # first: its error reads no data
    check_output_path(args.output)
    given = _given(args, GridSpec)
    options = {**PRESETS[args.preset], **given}
    data_dir = resolve_data_dir(args.data_dir)
    options["data_dir"] = str(data_dir) if data_dir else None
    resolved = {**defaults(GridSpec), **options}
    check_inert(GridSpec, argparse.Namespace(**resolved), given)
    if not options.get("tune") and not {"learning_rate", "rho_sam", "rho_asam"} & set(given):
        options = with_recorded_settings(options)  # the evidence grid's tuning, where recorded
    spec = GridSpec(**options)
    with lock.hold(args.output):  # a second run on the folder exits 2 before reading data
        check_grid(spec)
        records = compare(spec, args.output, backend=backend, overwrite=args.overwrite)
        print(terminal(write_report(args.output)))
    print(f"\nreport: {args.output}/report.html, {args.output}/report.md")
    cells = [records.get(c.key, {}) for c in spec.cells()]
    if not any(r.get("status") == "ok" for r in cells):
        print("samlm compare: error: every cell failed (errors above)", file=sys.stderr)
        return 1
    return 0


def _given(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The options of dataclass ``cls`` the user gave, with their values, in order."""
    names = (f.name for f in fields(cls))
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def _options(args: argparse.Namespace, cls: type) -> Any:
    """``cls`` built from the options of ``args`` that are its fields."""
    return cls(**{f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)})


def _report(args: argparse.Namespace) -> None:
    from .compare import write_report
    from .compare.lock import describe, holder
    from .compare.report import terminal

    print(terminal(write_report(args.run_dir)))
    running = holder(args.run_dir)
    if running:  # read, not locked: a look at a grid while it runs
        print(f"\n{args.run_dir} is still being written by samlm compare ({describe(running)}):")
        print("this report has the cells finished so far.")
    print(f"\nreport: {args.run_dir}/report.html, {args.run_dir}/report.md")


def train_config(args: argparse.Namespace) -> Any:
    """``samlm train``'s :class:`TrainConfig`: ``--config``'s file, the flags given win."""
    from .pipeline import TrainConfig

    names = {f.name for f in fields(TrainConfig)}
    overrides = {k: v for k, v in vars(args).items() if k in names}
    task = data_task(args)
    if task is not None:
        overrides["task"] = task
    return TrainConfig.from_sources(args.config, overrides)


def _train(args: argparse.Namespace) -> None:
    from .pipeline import train

    cfg = train_config(args)
    result = train(cfg, resume=args.resume, overwrite=args.overwrite)
    if os.environ.get("RANK", "0") == "0":  # one line under a launcher too
        scores = ", ".join(f"{k} {v:.2f}" for k, v in result["metrics"].items() if k != "loss")
        print(f"{result['task']} ({result['method']}): {scores}  -> {cfg.output}/metrics.json")


METRIC_SETS = {
    "accuracy": "accuracy",
    "accuracy_macro_f1": "accuracy + macro-F1",
    "f1_accuracy": "F1 + accuracy",
    "matthews": "Matthews corr.",
    "pearson_spearman": "Pearson + Spearman",
    "multirc": "F1a + EM",
    "squad": "EM + token F1",
}


def _look(args: argparse.Namespace) -> None:
    """``samlm tasks TASK ...``: a look at each task before training on it."""
    from transformers import AutoTokenizer

    from .pipeline.data import data_folder
    from .pipeline.look import look, render
    from .pipeline.models import resolve_model
    from .tasks import get_task

    root = data_folder(args.data_dir)
    tasks = [get_task(name) for name in args.task]  # every task's problems before any look
    tokenizer = AutoTokenizer.from_pretrained(resolve_model(args.model, "auto", None).path)
    problems = []
    for task in tasks:
        info = look(
            task,
            root,
            tokenizer=tokenizer,
            max_length=args.max_length,
            sizes=args.sizes,
            validation_size=args.validation_size,
        )
        print(render(info, args.model))
        problems += info["problems"]
    if problems:  # what samlm train and samlm compare would refuse: exit 2
        raise ValueError("\n".join(problems))


def _tasks(args: argparse.Namespace) -> None:
    from .pipeline.data import data_folder
    from .tasks import describe_tasks

    if args.task:
        return _look(args)
    rows = describe_tasks(data_folder(args.data_dir))  # a folder that is not there: exit 2
    print(f"{'task':<18} {'metrics (main)':<34} {'modelling':<30} data")
    for row in rows:
        metrics = f"{METRIC_SETS[row['metrics']]} ({row['main_metric']})"
        data = "found" if row["local"] else "not found (Hub when online)"
        print(f"{row['name']:<18} {metrics:<34} {' + '.join(row['modelling']):<30} {data}")
    print(
        "\nencoder: a classification head on an encoder such as MiniLM (COPA as multiple "
        "choice, MultiRC per answer);\ntext2text: a seq2seq model such as T5, scored after "
        "generation (closed-book QA, TyDiQA and ReCoRD only this way);\ncausal: a decoder-only "
        "LM such as GPT-2 or Llama, the text2text source as prompt, scored after generation."
    )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        from . import interrupt
        from .analysis.cli import run_sharpness

        commands = {
            "train": _train,
            "tasks": _tasks,
            "compare": _compare,
            "report": _report,
            "sharpness": run_sharpness,
        }
        # Ctrl-C: what is kept and the command that goes on, exit 130
        kept = {
            "train": interrupt.train_kept,
            "compare": interrupt.compare_kept,
            "sharpness": interrupt.sharpness_kept,
        }
        if args.command in kept:
            given = sys.argv[1:] if argv is None else list(argv)
            code = interrupt.run(
                args.command,
                given,
                lambda: commands[args.command](args),
                lambda started: kept[args.command](args, started),
            )
        else:
            code = commands[args.command](args)
    except (ValueError, FileExistsError) as err:
        print(f"samlm {args.command}: error: {err}", file=sys.stderr)
        return 2
    return code or 0


def entry() -> Any:  # console-script entry point
    """Run :func:`main`; a missing application dependency exits 1 with one line saying
    which module is missing and how to install it (no traceback)."""
    try:
        code = main()
    except ModuleNotFoundError as err:
        missing = (err.name or "").partition(".")[0]
        if missing not in APPLICATION_MODULES:
            raise
        print(
            f"samlm: error: the command line needs the module '{missing}', which the "
            f"optimizer-only install leaves out: {INSTALL_HINT}",
            file=sys.stderr,
        )
        sys.exit(1)
    sys.exit(code)
