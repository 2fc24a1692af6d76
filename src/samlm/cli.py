"""The ``samlm`` command line (``samlm.cli:entry``, also ``python -m samlm``):

* ``samlm train``: fine-tune a model on a task with SAM, ASAM or the base optimizer alone;
* ``samlm tasks``: list the tasks, their metrics and whether their data is found;
* ``samlm compare``: SAM against its baseline on a grid of tasks x sizes x methods x seeds;
* ``samlm report``: (re)write the report of a ``samlm compare`` folder;
* ``samlm sharpness``: the sharpness diagnostics of a finished ``samlm train`` run.

The commands need the application's dependencies (``pip install 'samlm[all]'``), which
the optimizer alone (``pip install samlm``, torch only) leaves out. This module imports
them only inside the functions that use them, so that :func:`entry` can turn a missing one
into a one-line message instead of a traceback.
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
from collections.abc import Sequence
from dataclasses import MISSING, fields
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

HELP = {
    "task": "task name, e.g. superglue/rte, glue/sst2, qa/webquestions (see `samlm tasks`), "
    "or your own: a data file (reviews.csv), a YAML task file or hub:owner/name; several "
    "comma-separated train one model on their mixture",
    "mixture": "a named mixture instead of --task: glue or superglue, the benchmark's tasks "
    "whose data is in the data folder (and that the model's modelling supports)",
    "mixing": "mixture rates (Raffel et al. 2020): proportional to the tasks' training sizes "
    "(capped at --mixing-limit), temperature-scaled, or equal",
    "mixing_limit": "K: a task counts at most K examples in the proportional and temperature rates",
    "temperature": "T of --mixing temperature: rates^(1/T), renormalised",
    "output": "run folder (never overwritten without --overwrite)",
    "model": "model alias (minilm), local folder or Hub name",
    "modelling": "encoder (classification head), text2text (seq2seq) or causal (decoder-only "
    "LM: the text2text source as prompt, the target as completion); auto picks by model",
    "optimizer": "baseline (the base optimizer alone), sam, asam (adaptive SAM), gsam "
    "(surrogate gap, Zhuang et al. 2022), looksam (Liu et al. 2022), aesam (SAM when "
    "the gradient norm is high, Jiang et al. 2023), eigensam (the ascent leans towards "
    "the Hessian's top eigenvector, Luo et al. 2024) or tasksam (a mixture's tasks each "
    "perturbed on its own: the individual sharpness of DGSAM, Song et al. 2025, not its "
    "algorithm; stratified batches)",
    "base_optimizer": "auto: Adafactor for T5, AdamW otherwise",
    "rho": "SAM radius (default: 0.5 for asam [the ASAM authors' code]; else 0.15 text2text "
    "[Bahri et al. 2022], 0.05 otherwise [Foret et al. 2021])",
    "eta": "ASAM's offset in T = |w| + eta",
    "ascent_fraction": "share of each batch for the ascent gradient (Bahri et al.: 0.25)",
    "m": "m-sharpness: chunks per micro-batch, each perturbed separately",
    "m_examples": "m-sharpness as Foret et al. count m: examples per chunk (instead of --m)",
    "interval": "SAM every k-th step, plain steps between",
    "probability": "SAM with this probability per step (randomized SAM)",
    "rho_schedule": "constant, lr (rho follows the learning rate) or warmup (default: lr for "
    "gsam, as its paper, else constant)",
    "rho_min": "with --rho-schedule lr: rho at the end, where the learning rate reaches 0",
    "alpha": "gsam / looksam / eigensam: the weight of the extra direction (default 0.4 "
    "[GSAM's ViT setting] / 0.7 / 0.2 [the Eigen-SAM authors' code])",
    "looksam_k": "looksam: a SAM step every k steps, one pass with the kept direction between",
    "aesam_delta": "aesam: forgetting rate of the running mean and variance of ||g||^2, in (0, 1)",
    "aesam_lambda_1": "aesam: c_t at the run's end; a step perturbs when ||g||^2 >= mean + c_t "
    "std (running statistics)",
    "aesam_lambda_2": "aesam: c_t at the run's start, moving linearly to --aesam-lambda-1",
    "eigensam_refresh": "eigensam: steps between refreshes of the Hessian's top eigenvector, "
    "by power iteration on the step's batch; default from the Eigen-SAM authors' code",
    "eigensam_iterations": "eigensam: power iterations (Hessian-vector products) per refresh, "
    "warm-started from the last eigenvector; default from the Eigen-SAM authors' code",
    "peft": "none, or lora: LoRA adapters (PEFT) train, the model stays frozen; SAM perturbs "
    "the adapters (needs pip install 'samlm[peft]')",
    "lora_r": "LoRA rank r",
    "lora_alpha": "LoRA scale alpha (the update is alpha / r * B A)",
    "lora_dropout": "dropout on the LoRA input",
    "lora_targets": "comma-separated module names to adapt, e.g. query,value (default: "
    "PEFT's for the model type)",
    "flat_lora": "Flat-LoRA (Li et al. 2025): each step's gradient at W + s B A plus seeded "
    "row-scaled Gaussian noise, one pass per step; with --optimizer baseline, or with SAM "
    "(both passes perturbed); needs --peft lora",
    "flat_lora_sigma": "Flat-LoRA's noise level sigma: noise std sigma_t ||row of W + s B A|| "
    "/ sqrt(fan-in), sigma_t rising from 0 to sigma (cosine)",
    "bar": "BAR (Li, Zhang and He 2024): each LoRA layer's factors rescaled by (1 +- a_t "
    "lr) before each optimizer step, balancing ||A|| and ||B|| as SAM does implicitly; one "
    "pass per step instead of SAM's two; with --optimizer baseline and --peft lora",
    "bar_alpha": "BAR's mu_0: a_t = mu_0 times the --bar-schedule",
    "bar_variant": "nbar grows the factor with the larger gradient (the paper's LoRA rule), "
    "obar shrinks the larger factor",
    "bar_schedule": "a_t over the run: linear (1 - t/T), cosine or constant",
    "rho_warmup_steps": "steps of the rho warm-up (counted from --sam-start-step)",
    "sam_start_step": "plain steps of the base optimizer before SAM starts (one "
    "forward-backward each); SAM from this step on",
    "exclude_head": "leave the task head (model.classifier, model.score...) out of the "
    "perturbation; the base optimizer still trains it (encoder models only)",
    "same_dropout": "replay the RNG so both SAM passes use the same dropout masks",
    "distributed_sam": "with several processes: per_replica (each perturbs with its own "
    "gradient, no extra traffic) or synchronized (one perturbation from the global gradient)",
    "sam_accumulation": "with --gradient-accumulation-steps: per_microbatch (SAM on each "
    "micro-batch, SAM's and ASAM's default) or global (one SAM step over all of them, as one "
    "batch; the variants' default and only mode)",
    "learning_rate": "default: 1e-4 AdamW, 1e-3 Adafactor, 1e-2 SGD",
    "lr_scheduler": "Trainer scheduler name (default: constant for Adafactor, else linear)",
    "epochs": "training epochs",
    "max_steps": "optimizer steps (overrides --epochs when > 0)",
    "min_steps": "step budget: train max(min_steps, epochs x steps per epoch) steps",
    "max_target_length": "target tokens (text2text); completion tokens with eos, also the "
    "generation limit (causal)",
    "train_size": "low-data: this many training examples (seeded, stratified by label)",
    "train_fraction": "low-data: this share of the training set (seeded, stratified)",
    "eval_size": "evaluate on this many dev examples (a fixed, stratified subset)",
    "validation_size": "select the checkpoint on this many held-out examples, never on the "
    "reported dev examples (a fixed stratified sample, the same for every method and seed)",
    "validation_from": "where the validation sample comes from: train (the training pool "
    "outside the training subset), dev (part of the dev set, reported on the rest), or auto "
    "(train when the pool allows)",
    "save_steps": "evaluate and checkpoint every N steps (default: every epoch)",
    "seed": "seed of the subset, the initialisation, the data order and dropout",
    "data_dir": "folder in the official layout (default: $SAMLM_DATA_DIR, else the Hub)",
    "progress": "show the progress bars: the Trainer's, the model's loading and saving",
}


def _add_train_options(parser: argparse.ArgumentParser) -> None:
    from .optim.comm import MODES
    from .optim.validation import ACCUMULATION_MODES
    from .optim.variants import AESAM, EigenSAM
    from .pipeline.adapters import PEFT_METHODS
    from .pipeline.config import BASE_OPTIMIZERS, METHODS, MODELLING, TrainConfig, flag
    from .pipeline.data import VALIDATION_FROM
    from .pipeline.mixing import MIXINGS
    from .training.bar import BAR_SCHEDULES, BAR_VARIANTS
    from .training.config import AESAM_OPTIONS, EIGENSAM_OPTIONS

    parser.add_argument("--config", help="YAML file of options (keys as below); flags win")
    parser.add_argument("--resume", action="store_true", help="continue the run in --output")
    parser.add_argument("--overwrite", action="store_true", help="replace --output")
    choices = {
        "optimizer": METHODS,
        "base_optimizer": BASE_OPTIMIZERS,
        "modelling": MODELLING,
        "distributed_sam": MODES,
        "sam_accumulation": ACCUMULATION_MODES,
        "validation_from": VALIDATION_FROM,
        "peft": PEFT_METHODS,
        "mixing": MIXINGS,
        "bar_variant": BAR_VARIANTS,
        "bar_schedule": BAR_SCHEDULES,
    }
    # options whose None means "the variant's default": that default, from the variant
    aesam = inspect.signature(AESAM).parameters
    eigensam = inspect.signature(EigenSAM).parameters
    variant_defaults = {
        **{"aesam_" + name: aesam[name].default for name in AESAM_OPTIONS},
        **{"eigensam_" + name: eigensam[name].default for name in EIGENSAM_OPTIONS},
    }
    for f in fields(TrainConfig):
        option = flag(f.name)
        default = None if f.default is MISSING else f.default
        default = variant_defaults.get(f.name, default)
        text = HELP.get(f.name, f.name.replace("_", " "))
        if default is not None:
            text += f" (default: {default})"
        if f.type == "bool":
            parser.add_argument(
                option, action=argparse.BooleanOptionalAction, default=None, help=text
            )
            continue
        kind = float if "float" in f.type else int if "int" in f.type else str
        parser.add_argument(
            option,
            type=kind,
            choices=choices.get(f.name),
            default=None,
            help=text,
            metavar=None if f.name in choices else f.name.upper(),
        )


# samlm train's data flags, as in the Hugging Face example scripts (run_classification.py):
# they write a user task's reference (tasks/user_spec.py), flag -> its key there
DATA_FLAGS = {
    "train_file": ("train", "training data: CSV, TSV, JSON, JSONL or Parquet (instead of --task)"),
    "validation_file": (
        "validation",
        "validation data; with --test-file, checkpoints are selected on it, else it is "
        "the reported set",
    ),
    "test_file": (
        "test",
        "test data, the reported set (default: a held-out share of the "
        "training file, see --test-size)",
    ),
    "dataset_name": (
        "dataset",
        "a Hugging Face dataset instead of files (the local cache when offline)",
    ),
    "dataset_config_name": ("config", "the dataset's configuration"),
    "validation_split_name": ("validation_split", "the dataset's validation split, if any"),
    "test_split_name": ("test_split", "the dataset's test split, if any (labelled)"),
    "text_column": (
        "text",
        "the text column (default: one named text, sentence, question, review, ...)",
    ),
    "text_pair_column": (
        "text_pair",
        "the second text of a pair (default: sentence2 beside "
        "sentence1, hypothesis beside premise, ...)",
    ),
    "label_column": ("label", "the label column (default: one named label, sentiment, class, ...)"),
    "target_column": (
        "target",
        "the target text of a text-to-text task, for seq2seq and "
        "causal models (scored by exact match and token F1)",
    ),
    "task_kind": (
        "kind",
        "classification, regression or text2text (default: text2text with --target-column, "
        "regression for non-integer labels)",
    ),
    "metric": (
        "metric",
        "the selection metric: accuracy or f1_macro (classification), "
        "pearson or spearman (regression), exact_match or f1 (text2text)",
    ),
    "test_size": (
        "test_size",
        "rows held out of the training file as the test set, when "
        "there is no test file (seeded, stratified)",
    ),
    "test_fraction": (
        "test_fraction",
        "the same as a share (default 0.25, the share of sklearn's and datasets' train_test_split)",
    ),
    "encoding": ("encoding", "the files' text encoding (default utf-8)"),
    "drop_invalid": (
        "drop_invalid",
        "drop rows with an empty text or no label (counted in "
        "the run's note) instead of refusing the data",
    ),
}
DATA_TYPES = {"test_size": int, "test_fraction": float}


def _add_data_flags(parser: argparse.ArgumentParser) -> None:
    from .tasks.user_spec import USER_KINDS

    group = parser.add_argument_group(
        "your own data (instead of a task name; the same keys as a YAML task file)"
    )
    for name, (_, text) in DATA_FLAGS.items():
        flags = list(dict.fromkeys(["--" + name.replace("_", "-"), "--" + name]))
        if name == "drop_invalid":
            group.add_argument(*flags, action="store_true", default=None, help=text)
            continue
        group.add_argument(
            *flags,
            type=DATA_TYPES.get(name, str),
            choices=USER_KINDS[1:] if name == "task_kind" else None,
            help=text,
        )


def data_task(args: argparse.Namespace) -> str | None:
    """The task reference ``samlm train``'s data flags give (None: none given): the
    training file or ``hub:`` dataset (or ``--task``) with the other flags as keys."""
    from .tasks.user_spec import HUB, compose_ref

    given = {name: getattr(args, name) for name in DATA_FLAGS if getattr(args, name) is not None}
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
    return compose_ref(base, {DATA_FLAGS[name][0]: value for name, value in given.items()})


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

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
    tasks.add_argument("--data-dir", help="folder in the official layout ($SAMLM_DATA_DIR)")
    tasks.add_argument("--model", default="minilm", help="whose tokenizer counts the tokens")
    tasks.add_argument("--max-length", type=int, default=128, help="input tokens of a run")
    tasks.add_argument(
        "--sizes", type=_csv(int), default=[100, 250, 0], help="training sizes to check"
    )
    tasks.add_argument(
        "--validation-size", type=int, default=500, help="the validation sample to check"
    )
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


def _csv(kind):
    def parse(text: str) -> list:
        return [kind(x) for x in text.split(",") if x.strip()]

    return parse


def _add_compare_options(p: argparse.ArgumentParser) -> None:
    from .compare.grid import METHODS, PRESETS

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
    p.add_argument(
        "--tasks",
        type=_csv(str),
        help="comma-separated task names, or your own data: a data file (reviews.csv, with "
        "?key=value options), a YAML task file, hub:owner/name; a task mixture is one of "
        "them, its tasks joined "
        "by + (glue/sst2+superglue/cb) or named (mixture/glue, mixture/superglue: the "
        "benchmark's tasks whose data is found): one model trained on them all at --sizes "
        "examples per task, scored by their average",
    )
    p.add_argument("--sizes", type=_csv(int), help="comma-separated training-set sizes (0 = all)")
    p.add_argument("--methods", type=_csv(str), help=f"comma-separated, from {', '.join(METHODS)}")
    p.add_argument("--seeds", type=int, help="number of seeds")
    p.add_argument(
        "--seed-offset",
        type=int,
        help="first seed (default 0): --seed-offset 3 --seeds 3 runs seeds 3, 4, 5, a set "
        "disjoint from the default's",
    )
    p.add_argument("--model", help="model alias, folder or Hub name (default: minilm)")
    p.add_argument("--epochs", type=float, help="training epochs (the step budget may add steps)")
    p.add_argument(
        "--min-steps",
        type=int,
        help="step budget: every cell trains at least this many optimizer steps",
    )
    p.add_argument("--eval-steps", type=int, help="evaluate and checkpoint every N steps")
    p.add_argument(
        "--validation-size",
        type=int,
        help="held-out examples that checkpoint selection and tuning look at (from the "
        "training pool outside the subset when it allows, else half the dev set at most)",
    )
    p.add_argument(
        "--tune",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="tune every method with the same number of trials on the validation sample "
        "(learning rate; rho for the SAM family), then run its seeds at its best setting",
    )
    p.add_argument(
        "--learning-rate",
        type=float,
        help="one learning rate for every method (instead of the recorded tuned ones)",
    )
    p.add_argument("--batch-size", type=int, help="training examples per optimizer step")
    p.add_argument("--max-length", type=int, help="input tokens (longer inputs are truncated)")
    p.add_argument("--eval-size", type=int, help="cap on the reported dev examples")
    p.add_argument(
        "--rho-sam",
        type=float,
        help="rho of sam, sam_quarter, gsam, looksam, aesam, eigensam and tasksam (default 0.05, "
        "Foret et al. 2021)",
    )
    p.add_argument(
        "--rho-asam", type=float, help="rho of asam (default 0.5, the ASAM authors' code)"
    )
    _add_model_options(p)
    _add_mixing_options(p)
    p.add_argument("--data-dir", help="folder in the official layout ($SAMLM_DATA_DIR)")
    p.add_argument(
        "--output", default="runs/compare", help="results folder, resumable (default: %(default)s)"
    )
    p.add_argument(
        "--backend",
        choices=["local", "ray"],
        default="local",
        help="where the cells run: local worker processes, or Ray tasks on a cluster "
        "(pip install 'samlm[ray]'; data and output folders on storage every node sees)",
    )
    p.add_argument(
        "--workers", type=int, help="local backend: parallel cells (default: one per core)"
    )
    p.add_argument(
        "--address",
        help="ray backend: the cluster to join: auto (RAY_ADDRESS, else the cluster this "
        "machine started last), HEAD:6379, or ray://HEAD:10001 (Ray Client); a cluster with "
        "token authentication needs RAY_AUTH_MODE=token and its token here (README) "
        "(default: a Ray instance of its own on this machine for the grid, never a running "
        "one)",
    )
    p.add_argument(
        "--cpus-per-cell",
        type=float,
        help="ray backend: CPUs a cell asks for, its torch threads (default 1)",
    )
    p.add_argument(
        "--gpus-per-cell",
        type=float,
        help="ray backend: GPUs a cell asks for (default: 1 when the cluster has GPUs, else 0)",
    )
    p.add_argument(
        "--retries",
        type=int,
        help="ray backend: retries of a cell whose worker or node died (default 3)",
    )
    p.add_argument(
        "--sharpness",
        action="store_true",
        help="measure every finished cell's sharpness and report it per method",
    )
    p.add_argument(
        "--keep-models",
        action="store_true",
        help="keep every cell's best model (by default deleted once its result is stored)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace --output")


def _add_model_options(p: argparse.ArgumentParser) -> None:
    """``samlm train``'s modelling and LoRA flags, with its help (``grid.TRAIN_OPTIONS``)."""
    from .pipeline.adapters import PEFT_METHODS
    from .pipeline.config import MODELLING, flag

    p.add_argument("--modelling", choices=MODELLING, help=HELP["modelling"])
    p.add_argument("--peft", choices=PEFT_METHODS, help=HELP["peft"])
    for name, kind in (("lora_r", int), ("lora_alpha", float), ("lora_dropout", float)):
        p.add_argument(flag(name), type=kind, help=HELP[name])
    p.add_argument("--lora-targets", help=HELP["lora_targets"])


