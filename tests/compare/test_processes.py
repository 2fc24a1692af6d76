"""``samlm compare`` as real processes, with fake cells that sleep and checkpoint
(``fake_samlm.py``): a second run on a running folder exits 2 and ``samlm report`` reads
it (issue 39); a killed run's lock is taken over and its cells resume; Ctrl-C stops the
run with exit 130, a message naming the command that goes on, no traceback and no process
left, and that command resumes (issue 40)."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from samlm.compare.grid import Cell

ROOT = Path(__file__).resolve().parents[2]
ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
    "OMP_NUM_THREADS": "1",
}
FAKE = [sys.executable, "-m", "tests.compare.fake_samlm"]
KEYS = [f"glue/sst2|16|{m}|{s}" for s in (0, 1) for m in ("baseline", "sam")]  # in run order


def _argv(out: Path, data_dir: Path) -> list[str]:
    grid = ["--tasks", "glue/sst2", "--sizes", "16", "--methods", "baseline,sam", "--seeds", "2"]
    return ["compare", *grid, "--data-dir", str(data_dir), "--output", str(out), "--workers", "1"]


def _start(argv: list[str], step_s: float, steps: int = 10) -> subprocess.Popen:
    """The command in its own process group (as a terminal's foreground job)."""
    env = {**ENV, "SAMLM_FAKE_STEP_S": str(step_s), "SAMLM_FAKE_STEPS": str(steps)}
    return subprocess.Popen(
        [*FAKE, *argv],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _run(argv: list[str], step_s: float = 0.01) -> subprocess.CompletedProcess:
    env = {**ENV, "SAMLM_FAKE_STEP_S": str(step_s)}
    return subprocess.run(
        [*FAKE, *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def _wait_for(condition, process: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert process.poll() is None, process.communicate()[0]
        assert time.time() < deadline, "timed out"
        time.sleep(0.1)


def _records(out: Path) -> list[dict]:
    path = out / "results.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.is_file() else []


def _checkpointed(out: Path, key: str) -> bool:
    folder = out / "cells" / Cell(*key.split("|")).folder
    return any((folder / "checkpoints").glob("checkpoint-*/trainer_state.json"))


def _calls(out: Path) -> list[str]:
    """The cells' keys, once per time a cell ran to its end."""
    lines = (out / "calls.jsonl").read_text().splitlines()
    return [f"{c['task']}|{c['size']}|{c['method']}|{c['seed']}" for c in map(json.loads, lines)]


def _worker_pids(out: Path) -> set[int]:
    logs = (out / "cells").glob("*/attempts.jsonl")
    return {json.loads(x)["pid"] for log in logs for x in log.read_text().splitlines()}


def _running(pids) -> list[int]:
    """Those of ``pids`` still running (a zombie, left unreaped by this sandbox's init,
    runs nothing)."""
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            continue
        if state != "Z":
            alive.append(pid)
    return alive


def _group(pgid: int) -> list[int]:
    """The running processes of process group ``pgid``."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[2]) == pgid:
            pids.append(int(stat.parent.name))
    return _running(pids)


def _gone(pids, timeout: float = 15) -> bool:
    deadline = time.time() + timeout
    while _running(pids) and time.time() < deadline:
        time.sleep(0.1)
    return not _running(pids)


def _group_gone(pgid: int, timeout: float = 15) -> list[str]:
    """The command lines of the processes of group ``pgid`` still running after
    ``timeout`` seconds (multiprocessing's resource tracker takes a moment to see that the
    driver is gone)."""
    deadline = time.time() + timeout
    while _group(pgid) and time.time() < deadline:
        time.sleep(0.1)
    left = []
    for pid in _group(pgid):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            left.append(Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " "))
    return left


@pytest.mark.slow
def test_a_second_run_exits_2_while_the_first_runs_and_report_reads_it(tmp_path, data_dir):
    out = tmp_path / "cmp"
    first = _start(_argv(out, data_dir), step_s=1.0, steps=6)
    _wait_for(lambda: _records(out), first)  # running, one cell done
    second = _start(_argv(out, data_dir), step_s=0.01)
    report = _run(["report", str(out)])
    second_out, _ = second.communicate(timeout=120)
    assert first.poll() is None  # the first was running all along
    assert second.returncode == 2
    assert f"is being written by another samlm compare: pid {first.pid} on host" in second_out
    assert f"kill -INT {first.pid}" in second_out and "Traceback" not in second_out
    assert report.returncode == 0, report.stderr
    assert f"still being written by samlm compare (pid {first.pid}" in report.stdout
    assert "baseline" in report.stdout and (out / "report.html").is_file()
    first_out, _ = first.communicate(timeout=180)
    assert first.returncode == 0, first_out
    assert sorted(_calls(out)) == sorted(KEYS)  # each cell trained once
    assert sorted(r["key"] for r in _records(out)) == sorted(KEYS)
    assert not (out / "compare.lock").exists()


@pytest.mark.slow
def test_a_killed_runs_lock_is_taken_over_and_its_cells_resume(tmp_path, data_dir):
    out = tmp_path / "cmp"
    first = _start(_argv(out, data_dir), step_s=0.3)
    _wait_for(lambda: _records(out) and _checkpointed(out, KEYS[1]), first)
    workers = _worker_pids(out)
    first.kill()  # the driver alone, SIGKILL: no cleanup, its lock file stays
    first.wait()
    assert _gone(workers)  # its workers died with it: none trains on unseen
    assert (out / "compare.lock").is_file()
    second = _run(_argv(out, data_dir))
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"taking over {out / 'compare.lock'}, left by pid {first.pid}" in second.stderr
    records = {r["key"]: r for r in _records(out)}
    assert sorted(records) == sorted(KEYS) and len(_records(out)) == 4
    assert _calls(out).count(KEYS[0]) == 1  # finished before the kill: not run again
    assert records[KEYS[1]]["resumed_from"].startswith("checkpoint-")


@pytest.mark.slow
def test_ctrl_c_stops_compare_with_the_command_that_goes_on(tmp_path, data_dir):
    out = tmp_path / "cmp"
    argv = _argv(out, data_dir)
    first = _start([*argv, "--overwrite"], step_s=0.3)
    _wait_for(lambda: _records(out) and _checkpointed(out, KEYS[1]), first)
    workers = _worker_pids(out)
    os.killpg(first.pid, signal.SIGINT)  # Ctrl-C: the whole foreground group
    stopped = time.time()
    text, _ = first.communicate(timeout=60)
    assert first.returncode == 130, text
    assert time.time() - stopped < 30
    assert "Traceback" not in text
    assert "samlm compare: interrupted." in text
    assert "1 of 4 cells done" in text
    (line,) = [x for x in text.splitlines() if x.startswith(f"  {KEYS[1]}: checkpoint-")]
    checkpoint = line.rsplit(": ", 1)[1]
    go_on = text.split("To go on: ")[1].splitlines()[0]
    assert go_on == shlex.join(["samlm", *argv])  # without --overwrite
    assert _gone(workers) and _group_gone(first.pid) == []  # no process left
    again = _run(shlex.split(go_on)[1:])
    assert again.returncode == 0, again.stdout + again.stderr
    records = {r["key"]: r for r in _records(out)}
    assert sorted(records) == sorted(KEYS)
    assert _calls(out).count(KEYS[0]) == 1  # finished: not run again
    assert records[KEYS[1]]["resumed_from"] == checkpoint
