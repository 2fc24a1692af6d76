"""Start ``world`` CPU processes on the gloo backend, each running ``fn(rank, world, *args)``;
the caller gets what each rank's ``fn`` returned (saved with ``torch.save``)."""

from __future__ import annotations

import faulthandler
import gc
import os
import sys
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
        gc.collect()  # what is left of the DDP model and its comm hook, while Python lives
        dist.destroy_process_group()
    # A rank that saved its result ends here, without the interpreter's finalization: gloo
    # work that still holds Python objects (a comm hook's future callbacks) aborts the
    # process there now and then ("terminate called without an active exception", about
    # 1 run in 12; torch's pull request 179291 describes the teardown). A failure above
    # still raises, for mp.spawn to report.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def spawn(fn: Callable, folder: Path, *args, world: int = 2) -> list:
    """Run ``fn`` on ``world`` ranks; returns their results, rank by rank. A failure on
    any rank fails the caller."""
    mp.spawn(_entry, args=(fn, world, folder, args), nprocs=world, join=True)
    return [torch.load(folder / f"rank{r}.pt") for r in range(world)]
