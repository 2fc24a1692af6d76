"""Checkpoints of a (possibly sharded) model with its SAM optimizer, on
``torch.distributed.checkpoint``: sharded (every rank writes its own shards, in
parallel; the folder loads on any number of ranks) or full (one ``full.pt`` of
unsharded tensors, written by rank 0 and broadcast from it on load).

A checkpoint holds ``{"model", "optimizer" (the base optimizer's state, keyed by
parameter name), "sam" (SAM's clock, skipped-step count, generator and a variant's
state)}``. Works without ``torch.distributed`` too (one process, plain modules). A
variant's per-parameter buffers (LookSAM's ``g_v``; local shards under FSDP) are saved
like the parameters: as ``DTensor`` shards over the parameter's mesh (sharded), or
gathered into whole tensors (full) and sharded again on load.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch import Tensor, nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.tensor import DTensor, distribute_tensor

from . import comm
from .sam import SAM

FULL_FILE = "full.pt"


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def _rank() -> int:
    return dist.get_rank() if _distributed() else 0


def save_checkpoint(folder: str | Path, model: nn.Module, optimizer: SAM, *, full: bool = False):
    """Save on every rank (a collective): sharded into ``folder``, or ``folder/full.pt``.

    A full checkpoint is written to a temporary name and renamed, so an interrupted save
    never leaves a truncated ``full.pt``.
    """
    folder = Path(folder)
    sam_part = optimizer.state_dict()["sam"]  # refuses while perturbed
    params = _params(optimizer)
    for _, held in _buffers(optimizer, sam_part):
        held.update({i: _whole(params[i], held[i], full) for i in sorted(held)})
    options = StateDictOptions(full_state_dict=full, cpu_offload=full)
    model_sd, optim_sd = get_state_dict(model, optimizer.base_optimizer, options=options)
    state = {"model": model_sd, "optimizer": optim_sd, "sam": sam_part}
    if not full:
        dcp.save(state, checkpoint_id=folder)
        return
    if _rank() == 0:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{FULL_FILE}.tmp"
        torch.save(state, tmp)
        os.replace(tmp, folder / FULL_FILE)
    if _distributed():
        dist.barrier()


def _params(optimizer: SAM) -> dict[int, Tensor]:
    """The parameters by index, as the state dicts number them."""
    return {i: p for p, i in optimizer._param_index().items()}


def _buffers(optimizer: SAM, sam_part: dict[str, Any]) -> Iterator[tuple[str, dict[int, Any]]]:
    """``(name, {index: tensor})`` for each of the variant's per-parameter buffers held in
    ``sam_part`` (in place: the dicts are ``sam_part``'s own)."""
    variant, saved = optimizer.engine.variant, sam_part.get("variant")
    for name in variant.param_buffers if variant is not None and saved is not None else ():
        yield name, saved.setdefault(name, {})


def _whole(p: Tensor, t: Tensor, full: bool) -> Tensor:
    """A buffer shaped like ``p``'s local gradient as checkpoint tensor: for a sharded
    ``p``, the ``DTensor`` over ``p``'s mesh whose local shard is ``t``; gathered whole
    and on the CPU when ``full`` (a collective)."""
    if isinstance(p, DTensor):
        t = DTensor.from_local(t, p.device_mesh, p.placements, shape=p.shape, stride=p.stride())
        if full:
            t = t.full_tensor()
    return t.cpu() if full else t


def _tensors(obj: Any) -> Iterator[torch.Tensor]:
    """The tensors in nested dicts, lists and tuples."""
    if isinstance(obj, dict):
        obj = list(obj.values())
    if isinstance(obj, list | tuple):
        for item in obj:
            yield from _tensors(item)
    elif isinstance(obj, torch.Tensor):
        yield obj


def load_checkpoint(folder: str | Path, model: nn.Module, optimizer: SAM) -> None:
    """Load what :func:`save_checkpoint` wrote (either kind) on every rank, in place."""
    folder = Path(folder)
    full = (folder / FULL_FILE).is_file()
    params = _params(optimizer)
    if not full and not (folder / ".metadata").is_file():
        raise FileNotFoundError(
            f"{folder} holds no checkpoint: expected {FULL_FILE} (full) or .metadata (sharded)"
        )
    if full:
        options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=_distributed())
        optim_options = options
        state: dict[str, Any] = {"model": {}, "optimizer": {}, "sam": None}
        if _rank() == 0:
            state = torch.load(folder / FULL_FILE, weights_only=True)
        # an optimizer state without sized tensors (SGD without momentum: none at all) has
        # nothing to place or shard, and torch's full-state path refuses it ("Expected
        # device to be set"): it travels with SAM's part and loads as it is, on every rank
        unsized = _rank() == 0 and not any(t.dim() > 0 for t in _tensors(state["optimizer"]))
        # the variant's buffers are not pickled: rank 0 sends their shapes (meta tensors),
        # then broadcasts them, or scatters their shards
        whole = {
            (n, i): t
            for n, held in _buffers(optimizer, state["sam"] or {})
            for i, t in held.items()
        }
        for (name, i), t in whole.items():
            state["sam"]["variant"][name][i] = t.to("meta")
        box = [state["sam"], state["optimizer"] if unsized else None]
        if _distributed():
            dist.broadcast_object_list(box, src=0)
        state["sam"] = box[0]
        if box[1] is not None:
            state["optimizer"] = box[1]
            optim_options = StateDictOptions()
        for name, held in _buffers(optimizer, state["sam"]):
            for i in sorted(held):
                held[i] = _shard(params[i], whole.get((name, i), held[i]))
    else:
        options = optim_options = StateDictOptions()
        model_sd, optim_sd = get_state_dict(model, optimizer.base_optimizer, options=options)
        state = {"model": model_sd, "optimizer": optim_sd, "sam": optimizer.state_dict()["sam"]}
        # templates of the variant's buffers, one for each the checkpoint holds (named as
        # dcp flattens nested dicts), shaped and sharded like the parameter
        saved = dcp.FileSystemReader(folder).read_metadata().state_dict_metadata
        for name, held in _buffers(optimizer, state["sam"]):
            held.clear()
            for i, p in params.items():
                meta = saved.get(f"sam.variant.{name}.{i}")
                if meta is not None:
                    held[i] = torch.empty_like(p.detach(), dtype=meta.properties.dtype)
        dcp.load(state, checkpoint_id=folder)
        for _, held in _buffers(optimizer, state["sam"]):
            held.update({i: comm.local(t) for i, t in held.items()})
    # two calls: set_state_dict skips the model on ranks that pass it empty (broadcast)
    set_model_state_dict(model, state["model"], options=options)
    set_optimizer_state_dict(
        model, optimizer.base_optimizer, state["optimizer"], options=optim_options
    )
    optimizer.load_sam_state(state["sam"])


def _shard(p: Tensor, t: Tensor) -> Tensor:
    """This rank's part of a whole buffer shaped like ``p`` that rank 0 holds (the others
    hold a meta tensor of its shape): its shard of a sharded ``p``, else all of it."""
    device = comm.local(p).device
    if t.is_meta:
        t = torch.empty_like(t, device=device)
    t = t.to(device)
    if isinstance(p, DTensor):
        return distribute_tensor(t, p.device_mesh, p.placements, src_data_rank=0).to_local()
    if _distributed():
        dist.broadcast(t, src=0)
    return t
