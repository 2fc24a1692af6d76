"""Start ``world`` CPU processes on the gloo backend, each running ``fn(rank, world, *args)``;
the caller gets what each rank's ``fn`` returned (saved with ``torch.save``)."""

from __future__ import annotations

import faulthandler
import os
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

TIMEOUT_S = 180  # a rank stuck in a collective dumps its stack and exits


def _entry(rank: int, fn: Callable, world: int, folder: Path, args: tuple) -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    faulthandler.dump_traceback_later(TIMEOUT_S, exit=True)
    store = folder / "store"
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        torch.save(fn(rank, world, *args), folder / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def spawn(fn: Callable, folder: Path, *args, world: int = 2) -> list:
    """Run ``fn`` on ``world`` ranks; returns their results, rank by rank. A failure on
    any rank fails the caller."""
    mp.spawn(_entry, args=(fn, world, folder, args), nprocs=world, join=True)
    return [torch.load(folder / f"rank{r}.pt") for r in range(world)]
