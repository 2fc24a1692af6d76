"""The experiment grid: tasks x training-set sizes x methods x seeds, and its presets."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

METHODS: dict[str, dict[str, Any]] = {
    "baseline": {"optimizer": "baseline"},
    "sam": {"optimizer": "sam"},
    "sam_quarter": {"optimizer": "sam", "ascent_fraction": 0.25},  # Bahri et al. 2022
    "asam": {"optimizer": "asam"},
}

PRESETS: dict[str, dict[str, Any]] = {
    # Quick: SST-2 at 250 examples, where MiniLM clearly learns (about 76% dev accuracy);
    # RTE at 250 stays at chance (about 53%): two methods at chance measure noise.
    "default": {
        "tasks": ["glue/sst2"],
        "sizes": [250],
        "seeds": 3,
        "epochs": 3.0,
        "eval_size": 500,
    },
    # The protocol closest to the paper the data allows: every local SuperGLUE and GLUE
    # task, sizes from a few hundred examples to the full set, five seeds.
    "paper": {
        "tasks": [
            "superglue/boolq",
            "superglue/cb",
            "superglue/copa",
            "superglue/rte",
            "glue/cola",
            "glue/sst2",
        ],
        "sizes": [250, 1000, 0],  # 0: the full training set
        "seeds": 5,
        "epochs": 5.0,  # bench/results/sweep_2026-11-27.md: 5 beat 3 where MiniLM learns
        "eval_size": None,
    },
}


@dataclass(frozen=True)
class Cell:
    task: str
    size: int  # training examples; 0 = the full training set
    method: str
    seed: int

    @property
    def key(self) -> str:
        return f"{self.task}|{self.size}|{self.method}|{self.seed}"

    @property
    def folder(self) -> str:
        return f"{self.task.replace('/', '-')}_n{self.size or 'all'}_{self.method}_s{self.seed}"


@dataclass
class GridSpec:
    """What ``samlm compare`` runs; written to ``compare.yaml`` in the output folder."""

    tasks: list[str]
    sizes: list[int]
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    seeds: int = 3
    model: str = "minilm"
    epochs: float = 3.0
    learning_rate: float | None = None
    batch_size: int = 16
    max_length: int = 128
    eval_size: int | None = None
    rho_sam: float = 0.05
    rho_asam: float = 0.5
    data_dir: str | None = None
    sharpness: bool = False  # measure every finished cell (samlm.analysis)

    def __post_init__(self) -> None:
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ValueError(f"unknown method(s) {unknown}; known: {', '.join(METHODS)}")
        if "baseline" not in self.methods:
            raise ValueError("methods must include 'baseline': gains are measured against it")
        if not self.tasks or not self.sizes:
            raise ValueError("tasks and sizes must not be empty")
        if any(s < 0 for s in self.sizes):
            raise ValueError(f"sizes {self.sizes} must be >= 0 (0 = the full training set)")
        if self.seeds < 1:
            raise ValueError(f"seeds={self.seeds} must be >= 1")

    def cells(self) -> list[Cell]:
        """Seed-major order, so early results already pair every method on a seed."""
        return [
            Cell(task, size, method, seed)
            for seed in range(self.seeds)
            for task in self.tasks
            for size in self.sizes
            for method in self.methods
        ]

    def train_options(self, cell: Cell) -> dict[str, Any]:
        """The ``TrainConfig`` options of one cell (output folder excluded)."""
        options: dict[str, Any] = {
            "task": cell.task,
            "model": self.model,
            "seed": cell.seed,
            "epochs": self.epochs,
            "learning_rate": self.learning_rate,
            "batch_size": self.batch_size,
            "max_length": self.max_length,
            "eval_size": self.eval_size,
            "train_size": cell.size or None,
            "data_dir": self.data_dir,
            **METHODS[cell.method],
        }
        if cell.method in ("sam", "sam_quarter"):
            options["rho"] = self.rho_sam
        elif cell.method == "asam":
            options["rho"] = self.rho_asam
        return options

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
