"""The local backend: worker processes that live for the session, and a dead one's cells
recorded as failed with the next batch on new processes."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from samlm.compare.backends import Job, LocalBackend
from samlm.compare.grid import Cell
from samlm.compare.store import SPEC_FILE

from .fake import alive, dying_cell, fake_cell


def _jobs(folder: Path, method: str, seeds: range) -> list[Job]:
    return [Job(Cell("glue/sst2", 16, method, s), {}, str(folder), None) for s in seeds]


def _pids(folder: Path, jobs: list[Job]) -> set[int]:
    logs = [folder / "cells" / j.cell.folder / "attempts.jsonl" for j in jobs]
    return {json.loads(line)["pid"] for log in logs for line in log.read_text().splitlines()}


def test_a_session_runs_every_batch_on_the_same_processes(tmp_path):
    (tmp_path / SPEC_FILE).write_text("{}\n")
    backend = LocalBackend(2)
    first, second = _jobs(tmp_path, "baseline", range(4)), _jobs(tmp_path, "sam", range(4))
    with backend.session():
        done = [r for _, r in backend.run(fake_cell, first)]
        done += [r for _, r in backend.run(fake_cell, second)]
    assert [r["status"] for r in done] == ["ok"] * 8
    assert len(_pids(tmp_path, first)) <= 2
    assert _pids(tmp_path, second) <= _pids(tmp_path, first)  # no process started anew
    assert backend._pool is None  # shut down with the session


def test_a_dead_worker_fails_its_batch_and_the_next_batch_runs(tmp_path):
    (tmp_path / SPEC_FILE).write_text("{}\n")
    backend = LocalBackend(1)
    with backend.session():
        dying = {c.key: r for c, r in backend.run(dying_cell, _jobs(tmp_path, "sam", range(3)))}
        after = [r for _, r in backend.run(fake_cell, _jobs(tmp_path, "baseline", range(2)))]
    assert "worker died: BrokenProcessPool" in dying["glue/sst2|16|sam|1"]["error"]
    assert dying["glue/sst2|16|sam|0"]["status"] == "ok"
    assert [r["status"] for r in after] == ["ok", "ok"]


def test_a_worker_killed_between_batches_does_not_stop_the_next(tmp_path):
    (tmp_path / SPEC_FILE).write_text("{}\n")
    backend = LocalBackend(1)
    first = _jobs(tmp_path, "baseline", range(1))
    with backend.session():
        assert [r["status"] for _, r in backend.run(fake_cell, first)] == ["ok"]
        (idle,) = _pids(tmp_path, first)
        os.kill(idle, signal.SIGKILL)
        deadline = time.time() + 30
        while alive(idle) and time.time() < deadline:
            time.sleep(0.1)
        second = _jobs(tmp_path, "sam", range(2))
        assert [r["status"] for _, r in backend.run(fake_cell, second)] == ["ok", "ok"]
    assert idle not in _pids(tmp_path, second)


def test_cells_not_handed_to_a_process_never_start_once_the_driver_stops(tmp_path):
    (tmp_path / SPEC_FILE).write_text("{}\n")
    backend = LocalBackend(1)
    with backend.session():
        results = backend.run(fake_cell, _jobs(tmp_path, "sam", range(12)))
        next(results)
        results.close()  # the driver stopped (Ctrl-C, an error storing a record)
    started = (tmp_path / "calls.jsonl").read_text().splitlines()
    assert len(started) < 12  # at most the few the pool had queued for its process