def _add_mixing_options(p: argparse.ArgumentParser) -> None:
    """``samlm train``'s mixing flags, for the cells of a mixture (``grid.MIXTURE_OPTIONS``)."""
    from .pipeline.mixing import MIXINGS

    cells = " (mixture cells only; default: samlm train's)"
    p.add_argument("--mixing", choices=MIXINGS, help=HELP["mixing"] + cells)
    p.add_argument("--mixing-limit", type=int, help=HELP["mixing_limit"] + cells)
    p.add_argument("--temperature", type=float, help=HELP["temperature"] + cells)


def _compare(args: argparse.Namespace) -> int:
    from .compare import PRESETS, GridSpec, compare, lock, write_report
    from .compare.grid import MIXTURE_OPTIONS, TRAIN_OPTIONS, with_recorded_settings
    from .compare.report import terminal
    from .compare.validate import check_grid
    from .pipeline.config import check_output_path
    from .tasks import resolve_data_dir

    backend = _backend(args)  # first: a backend option error reads no data
    check_output_path(args.output)
    options = dict(PRESETS[args.preset])
    for name in (
        "tasks",
        "sizes",
        "methods",
        "seeds",
        "seed_offset",
        "model",
        "epochs",
        "min_steps",
        "eval_steps",
        "validation_size",
        "tune",
        "learning_rate",
        "batch_size",
        "max_length",
        "eval_size",
        "rho_sam",
        "rho_asam",
        *TRAIN_OPTIONS,
        *MIXTURE_OPTIONS,
    ):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    data_dir = resolve_data_dir(args.data_dir)
    options["data_dir"] = str(data_dir) if data_dir else None
    options["sharpness"] = args.sharpness
    options["keep_models"] = args.keep_models
    _check_inert_compare_options(args, options)
    explicit = bool(_given(args, SETTINGS))
    if not options.get("tune") and not explicit:  # the evidence grid's tuning, where recorded
        options = with_recorded_settings(options)
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


