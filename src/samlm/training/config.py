"""``SAMConfig``: every SAM option of a training run in one small object."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from ..optim.comm import MODES
from ..optim.schedule import Schedule
from ..optim.validation import non_negative, one_of, positive_int, step_options


@dataclass(frozen=True)
class SAMConfig:
    """SAM's options for :class:`SAMTrainer` and ``samlm train``.

    ``rho``, ``adaptive``/``eta`` (ASAM), the schedules (``rho_schedule``,
    ``warmup_steps``, ``interval``, ``probability``, ``sam_start_step``: plain steps
    of the base optimizer before SAM starts) and ``same_dropout`` go to
    :class:`samlm.SAM`; ``ascent_fraction`` and ``m`` (chunks per micro-batch) or
    ``m_examples`` (examples per chunk, Foret et al.'s m) shape each micro-batch's step
    (Bahri et al. 2022 take the ascent on a quarter of the batch); with
    ``exclude_bias_and_norm`` the Trainer's no-decay group (biases, LayerNorm
    weights) is left out of the perturbation, ``exclude_embeddings`` leaves the
    embedding matrices out too, and ``exclude_head`` the task head
    (:func:`samlm.optim.head_parameters`: ``model.classifier``, ``model.score``...;
    a model without one is refused), which the base optimizer still trains.
    ``distributed`` is SAM's mode when the Trainer runs on several processes
    (``"per_replica"`` or ``"synchronized"``, see :class:`samlm.SAM`).
    """

    rho: float = 0.05
    adaptive: bool = False
    eta: float = 0.01
    ascent_fraction: float = 1.0
    m: int = 1
    m_examples: int | None = None
    interval: int = 1
    probability: float = 1.0
    sam_start_step: int = 0
    rho_schedule: str = "constant"
    warmup_steps: int = 0
    same_dropout: bool = False
    exclude_bias_and_norm: bool = True
    exclude_embeddings: bool = False
    exclude_head: bool = False
    track_cosine: bool = False
    distributed: str = "per_replica"
    seed: int = 0

    def __post_init__(self) -> None:
        non_negative("rho", self.rho)
        non_negative("eta", self.eta)
        positive_int("interval", self.interval)
        Schedule(
            self.rho_schedule,
            self.warmup_steps,
            self.interval,
            self.probability,
            self.sam_start_step,
        )
        step_options(self.ascent_fraction, self.m, 1, "per_microbatch", self.m_examples)
        one_of("distributed", self.distributed, MODES)

    def chunks(self, n: int) -> int:
        """How many chunks (units) a micro-batch of ``n`` examples is split into."""
        if self.m_examples is not None:
            return math.ceil(n / self.m_examples)
        return min(self.m, n)

    def optimizer_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of :class:`samlm.SAM`."""
        keys = (
            "rho",
            "adaptive",
            "eta",
            "rho_schedule",
            "warmup_steps",
            "interval",
            "probability",
            "sam_start_step",
            "same_dropout",
            "track_cosine",
            "seed",
        )
        return {k: getattr(self, k) for k in keys}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
