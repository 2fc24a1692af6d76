"""The experiment grid: tasks x training-set sizes x methods x seeds, its tuning trials,
and its presets.

The protocol (bench/results/protocol.md says why):

* every cell selects its checkpoint on a validation sample held out apart from the
  reported dev examples (``validation_size``; ``pipeline/data.py``), the same sample for
  every method and seed;
* cells train for a step budget: ``max(min_steps, epochs x steps per epoch)`` optimizer
  steps (``TrainConfig.min_steps``), evaluated and checkpointed every ``save_steps``;
* with ``tune``, every method gets the same number of trials (:data:`TUNE_GRID`, one
  tuning seed apart from the evaluation seeds) on the validation sample, and its seeds
  run at its own best setting; else a setting recorded by an earlier tuning
  (``settings``), else the untuned defaults.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from ..optim.sam import ASAM_RHO
from ..optim.validation import optional_positive_int, positive_int
from ..options import Needs, defaults, marked, option, same_as, upgrade
from ..pipeline.config import TrainConfig
from .mixtures import is_mixture, train_task

METHODS: dict[str, dict[str, Any]] = {
    "baseline": {"optimizer": "baseline"},
    "sam": {"optimizer": "sam"},
    "sam_quarter": {"optimizer": "sam", "ascent_fraction": 0.25},  # Bahri et al. 2022
    "asam": {"optimizer": "asam"},
    # the efficient and gap-guided variants (samlm.optim.variants), at their papers' defaults
    "gsam": {"optimizer": "gsam"},
    "looksam": {"optimizer": "looksam"},
    "aesam": {"optimizer": "aesam"},
    "eigensam": {"optimizer": "eigensam"},
    "tasksam": {"optimizer": "tasksam"},  # mixtures only: each task perturbed on its own
}
CORE_METHODS = ["baseline", "sam", "sam_quarter", "asam"]  # the evidence grid's methods

# The same number of trials for every method: the baseline searches the learning rate
# over a wider range, the SAM family the two rates the 2026-11-27 sweep found best for
# both methods times two radii each (bench/results/protocol.md).
TUNE_GRID: dict[str, list[dict[str, float]]] = {
    "baseline": [{"learning_rate": lr} for lr in (5e-5, 1e-4, 2e-4, 4e-4)],
    **{
        m: [{"learning_rate": lr, "rho": rho} for lr in (1e-4, 2e-4) for rho in (0.02, 0.05)]
        for m in ("sam", "sam_quarter")
    },
    "asam": [{"learning_rate": lr, "rho": rho} for lr in (1e-4, 2e-4) for rho in (0.5, 1.0)],
    **{
        m: [{"learning_rate": lr, "rho": rho} for lr in (1e-4, 2e-4) for rho in (0.02, 0.05)]
        for m in ("gsam", "looksam", "aesam", "eigensam", "tasksam")
    },
}
# LoRA trains low-rank adapters from B = 0 and usually wants rates an order of magnitude
# above full fine-tuning's (Hu et al. 2022 fine-tune RoBERTa-base with LoRA at 4e-4 to
# 5e-4): with --peft lora every trial's learning rate is TUNE_GRID's times this factor,
# the same for every method (a choice, made before any LoRA grid ran)
LORA_LR_SCALE = 10.0
TUNE_SEED = 1000  # the trials' seed: apart from the evaluation seeds 0, 1, ...

# The protocol's step budget and evaluation interval (bench/results/protocol.md: the
# smallest budget at which both methods' validation curves in the step sweep,
# bench/results/step_sweep_2026-11-30.md, are within a point of their best in 400 steps)
PROTOCOL: dict[str, Any] = {
    "min_steps": 200,
    "save_steps": 50,
    "validation_size": 500,
    "eval_size": None,  # report on every dev example the validation sample left
}

PRESETS: dict[str, dict[str, Any]] = {
    # Quick (under 30 minutes on 2 cores): SST-2 at 250 examples, where MiniLM clearly
    # learns, at the settings the evidence grid's tuning chose for it (recorded.json).
    "default": {
        "tasks": ["glue/sst2"],
        "sizes": [250],
        "methods": ["baseline", "sam", "sam_quarter"],
        "seeds": 3,
        **PROTOCOL,
    },
    # The recorded answer (bench/results/evidence): every (task, size) the step sweep's
    # baseline learns, four methods, five seeds, each method tuned alike.
    "evidence": {
        "tasks": ["glue/sst2", "superglue/cb", "superglue/rte"],
        "sizes": [250, 100],
        # CB at 100 (its pool of 250 holds 100 + 150 held out) and at 250 (selected on 28
        # dev examples, reported on the other 28); RTE learns at 250, barely (+5.4 points
        # over the majority class in bench/results/step_sweep_2026-11-30.md)
        "task_sizes": {"superglue/cb": [100, 250], "superglue/rte": [250]},
        "methods": CORE_METHODS,
        "seeds": 5,
        "tune": True,
        **PROTOCOL,
    },
    # LoRA against LoRA + SAM on the evidence grid's learnable tasks at 250 examples (its
    # full fine-tuning cells of the same seeds and splits are the other two arms)
    "lora": {
        "tasks": ["glue/sst2", "superglue/cb", "superglue/rte"],
        "sizes": [250],
        "methods": ["baseline", "sam"],
        "seeds": 5,
        "tune": True,
        "peft": "lora",
        **PROTOCOL,
    },
    # One MiniLM trained on the mixture of the tasks it learns, 250 examples each,
    # baseline against SAM, scored by the tasks' average
    "mixture": {
        "tasks": ["glue/sst2+superglue/cb+superglue/rte"],
        "sizes": [250],
        "methods": ["baseline", "sam"],
        "seeds": 3,
        "tune": True,
        **PROTOCOL,
    },
    # The protocol closest to the paper the data allows: every local SuperGLUE and GLUE
    # task, a low-data size and the full set, five seeds, tuned.
    "paper": {
        "tasks": [
            "superglue/boolq",
            "superglue/cb",
            "superglue/copa",
            "superglue/rte",
            "glue/cola",
            "glue/sst2",
        ],
        "sizes": [250, 0],  # 0: the full training set
        "methods": CORE_METHODS,
        "seeds": 5,
        "epochs": 5.0,  # bench/results/sweep_2026-11-27.md: 5 beat 3 where MiniLM learns
        "tune": True,
        **PROTOCOL,
    },
}
# The efficient and gap-guided variants (GSAM, LookSAM, AE-SAM) beside the core methods on
# the evidence grid's protocol: its strata, seeds and tuning, every method; the core
# methods' cells are the evidence grid's own (bench/evidence.py --preset variants takes
# them over)
# (the methods of its recorded run, bench/results/variants: Eigen-SAM came later)
RECORDED_VARIANTS = ["gsam", "looksam", "aesam"]
PRESETS["variants"] = {**PRESETS["evidence"], "methods": [*CORE_METHODS, *RECORDED_VARIANTS]}


@dataclass(frozen=True)
class Cell:
    task: str
    size: int  # training examples; 0 = the full training set
    method: str
    seed: int
    trial: int | None = None  # a tuning trial: the index into TUNE_GRID[method]

    @property
    def key(self) -> str:
        base = f"{self.task}|{self.size}|{self.method}|{self.seed}"
        return base if self.trial is None else f"{base}|trial{self.trial}"

    @property
    def folder(self) -> str:
        task = re.sub(r"[^\w.+-]", "-", self.task)  # a user's task: a path, a query string
        name = f"{task}_n{self.size or 'all'}_{self.method}_s{self.seed}"
        return name if self.trial is None else f"{name}_trial{self.trial}"

    @property
    def group(self) -> tuple[str, int, str]:
        return (self.task, self.size, self.method)


def group_key(task: str, size: int, method: str) -> str:
    """The key of a (task, size, method) in a settings mapping."""
    return f"{task}|{size}|{method}"


# what the recorded settings were tuned for: full fine-tuning of the default model
RECORDED_FOR = {"model": "minilm", "modelling": "auto", "peft": "none"}


def with_recorded_settings(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` (GridSpec fields) with the settings the evidence grid's tuning chose for
    its (task, size, method) groups, where recorded (:mod:`.recorded`) and where the
    options train what they were tuned for (:data:`RECORDED_FOR`)."""
    from .recorded import SETTINGS, SOURCE

    if any(options.get(k, v) not in (None, v) for k, v in RECORDED_FOR.items()):
        return options
    keys = {
        group_key(t, n, m)
        for t in options["tasks"]
        for n in options["sizes"]
        for m in options.get("methods", CORE_METHODS)
    }
    recorded = {k: v for k, v in SETTINGS.items() if k in keys}
    return {**options, "settings": recorded, "settings_source": SOURCE} if recorded else options


