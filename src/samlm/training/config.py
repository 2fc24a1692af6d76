"""``SAMConfig``: every SAM option of a training run in one small object, under the
names ``samlm train``'s ``TrainConfig`` gives them (``looksam_k``, ``rho_warmup_steps``,
``aesam_delta``...), so that ``TrainConfig.sam_config`` passes them by name and an error
names the option a user gave."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from ..optim.comm import MODES
from ..optim.schedule import Schedule
from ..optim.validation import (
    ACCUMULATION_MODES,
    finite,
    in_interval,
    non_negative,
    one_of,
    optional_positive_int,
    positive_int,
    step_options,
    warmup_steps,
)
from ..optim.variants import VARIANTS, Variant

# each variant's own options: "aesam_delta" is AESAM's "delta" (and so on)
AESAM_OPTIONS = ("aesam_delta", "aesam_lambda_1", "aesam_lambda_2")
EIGENSAM_OPTIONS = ("eigensam_refresh", "eigensam_iterations")  # and alpha


def _own(names: tuple[str, ...], prefix: str, config: Any) -> dict[str, Any]:
    """The options of ``names`` that are set, under the variant's names (prefix off)."""
    values = {n.removeprefix(prefix): getattr(config, n) for n in names}
    return {n: v for n, v in values.items() if v is not None}


