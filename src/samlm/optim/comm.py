"""The collectives of distributed SAM, on ``torch.distributed`` (any backend).

:class:`Reduction` owns the four cases of making the ascent's numbers global (local,
per replica, synchronized, sharded); the helpers below implement them:

* Synchronized ascent over replicas (DDP): ``g <- (1/N) sum_r g_r``, one all-reduce per
  bucket of about ``bucket_bytes`` (flattened), not one per tensor.
* Sharded weights (FSDP2, ``DTensor`` parameters sharded on a 1-D mesh): each rank
  holds a slice of every tensor, so ``||g||^2 = sum_r ||g_r||^2``, one all-reduce of
  the per-group squared norms (what ``clip_grad_norm_`` does for FSDP).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor
from torch.distributed.tensor import DTensor, Shard

from .validation import one_of

MODES = ("per_replica", "synchronized")
BUCKET_BYTES = 25 * 2**20  # DDP's default bucket size
PER_REPLICA_SHARDED = (
    "distributed='per_replica' cannot work with sharded (FSDP) parameters: the replicas "
    "share one sharded copy of the weights, hence one perturbation; use "
    "distributed='synchronized'"
)


def validate_mode(mode: str | None) -> None:
    one_of("distributed", mode, MODES, none_ok=True)
    if mode is not None and not (dist.is_available() and dist.is_initialized()):
        raise ValueError(
            f"distributed={mode!r} needs torch.distributed initialised first "
            "(torch.distributed.init_process_group, or a launcher such as torchrun)"
        )


def local(t: Tensor) -> Tensor:
    """The rank's own slice of a ``DTensor`` (sharing its storage); a plain tensor as is."""
    return t.to_local() if isinstance(t, DTensor) else t


def shard_group(params: list[Tensor]) -> dist.ProcessGroup | None:
    """The process group over which ``params`` are sharded; ``None`` for plain tensors.

    Raises ``ValueError`` for layouts whose norm is not a plain sum over one group:
    a mix of plain and sharded tensors, several meshes, or placements other than one
    ``Shard`` (tensor parallelism, HSDP).
    """
    sharded = [p for p in params if isinstance(p, DTensor)]
    if not sharded:
        return None
    if len(sharded) != len(params):
        raise ValueError(
            "SAM found both sharded (DTensor) and plain parameters: shard every parameter "
            "the optimizer holds (fully_shard the root module too)"
        )
    mesh = sharded[0].device_mesh
    for p in sharded:
        placements = p.placements
        if p.device_mesh != mesh or len(placements) != 1 or not isinstance(placements[0], Shard):
            raise ValueError(
                f"SAM supports parameters sharded on one 1-D mesh (FSDP2's fully_shard); "
                f"found placements {p.placements} on mesh {p.device_mesh}"
            )
    return mesh.get_group()


def _buckets(tensors: list[Tensor], bucket_bytes: int) -> Iterator[list[Tensor]]:
    bucket: list[Tensor] = []
    size = 0
    for t in tensors:
        if bucket and (
            size + t.numel() * t.element_size() > bucket_bytes
            or (t.dtype, t.device) != (bucket[0].dtype, bucket[0].device)
        ):
            yield bucket
            bucket, size = [], 0
        bucket.append(t)
        size += t.numel() * t.element_size()
    if bucket:
        yield bucket


def all_reduce_mean_(
    tensors: list[Tensor], group: dist.ProcessGroup | None = None, bucket_bytes: int = BUCKET_BYTES
) -> int:
    """``t <- mean over ranks of t`` for every tensor, in place; returns the number of
    all-reduce calls (one per bucket of consecutive tensors of one dtype and device)."""
    world = dist.get_world_size(group)
    calls = 0
    for bucket in _buckets(tensors, bucket_bytes):
        flat = torch.cat([t.reshape(-1) for t in bucket])
        dist.all_reduce(flat, group=group)
        flat.div_(world)
        chunks = flat.split([t.numel() for t in bucket])
        torch._foreach_copy_(bucket, [c.view_as(t) for c, t in zip(chunks, bucket, strict=True)])
        calls += 1
    return calls


@dataclass(frozen=True)
class Reduction:
    """How one step's gradients and norms become global, for the parameters it covers.

    * ``local`` (one process, or ``distributed=None``): nothing to do.
    * ``per_replica``: each replica perturbs with its own gradient; the replicas only
      agree on skipping (one 4-byte all-reduce), and every replica takes the second
      pass even at ``g = 0``, since the others' second pass all-reduces with it.
    * ``synchronized``: the ascent gradients are averaged over the replicas (bucketed
      all-reduces) before anything else: one process on the concatenated batch.
    * ``sharded`` (FSDP2 ``DTensor`` parameters, whatever the mode): the gradients are
      already global; squared norms are summed over the shards.
    """

    case: str
    group: dist.ProcessGroup | None = None

    @classmethod
    def of(
        cls, params: list[Tensor], mode: str | None, process_group: dist.ProcessGroup | None
    ) -> Reduction:
        shards = shard_group(params)
        if shards is not None:
            if mode == "per_replica":
                raise ValueError(PER_REPLICA_SHARDED)
            return cls("sharded", shards)
        return cls(mode or "local", process_group)

    @property
    def lockstep(self) -> bool:
        """Whether every replica must take the second pass, even with ``g = 0``."""
        return self.case == "per_replica"

    def gradients_(self, grads: list[Tensor]) -> None:
        """Average the ascent gradients over the replicas (``synchronized``), in place."""
        if self.case == "synchronized":
            all_reduce_mean_(grads, self.group)

    def squares(self, squares: Tensor) -> Tensor:
        """Global squared norms from this rank's (rows of any shape, summed or flagged)."""
        if self.case == "sharded":
            dist.all_reduce(squares, group=self.group)  # ||g||^2 = sum of the shards'
        elif self.case == "per_replica":
            # all replicas skip together: a lone skip would leave the others waiting in
            # the second pass's all-reduce
            bad = (~torch.isfinite(squares.sum())).float().reshape(1)
            dist.all_reduce(bad, dist.ReduceOp.MAX, self.group)
            squares = torch.where(bad.bool(), torch.nan, squares)  # no host sync of its own
        return squares

    def agree(self, values: Tensor) -> bool:
        """Whether every replica holds the same ``values`` (1-D; one all-reduce of twice its
        size when ``synchronized``, trivially true otherwise)."""
        if self.case != "synchronized":
            return True
        both = torch.cat([values, -values])
        dist.all_reduce(both, dist.ReduceOp.MAX, self.group)
        high, neg_low = both.view(2, -1).tolist()
        return high == [-x for x in neg_low]

    def total(self, squared: Tensor) -> Tensor:
        """The global value of a squared norm over all parameters (the step's final check)."""
        if self.case == "sharded":  # all ranks skip together or step together
            dist.all_reduce(squared, group=self.group)
        return squared
