"""Where ``samlm compare`` runs its cells: local worker processes, or Ray tasks.

A backend takes jobs (cells with their arguments) from a queue whenever it has room for
one (:class:`Batch`: a list of jobs; the grid's own queue hands out a stratum's seeds only
once its trials are in) and yields each cell's record as it finishes; the driver alone
stores them (before the backend takes its next job), so every backend writes the same
``results.jsonl`` and a grid half-run on one finishes on the other. Each attempt at a
cell, wherever it runs, goes through :func:`attempt`, which logs it in the cell's
``attempts.jsonl`` (node, process) and turns the cell's own failure into a failed record.

- :class:`LocalBackend`: a pool of spawned processes on this machine, ``cores //
  workers`` threads each (the default; needs nothing beyond samlm).
- :class:`RayBackend`: one Ray task per cell with a resource request (``num_cpus``,
  ``num_gpus``); a worker or node that dies mid-cell has its task retried by Ray
  (``max_retries``), and the retry resumes from the cell's last checkpoint when the output
  folder is on storage every node sees. Ray core tasks, not Ray Tune: the grid's tuning
  (trials, then seeds at the chosen setting, stratum by stratum) and its results store
  are samlm's own, and a task per cell is all the scheduling it needs.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import os
import socket
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..options import Needs, check_inert, option
from .grid import Cell
from .progress import started
from .ray_connect import connect
from .store import SPEC_FILE
from .workers import worker_init

RAY_INSTALL = "pip install 'samlm[ray]'"


@dataclass(frozen=True)
class Job:
    """One cell to run, with the arguments of ``cell_fn`` but its thread count."""

    cell: Cell
    spec: dict[str, Any]
    folder: str
    setting: dict[str, Any] | None

    def arguments(self, cell_fn: Callable[..., dict], threads: int) -> tuple:
        """:func:`attempt`'s arguments for this job, its cell run with ``threads``."""
        return (cell_fn, self.spec, self.cell.__dict__, self.folder, threads, self.setting)


class Batch:
    """Jobs all ready to start, taken in order: the queue a backend runs. Any object with
    these two methods is one (``samlm.compare.runner._Plan``: the grid's)."""

    def __init__(self, jobs: list[Job]):
        self.jobs = deque(jobs)

    def take(self) -> Job | None:
        """The next job that may start now; None when none may (yet, or any more)."""
        return self.jobs.popleft() if self.jobs else None

    def left(self) -> int:
        """How many jobs are not taken yet."""
        return len(self.jobs)


def queue(jobs: list[Job] | Batch) -> Batch:
    """``jobs`` as a queue: a list becomes a :class:`Batch`, a queue stays itself."""
    return Batch(jobs) if isinstance(jobs, list) else jobs


def failed(cell: Cell, error: str, **extra: Any) -> dict[str, Any]:
    """The store record of a cell that did not finish."""
    return {"key": cell.key, **cell.__dict__, "status": "failed", "error": error, **extra}


def _unseen(spec: dict[str, Any], folder: str, node: str) -> str | None:
    """Why this node cannot run the cell (a folder it does not see), or None."""
    data_dir = spec.get("data_dir")
    if data_dir and not Path(data_dir).is_dir():
        return (
            f"data dir {data_dir} is not visible on node {node}: put it on storage "
            "that every node mounts at the same path"
        )
    if not (Path(folder) / SPEC_FILE).is_file():
        return (
            f"output folder {folder} is not visible on node {node}: put it on storage "
            "that every node mounts at the same path"
        )
    return None


def attempt(
    cell_fn: Callable[..., dict],
    spec: dict[str, Any],
    cell: dict[str, Any],
    folder: str,
    threads: int,
    setting: dict[str, Any] | None,
) -> dict[str, Any]:
    """One attempt at a cell in this process: refuse folders this node cannot see, log the
    attempt in ``cells/<cell>/attempts.jsonl`` (node, process), run ``cell_fn``; the record
    says where it ran (``node``) and how many attempts the cell has had (``attempts``)."""
    c = Cell(**cell)
    node = socket.gethostname()
    reason = _unseen(spec, folder, node)
    if reason:
        return failed(c, reason, node=node)
    log = Path(folder) / "cells" / c.folder / "attempts.jsonl"
    entry = {"node": node, "pid": os.getpid(), "time": time.time()}
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as f:
        f.write(json.dumps(entry) + "\n")
    attempts = len(log.read_text().splitlines())
    started(log.parent)  # running, for the driver's progress
    try:
        record = cell_fn(spec, cell, folder, threads, setting)
    except Exception as err:  # the cell's own failure: recorded, not retried
        record = failed(c, f"{type(err).__name__}: {err}")
    return {**record, "node": node, "attempts": attempts}


