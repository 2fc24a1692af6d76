"""The SAM optimizer: a ``torch.optim.Optimizer`` facade over a base optimizer.

One SAM step on weights ``w`` with base optimizer ``B`` (Foret et al. 2021):

    g   = grad L(w)
    e   = rho * g / ||g||                   (ASAM: e = rho * T^2 g / ||T g||, T = |w| + eta)
    w  <- B(w, grad L(w + e))               (the gradient is taken at w + e, applied at w)

This module is the bookkeeping (options, parameter groups, state dict); the step
sequence and its maths are in :mod:`samlm.optim.engine`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from . import comm
from .engine import Engine, Grads
from .schedule import Schedule
from .stats import SAMStats
from .torch_compat import init_optimizer_machinery
from .validation import non_negative, positive_int
from .variants import Variant

STATE_VERSION = 1  # of SAM's own part of the state dict; 0: samlm 0.1.0 (no "version" key)
SAM_GROUP_KEYS = ("rho", "adaptive", "eta", "perturb")
# ASAM's radius where none is given: the ASAM authors' code (SamsungLabs/ASAM) defaults to
# rho 0.5, eta 0.01; its scale-invariant neighbourhood wants about ten times SAM's 0.05
ASAM_RHO = 0.5


class SAM(torch.optim.Optimizer):
    """Sharpness-aware minimization around any ``torch.optim.Optimizer`` instance.

    ``param_groups`` and ``state`` are the base optimizer's own objects, so an LR
    scheduler attached to either drives both. Per-group keys (set on the base
    optimizer's groups, defaulted here): ``rho``, ``adaptive``, ``eta`` and
    ``perturb`` (``False`` leaves a group out of the perturbation and out of ||g||).

    Use either ``step(closure)`` (the closure zeroes the gradients, runs forward and
    backward and returns the loss; it is called once for a plain step and twice for a
    SAM step) or the two-phase API: ``perturb()``, a second backward, ``step()``
    (which restores, clips and steps), or ``restore()`` before a GradScaler's
    ``unscale_``/``step``. :func:`samlm.optim.sam_step` adds the quarter-batch ascent,
    m-sharpness and gradient accumulation on top.

    Args:
        base_optimizer: the optimizer that takes the step with the SAM gradient.
        rho: radius of the neighbourhood (default for groups without ``rho``).
        adaptive: ASAM's scale-invariant neighbourhood.
        eta: ASAM's offset in ``T = |w| + eta``.
        rho_schedule: ``"constant"``, ``"lr"`` (rho follows lr / initial lr) or
            ``"warmup"`` (linear over ``warmup_steps``).
        interval: perturb every ``interval``-th step; the others are plain steps.
        sam_start_step: steps ``0 .. sam_start_step - 1`` are plain steps of the base
            optimizer (one forward-backward each); SAM starts at this step, and
            ``interval`` and the rho warm-up count from it.
        probability: perturb with this probability per step (randomized SAM).
        same_dropout: replay the RNG so both passes draw the same dropout masks.
        max_grad_norm: clip the SAM gradient (after the restore, before the step).
        track_cosine: report the cosine between the two gradients. It keeps the
            first-pass gradients until ``restore`` and overwrites them there (with
            ``g1 + g2``, two foreach passes): free of memory in ``sam_step``, one
            gradient-sized buffer during pass two with a closure; off by default.
        seed: seed of SAM's own generator (randomized SAM); saved in ``state_dict``.
        distributed: with several processes, ``"per_replica"`` (each replica perturbs
            with its own gradient, as the original JAX SAM; no gradient traffic, one
            4-byte all-reduce so that all ranks agree on skipping a non-finite step) or
            ``"synchronized"`` (the ascent gradients are averaged over the replicas in
            bucketed all-reduces: single-process SAM on the concatenated batch);
            ``None`` (the default) is one process's SAM: no traffic and no agreement
            between ranks, so with several processes pass one of the two. Run
            the first pass under DDP's ``no_sync()`` (:func:`samlm.optim.sam_step` does,
            given ``model``). Parameters sharded by FSDP2 (``DTensor``) are handled
            whatever this says: their gradients are already global, ``||g||`` sums the
            shards' squared norms, and the perturbation and restore act on the shards.
        process_group: the replicas' group (default: the whole world).
        rho_min: with ``rho_schedule="lr"``, rho falls with the learning rate from ``rho``
            to ``rho_min`` (GSAM's schedule).
        variant: a :mod:`samlm.optim.variants` object that changes the update direction
            or the steps that perturb (``GSAM(alpha)``, ``LookSAM(k, alpha)``, ``AESAM()``,
            ``EigenSAM(alpha, refresh, iterations)``; LookSAM's ``k`` is the interval).
            Eigen-SAM refreshes from the step's loss: step it with :func:`sam_step` or
            ``SAMTrainer`` (``step(closure)`` and ``perturb()`` refuse it). Under DDP a
            variant needs ``distributed="synchronized"``; AE-SAM's first pass is then DDP's ordinary
            (averaged) backward, not under ``no_sync``, since a plain step uses it.
    """

    def __init__(
        self,
        base_optimizer: torch.optim.Optimizer,
        rho: float = 0.05,
        *,
        adaptive: bool = False,
        eta: float = 0.01,
        rho_schedule: str = "constant",
        warmup_steps: int = 0,
        interval: int = 1,
        probability: float = 1.0,
        sam_start_step: int = 0,
        same_dropout: bool = False,
        max_grad_norm: float | None = None,
        track_cosine: bool = False,
        seed: int = 0,
        distributed: str | None = None,
        process_group: Any = None,
        rho_min: float = 0.0,
        variant: Variant | None = None,
    ) -> None:
        if not isinstance(base_optimizer, torch.optim.Optimizer):
            raise ValueError(
                f"base_optimizer={type(base_optimizer).__name__} must be a torch.optim.Optimizer "
                "instance (build it on the parameters first, then wrap it)"
            )
        if isinstance(base_optimizer, SAM):
            raise ValueError("base_optimizer is already a SAM; wrap the base optimizer once")
        non_negative("rho", rho)
        non_negative("eta", eta)
        if max_grad_norm is not None:
            non_negative("max_grad_norm", max_grad_norm)
        positive_int("interval", interval)
        comm.validate_mode(distributed)
        if variant is not None:
            interval = _variant_interval(variant, interval, distributed)
        self.base_optimizer = base_optimizer
        init_optimizer_machinery(self)
        # SAM's per-group keys join the base optimizer's defaults (add_param_group fills them)
        sam_defaults = {"rho": rho, "adaptive": bool(adaptive), "eta": eta, "perturb": True}
        self.defaults.update(sam_defaults)
        self.engine = Engine(
            lambda: self.base_optimizer.param_groups,
            self.base_optimizer.step,
            Schedule(
                rho_schedule, warmup_steps, interval, float(probability), sam_start_step, rho_min
            ),
            seed=seed,
            same_dropout=bool(same_dropout),
            max_grad_norm=max_grad_norm,
            track_cosine=bool(track_cosine),
            distributed=distributed,
            process_group=process_group,
            variant=variant,
        )
        self.engine.schedule.check_rho(rho)
        for index, group in enumerate(self.param_groups):
            self._configure_group(group, index)

    # -- the base optimizer's objects, forwarded (never copied) -------------------------------

    @property
    def param_groups(self) -> list[dict[str, Any]]:  # type: ignore[override]
        return self.base_optimizer.param_groups

    @param_groups.setter
    def param_groups(self, value: list[dict[str, Any]]) -> None:
        self.base_optimizer.param_groups = value

    @property
    def state(self) -> Any:  # type: ignore[override]
        return self.base_optimizer.state

    @state.setter
    def state(self, value: Any) -> None:
        self.base_optimizer.state = value

    @property
    def defaults(self) -> dict[str, Any]:  # type: ignore[override]
        return self.base_optimizer.defaults

    @defaults.setter
    def defaults(self, value: dict[str, Any]) -> None:
        self.base_optimizer.defaults = value

    # -- options (read from the engine, which uses them) --------------------------------------

    @property
    def schedule(self) -> Schedule:
        return self.engine.schedule

    @property
    def same_dropout(self) -> bool:
        return self.engine.same_dropout

    @property
    def max_grad_norm(self) -> float | None:
        return self.engine.max_grad_norm

    @property
    def track_cosine(self) -> bool:
        return self.engine.track_cosine

    @property
    def distributed(self) -> str | None:
        return self.engine.distributed

    @property
    def process_group(self) -> Any:
        return self.engine.process_group

    # -- parameter groups ---------------------------------------------------------------------

    def _configure_group(self, group: dict[str, Any], index: int) -> None:
        for name in SAM_GROUP_KEYS:
            group.setdefault(name, self.defaults[name])
        where = f" (param group {index})"
        non_negative("rho", group["rho"], where)
        self.engine.schedule.check_rho(float(group["rho"]), where)
        non_negative("eta", group["eta"], where)
        group.setdefault("initial_lr", float(group["lr"]))

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        self.base_optimizer.add_param_group(param_group)
        self._configure_group(self.param_groups[-1], len(self.param_groups) - 1)

    def trainable_params(self) -> list[Tensor]:
        """Every parameter of every group that requires a gradient, in group order."""
        return [p for g in self.param_groups for p in g["params"] if p.requires_grad]

    def devices(self) -> set[torch.device]:
        return self.engine.devices()

    # -- the step (the engine's) --------------------------------------------------------------

    @property
    def last_stats(self) -> SAMStats:
        """What the current (or last) step measured; see :class:`SAMStats`."""
        return self.engine.stats

    @property
    def skipped_steps(self) -> int:
        """Steps skipped so far because a gradient was not finite."""
        return self.engine.skipped_steps

    @property
    def sam_steps(self) -> int:
        """Steps so far that perturbed and updated (the others were plain or skipped)."""
        return self.engine.sam_steps

    def is_sam_step(self) -> bool:
        """Whether the current step perturbs (the schedule says so and some perturbed
        group's radius is > 0; decided once per step). Plain steps cost one pass."""
        return self.engine.is_sam_step()

    @property
    def step_skipped(self) -> bool:
        """True after ``perturb()`` found a non-finite gradient: this step will not update.

        Cleared by the step and by ``zero_grad()`` (the start of a new step); it survives
        further micro-batches of the same step.
        """
        return self.engine.skip_pending

    @property
    def is_perturbed(self) -> bool:
        """True between a successful ``perturb()`` and ``restore()``."""
        return self.engine.perturbed

    def backup_bytes(self) -> int:
        """Bytes SAM holds beyond the base optimizer: the buffers saving ``w`` during a
        perturbation (one per perturbed parameter, allocated at the first SAM step)."""
        return self.engine.backup_bytes()

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.engine.new_step()
        self.base_optimizer.zero_grad(set_to_none)

    def perturb(
        self, grads: Grads | None = None, *, loss: Tensor | None = None, grad_scale: float = 1.0
    ) -> bool:
        """Move the weights to ``w + e``; return whether a second pass is needed.

        ``grads`` maps parameters to their ascent gradients (default: ``p.grad``).
        Returns ``False``, leaving the weights untouched, on a plain step (schedule,
        ``rho == 0``, zero gradient, AE-SAM's flat region) and on a non-finite gradient,
        which also marks the step as skipped (``step()`` will not update;
        ``skipped_steps`` counts it). ``grad_scale``: the loss scale the gradients carry
        (``scaler.get_scale()``), divided out of ``last_stats.grad_norm`` and of AE-SAM's
        statistic.
        """
        return self.engine.perturb(grads, loss=loss, grad_scale=grad_scale)

    def restore(self, *, loss: Tensor | None = None) -> None:
        """Copy the saved weights back (bitwise exact); no-op when not perturbed.

        ``loss`` is L(w + e), recorded in ``last_stats``.
        """
        self.engine.restore(loss=loss)

    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:  # type: ignore[override]
        """One optimizer step.

        With a ``closure``: ``L(w)`` and ``g`` by the closure, ``perturb``, the closure
        again at ``w + e`` (with the same dropout masks when ``same_dropout``),
        ``restore``, clip, base step; returns ``L(w)``. A plain step calls the closure
        once. Without: restore if perturbed, then clip and step with the gradients in
        ``p.grad``.
        """
        if closure is not None:
            return self.engine.closure_step(closure)
        self.engine.finish()
        return None

    # -- checkpoints --------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:  # type: ignore[override]
        """The base optimizer's state, and SAM's: a format version, the schedules' clock,
        the skipped- and SAM-step counts, SAM's generator and a variant's state."""
        if self.engine.perturbed:
            raise RuntimeError(
                "SAM.state_dict() called while the weights are perturbed (between perturb() and "
                "restore()): restore first, so the checkpoint holds w and not w + e"
            )
        return {
            "base": self.base_optimizer.state_dict(),
            "sam": {
                "version": STATE_VERSION,
                "step": self.engine.clock,
                "skipped_steps": self.engine.skipped_steps,
                "sam_steps": self.engine.sam_steps,
                "generator": self.engine.generator.get_state(),
                **self._variant_state(),
            },
        }

    def _param_index(self) -> dict[Tensor, int]:
        """Parameters numbered in group order, as the base optimizer's state dict does."""
        return {p: i for i, p in enumerate(p for g in self.param_groups for p in g["params"])}

    def _variant_state(self) -> dict[str, Any]:
        variant = self.engine.variant
        if variant is None:
            return {}
        return {"variant": {"name": variant.name, **variant.state_dict(self._param_index())}}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:  # type: ignore[override]
        if not isinstance(state_dict, Mapping) or set(state_dict) != {"base", "sam"}:
            keys = sorted(state_dict) if isinstance(state_dict, Mapping) else type(state_dict)
            raise ValueError(
                f"not a SAM state dict: expected the keys 'base' and 'sam', got {keys} "
                "(a base optimizer's state dict loads into the base optimizer)"
            )
        if self.engine.perturbed:
            raise RuntimeError("SAM.load_state_dict() called while the weights are perturbed")
        _check_sam_part(state_dict["sam"])
        self.base_optimizer.load_state_dict(state_dict["base"])
        self.load_sam_state(state_dict["sam"])

    def load_sam_state(self, own: Mapping[str, Any]) -> None:
        """Load SAM's own part of a state dict (``state_dict()["sam"]``), of this release or
        an older one (missing keys take their defaults: clock 0, no skipped step, the
        generator as seeded); the base optimizer is untouched."""
        _check_sam_part(own)
        self.engine.reset(
            int(own.get("step", 0)), int(own.get("skipped_steps", 0)), int(own.get("sam_steps", 0))
        )
        if "generator" in own:
            self.engine.generator.set_state(own["generator"])
        variant, saved = self.engine.variant, own.get("variant")
        if saved is not None and (variant is None or saved.get("name") != variant.name):
            raise ValueError(
                f"the SAM state dict holds the state of variant {saved.get('name')!r}; this SAM "
                f"has {variant!r}"
            )
        if variant is not None and saved is not None:
            params = {i: p for p, i in self._param_index().items()}
            variant.load_state_dict(saved, params)

    def __repr__(self) -> str:
        return f"SAM({self.base_optimizer!r}, schedule={self.schedule})"


def _variant_interval(variant: Any, interval: int, distributed: str | None) -> int:
    """Check ``variant`` against SAM's options; the interval it sets (LookSAM's k), or
    ``interval``."""
    if not isinstance(variant, Variant) or type(variant) is Variant:
        raise ValueError(
            f"variant={variant!r} must be a samlm.optim.variants.Variant subclass "
            "(GSAM, LookSAM, AESAM, EigenSAM or one's own, with its name)"
        )
    if variant.interval is not None and interval != 1:
        raise ValueError(
            f"interval={interval} and {variant!r}: the variant sets the interval (its k)"
        )
    if distributed == "per_replica":
        raise ValueError(
            f"{variant!r} with distributed='per_replica': each replica would change its "
            "gradient (GSAM, LookSAM), decide to perturb (AE-SAM) or estimate its Hessian's "
            "eigenvector (Eigen-SAM) on its own, and the replicas would fall out of step; "
            "use 'synchronized'"
        )
    return variant.interval or interval


def _check_sam_part(own: Any) -> None:
    if not isinstance(own, Mapping):
        raise ValueError(f"SAM state dict: 'sam' must be a mapping, got {type(own).__name__}")
    version = own.get("version", 0)
    if not isinstance(version, int) or version > STATE_VERSION:
        raise ValueError(
            f"SAM state dict version {version!r} is newer than this samlm's ({STATE_VERSION}): "
            "upgrade samlm to load it"
        )
