"""When SAM perturbs, and by how much: rho schedules and the step gate.

* ``constant``: ``rho_t = rho``
* ``lr``:       ``rho_t = rho_min + (rho - rho_min) * lr_t / lr_0`` (lr_0 is the group's
                ``initial_lr``; ``rho_min = 0`` by default; GSAM's schedule with lr_min = 0);
                a group with ``rho = 0`` stays at 0 (the base optimizer), and
                ``0 < rho < rho_min`` is refused (:func:`check_rho`)
* ``warmup``:   ``rho_t = rho * min(1, (t - sam_start_step + 1) / warmup_steps)``

The gate makes step ``t`` a SAM step when ``t >= sam_start_step``,
``(t - sam_start_step) % interval == 0`` and, with ``probability < 1``, a draw from
SAM's own generator falls below ``probability`` (randomized SAM); every other step is
a plain step of the base optimizer (one forward-backward). Steps ``0 ..
sam_start_step - 1`` are thus plain (no draw either), SAM starts at ``sam_start_step``,
and the interval and the rho warm-up count from there. The gate is a function of the
step count alone (SAM's clock, saved in its ``state_dict``) and of SAM's generator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .validation import in_interval, non_negative, one_of, positive_int, warmup_steps

RHO_SCHEDULES = ("constant", "lr", "warmup")


@dataclass(frozen=True)
class Schedule:
    rho_schedule: str = "constant"
    warmup_steps: int = 0
    interval: int = 1
    probability: float = 1.0
    sam_start_step: int = 0
    rho_min: float = 0.0

    def __post_init__(self) -> None:
        one_of("rho_schedule", self.rho_schedule, RHO_SCHEDULES)
        warmup_steps("warmup_steps", self.warmup_steps, self.rho_schedule)
        positive_int("interval", self.interval)
        in_interval("probability", self.probability, 0.0, 1.0)
        positive_int("sam_start_step", self.sam_start_step, minimum=0)
        non_negative("rho_min", self.rho_min)
        if self.rho_min > 0 and self.rho_schedule != "lr":
            raise ValueError(
                f"rho_min={self.rho_min} needs rho_schedule='lr' (rho follows the learning rate "
                f"from rho down to rho_min), not {self.rho_schedule!r}"
            )

    def rho(self, group: dict[str, Any], step: int) -> float:
        """The group's radius at step ``step`` (0-based)."""
        rho = float(group["rho"])
        if rho == 0.0:
            return 0.0  # rho 0: the base optimizer, whatever the schedule
        if self.rho_schedule == "lr":
            lr0 = float(group["initial_lr"])
            if lr0 <= 0:
                return 0.0
            return self.rho_min + (rho - self.rho_min) * float(group["lr"]) / lr0
        if self.rho_schedule == "warmup":
            return rho * min(1.0, max(0, step - self.sam_start_step + 1) / self.warmup_steps)
        return rho

    def check_rho(self, rho: float, where: str = "") -> None:
        """Refuse ``0 < rho < rho_min``: rho would grow as the learning rate falls."""
        if 0.0 < rho < self.rho_min:
            raise ValueError(
                f"rho={rho} is below rho_min={self.rho_min}{where}: rho_schedule='lr' moves "
                "rho from rho down to rho_min (give rho >= rho_min, or rho=0 for the base "
                "optimizer)"
            )

    def is_sam_step(self, step: int, generator: torch.Generator) -> bool:
        """Whether step ``step`` perturbs; draws from ``generator`` only when randomized."""
        if step < self.sam_start_step or (step - self.sam_start_step) % self.interval != 0:
            return False
        if self.probability < 1.0:
            return bool(torch.rand((), generator=generator).item() < self.probability)
        return True