@dataclass(frozen=True)
class SAMConfig:
    """SAM's options for :class:`SAMTrainer` and ``samlm train``. The first group goes to
    :class:`samlm.SAM` (:meth:`optimizer_kwargs`); the rest shape the Trainer's step.

    Args:
        rho: radius of the neighbourhood.
        adaptive: ASAM's scale-invariant neighbourhood, ``T = |w| + eta``.
        eta: ASAM's offset in ``T``.
        rho_schedule: ``"constant"``, ``"lr"`` (rho follows lr / initial lr, down to
            ``rho_min``: GSAM's schedule) or ``"warmup"`` (linear over
            ``rho_warmup_steps``).
        rho_warmup_steps: the rho warm-up's length in steps.
        interval: perturb every ``interval``-th step; the others are plain steps.
        probability: perturb with this probability per step (randomized SAM).
        sam_start_step: plain steps of the base optimizer before SAM starts.
        same_dropout: both passes draw the same dropout masks.
        track_cosine: report the cosine between the two passes' gradients.
        seed: seed of SAM's own generator (randomized SAM).
        rho_min: where ``rho_schedule="lr"`` takes rho at the end.
        variant: ``"gsam"``, ``"looksam"``, ``"aesam"``, ``"eigensam"`` or ``"tasksam"``
            (:mod:`samlm.optim.variants`; TaskSAM needs ``SAMTrainer(task_sizes=...)``),
            or None for SAM / ASAM.
        alpha: GSAM's, LookSAM's and Eigen-SAM's mixing weight (None: GSAM 0.4, LookSAM
            0.7, Eigen-SAM 0.2).
        looksam_k: LookSAM's period (a full SAM step every ``looksam_k`` steps).
        aesam_delta, aesam_lambda_1, aesam_lambda_2: AE-SAM's ``delta``, ``lambda_1``,
            ``lambda_2`` (None: :class:`~samlm.optim.variants.AESAM`'s defaults).
        eigensam_refresh, eigensam_iterations: Eigen-SAM's eigenvector refresh period
            (steps) and power iterations (None: :class:`~samlm.optim.variants.EigenSAM`'s
            defaults, 100 and 5, the authors' code).
        ascent_fraction: the share of each micro-batch the ascent gradient is taken on
            (Bahri et al. 2022 take a quarter).
        m: m-sharpness, chunks per micro-batch, each perturbed on its own.
        m_examples: m-sharpness as examples per chunk (Foret et al.'s m), in place of ``m``.
        exclude_bias_and_norm: leave the Trainer's no-decay group (biases, LayerNorm
            weights) out of the perturbation.
        exclude_embeddings: leave the embedding matrices out too.
        exclude_head: leave the task head out (:func:`samlm.optim.head_parameters`:
            ``model.classifier``, ``model.score``...; a model without one is refused); the
            base optimizer still trains it.
        distributed_sam: SAM's mode when the Trainer runs on several processes,
            ``"per_replica"`` or ``"synchronized"`` (see :class:`samlm.SAM`).
        sam_accumulation: what SAM does with ``gradient_accumulation_steps``:
            ``"per_microbatch"`` (perturb, backward, restore for each micro-batch) or
            ``"global"`` (one perturbation from all the step's micro-batches, then all of
            them again at ``w + e``: the whole batch's SAM step); None: per micro-batch for
            SAM and ASAM, global (the only mode) for the variants.
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
    rho_warmup_steps: int = 0
    same_dropout: bool = False
    exclude_bias_and_norm: bool = True
    exclude_embeddings: bool = False
    exclude_head: bool = False
    track_cosine: bool = False
    distributed_sam: str = "per_replica"
    seed: int = 0
    variant: str | None = None
    alpha: float | None = None
    looksam_k: int = 5
    aesam_delta: float | None = None
    aesam_lambda_1: float | None = None
    aesam_lambda_2: float | None = None
    eigensam_refresh: int | None = None
    eigensam_iterations: int | None = None
    rho_min: float = 0.0
    sam_accumulation: str | None = None

    def __post_init__(self) -> None:
        non_negative("rho", self.rho)
        non_negative("eta", self.eta)
        positive_int("interval", self.interval)
        warmup_steps("rho_warmup_steps", self.rho_warmup_steps, self.rho_schedule)
        Schedule(
            self.rho_schedule,
            self.rho_warmup_steps,
            self.interval,
            self.probability,
            self.sam_start_step,
            self.rho_min,
        ).check_rho(self.rho)
        one_of("variant", self.variant, tuple(VARIANTS), none_ok=True)
        self._check_variant_options()
        variant = self.make_variant()  # its own checks (alpha)
        if self.variant is not None and (self.m != 1 or self.m_examples is not None):
            raise ValueError(
                f"variant={self.variant!r} with m-sharpness (m={self.m}, m_examples="
                f"{self.m_examples}): the variant needs one unit per step"
            )
        if variant is not None:
            variant.check_ascent_fraction(self.ascent_fraction)
        if self.variant == "eigensam" and self.adaptive:
            raise ValueError(
                "adaptive=True with variant='eigensam': its ascent is SAM's, not ASAM's"
            )
        if self.variant == "looksam" and self.interval != 1:
            raise ValueError(
                f"interval={self.interval} with variant='looksam': its k is the interval"
            )
        step_options(self.ascent_fraction, self.m, 1, "per_microbatch", self.m_examples)
        one_of("sam_accumulation", self.sam_accumulation, ACCUMULATION_MODES, none_ok=True)
        if self.variant is not None and self.sam_accumulation == "per_microbatch":
            raise ValueError(
                f"sam_accumulation='per_microbatch' with variant={self.variant!r}: the "
                "variant needs the step's clean and SAM gradients side by side "
                "(sam_accumulation='global')"
            )
        if self.sam_accumulation == "global" and (self.m != 1 or self.m_examples is not None):
            option = f"m={self.m}" if self.m_examples is None else f"m_examples={self.m_examples}"
            raise ValueError(
                f"{option} with sam_accumulation='global': m-sharpness perturbs chunks "
                "separately; use sam_accumulation='per_microbatch'"
            )
        one_of("distributed_sam", self.distributed_sam, MODES)

    def _check_variant_options(self) -> None:
        """A variant's own options only with that variant, each in its range (the
        variants' rules, under this config's names)."""
        owners = (
            (("alpha",), ("gsam", "looksam", "eigensam")),
            (AESAM_OPTIONS, ("aesam",)),
            (EIGENSAM_OPTIONS, ("eigensam",)),
        )
        for names, users in owners:
            given = [f"{n}={getattr(self, n)!r}" for n in names if getattr(self, n) is not None]
            if given and self.variant not in users:
                raise ValueError(
                    f"{', '.join(given)} with variant={self.variant!r}: only variant="
                    + " or ".join(repr(u) for u in users)
                )
        positive_int("looksam_k", self.looksam_k)
        if self.aesam_delta is not None:
            in_interval("aesam_delta", self.aesam_delta, 0.0, 1.0, open_low=True, open_high=True)
        for name in ("aesam_lambda_1", "aesam_lambda_2"):
            if getattr(self, name) is not None:
                finite(name, getattr(self, name))
        for name in EIGENSAM_OPTIONS:
            optional_positive_int(name, getattr(self, name))

    @property
    def accumulates_globally(self) -> bool:
        """Whether gradient accumulation takes one SAM step over all micro-batches."""
        if self.sam_accumulation is None:
            return self.variant is not None
        return self.sam_accumulation == "global"

    def chunks(self, n: int) -> int:
        """How many chunks (units) a micro-batch of ``n`` examples is split into."""
        if self.m_examples is not None:
            return math.ceil(n / self.m_examples)
        return min(self.m, n)

    def make_variant(self) -> Variant | None:
        """The variant object (``None`` for SAM/ASAM)."""
        if self.variant is None:
            return None
        if self.variant == "aesam":  # T: the run's steps, which SAMTrainer sets
            return VARIANTS["aesam"](**_own(AESAM_OPTIONS, "aesam_", self))
        alpha = {} if self.alpha is None else {"alpha": self.alpha}
        if self.variant == "eigensam":
            return VARIANTS["eigensam"](**alpha, **_own(EIGENSAM_OPTIONS, "eigensam_", self))
        if self.variant == "looksam":
            return VARIANTS["looksam"](k=self.looksam_k, **alpha)
        return VARIANTS[self.variant](**alpha)

    def optimizer_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of :class:`samlm.SAM`."""
        keys = (
            "rho",
            "adaptive",
            "eta",
            "rho_schedule",
            "interval",
            "probability",
            "sam_start_step",
            "same_dropout",
            "track_cosine",
            "seed",
            "rho_min",
        )
        return {
            **{k: getattr(self, k) for k in keys},
            "warmup_steps": self.rho_warmup_steps,
            "variant": self.make_variant(),
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
