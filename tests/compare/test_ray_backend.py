"""``samlm compare --backend ray``: the same store and scores as the local backend, on a
real local Ray instance; a killed worker's cell retried; grids half-run on one backend
finished on the other, no finished cell run again."""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest

from samlm.compare import GridSpec, compare
from samlm.compare import store as store_module
from samlm.compare.backends import LocalBackend, RayBackend, attempt

from .fake import alive, fake_cell, stepping_cell
from .ray_env import confined, short_dir

ray = pytest.importorskip("ray", reason="needs ray (pip install 'samlm[ray]')")

ROOT = Path(__file__).resolve().parents[2]
THREADS = max(1, (os.cpu_count() or 1) // 2)  # per cell: two cells at once on both backends
SCORE_FIELDS = ("score", "metrics", "validation_score", "steps", "curve")


@pytest.fixture(scope="module")
def ray_instance():
    """A Ray instance of the tests' own (never a cluster running on this machine) with two
    cells' worth of CPUs; its workers import the tests too."""
    temp = short_dir()
    with confined(temp):
        ray.init(
            address="local",
            num_cpus=2 * THREADS,
            include_dashboard=False,
            log_to_driver=False,
            # the sources under test (not an installed samlm elsewhere) and the tests
            runtime_env={
                "env_vars": {"PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
            },
        )
        yield
        ray.shutdown()
    shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def spec(data_dir, tiny_bert_dir) -> GridSpec:
    """4 cells of 8 steps on a tiny random BERT, checkpointed every 4 steps."""
    return GridSpec(
        tasks=["glue/sst2"],
        sizes=[16],
        methods=["baseline", "sam"],
        seeds=2,
        model=str(tiny_bert_dir),
        epochs=1.0,
        min_steps=8,
        save_steps=4,
        eval_size=16,
        validation_size=24,
        batch_size=8,
        max_length=32,
        data_dir=str(data_dir),
    )


@pytest.fixture(scope="module")
def local(spec, tmp_path_factory) -> dict[str, dict]:
    """The grid on the local backend, the reference of every Ray run."""
    records = compare(spec, tmp_path_factory.mktemp("local"), workers=2)
    assert len(records) == 4 and all(r["status"] == "ok" for r in records.values())
    return records


def _ray() -> RayBackend:
    return RayBackend(cpus_per_cell=THREADS)


def _scores(records: dict[str, dict]) -> dict[str, tuple]:
    return {k: tuple(json.dumps(r[f]) for f in SCORE_FIELDS) for k, r in records.items()}


def _lines(folder: Path) -> list[dict]:
    return [json.loads(x) for x in (folder / store_module.FILE).read_text().splitlines()]


def _attempts(folder: Path, record: dict) -> list[dict]:
    log = folder / "cells" / Path(record.get("run_dir", "")).name / "attempts.jsonl"
    return [json.loads(x) for x in log.read_text().splitlines()] if log.is_file() else []


def test_ray_gives_the_local_backends_store_and_scores(ray_instance, spec, local, tmp_path):
    records = compare(spec, tmp_path, backend=_ray())
    assert _scores(records) == _scores(local)
    lines = _lines(tmp_path)  # one writer: one line per cell, as on the local backend
    assert sorted(r["key"] for r in lines) == sorted(local)
    assert all(r["attempts"] == 1 and r["node"] for r in records.values())


@pytest.mark.slow  # 9 s of a killed worker's retry (make test-slow, as CI runs it)
def test_a_cell_whose_worker_is_killed_is_retried_from_its_checkpoint(
    ray_instance, spec, local, tmp_path
):
    killed: dict[str, int] = {}

    def kill_first_checkpointed_cell():
        """SIGKILL the worker of the first cell that wrote a complete checkpoint."""
        deadline = time.time() + 300
        while time.time() < deadline and not killed:
            for state in tmp_path.glob("cells/*/checkpoints/checkpoint-*/trainer_state.json"):
                cell = state.parents[2]
                pid = json.loads((cell / "attempts.jsonl").read_text().splitlines()[0])["pid"]
                os.kill(pid, signal.SIGKILL)
                killed[cell.name] = pid
                break
            time.sleep(0.02)

    killer = threading.Thread(target=kill_first_checkpointed_cell)
    killer.start()
    records = compare(spec, tmp_path, backend=_ray())
    killer.join()
    (name, pid) = killed.popitem()
    record = next(r for r in records.values() if Path(r["run_dir"]).name == name)
    assert record["status"] == "ok" and record["attempts"] == 2
    first, second = _attempts(tmp_path, record)
    assert first["pid"] == pid != second["pid"]
    assert record["resumed_from"].startswith("checkpoint-")  # not from scratch
    assert _scores(records) == _scores(local)  # the resumed cell is bitwise the same
    assert len(_lines(tmp_path)) == 4


def _running(folder: Path) -> list[Path]:
    """The cells that have begun an attempt and not finished it (no metrics yet)."""
    cells = folder.glob("cells/*")
    return [c for c in cells if _attempts_of(c) and not (c / "metrics.json").is_file()]


def _interrupt_after(monkeypatch, n: int, folder: Path) -> None:
    """Ctrl-C in the driver once ``n`` records are stored and another cell is running.
    (Not "once 3 of 4 are stored": the fourth cell, started with the third, has often
    finished by then, and nothing is left in flight to cancel.)"""
    real = store_module.append
    count = {"n": 0}

    def append(into, record):
        if count["n"] == n:
            deadline = time.time() + 120
            while not _running(folder) and time.time() < deadline:
                time.sleep(0.05)
            raise KeyboardInterrupt
        count["n"] += 1
        real(into, record)

    monkeypatch.setattr(store_module, "append", append)


# local first, then Ray, checks both hand-overs' bookkeeping; Ray first adds its Ctrl-C
@pytest.mark.parametrize("first", ["local", pytest.param("ray", marks=pytest.mark.slow)])
def test_a_grid_half_run_on_one_backend_finishes_on_the_other(
    ray_instance, spec, local, tmp_path, monkeypatch, first
):
    backends = {"local": lambda: LocalBackend(2), "ray": _ray}
    _interrupt_after(monkeypatch, 1, tmp_path)
    with pytest.raises(KeyboardInterrupt):
        compare(spec, tmp_path, backend=backends[first]())
    monkeypatch.undo()
    done = store_module.read(tmp_path)
    assert len(done) == 1
    if first == "ray":  # Ctrl-C cancelled the cells in flight: their workers are gone
        running = [_attempts_of(c)[-1]["pid"] for c in _running(tmp_path)]
        deadline = time.time() + 30
        while any(map(alive, running)) and time.time() < deadline:
            time.sleep(0.2)
        assert running and not any(map(alive, running))
    second = "ray" if first == "local" else "local"
    records = compare(spec, tmp_path, backend=backends[second]())
    assert _scores(records) == _scores(local)
    assert sorted(r["key"] for r in _lines(tmp_path)) == sorted(local)  # none run twice
    assert all(len(_attempts(tmp_path, done[k])) == 1 for k in done)


def _attempts_of(cell: Path) -> list[dict]:
    log = cell / "attempts.jsonl"
    return [json.loads(x) for x in log.read_text().splitlines()] if log.is_file() else []


def test_a_cell_refuses_folders_its_node_cannot_see(tmp_path):
    (tmp_path / store_module.SPEC_FILE).write_text("{}")
    cell = dict(task="glue/sst2", size=16, method="sam", seed=0, trial=None)
    record = attempt(fake_cell, {"data_dir": "/nowhere/data"}, cell, str(tmp_path), 1, None)
    assert record["status"] == "failed" and "/nowhere/data" in record["error"]
    assert f"node {record['node']}" in record["error"]
    record = attempt(fake_cell, {}, cell, str(tmp_path / "elsewhere"), 1, None)
    assert record["status"] == "failed" and "output folder" in record["error"]
    assert not (tmp_path / "elsewhere").exists()  # nothing written where it cannot see


def test_fake_cells_on_ray_record_their_own_failures_once(ray_instance, tmp_path):
    spec = GridSpec(tasks=["glue/sst2", "glue/cola"], sizes=[100], methods=["baseline", "asam"])
    records = compare(spec, tmp_path, backend=_ray(), cell_fn=fake_cell)
    failed = [r for r in records.values() if r["status"] == "failed"]
    assert len(failed) == 3 and all("boom" in r["error"] for r in failed)  # cola asam
    assert all(r["attempts"] == 1 for r in records.values())  # not retried by Ray


def test_ray_cells_report_their_steps_to_the_driver(ray_instance, tmp_path, monkeypatch, capsys):
    """Cells in Ray tasks write their progress into the shared folder; the driver's log
    shows their steps before the first cell finishes, and a line per finished cell."""
    from samlm.compare import progress

    from .test_progress import SPEC, _check_log

    monkeypatch.setattr(progress, "POLL_S", 0.05)
    monkeypatch.setattr(progress, "LOG_EVERY_S", 0.2)
    compare(GridSpec(**SPEC), tmp_path, backend=_ray(), cell_fn=stepping_cell)
    _check_log(capsys.readouterr().err, 4)