def _check_inert_compare_options(args: argparse.Namespace, options: dict[str, Any]) -> None:
    """Refuse the settings a grid would not use: fixed settings under --tune, a radius for
    no method that has it, LoRA options without LoRA."""
    from .compare.grid import TRAIN_OPTIONS
    from .pipeline.config import flag_values

    methods = options.get("methods", [])
    fixed = _given(args, SETTINGS)
    if options.get("tune") and fixed:
        raise ValueError(f"{flag_values(fixed)} with --tune: the tuning chooses them")
    if (given := _given(args, ["rho_asam"])) and "asam" not in methods:
        raise ValueError(f"{flag_values(given)} has an effect only with asam among the methods")
    if (given := _given(args, ["rho_sam"])) and not set(methods) - {"baseline", "asam"}:
        raise ValueError(
            f"{flag_values(given)} has an effect only with a SAM method other than asam "
            "among the methods"
        )
    lora = _given(args, [n for n in TRAIN_OPTIONS if n.startswith("lora_")])
    if lora and options.get("peft", "none") != "lora":
        verb = "has" if len(lora) == 1 else "have"
        raise ValueError(f"{flag_values(lora)} {verb} an effect only with --peft lora")


RAY_OPTIONS = ("address", "cpus_per_cell", "gpus_per_cell", "retries")
SETTINGS = ("learning_rate", "rho_sam", "rho_asam")  # compare's fixed settings


def _given(args: argparse.Namespace, names: Sequence[str]) -> dict[str, Any]:
    """The options of ``names`` the user gave, with their values, in order."""
    return {n: getattr(args, n) for n in names if getattr(args, n) is not None}


def _backend(args: argparse.Namespace) -> Any:
    """The backend ``samlm compare`` runs its cells on; an option of the other backend
    is an error naming it."""
    from .compare.backends import LocalBackend, RayBackend

    if args.backend == "local":
        given = _given(args, RAY_OPTIONS)
        if given:
            from .pipeline.config import flag_values

            raise ValueError(f"{flag_values(given)}: only with --backend ray")
        return LocalBackend(args.workers)
    if args.workers is not None:
        raise ValueError(
            "--workers: only with --backend local (on Ray, --cpus-per-cell and "
            "--gpus-per-cell decide how many cells run at once)"
        )
    try:
        return RayBackend(**_given(args, RAY_OPTIONS))
    except ImportError as err:
        raise ValueError(str(err)) from None


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
