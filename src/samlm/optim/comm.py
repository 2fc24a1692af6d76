"""The collectives of distributed SAM, on ``torch.distributed`` (any backend).

* Synchronized ascent over replicas (DDP): ``g <- (1/N) sum_r g_r``, one all-reduce per
  bucket of about ``bucket_bytes`` (flattened), not one per tensor.
* Sharded weights (FSDP2, ``DTensor`` parameters sharded on a 1-D mesh): each rank
  holds a slice of every tensor, so ``||g||^2 = sum_r ||g_r||^2``, one all-reduce of
  the per-group squared norms (what ``clip_grad_norm_`` does for FSDP).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.distributed as dist
from torch import Tensor
from torch.distributed.tensor import DTensor, Shard

MODES = ("per_replica", "synchronized")
BUCKET_BYTES = 25 * 2**20  # DDP's default bucket size
PER_REPLICA_SHARDED = (
    "distributed='per_replica' cannot work with sharded (FSDP) parameters: the replicas "
    "share one sharded copy of the weights, hence one perturbation; use "
    "distributed='synchronized'"
)


def validate_mode(mode: str | None) -> None:
    if mode is not None and mode not in MODES:
        raise ValueError(f"distributed={mode!r} must be None or one of {', '.join(MODES)}")
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
