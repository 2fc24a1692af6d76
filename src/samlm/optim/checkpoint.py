"""Checkpoints of a (possibly sharded) model with its SAM optimizer, on
``torch.distributed.checkpoint``: sharded (every rank writes its own shards, in
parallel; the folder loads on any number of ranks) or full (one ``full.pt`` of
unsharded tensors, written by rank 0 and broadcast from it on load).

A checkpoint holds ``{"model", "optimizer" (the base optimizer's state, keyed by
parameter name), "sam" (SAM's clock, skipped-step count, generator and a variant's
state)}``. Works without ``torch.distributed`` too (one process, plain modules). A
variant with tensors in its state (LookSAM's ``g_v``) is refused in a sharded checkpoint
and under FSDP, which would not restore them yet.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

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
    sharded = comm.shard_group(optimizer.trainable_params()) is not None
    if next(_tensors(sam_part.get("variant")), None) is not None and (sharded or not full):
        raise NotImplementedError(
            f"{optimizer.engine.variant!r} keeps gradient-sized buffers (LookSAM's g_v), which "
            "a sharded checkpoint does not restore yet (and which hold each rank's shards "
            "under FSDP): without FSDP, save with full=True or torch.save(SAM.state_dict())"
        )
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
        box = [state["sam"], state["optimizer"] if unsized else None]
        if _distributed():
            dist.broadcast_object_list(box, src=0)
        state["sam"] = box[0]
        if box[1] is not None:
            state["optimizer"] = box[1]
            optim_options = StateDictOptions()
    else:
        options = optim_options = StateDictOptions()
        model_sd, optim_sd = get_state_dict(model, optimizer.base_optimizer, options=options)
        state = {"model": model_sd, "optimizer": optim_sd, "sam": optimizer.state_dict()["sam"]}
        dcp.load(state, checkpoint_id=folder)
    # two calls: set_state_dict skips the model on ranks that pass it empty (broadcast)
    set_model_state_dict(model, state["model"], options=options)
    set_optimizer_state_dict(
        model, optimizer.base_optimizer, state["optimizer"], options=optim_options
    )
    optimizer.load_sam_state(state["sam"])
