"""Start ``world`` CPU processes on the gloo backend, each running ``fn(rank, world, *args)``."""

from __future__ import annotations

import faulthandler
import os
from collections.abc import Callable
from pathlib import Path

import torch.distributed as dist
import torch.multiprocessing as mp

TIMEOUT_S = 180  # a rank stuck in a collective dumps its stack and exits


def _entry(rank: int, fn: Callable, world: int, store: str, args: tuple) -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    faulthandler.dump_traceback_later(TIMEOUT_S, exit=True)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        fn(rank, world, *args)
    finally:
        dist.destroy_process_group()


def spawn(fn: Callable, tmp_path: Path, *args, world: int = 2) -> None:
    """Run ``fn`` on ``world`` ranks; a failure on any rank fails the caller."""
    store = tmp_path / "store"
    mp.spawn(_entry, args=(fn, world, str(store), args), nprocs=world, join=True)
