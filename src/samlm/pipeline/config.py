"""``TrainConfig``: every option of ``samlm train``, from a YAML file and the command line.

Defaults follow the papers where they apply (resolved in :func:`resolve_defaults`):
rho 0.5 for ASAM (its authors' code), else 0.15 for text-to-text models (Bahri et al.
2022) and 0.05 for encoders (Foret et al. 2021); Adafactor with a constant learning rate
of 1e-3 for T5 (Raffel et al. 2020, as Bahri et al. fine-tune), AdamW with a linear
decay for encoders.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from ..training.bar import BAR, BAR_SCHEDULES, BAR_VARIANTS
from ..training.config import AESAM_OPTIONS, EIGENSAM_OPTIONS, SAMConfig
from ..training.flat_lora import FlatLoRA
from .adapters import PEFT_METHODS, require_peft
from .data import VALIDATION_FROM
from .mixing import MIXINGS, MIXTURES

METHODS = ("baseline", "sam", "asam", "gsam", "looksam", "aesam", "eigensam", "tasksam")
VARIANT_METHODS = ("gsam", "looksam", "aesam", "eigensam", "tasksam")  # SAMConfig.variant
BASE_OPTIMIZERS = ("auto", "adamw", "adafactor", "sgd")
MODELLING = ("auto", "encoder", "text2text", "causal")


@dataclass
class TrainConfig:
    """The resolved options of one training run (see ``samlm train --help``)."""

    task: str
    output: str
    mixture: str | None = None
    mixing: str = "proportional"
    mixing_limit: int | None = None
    temperature: float = 1.0
    model: str = "minilm"
    modelling: str = "auto"
    optimizer: str = "sam"
    base_optimizer: str = "auto"
    rho: float | None = None
    eta: float = 0.01
    ascent_fraction: float = 1.0
    m: int = 1
    m_examples: int | None = None
    interval: int = 1
    probability: float = 1.0
    rho_schedule: str | None = None
    rho_warmup_steps: int = 0
    rho_min: float = 0.0
    alpha: float | None = None
    looksam_k: int = 5
    aesam_delta: float | None = None
    aesam_lambda_1: float | None = None
    aesam_lambda_2: float | None = None
    eigensam_refresh: int | None = None
    eigensam_iterations: int | None = None
    peft: str = "none"
    lora_r: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.05
    lora_targets: str | None = None
    flat_lora: bool = False
    flat_lora_sigma: float = 0.05
    bar: bool = False
    bar_alpha: float = 0.5
    bar_variant: str = "nbar"
    bar_schedule: str = "linear"
    sam_start_step: int = 0
    exclude_head: bool = False
    same_dropout: bool = False
    distributed_sam: str = "per_replica"
    sam_accumulation: str | None = None
    learning_rate: float | None = None
    lr_scheduler: str | None = None
    weight_decay: float = 0.01
    warmup_ratio: float = 0.0
    epochs: float = 3.0
    max_steps: int = -1
    min_steps: int = 0
    batch_size: int = 16
    eval_batch_size: int = 64
    gradient_accumulation_steps: int = 1
    max_length: int = 128
    max_target_length: int = 32
    train_size: int | None = None
    train_fraction: float | None = None
    eval_size: int | None = None
    validation_size: int | None = None
    validation_from: str = "auto"
    save_steps: int | None = None
    logging_steps: int = 10
    max_grad_norm: float = 1.0
    bf16: bool = False
    seed: int = 0
    data_dir: str | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the option and its value for anything out of range."""
        self._validate_types()
        self._validate_tasks()
        _choice("optimizer", self.optimizer, METHODS)
        _choice("base_optimizer", self.base_optimizer, BASE_OPTIMIZERS)
        _choice("modelling", self.modelling, MODELLING)
        for name in (
            "batch_size",
            "eval_batch_size",
            "gradient_accumulation_steps",
            "max_length",
            "max_target_length",
            "logging_steps",
        ):
            _at_least(name, getattr(self, name), 1)
        _choice("validation_from", self.validation_from, VALIDATION_FROM)
        _choice("peft", self.peft, PEFT_METHODS)
        if self.peft == "lora":
            require_peft()
            _at_least("lora_r", self.lora_r, 1)
            if not (math.isfinite(self.lora_alpha) and self.lora_alpha > 0):
                raise ValueError(f"lora_alpha={self.lora_alpha} must be > 0")
            if not 0 <= self.lora_dropout < 1:
                raise ValueError(f"lora_dropout={self.lora_dropout} must be in [0, 1)")
        self._validate_lora_flatness()
        for name in ("train_size", "eval_size", "validation_size", "save_steps"):
            if getattr(self, name) is not None:
                _at_least(name, getattr(self, name), 1)
        if self.train_size is not None and self.train_fraction is not None:
            raise ValueError("give --train-size or --train-fraction, not both")
        if self.train_fraction is not None and not 0 < self.train_fraction <= 1:
            raise ValueError(f"train_fraction={self.train_fraction} must be in (0, 1]")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise ValueError(f"learning_rate={self.learning_rate} must be > 0")
        if not (math.isfinite(self.epochs) and self.epochs > 0):
            raise ValueError(f"epochs={self.epochs} must be > 0")
        if not (isinstance(self.min_steps, int) and self.min_steps >= 0):
            raise ValueError(f"min_steps={self.min_steps!r} must be an integer >= 0")
        if self.max_steps == 0 or self.max_steps < -1:
            raise ValueError(f"max_steps={self.max_steps} must be >= 1 (or -1 for epochs)")
        for name in ("weight_decay", "max_grad_norm"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 0")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup_ratio={self.warmup_ratio} must be in [0, 1)")
        self._validate_inert()
        try:  # SAM's own checks: rho, eta, ascent_fraction, schedules, start
            self.sam_config(0.05)
        except ValueError as err:  # named as this command's options
            raise ValueError(_as_options(str(err))) from None

    def _validate_types(self) -> None:
        """Each option of its declared type (a YAML file can say ``bf16: "no"``, a truthy
        string): bool, int (not bool), float (int accepted), str; or None where allowed."""
        kinds = {"bool": (bool,), "int": (int,), "float": (int, float), "str": (str,)}
        for f in fields(self):
            value = getattr(self, f.name)
            kind, _, optional = f.type.partition(" | ")
            if value is None and optional == "None":
                continue
            ok = isinstance(value, kinds[kind]) and (kind == "bool" or not isinstance(value, bool))
            if not ok:
                raise ValueError(f"{f.name}={value!r} must be {_TYPE_WORDS[kind]}")

    def _validate_inert(self) -> None:
        """An option given where it does nothing is an error, not silently ignored."""
        owners = {
            "asam": ("eta",),
            "gsam": ("alpha",),
            "looksam": ("alpha", "looksam_k"),
            "aesam": AESAM_FLAGS,
            "eigensam": ("alpha", *EIGENSAM_FLAGS),
        }
        if self.optimizer == "baseline":
            inert = [n for n in SAM_OPTIONS if getattr(self, n) != FIELD_DEFAULTS[n]]
            if inert:
                verb = "has" if len(inert) == 1 else "have"
                raise ValueError(
                    f"{_given(self, inert)} {verb} an effect only with a SAM optimizer, not "
                    "--optimizer baseline (no SAM step uses them)"
                )
        for name in ("eta", "alpha", "looksam_k", *AESAM_FLAGS, *EIGENSAM_FLAGS):
            users = [m for m, names in owners.items() if name in names]
            if getattr(self, name) != FIELD_DEFAULTS[name] and self.optimizer not in users:
                raise ValueError(
                    f"{_given(self, [name])} has an effect only with --optimizer "
                    f"{' or '.join(users)}"
                )
        if self.optimizer == "tasksam" and not self.is_mixture():
            raise ValueError(
                "--optimizer tasksam perturbs each task of a mixture on its own: give several "
                "tasks (--task a,b) or --mixture (on one task it is --optimizer sam)"
            )
        if self.sam_accumulation is not None and self.gradient_accumulation_steps == 1:
            raise ValueError(
                f"{_given(self, ['sam_accumulation'])} has an effect only with "
                "--gradient-accumulation-steps > 1"
            )
        if self.rho_warmup_steps != 0 and self.rho_schedule != "warmup":
            raise ValueError(
                f"{_given(self, ['rho_warmup_steps'])} has an effect only with "
                "--rho-schedule warmup"
            )
        lora = [n for n in LORA_OPTIONS if getattr(self, n) != FIELD_DEFAULTS[n]]
        if lora and self.peft != "lora":
            raise ValueError(f"{_given(self, lora)} has an effect only with --peft lora")

    def _validate_lora_flatness(self) -> None:
        """--flat-lora and --bar: LoRA runs only; BAR replaces SAM, so not with SAM."""
        for flag, on, name in (
            ("--flat-lora", self.flat_lora, "flat_lora_sigma"),
            ("--bar", self.bar, "bar_alpha"),
        ):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name}={value!r} must be a finite number >= 0")
            if not on and value != FIELD_DEFAULTS[name]:
                raise ValueError(f"{_given(self, [name])} has an effect only with {flag}")
            if on and self.peft != "lora":
                raise ValueError(f"{flag} needs --peft lora: it acts on the LoRA adapters")
        for name, allowed in (("bar_variant", BAR_VARIANTS), ("bar_schedule", BAR_SCHEDULES)):
            value = getattr(self, name)
            _choice(name, value, allowed)
            if not self.bar and value != FIELD_DEFAULTS[name]:
                raise ValueError(f"{_given(self, [name])} has an effect only with --bar")
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
        if self.mixture is not None:
            _choice("mixture", self.mixture, MIXTURES)
        _choice("mixing", self.mixing, MIXINGS)
        if self.mixing_limit is not None:
            _at_least("mixing_limit", self.mixing_limit, 1)
            if self.mixing == "equal":
                raise ValueError(
                    f"{_given(self, ['mixing_limit'])} has an effect only with --mixing "
                    "proportional or temperature (it caps a task's size in their rates)"
                )
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise ValueError(f"temperature={self.temperature} must be > 0")
        if self.temperature != 1.0 and self.mixing != "temperature":
            raise ValueError(
                f"{_given(self, ['temperature'])} has an effect only with --mixing temperature"
            )

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
        return SAMConfig(
            rho=default_rho if self.rho is None else self.rho,
            adaptive=self.optimizer == "asam",
            eta=self.eta,
            ascent_fraction=self.ascent_fraction,
            m=self.m,
            m_examples=self.m_examples,
            interval=self.interval,
            probability=self.probability,
            rho_schedule=self.rho_schedule or ("lr" if self.optimizer == "gsam" else "constant"),
            rho_min=self.rho_min,
            variant=self.optimizer if self.optimizer in VARIANT_METHODS else None,
            alpha=self.alpha,
            k=self.looksam_k,
            delta=self.aesam_delta,
            lambda_1=self.aesam_lambda_1,
            lambda_2=self.aesam_lambda_2,
            refresh=self.eigensam_refresh,
            iterations=self.eigensam_iterations,
            warmup_steps=self.rho_warmup_steps,
            sam_start_step=self.sam_start_step,
            exclude_head=self.exclude_head,
            same_dropout=self.same_dropout,
            distributed=self.distributed_sam,
            accumulation=self.sam_accumulation,
            seed=self.seed,
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


_TYPE_WORDS = {"bool": "true or false", "int": "an integer", "float": "a number", "str": "a string"}
AESAM_FLAGS = tuple("aesam_" + name for name in AESAM_OPTIONS)  # AE-SAM's options here
EIGENSAM_FLAGS = tuple("eigensam_" + name for name in EIGENSAM_OPTIONS)  # Eigen-SAM's
# options that only a SAM step uses (inert with --optimizer baseline)
SAM_OPTIONS = (
    "rho", "eta", "ascent_fraction", "m", "m_examples", "interval", "probability",
    "rho_schedule", "rho_warmup_steps", "rho_min", "alpha", "looksam_k", *AESAM_FLAGS,
    *EIGENSAM_FLAGS,
    "sam_start_step", "exclude_head", "same_dropout", "distributed_sam", "sam_accumulation",
)  # fmt: skip
LORA_OPTIONS = ("lora_r", "lora_alpha", "lora_dropout", "lora_targets")
# SAMConfig's names for the options whose names here differ
SAM_NAMES = {
    "k": "looksam_k",
    "warmup_steps": "rho_warmup_steps",
    "distributed": "distributed_sam",
    "accumulation": "sam_accumulation",
    **{name: "aesam_" + name for name in AESAM_OPTIONS},
    **{name: "eigensam_" + name for name in EIGENSAM_OPTIONS},
}


def flag(name: str) -> str:
    """The command-line flag of option ``name``: ``lora_r`` -> ``--lora-r``."""
    return "--" + name.replace("_", "-")


def flag_values(values: dict[str, Any]) -> str:
    """``--flag value, --flag value`` for each option and value of ``values``."""
    return ", ".join(f"{flag(name)} {value}" for name, value in values.items())


def _given(cfg: TrainConfig, names: list[str]) -> str:
    """``--flag value`` for each of ``names``, as the user gave them."""
    return flag_values({n: getattr(cfg, n) for n in names})


def _as_options(message: str) -> str:
    """A SAMConfig error (``k=0 must be ...``) with this config's option names."""
    return re.sub(
        r"\b(" + "|".join(SAM_NAMES) + r")=", lambda m: SAM_NAMES[m.group(1)] + "=", message
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
FIELD_DEFAULTS = {f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}


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


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name}={value!r} must be one of {', '.join(choices)}")


def _at_least(name: str, value: Any, low: int) -> None:
    if not (isinstance(value, int) and value >= low):
        raise ValueError(f"{name}={value!r} must be an integer >= {low}")