# when compare's options have an effect (samlm.options.check_inert)
NOT_TUNED = Needs(lambda o: not o.tune, message="{given} with --tune: the tuning chooses them")
SAM_METHOD = Needs(
    lambda o: bool(set(o.methods) - {"baseline", "asam"}),
    "a SAM method other than asam among the methods",
)
ASAM_METHOD = Needs(lambda o: "asam" in o.methods, "asam among the methods")
CELLS = " (mixture cells only; default: samlm train's)"


def _train(name: str, **changes: Any) -> Any:
    """A field declared as ``samlm train``'s option ``name``, passed to every cell."""
    return same_as(TrainConfig, name, cell="all", **changes)


def _mixing(name: str) -> Any:
    """``samlm train``'s mixing option ``name``, passed when given to a mixture's cells
    (None: train's default; checked with the grid, :mod:`.validate`)."""
    help_text = TrainConfig.__dataclass_fields__[name].metadata["help"] + CELLS
    return same_as(TrainConfig, name, default=None, cell="mixture", needs=(), help=help_text)


@dataclass
class GridSpec:
    """What ``samlm compare`` runs; written to ``compare.yaml`` in the output folder.
    Each field's metadata is its ``samlm compare`` flag (:mod:`samlm.options`); those
    marked ``cell`` go to every cell's ``TrainConfig`` (``"mixture"``: a mixture's, when
    given), declared as ``samlm train``'s options of the same names."""

    tasks: list[str] = option(
        help="comma-separated task names, or your own data: a data file (reviews.csv, with "
        "?key=value options), a YAML task file, hub:owner/name; a task mixture is one of "
        "them, its tasks joined by + (glue/sst2+superglue/cb) or named (mixture/glue, "
        "mixture/superglue: the benchmark's tasks whose data is found): one model trained "
        "on them all at --sizes examples per task, scored by their average"
    )
    sizes: list[int] = option(help="comma-separated training-set sizes (0 = all)")
    task_sizes: dict[str, list[int]] | None = option(
        None,
        cli=False,
        help="sizes of particular tasks, in place of sizes (e.g. CB has 250 examples in all)",
    )
    methods: list[str] = option(
        default_factory=lambda: list(CORE_METHODS),
        help=f"comma-separated, from {', '.join(METHODS)}",
    )
    seeds: int = option(3, help="number of seeds")
    seed_offset: int = option(
        0,
        help="first seed (default 0): --seed-offset 3 --seeds 3 runs seeds 3, 4, 5, a set "
        "disjoint from the default's",
    )
    model: str = _train("model", help="model alias, folder or Hub name (default: minilm)")
    epochs: float = _train("epochs", help="training epochs (the step budget may add steps)")
    min_steps: int = _train(
        "min_steps", help="step budget: every cell trains at least this many optimizer steps"
    )
    save_steps: int | None = _train(
        "save_steps", help="evaluate and checkpoint every N steps", old_names=("eval_steps",)
    )
    learning_rate: float | None = option(
        None,
        needs=NOT_TUNED,
        help="one learning rate for every method (instead of the recorded tuned ones)",
    )
    batch_size: int = _train("batch_size", help="training examples per optimizer step")
    max_length: int = _train("max_length")
    eval_size: int | None = _train("eval_size", help="cap on the reported dev examples")
    validation_size: int | None = _train(
        "validation_size",
        help="held-out examples that checkpoint selection and tuning look at (from the "
        "training pool outside the subset when it allows, else half the dev set at most; "
        "None: select on the reported dev examples)",
    )
    rho_sam: float = option(
        0.05,
        needs=(NOT_TUNED, SAM_METHOD),
        help="rho of sam, sam_quarter, gsam, looksam, aesam, eigensam and tasksam (default "
        "0.05, "
        "Foret et al. 2021)",
    )
    rho_asam: float = option(
        ASAM_RHO,
        needs=(NOT_TUNED, ASAM_METHOD),
        help="rho of asam (default 0.5, the ASAM authors' code)",
    )
    tune: bool = option(
        False,
        help="tune every method with the same number of trials on the validation sample "
        "(learning rate; rho for the SAM family), then run its seeds at its best setting",
    )
    # recorded tuned settings, "task|size|method" -> {"learning_rate", "rho"}, and where
    # they come from (used when tune is off)
    settings: dict[str, dict[str, float]] | None = option(
        None, cli=False, help="recorded tuned settings, task|size|method -> setting"
    )
    settings_source: str | None = option(
        None, cli=False, help="where the recorded settings come from"
    )
    data_dir: str | None = _train(
        "data_dir", help="folder in the official layout ($SAMLM_DATA_DIR)"
    )
    sharpness: bool = option(
        False, help="measure every finished cell's sharpness and report it per method"
    )
    keep_models: bool = option(
        False,
        help="keep every cell's best model (by default deleted once its result is stored)",
    )
    modelling: str = _train("modelling")
    peft: str = _train("peft")
    lora_r: int = _train("lora_r")
    lora_alpha: float = _train("lora_alpha")
    lora_dropout: float = _train("lora_dropout")
    lora_targets: str | None = _train("lora_targets")
    mixing: str | None = _mixing("mixing")
    mixing_limit: int | None = _mixing("mixing_limit")
    temperature: float | None = _mixing("temperature")

    def __post_init__(self) -> None:
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ValueError(f"unknown method(s) {unknown}; known: {', '.join(METHODS)}")
        if "baseline" not in self.methods:
            raise ValueError("methods must include 'baseline': gains are measured against it")
        if not self.tasks or not self.sizes:
            raise ValueError("tasks and sizes must not be empty")
        for task in self.tasks:
            sizes = self.sizes_for(task)
            if not sizes or any(s < 0 for s in sizes):
                raise ValueError(f"sizes {sizes} of {task} must be >= 0 (0 = the full set)")
        unknown = set(self.task_sizes or {}) - set(self.tasks)
        if unknown:
            raise ValueError(f"task_sizes names tasks not in the grid: {sorted(unknown)}")
        positive_int("seeds", self.seeds)
        for name in ("seed_offset", "min_steps"):
            positive_int(name, getattr(self, name), minimum=0)
        for name in ("save_steps", "validation_size", "eval_size"):
            optional_positive_int(name, getattr(self, name))
        if self.tune and self.validation_size is None:
            raise ValueError("tune needs a validation_size: trials must not see reported data")
        if self.seed_offset <= TUNE_SEED < self.seed_offset + self.seeds:
            raise ValueError(f"the seeds must not include the tuning seed {TUNE_SEED}")

    def sizes_for(self, task: str) -> list[int]:
        return (self.task_sizes or {}).get(task, self.sizes)

    def strata(self) -> list[tuple[str, int]]:
        """The (task, size) pairs, task by task."""
        return [(task, size) for task in self.tasks for size in self.sizes_for(task)]

    def seed_list(self) -> list[int]:
        return list(range(self.seed_offset, self.seed_offset + self.seeds))

    def trials(self) -> list[Cell]:
        """The tuning trials (none without ``tune``): the same count for every method."""
        if not self.tune:
            return []
        return [
            Cell(task, size, method, TUNE_SEED, trial=i)
            for task, size in self.strata()
            for method in self.methods
            for i in range(len(self.tune_grid(method)))
        ]

    def tune_grid(self, method: str) -> list[dict[str, float]]:
        """``method``'s tuning points: :data:`TUNE_GRID`'s, with ``--peft lora`` at
        :data:`LORA_LR_SCALE` times the learning rates."""
        scale = LORA_LR_SCALE if self.peft != "none" else 1.0
        return [
            {**point, "learning_rate": point["learning_rate"] * scale}
            for point in TUNE_GRID[method]
        ]

    def cells(self) -> list[Cell]:
        """Seed-major order, so early results already pair every method on a seed."""
        return [
            Cell(task, size, method, seed)
            for seed in self.seed_list()
            for task, size in self.strata()
            for method in self.methods
        ]

    def default_setting(self, method: str) -> dict[str, float | None]:
        """The untuned setting: the spec's learning rate and radius."""
        rho = {m: self.rho_sam for m in METHODS if m not in ("baseline", "asam")}
        rho["asam"] = self.rho_asam
        out: dict[str, float | None] = {"learning_rate": self.learning_rate}
        if method in rho:
            out["rho"] = rho[method]
        return out

    def recorded_setting(self, cell: Cell) -> dict[str, float] | None:
        return (self.settings or {}).get(group_key(*cell.group))

    def train_options(
        self, cell: Cell, setting: dict[str, float | None] | None = None
    ) -> dict[str, Any]:
        """The ``TrainConfig`` options of one cell (output folder excluded); ``setting``
        (learning rate, rho) overrides the spec's defaults, a trial uses its grid point."""
        if cell.trial is not None:
            setting = self.tune_grid(cell.method)[cell.trial]
        setting = {**self.default_setting(cell.method), **(setting or {})}
        options: dict[str, Any] = {
            **train_task(cell.task),
            **{name: getattr(self, name) for name in CELL_OPTIONS},
            **(self.mixing_options() if is_mixture(cell.task) else {}),
            "seed": cell.seed,
            "learning_rate": setting["learning_rate"],
            "train_size": cell.size or None,
            **METHODS[cell.method],
        }
        if "rho" in setting:
            options["rho"] = setting["rho"]
        return options

    def mixing_options(self) -> dict[str, Any]:
        """The mixing options given (:data:`MIXTURE_OPTIONS` that are not None), as a
        mixture cell's ``TrainConfig`` takes them."""
        values = {name: getattr(self, name) for name in MIXTURE_OPTIONS}
        return {name: value for name, value in values.items() if value is not None}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# GridSpec fields passed as they are to every cell's TrainConfig, and those passed, when
# given, to the TrainConfig of a mixture's cells
CELL_OPTIONS = marked(GridSpec, "cell", "all")
MIXTURE_OPTIONS = marked(GridSpec, "cell", "mixture")
# GridSpec fields with a plain default: what a compare.yaml written before a field existed
# means by leaving it out
DEFAULTS = defaults(GridSpec)


def load_spec(values: dict[str, Any]) -> GridSpec:
    """The GridSpec of a ``compare.yaml`` (:func:`saved_spec`)."""
    return GridSpec(**saved_spec(values))


def saved_spec(values: dict[str, Any]) -> dict[str, Any]:
    """A ``compare.yaml``'s fields under today's names (``eval_steps`` is ``save_steps``)."""
    return upgrade(GridSpec, values)