class LocalBackend:
    """Cells in up to ``workers`` spawned processes on this machine (default: one per
    core), each cell with ``cores // min(workers, cells running and left)`` threads. The
    processes live for the session (:meth:`session`; a :meth:`run` outside one leaves
    them running until the backend is collected), so each pays its imports once, not once
    per batch. A pool that lost a process is replaced (its cells in flight fail). The
    processes leave Ctrl-C to the driver, which kills them when the session ends with an
    exception (their cells resume from their checkpoints), and die with the driver."""

    name = "local"

    def __init__(self, workers: int | None = None):
        if workers is not None and workers < 1:
            raise ValueError(f"--workers must be at least 1, got {workers}")
        self.cores = os.cpu_count() or 1
        self.workers = workers or self.cores
        self._pool: ProcessPoolExecutor | None = None

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        try:
            yield
        except BaseException:  # Ctrl-C, or an error: the cells in flight stop now
            if self._pool is not None:  # (a rerun resumes them from their checkpoints)
                for process in list(self._pool._processes.values()):
                    process.kill()
            raise
        finally:
            if self._pool is not None:
                self._pool.shutdown(cancel_futures=True)
                self._pool = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:  # its processes start on demand, up to ``workers``
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=mp.get_context("spawn"),
                initializer=worker_init,  # Ctrl-C is the driver's; dies with the driver
                initargs=(os.getpid(),),
            )
        return self._pool

    def _drop(self, pool: ProcessPoolExecutor) -> None:
        """Forget a broken pool: the next submission gets a new one."""
        pool.shutdown(wait=False, cancel_futures=True)
        if self._pool is pool:
            self._pool = None

    def _submit(self, cell_fn: Callable[..., dict], job: Job, threads: int) -> Future:
        """Hand ``job`` to the pool; one that broke (a worker killed, in a run or between
        two) is replaced and the job handed to the new one."""
        args = job.arguments(cell_fn, threads)
        pool = self._executor()
        try:
            return pool.submit(attempt, *args)
        except BrokenProcessPool:
            self._drop(pool)
            return self._executor().submit(attempt, *args)

    def run(
        self, cell_fn: Callable[..., dict], jobs: list[Job] | Batch
    ) -> Iterator[tuple[Cell, dict]]:
        """Each cell and its record as it finishes; a job is taken from ``jobs`` whenever
        fewer than ``workers`` cells run, with ``cores // min(workers, cells running and
        left)`` threads."""
        jobs = queue(jobs)
        running: dict[Future, tuple[Cell, ProcessPoolExecutor]] = {}
        try:
            while True:
                while len(running) < self.workers and (job := jobs.take()) is not None:
                    n = min(self.workers, len(running) + 1 + jobs.left())
                    future = self._submit(cell_fn, job, max(1, self.cores // n))
                    running[future] = (job.cell, self._pool)
                if not running:
                    return
                for future in wait(running, return_when=FIRST_COMPLETED)[0]:
                    cell, pool = running.pop(future)
                    yield cell, self._record(future, cell, pool)
        finally:  # the driver stopped early: cells not yet handed to a process never start
            for future in running:
                future.cancel()

    def _record(self, future: Future, cell: Cell, pool: ProcessPoolExecutor) -> dict[str, Any]:
        try:
            return future.result()
        except Exception as err:  # the worker process itself died: its pool is replaced
            if isinstance(err, BrokenProcessPool):
                self._drop(pool)
            return failed(cell, f"worker died: {type(err).__name__}: {err}")


def import_ray():
    """``ray``, or an ImportError that names the install command."""
    try:
        import ray
    except ImportError as err:
        raise ImportError(f"--backend ray needs Ray: {RAY_INSTALL}") from err
    return ray


class RayBackend:
    """Each cell a Ray task asking for ``cpus_per_cell`` CPUs (its torch threads) and
    ``gpus_per_cell`` GPUs (default: 1 when the cluster has GPUs, else 0, one cell per
    CPU as on the local backend). ``address``: ``None`` starts a Ray instance of its own
    on this machine for the grid's duration, never joining a running one; ``auto``,
    ``host:port`` or ``ray://host:10001`` joins a cluster (:mod:`.ray_connect`).
    A task whose worker or node dies is retried ``retries`` times; Ctrl-C cancels the
    tasks in flight."""

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        cpus_per_cell: float = 1,
        gpus_per_cell: float | None = None,
        retries: int = 3,
        init_options: dict[str, Any] | None = None,
    ):
        if not cpus_per_cell > 0:
            raise ValueError(f"--cpus-per-cell must be positive, got {cpus_per_cell}")
        if gpus_per_cell is not None and not gpus_per_cell >= 0:
            raise ValueError(f"--gpus-per-cell must be at least 0, got {gpus_per_cell}")
        if retries < 0:
            raise ValueError(f"--retries must be at least 0, got {retries}")
        self.address = address
        self.cpus_per_cell = cpus_per_cell
        self.gpus_per_cell = gpus_per_cell
        self.retries = retries
        self.init_options = init_options or {}
        self.ray = import_ray()

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """Connected to Ray for the grid: uses this process's Ray if it is connected, else
        starts an instance of its own (or joins ``address``) and shuts down at the end."""
        ray = self.ray
        started = not ray.is_initialized()
        if started:  # log_to_driver off: the store has the errors
            connect(ray, self.address, {"log_to_driver": False, **self.init_options})
        if self.gpus_per_cell is None:
            self.gpus_per_cell = 1 if ray.cluster_resources().get("GPU", 0) > 0 else 0
        try:
            yield
        finally:
            if started:
                ray.shutdown()

    def run(
        self, cell_fn: Callable[..., dict], jobs: list[Job] | Batch
    ) -> Iterator[tuple[Cell, dict]]:
        ray = self.ray
        task = ray.remote(attempt).options(
            num_cpus=self.cpus_per_cell,
            num_gpus=self.gpus_per_cell or 0,
            max_retries=self.retries,
            retry_exceptions=False,
        )
        threads = max(1, int(self.cpus_per_cell))
        jobs, pending = queue(jobs), {}
        try:
            while True:  # every job that may start is handed to Ray, whose scheduler queues it
                while (j := jobs.take()) is not None:
                    pending[task.remote(*j.arguments(cell_fn, threads))] = j.cell
                if not pending:
                    return
                (ref,), _ = ray.wait(list(pending), num_returns=1)
                cell = pending.pop(ref)
                try:
                    record = ray.get(ref)
                except ray.exceptions.RayError as err:  # died on every try
                    first = str(err).strip().splitlines()[0] if str(err).strip() else ""
                    error = f"worker died ({self.retries} retries): {type(err).__name__}: {first}"
                    record = failed(cell, error)
                yield cell, record
        finally:  # Ctrl-C, or the driver stopped: nothing keeps running for it
            for ref in pending:
                ray.cancel(ref, force=True)


RAY = Needs(lambda o: o.backend == "ray", message="{given}: only with --backend ray")
LOCAL = Needs(
    lambda o: o.backend == "local",
    message="{flags}: only with --backend local (on Ray, --cpus-per-cell and "
    "--gpus-per-cell decide how many cells run at once)",
)


@dataclass
class BackendOptions:
    """``samlm compare``'s backend options (:mod:`samlm.options` declarations); each
    backend's own refused with the other (:meth:`make`)."""

    backend: str = option(
        "local",
        choices=("local", "ray"),
        help="where the cells run: local worker processes, or Ray tasks on a cluster "
        f"({RAY_INSTALL}; data and output folders on storage every node sees)",
    )
    workers: int | None = option(
        None, needs=LOCAL, help="local backend: parallel cells (default: one per core)"
    )
    address: str | None = option(
        None,
        needs=RAY,
        help="ray backend: the cluster to join: auto (RAY_ADDRESS, else the cluster this "
        "machine started last), HEAD:6379, or ray://HEAD:10001 (Ray Client); a cluster with "
        "token authentication needs RAY_AUTH_MODE=token and its token here (README) "
        "(default: a Ray instance of its own on this machine for the grid, never a running "
        "one)",
    )
    cpus_per_cell: float | None = option(
        None, needs=RAY, help="ray backend: CPUs a cell asks for, its torch threads (default 1)"
    )
    gpus_per_cell: float | None = option(
        None,
        needs=RAY,
        help="ray backend: GPUs a cell asks for (default: 1 when the cluster has GPUs, else 0)",
    )
    retries: int | None = option(
        None,
        needs=RAY,
        help="ray backend: retries of a cell whose worker or node died (default 3)",
    )

    def make(self) -> LocalBackend | RayBackend:
        """The backend, after refusing the other backend's options given."""
        given = [f.name for f in fields(self) if getattr(self, f.name) is not None]
        check_inert(BackendOptions, self, given)
        if self.backend == "local":
            return LocalBackend(self.workers)
        ray = {n: getattr(self, n) for n in ("address", "cpus_per_cell", "gpus_per_cell")}
        ray["retries"] = self.retries
        try:
            return RayBackend(**{n: v for n, v in ray.items() if v is not None})
        except ImportError as err:
            raise ValueError(str(err)) from None
