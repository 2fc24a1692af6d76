"""The SAM optimizer: a thin wrapper that perturbs, restores, and lets a base optimizer step.

One SAM step on weights ``w`` with base optimizer ``B`` (Foret et al. 2021):

    g   = grad L(w)
    e   = rho * g / ||g||                   (ASAM: e = rho * T^2 g / ||T g||, T = |w| + eta)
    w  <- B(w, grad L(w + e))               (the gradient is taken at w + e, applied at w)
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.distributed.tensor import DTensor

from . import comm
from . import functional as F
from .rng import RNGReplay
from .schedule import Schedule
from .stats import SAMStats

_HOOK_DICTS = (
    "_optimizer_step_pre_hooks",
    "_optimizer_step_post_hooks",
    "_optimizer_state_dict_pre_hooks",
    "_optimizer_state_dict_post_hooks",
    "_optimizer_load_state_dict_pre_hooks",
    "_optimizer_load_state_dict_post_hooks",
)


def check_non_negative(name: str, value: float, where: str = "") -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
        raise ValueError(f"{name}={value!r}{where} must be a finite number >= 0")


def _check_sam_part(own: Mapping[str, Any]) -> None:
    missing = {"step", "skipped_steps", "generator"} - set(own)
    if missing:
        raise ValueError(f"SAM state dict lacks {sorted(missing)} under 'sam'")


@dataclass
class _Perturbation:
    """What ``restore`` needs: the perturbed parameters, the tensors holding their values
    (the local shards of sharded parameters), the saved values, and (for the cosine
    statistic) the first-pass gradients with their squared norm."""

    params: list[Tensor]
    weights: list[Tensor]
    backups: list[Tensor]
    first_grads: list[Tensor] | None
    first_sq: float


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
            gradient-sized buffer during pass two with a closure; off by default, it
            cost about 5% of a MiniLM step on CPU (``bench/step_overhead.py``).
        seed: seed of SAM's own generator (randomized SAM); saved in ``state_dict``.
        distributed: with several processes, ``"per_replica"`` (each replica perturbs
            with its own gradient, as the original JAX SAM; no gradient traffic, one
            4-byte all-reduce so that all ranks agree on skipping a non-finite step) or
            ``"synchronized"`` (the ascent gradients are averaged over the replicas in
            bucketed all-reduces: single-process SAM on the concatenated batch). Run
            the first pass under DDP's ``no_sync()`` (:func:`samlm.optim.sam_step` does,
            given ``model``). Parameters sharded by FSDP2 (``DTensor``) are handled
            whatever this says: their gradients are already global, ``||g||`` sums the
            shards' squared norms, and the perturbation and restore act on the shards.
        process_group: the replicas' group (default: the whole world).
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
    ) -> None:
        if not isinstance(base_optimizer, torch.optim.Optimizer):
            raise ValueError(
                f"base_optimizer={type(base_optimizer).__name__} must be a torch.optim.Optimizer "
                "instance (build it on the parameters first, then wrap it)"
            )
        if isinstance(base_optimizer, SAM):
            raise ValueError("base_optimizer is already a SAM; wrap the base optimizer once")
        check_non_negative("rho", rho)
        check_non_negative("eta", eta)
        if max_grad_norm is not None:
            check_non_negative("max_grad_norm", max_grad_norm)
        comm.validate_mode(distributed)
        self.distributed = distributed
        self.process_group = process_group
        self.schedule = Schedule(
            rho_schedule, warmup_steps, int(interval), float(probability), sam_start_step
        )
        if interval != int(interval):
            raise ValueError(f"interval={interval!r} must be an integer >= 1")
        self.base_optimizer = base_optimizer
        self.same_dropout = bool(same_dropout)
        self.max_grad_norm = max_grad_norm
        self.track_cosine = bool(track_cosine)
        # torch.optim.Optimizer's machinery, without building new param groups.
        for name in _HOOK_DICTS:
            setattr(self, name, OrderedDict())
        self._patch_step_function()
        self._warned_capturable_if_run_uncaptured = True
        self.defaults = {
            **base_optimizer.defaults,
            "rho": rho,
            "adaptive": bool(adaptive),
            "eta": eta,
            "perturb": True,
        }
        self._link_base()
        for index, group in enumerate(self.param_groups):
            self._configure_group(group, index)

        self._generator = torch.Generator().manual_seed(int(seed))
        self._step = 0  # steps taken or skipped: the schedules' clock
        self.skipped_steps = 0  # steps skipped because a gradient was not finite
        self._decision: bool | None = None  # is the current step a SAM step (cached)
        self._skip_pending = False
        self._backup: dict[Tensor, Tensor] = {}
        self._perturbed: _Perturbation | None = None
        self.last_stats = SAMStats()

    # -- parameter groups -------------------------------------------------------------

    def _link_base(self) -> None:
        self.param_groups = self.base_optimizer.param_groups
        self.state = self.base_optimizer.state

    def _configure_group(self, group: dict[str, Any], index: int) -> None:
        for name in ("rho", "adaptive", "eta", "perturb"):
            group.setdefault(name, self.defaults[name])
        where = f" (param group {index})"
        check_non_negative("rho", group["rho"], where)
        check_non_negative("eta", group["eta"], where)
        group.setdefault("initial_lr", float(group["lr"]))

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        self.base_optimizer.add_param_group(param_group)
        self._configure_group(self.param_groups[-1], len(self.param_groups) - 1)

    def trainable_params(self) -> list[Tensor]:
        """Every parameter of every group that requires a gradient, in group order."""
        return [p for g in self.param_groups for p in g["params"] if p.requires_grad]

    # -- the step -----------------------------------------------------------------------

    def is_sam_step(self) -> bool:
        """Whether the current step perturbs (decided once per step by the schedule)."""
        if self._decision is None:
            self._decision = self.schedule.is_sam_step(self._step, self._generator)
        return self._decision

    @property
    def step_skipped(self) -> bool:
        """True after ``perturb()`` found a non-finite gradient: this step will not update.

        Cleared by the step and by ``zero_grad()`` (the start of a new step); it survives
        further micro-batches of the same step.
        """
        return self._skip_pending

    @property
    def is_perturbed(self) -> bool:
        """True between a successful ``perturb()`` and ``restore()``."""
        return self._perturbed is not None

    def zero_grad(self, set_to_none: bool = True) -> None:
        self._skip_pending = False
        super().zero_grad(set_to_none)

    @torch.no_grad()
    def perturb(
        self, grads: Mapping[Tensor, Tensor | None] | None = None, *, loss: Tensor | None = None
    ) -> bool:
        """Move the weights to ``w + e``; return whether a second pass is needed.

        ``grads`` maps parameters to their ascent gradients (default: ``p.grad``).
        Returns ``False``, leaving the weights untouched, on a plain step (schedule,
        ``rho == 0``, zero gradient) and on a non-finite gradient, which also marks
        the step as skipped (``step()`` will not update; ``skipped_steps`` counts it).
        """
        if self._perturbed is not None:
            raise RuntimeError("SAM.perturb() called twice: call restore() or step() first")
        stats = self.last_stats = SAMStats(skipped_steps=self.skipped_steps, loss=loss)
        if not self.is_sam_step():
            return False
        chosen: list[tuple[float, float | None, list[Tensor], list[Tensor]]] = []
        for group in self.param_groups:
            rho = self.schedule.rho(group, self._step)
            if not group["perturb"] or rho == 0.0:
                continue
            params, gs = [], []
            for p in group["params"]:
                g = p.grad if grads is None else grads.get(p)
                if g is not None:
                    params.append(p)
                    gs.append(g)
            if params:
                chosen.append((rho, float(group["eta"]) if group["adaptive"] else None, params, gs))
        shards = comm.shard_group([p for *_, params, _ in chosen for p in params])
        if shards is not None and self.distributed == "per_replica":
            raise ValueError(comm.PER_REPLICA_SHARDED)
        if self.distributed == "synchronized" and shards is None:
            comm.all_reduce_mean_([g for *_, gs in chosen for g in gs], self.process_group)
        groups = [
            F.ascent_group([comm.local(p) for p in params], [comm.local(g) for g in gs], rho, eta)
            for rho, eta, params, gs in chosen
        ]
        rows = [torch.stack([a.grad_sq, a.scaled_sq, a.direction_sq]) for a in groups]
        squares = torch.stack(rows) if rows else torch.zeros(0, 3)
        if shards is not None:
            torch.distributed.all_reduce(squares, group=shards)  # ||g||^2 = sum of the shards'
        elif self.distributed == "per_replica":
            # all replicas skip together: a lone skip would leave the others waiting in the
            # second pass's all-reduce
            bad = (~torch.isfinite(squares[:, 1].sum())).float().reshape(1)
            torch.distributed.all_reduce(bad, torch.distributed.ReduceOp.MAX, self.process_group)
            squares = torch.where(bad.bool(), math.nan, squares)  # no host sync of its own
        squares_host = squares.cpu().tolist()  # the ascent's one host synchronisation
        scaled_norm = math.sqrt(sum(row[1] for row in squares_host))
        if not math.isfinite(scaled_norm):
            self.skipped_steps += 1
            stats.skipped_steps = self.skipped_steps
            self._skip_pending = True
            return False
        if scaled_norm == 0.0 and self.distributed != "per_replica":
            return False
        params_all: list[Tensor] = []
        weights: list[Tensor] = []
        backups: list[Tensor] = []
        first_grads: list[Tensor] = []
        # (per replica, a replica with g = 0 stays at w but still takes the second pass)
        moved = zip(groups, chosen, strict=True) if scaled_norm > 0.0 else ()
        for a, (*_, params, _) in moved:
            group_backups = [self._backup_of(p, w) for p, w in zip(params, a.params, strict=True)]
            F.backup_and_perturb(a, group_backups, scaled_norm)
            params_all += params
            weights += a.params
            backups += group_backups
            first_grads += a.grads
        grad_norm = math.sqrt(sum(row[0] for row in squares_host))
        e_sq = sum(a.rho**2 * row[2] for a, row in zip(groups, squares_host, strict=True))
        e_norm = math.sqrt(e_sq) / (scaled_norm or 1.0)
        stats.sam_step = True
        stats.rho = max(a.rho for a in groups) if groups else 0.0
        stats.grad_norm = grad_norm
        stats.perturbation_norm = e_norm
        self._perturbed = _Perturbation(
            params_all, weights, backups, first_grads if self.track_cosine else None, grad_norm**2
        )
        return True

    def _backup_of(self, p: Tensor, weight: Tensor) -> Tensor:
        """The buffer saving parameter ``p``, shaped like ``weight`` (its local shard)."""
        buf = self._backup.get(p)
        if (
            buf is None
            or buf.shape != weight.shape
            or buf.dtype != weight.dtype
            or buf.device != weight.device
        ):
            buf = torch.empty_like(weight, memory_format=torch.preserve_format)
            self._backup[p] = buf
        return buf

    @torch.no_grad()
    def restore(self, *, loss: Tensor | None = None) -> None:
        """Copy the saved weights back (bitwise exact); no-op when not perturbed.

        ``loss`` is L(w + e), recorded in ``last_stats``.
        """
        if self._perturbed is None:
            return
        state, self._perturbed = self._perturbed, None
        if loss is not None:
            self.last_stats.loss_perturbed = loss.detach()
        if state.first_grads is not None:
            second = [None if p.grad is None else comm.local(p.grad) for p in state.params]
            # the first-pass gradients are dead after the perturbation: reuse them in place,
            # unless zero_grad(set_to_none=False) made the second pass accumulate into them
            if all(
                g is not None and g is not f for g, f in zip(second, state.first_grads, strict=True)
            ):
                sum_sq, second_sq = F.polarise_(state.first_grads, second)  # type: ignore[arg-type]
                self.last_stats._polarisation = (sum_sq, state.first_sq, second_sq)
        F.restore(state.weights, state.backups)

    @torch.no_grad()
    def _finish_step(self) -> None:
        """Clip, check, and let the base optimizer step with the gradients in ``p.grad``."""
        skip = self._skip_pending
        if not skip:
            params = [p for g in self.param_groups for p in g["params"] if p.grad is not None]
            if self.max_grad_norm is not None:
                total = torch.nn.utils.clip_grad_norm_(params, self.max_grad_norm, foreach=True)
                if isinstance(total, DTensor):
                    total = total.full_tensor()  # all ranks see the global norm
            else:
                total = F.squared_norms([comm.local(p.grad) for p in params])
                shards = comm.shard_group(params)
                if shards is not None:  # all ranks skip together or step together
                    torch.distributed.all_reduce(total, group=shards)
            if not math.isfinite(total.item()):
                skip = True
                self.skipped_steps += 1
        if not skip:
            self.base_optimizer.step()
        self.last_stats.skipped_steps = self.skipped_steps
        self._skip_pending = False
        self._decision = None
        self._step += 1

    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:  # type: ignore[override]
        """One optimizer step.

        With a ``closure``: ``L(w)`` and ``g`` by the closure, ``perturb``, the closure
        again at ``w + e`` (with the same dropout masks when ``same_dropout``),
        ``restore``, clip, base step; returns ``L(w)``. Without: restore if perturbed,
        then clip and step with the gradients in ``p.grad``.
        """
        if closure is None:
            self.restore()
            self._finish_step()
            return None
        closure = torch.enable_grad()(closure)
        rng = RNGReplay(self.devices()) if self.same_dropout and self.is_sam_step() else None
        loss = closure()
        if self.perturb(loss=loss.detach() if isinstance(loss, Tensor) else loss):
            if rng is not None:
                rng.replay()
            loss_perturbed = closure()
            if rng is not None:
                rng.resume()
            self.restore(loss=loss_perturbed)
        self._finish_step()
        return loss

    def devices(self) -> set[torch.device]:
        return {p.device for g in self.param_groups for p in g["params"]}

    # -- checkpoints ----------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:  # type: ignore[override]
        """The base optimizer's state plus SAM's counters and generator."""
        if self._perturbed is not None:
            raise RuntimeError(
                "SAM.state_dict() called while the weights are perturbed (between perturb() and "
                "restore()): restore first, so the checkpoint holds w and not w + e"
            )
        return {
            "base": self.base_optimizer.state_dict(),
            "sam": {
                "step": self._step,
                "skipped_steps": self.skipped_steps,
                "generator": self._generator.get_state(),
            },
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:  # type: ignore[override]
        if not isinstance(state_dict, Mapping) or set(state_dict) != {"base", "sam"}:
            keys = sorted(state_dict) if isinstance(state_dict, Mapping) else type(state_dict)
            raise ValueError(
                f"not a SAM state dict: expected the keys 'base' and 'sam', got {keys} "
                "(a base optimizer's state dict loads into the base optimizer)"
            )
        if self._perturbed is not None:
            raise RuntimeError("SAM.load_state_dict() called while the weights are perturbed")
        _check_sam_part(state_dict["sam"])
        self.base_optimizer.load_state_dict(state_dict["base"])
        self.load_sam_state(state_dict["sam"])

    def load_sam_state(self, own: Mapping[str, Any]) -> None:
        """Load SAM's own part of a state dict (``state_dict()["sam"]``): the schedule's
        clock, the skipped-step count and the generator; the base optimizer is untouched."""
        _check_sam_part(own)
        self._link_base()  # loading the base optimizer's state gives it new group dicts
        self._step = int(own["step"])
        self.skipped_steps = int(own["skipped_steps"])
        self._generator.set_state(own["generator"])
        self._decision = None
        self._skip_pending = False

    def __repr__(self) -> str:
        return f"SAM({self.base_optimizer!r}, schedule={self.schedule})"
