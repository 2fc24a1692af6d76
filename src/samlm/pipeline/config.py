"""``TrainConfig``: every option of ``samlm train``, from a YAML file and the command line,
each declared once (its help, choices and the rule for when it has an effect, in the
field's metadata: :mod:`samlm.options`), from which ``samlm train``'s parser, the type,
choice and inert-option checks and the SAM options passed to ``SAMConfig`` (the same
names) are generated.

Defaults follow the papers where they apply (resolved in :func:`resolve_defaults`):
rho 0.5 for ASAM (its authors' code), else 0.15 for text-to-text models (Bahri et al.
2022) and 0.05 for encoders (Foret et al. 2021); Adafactor with a constant learning rate
of 1e-3 for T5 (Raffel et al. 2020, as Bahri et al. fine-tune), AdamW with a linear
decay for encoders.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from ..optim.comm import MODES
from ..optim.validation import (
    ACCUMULATION_MODES,
    in_interval,
    non_negative,
    one_of,
    optional_positive_int,
    positive_float,
    positive_int,
)
from ..optim.variants import AESAM, EigenSAM
from ..options import Needs, changed, check_declared, check_inert, defaults, option
from ..training.bar import BAR, BAR_SCHEDULES, BAR_VARIANTS
from ..training.config import SAMConfig
from ..training.flat_lora import FlatLoRA
from .adapters import PEFT_METHODS, require_peft
from .data import VALIDATION_FROM
from .mixing import MIXINGS, MIXTURES

METHODS = ("baseline", "sam", "asam", "gsam", "looksam", "aesam", "eigensam", "tasksam")
VARIANT_METHODS = ("gsam", "looksam", "aesam", "eigensam", "tasksam")  # SAMConfig.variant
BASE_OPTIMIZERS = ("auto", "adamw", "adafactor", "sgd")
MODELLING = ("auto", "encoder", "text2text", "causal")


# Rules: when an option has an effect (samlm.options.check_inert refuses it elsewhere)
@functools.cache  # one rule per set of methods: the options it refuses share a message
def _optimizer_in(*methods: str) -> Needs:
    return Needs(lambda c: c.optimizer in methods, "--optimizer " + " or ".join(methods))


SAM = Needs(
    lambda c: c.optimizer != "baseline",
    "a SAM optimizer, not --optimizer baseline (no SAM step uses them)",
)
ALPHA = _optimizer_in("gsam", "looksam", "eigensam")
LORA = Needs(lambda c: c.peft == "lora", "--peft lora")
FLAT_LORA = Needs(lambda c: c.flat_lora, "--flat-lora")
BAR_ON = Needs(lambda c: c.bar, "--bar")


def _sam_option(default: Any, help: str) -> Any:
    """An option only a SAM step uses: refused with ``--optimizer baseline``."""
    return option(default, needs=SAM, help=help)


def _variant_option(variant: type, name: str, help: str) -> Any:
    """The option ``<variant>_<name>``: None, the variant's own default (shown in the
    help), given only with ``--optimizer <variant>``."""
    default = inspect.signature(variant).parameters[name].default
    return option(
        None,
        needs=(SAM, _optimizer_in(variant.name)),
        shown_default=default,
        help=f"{variant.name}: {help}",
    )


@dataclass
class TrainConfig:
    """The resolved options of one training run (see ``samlm train --help``): each
    field's metadata is its flag's help, choices and rule (:mod:`samlm.options`)."""

    task: str = option(
        help="task name, e.g. superglue/rte, glue/sst2, qa/webquestions (see `samlm tasks`), "
        "or your own: a data file (reviews.csv), a YAML task file or hub:owner/name; several "
        "comma-separated train one model on their mixture"
    )
    output: str = option(help="run folder (never overwritten without --overwrite)")
    mixture: str | None = option(
        None,
        help="a named mixture instead of --task: glue or superglue, the benchmark's tasks "
        "whose data is in the data folder (and that the model's modelling supports)",
    )
    mixing: str = option(
        "proportional",
        choices=MIXINGS,
        help="mixture rates (Raffel et al. 2020): proportional to the tasks' training sizes "
        "(capped at --mixing-limit), temperature-scaled, or equal",
    )
    mixing_limit: int | None = option(
        None,
        help="K: a task counts at most K examples in the proportional and temperature rates",
        needs=Needs(
            lambda c: c.mixing != "equal",
            "--mixing proportional or temperature (it caps a task's size in their rates)",
        ),
    )
    temperature: float = option(
        1.0,
        help="T of --mixing temperature: rates^(1/T), renormalised",
        needs=Needs(lambda c: c.mixing == "temperature", "--mixing temperature"),
    )
    model: str = option("minilm", help="model alias (minilm), local folder or Hub name")
    modelling: str = option(
        "auto",
        choices=MODELLING,
        help="encoder (classification head), text2text (seq2seq) or causal (decoder-only "
        "LM: the text2text source as prompt, the target as completion); auto picks by model",
    )
    optimizer: str = option(
        "sam",
        choices=METHODS,
        help="baseline (the base optimizer alone), sam, asam (adaptive SAM), gsam "
        "(surrogate gap, Zhuang et al. 2022), looksam (Liu et al. 2022), aesam (SAM when "
        "the gradient norm is high, Jiang et al. 2023), eigensam (the ascent leans towards "
        "the Hessian's top eigenvector, Luo et al. 2024) or tasksam (a mixture's tasks each "
        "perturbed on its own: the individual sharpness of DGSAM, Song et al. 2025, not its "
        "algorithm; stratified batches)",
    )
    base_optimizer: str = option(
        "auto", choices=BASE_OPTIMIZERS, help="auto: Adafactor for T5, AdamW otherwise"
    )
    rho: float | None = _sam_option(
        None,
        help="SAM radius (default: 0.5 for asam [the ASAM authors' code]; else 0.15 "
        "text2text [Bahri et al. 2022], 0.05 otherwise [Foret et al. 2021])",
    )
    eta: float = option(
        0.01, needs=(SAM, _optimizer_in("asam")), help="ASAM's offset in T = |w| + eta"
    )
    ascent_fraction: float = _sam_option(
        1.0, help="share of each batch for the ascent gradient (Bahri et al.: 0.25)"
    )
    m: int = _sam_option(1, help="m-sharpness: chunks per micro-batch, each perturbed separately")
    m_examples: int | None = _sam_option(
        None,
        help="m-sharpness as Foret et al. count m: examples per chunk (instead of --m)",
    )
    interval: int = _sam_option(1, help="SAM every k-th step, plain steps between")
    probability: float = _sam_option(
        1.0, help="SAM with this probability per step (randomized SAM)"
    )
    rho_schedule: str | None = _sam_option(
        None,
        help="constant, lr (rho follows the learning rate) or warmup (default: lr for "
        "gsam, as its paper, else constant)",
    )
    rho_warmup_steps: int = option(
        0,
        needs=(SAM, Needs(lambda c: c.rho_schedule == "warmup", "--rho-schedule warmup")),
        help="steps of the rho warm-up (counted from --sam-start-step)",
    )
    rho_min: float = _sam_option(
        0.0,
        help="with --rho-schedule lr: rho at the end, where the learning rate reaches 0",
    )
    alpha: float | None = option(
        None,
        needs=(SAM, ALPHA),
        help="gsam / looksam / eigensam: the weight of the extra direction (default 0.4 "
        "[GSAM's ViT setting] / 0.7 / 0.2 [the Eigen-SAM authors' code])",
    )
    looksam_k: int = option(
        5,
        needs=(SAM, _optimizer_in("looksam")),
        help="looksam: a SAM step every k steps, one pass with the kept direction between",
    )
    aesam_delta: float | None = _variant_option(
        AESAM, "delta", "forgetting rate of the running mean and variance of ||g||^2, in (0, 1)"
    )
    aesam_lambda_1: float | None = _variant_option(
        AESAM,
        "lambda_1",
        "c_t at the run's end; a step perturbs when ||g||^2 >= mean + c_t std (running statistics)",
    )
    aesam_lambda_2: float | None = _variant_option(
        AESAM, "lambda_2", "c_t at the run's start, moving linearly to --aesam-lambda-1"
    )
    eigensam_refresh: int | None = _variant_option(
        EigenSAM,
        "refresh",
        "steps between refreshes of the Hessian's top eigenvector, by power iteration on the "
        "step's batch; default from the Eigen-SAM authors' code",
    )
    eigensam_iterations: int | None = _variant_option(
        EigenSAM,
        "iterations",
        "power iterations (Hessian-vector products) per refresh, warm-started from the last "
        "eigenvector; default from the Eigen-SAM authors' code",
    )
    peft: str = option(
        "none",
        choices=PEFT_METHODS,
        help="none, or lora: LoRA adapters (PEFT) train, the model stays frozen; SAM "
        "perturbs the adapters (needs pip install 'samlm[peft]')",
    )
    lora_r: int = option(8, needs=LORA, help="LoRA rank r")
    lora_alpha: float = option(
        16.0, needs=LORA, help="LoRA scale alpha (the update is alpha / r * B A)"
    )
    lora_dropout: float = option(0.05, needs=LORA, help="dropout on the LoRA input")
    lora_targets: str | None = option(
        None,
        needs=LORA,
        help="comma-separated module names to adapt, e.g. query,value (default: PEFT's "
        "for the model type)",
    )
    flat_lora: bool = option(
        False,
        help="Flat-LoRA (Li et al. 2025): each step's gradient at W + s B A plus seeded "
        "row-scaled Gaussian noise, one pass per step; with --optimizer baseline, or with "
        "SAM (both passes perturbed); needs --peft lora",
    )
    flat_lora_sigma: float = option(
        0.05,
        needs=FLAT_LORA,
        help="Flat-LoRA's noise level sigma: noise std sigma_t ||row of W + s B A|| "
        "/ sqrt(fan-in), sigma_t rising from 0 to sigma (cosine)",
    )
    bar: bool = option(
        False,
        help="BAR (Li, Zhang and He 2024): each LoRA layer's factors rescaled by (1 +- a_t "
        "lr) before each optimizer step, balancing ||A|| and ||B|| as SAM does implicitly; "
        "one pass per step instead of SAM's two; with --optimizer baseline and --peft lora",
    )
    bar_alpha: float = option(
        0.5, needs=BAR_ON, help="BAR's mu_0: a_t = mu_0 times the --bar-schedule"
    )
    bar_variant: str = option(
        "nbar",
        choices=BAR_VARIANTS,
        needs=BAR_ON,
        help="nbar grows the factor with the larger gradient (the paper's LoRA rule), "
        "obar shrinks the larger factor",
    )
    bar_schedule: str = option(
        "linear",
        choices=BAR_SCHEDULES,
        needs=BAR_ON,
        help="a_t over the run: linear (1 - t/T), cosine or constant",
    )
    sam_start_step: int = _sam_option(
        0,
        help="plain steps of the base optimizer before SAM starts (one forward-backward "
        "each); SAM from this step on",
    )
    exclude_head: bool = _sam_option(
        False,
        help="leave the task head (model.classifier, model.score...) out of the "
        "perturbation; the base optimizer still trains it (encoder models only)",
    )
    same_dropout: bool = _sam_option(
        False, help="replay the RNG so both SAM passes use the same dropout masks"
    )
    distributed_sam: str = option(
        "per_replica",
        choices=MODES,
        needs=SAM,
        help="with several processes: per_replica (each perturbs with its own gradient, no "
        "extra traffic) or synchronized (one perturbation from the global gradient)",
    )
    sam_accumulation: str | None = option(
        None,
        choices=ACCUMULATION_MODES,
        needs=(
            SAM,
            Needs(lambda c: c.gradient_accumulation_steps > 1, "--gradient-accumulation-steps > 1"),
        ),
        help="with --gradient-accumulation-steps: per_microbatch (SAM on each micro-batch, "
        "SAM's and ASAM's default) or global (one SAM step over all of them, as one batch; "
        "the variants' default and only mode)",
    )
    learning_rate: float | None = option(None, help="default: 1e-4 AdamW, 1e-3 Adafactor, 1e-2 SGD")
    lr_scheduler: str | None = option(
        None, help="Trainer scheduler name (default: constant for Adafactor, else linear)"
    )
    weight_decay: float = option(0.01, help="the base optimizer's weight decay")
    warmup_ratio: float = option(0.0, help="share of the steps of the learning-rate warm-up")
    epochs: float = option(3.0, help="training epochs")
    max_steps: int = option(-1, help="optimizer steps (overrides --epochs when > 0)")
    min_steps: int = option(
        0, help="step budget: train max(min_steps, epochs x steps per epoch) steps"
    )
    batch_size: int = option(16, help="training examples per device and micro-batch")
    eval_batch_size: int = option(64, help="examples per evaluation batch")
    gradient_accumulation_steps: int = option(1, help="micro-batches per optimizer step")
    max_length: int = option(128, help="input tokens (longer inputs are truncated)")
    max_target_length: int = option(
        32,
        help="target tokens (text2text); completion tokens with eos, also the generation "
        "limit (causal)",
    )
    train_size: int | None = option(
        None, help="low-data: this many training examples (seeded, stratified by label)"
    )
    train_fraction: float | None = option(
        None, help="low-data: this share of the training set (seeded, stratified)"
    )
    eval_size: int | None = option(
        None, help="evaluate on this many dev examples (a fixed, stratified subset)"
    )
    validation_size: int | None = option(
        None,
        help="select the checkpoint on this many held-out examples, never on the reported "
        "dev examples (a fixed stratified sample, the same for every method and seed)",
    )
    validation_from: str = option(
        "auto",
        choices=VALIDATION_FROM,
        help="where the validation sample comes from: train (the training pool outside the "
        "training subset), dev (part of the dev set, reported on the rest), or auto (train "
        "when the pool allows)",
    )
    save_steps: int | None = option(
        None, help="evaluate and checkpoint every N steps (default: every epoch)"
    )
    logging_steps: int = option(10, help="log the loss every N steps")
    max_grad_norm: float = option(
        1.0, help="clip the gradient norm to this (the Trainer's max_grad_norm)"
    )
    bf16: bool = option(False, help="train in bfloat16 mixed precision")
    seed: int = option(0, help="seed of the subset, the initialisation, the data order and dropout")
    data_dir: str | None = option(
        None, help="folder in the official layout (default: $SAMLM_DATA_DIR, else the Hub)"
    )
    progress: bool = option(
        True, help="show the progress bars: the Trainer's, the model's loading and saving"
    )

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the option and its value for anything out of range."""
        check_declared(self)  # types and choices
        self._validate_tasks()
        for name in (
            "batch_size",
            "eval_batch_size",
            "gradient_accumulation_steps",
            "max_length",
            "max_target_length",
            "logging_steps",
        ):
            positive_int(name, getattr(self, name))
        if self.peft == "lora":
            require_peft()
            positive_int("lora_r", self.lora_r)
            positive_float("lora_alpha", self.lora_alpha)
            in_interval("lora_dropout", self.lora_dropout, 0.0, 1.0, open_high=True)
        for name in ("flat_lora_sigma", "bar_alpha"):
            non_negative(name, getattr(self, name))
        for name in ("train_size", "eval_size", "validation_size", "save_steps"):
            optional_positive_int(name, getattr(self, name))
        if self.train_size is not None and self.train_fraction is not None:
            raise ValueError("give --train-size or --train-fraction, not both")
        if self.train_fraction is not None:
            in_interval("train_fraction", self.train_fraction, 0.0, 1.0, open_low=True)
        if self.learning_rate is not None:
            positive_float("learning_rate", self.learning_rate)
        positive_float("epochs", self.epochs)
        positive_int("min_steps", self.min_steps, minimum=0)
        if self.max_steps == 0 or self.max_steps < -1:
            raise ValueError(f"max_steps={self.max_steps} must be >= 1 (or -1 for epochs)")
        for name in ("weight_decay", "max_grad_norm"):
            non_negative(name, getattr(self, name))
        in_interval("warmup_ratio", self.warmup_ratio, 0.0, 1.0, open_high=True)
        check_inert(TrainConfig, self, changed(self))
        if self.optimizer == "tasksam" and not self.is_mixture():
            raise ValueError(
                "--optimizer tasksam perturbs each task of a mixture on its own: give several "
                "tasks (--task a,b) or --mixture (on one task it is --optimizer sam)"
            )
        self._validate_lora_flatness()
        self.sam_config(0.05)  # SAM's own checks: rho, eta, ascent_fraction, schedules...

    def _validate_lora_flatness(self) -> None:
        """--flat-lora and --bar: LoRA runs only; BAR replaces SAM, so not with SAM."""
        for flag_, on in (("--flat-lora", self.flat_lora), ("--bar", self.bar)):
            if on and self.peft != "lora":
                raise ValueError(f"{flag_} needs --peft lora: it acts on the LoRA adapters")
        if self.bar and self.optimizer != "baseline":
            raise ValueError(
                f"--bar with --optimizer {self.optimizer}: BAR replaces SAM's second pass; "
                "use --optimizer baseline (--flat-lora combines with SAM)"
            )

    def lora_flatness(self) -> dict[str, Any]:
        """The trainer's ``flat_lora`` and ``bar`` options (empty when neither is on)."""
        out: dict[str, Any] = {}
        if self.flat_lora:
            out["flat_lora"] = FlatLoRA(sigma=self.flat_lora_sigma, seed=self.seed)
        if self.bar:
            out["bar"] = BAR(self.bar_alpha, self.bar_variant, self.bar_schedule)
        return out

    def _validate_tasks(self) -> None:
        if bool(self.task_names()) == bool(self.mixture):
            raise ValueError("give --task (one task, or several comma-separated) or --mixture")
        one_of("mixture", self.mixture, MIXTURES, none_ok=True)
        optional_positive_int("mixing_limit", self.mixing_limit)
        positive_float("temperature", self.temperature)

    def task_names(self) -> list[str]:
        """``--task a,b`` as a list of names."""
        return task_names(self.task)

    def is_mixture(self) -> bool:
        """Several tasks, or a named mixture (``mixture.py``)."""
        return names_a_mixture(self.task, self.mixture)

    def examples_per_step(self) -> int:
        """Training examples per optimizer step, over all processes of a launcher."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        return self.batch_size * self.gradient_accumulation_steps * world

    def epoch_steps(self, n_train: int) -> int:
        """Optimizer steps in one epoch of ``n_train`` examples."""
        return math.ceil(n_train / self.examples_per_step())

    def budget_steps(self, n_train: int) -> int:
        """The step budget over ``n_train`` examples: ``max(min_steps, ceil(epochs x steps
        per epoch))``."""
        return max(self.min_steps, math.ceil(self.epochs * self.epoch_steps(n_train)))

    def lora_target_list(self) -> list[str] | None:
        """``--lora-targets q,v`` as a list (None: PEFT's default for the model type)."""
        if not self.lora_targets:
            return None
        return [t.strip() for t in self.lora_targets.split(",") if t.strip()]

    def sam_config(self, default_rho: float) -> SAMConfig:
        """The run's :class:`SAMConfig`: its options of the same names, with ``rho``
        (``default_rho`` when not given), ``rho_schedule``, ``adaptive`` and ``variant``
        resolved from ``--optimizer``."""
        return SAMConfig(
            **{name: getattr(self, name) for name in SAM_FIELDS},
            rho=default_rho if self.rho is None else self.rho,
            adaptive=self.optimizer == "asam",
            rho_schedule=self.rho_schedule or ("lr" if self.optimizer == "gsam" else "constant"),
            variant=self.optimizer if self.optimizer in VARIANT_METHODS else None,
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_sources(cls, yaml_path: str | Path | None, overrides: dict[str, Any]) -> TrainConfig:
        """Options from a YAML file (keys as the long options, ``-`` or ``_``), then the
        command line's explicit values on top."""
        values: dict[str, Any] = {}
        if yaml_path is not None:
            values.update(read_yaml(yaml_path))
        values.update({k: v for k, v in overrides.items() if v is not None})
        missing = [name for name in ("task", "output") if name not in values]
        if "mixture" in values and "task" in missing:
            missing.remove("task")
            values["task"] = ""
        if missing:
            flags = ["--task (or --mixture)" if m == "task" else "--" + m for m in missing]
            raise ValueError(f"missing required option(s): {', '.join(flags)}")
        return cls(**values)


# the SAM options passed by name to SAMConfig (rho and rho_schedule resolved first)
SAM_FIELDS = tuple(
    name
    for name in (f.name for f in fields(SAMConfig))
    if name in TrainConfig.__dataclass_fields__ and name not in ("rho", "rho_schedule")
)


def check_output_path(path: str | Path, option: str = "--output") -> Path:
    """``path`` as a folder to write into: refused (ValueError naming ``option``) when it,
    or a folder above it, is a file."""
    out = Path(path)
    for place in (out, *out.parents):
        if place.exists() and not place.is_dir():
            where = "is a file" if place == out else f"lies under the file {place}"
            raise ValueError(f"{option} {out} {where}, not a folder")
    return out


def task_names(task: str) -> list[str]:
    """``--task a,b`` as a list of names."""
    return [t.strip() for t in task.split(",") if t.strip()]


def names_a_mixture(task: str, mixture: str | None) -> bool:
    """Whether options ``task``, ``mixture`` train a mixture: several tasks, or a named
    mixture (also for a finished run's saved options, without building its config)."""
    return bool(mixture) or len(task_names(task)) > 1


# the options' defaults (what a config.yaml written before an option existed means)
FIELD_DEFAULTS = defaults(TrainConfig)


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"config file {path}: not valid YAML ({err})") from err
    if not isinstance(data, dict):
        raise ValueError(f"config file {path}: expected a mapping of option: value")
    known = {f.name for f in fields(TrainConfig)}
    out = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name not in known:
            raise ValueError(
                f"config file {path}: unknown option {key!r}; known: {', '.join(sorted(known))}"
            )
        out[name] = value
    return out
