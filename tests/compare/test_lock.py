"""One writer per results folder (issue 39): the folder's lock against other processes,
a dead holder's lock taken over, and the store's reading rule (a finished result is
never lost to a later failure)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from samlm.compare import GridSpec, analyse
from samlm.compare import store as store_module
from samlm.compare.lock import LOCK_FILE, FolderLocked, hold, holder

ROOT = Path(__file__).resolve().parents[2]

# a process that holds the lock on argv[1] (as samlm compare does) until killed
HOLDER = """
import sys, time
from samlm.compare.lock import hold
with hold(sys.argv[1], ["compare", "--output", sys.argv[1]]):
    print("held", flush=True)
    time.sleep(300)
"""

# a process that holds the OS lock on argv[1]/compare.lock, whose text names pid argv[2]
# on this host (what a dead holder's forked child would keep)
ORPHAN = """
import fcntl, json, os, socket, sys, time
fd = os.open(os.path.join(sys.argv[1], "compare.lock"), os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
info = {"host": socket.gethostname(), "pid": int(sys.argv[2]), "started": time.time()}
os.write(fd, json.dumps(info).encode())
print("held", flush=True)
time.sleep(300)
"""


def _start(code: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    p = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, env=env)
    assert p.stdout.readline() == b"held\n"
    return p


def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_a_folder_another_process_holds_is_refused_until_it_dies(tmp_path, capsys):
    folder = tmp_path / "cmp"
    other = _start(HOLDER, str(folder))
    try:
        assert holder(folder)["pid"] == other.pid  # samlm report's view of it
        with pytest.raises(FolderLocked) as refused, hold(folder):
            pass
        message = str(refused.value)
        assert f"pid {other.pid} on host" in message and "samlm compare --output" in message
        assert f"kill -INT {other.pid}" in message and f"samlm report {folder}" in message
    finally:
        other.send_signal(signal.SIGKILL)
        other.wait()
    assert json.loads((folder / LOCK_FILE).read_text())["pid"] == other.pid  # left behind
    assert holder(folder) is None  # its process is gone
    with hold(folder):  # its OS lock went with it: taken over, with a message
        assert json.loads((folder / LOCK_FILE).read_text())["pid"] == os.getpid()
    assert f"left by pid {other.pid}" in capsys.readouterr().err
    assert not (folder / LOCK_FILE).exists()  # released


def test_a_lock_kept_by_what_a_dead_process_left_is_taken_over(tmp_path, capsys):
    dead = _dead_pid()
    orphan = _start(ORPHAN, str(tmp_path), str(dead))
    try:
        with hold(tmp_path):
            assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
    finally:
        orphan.kill()
        orphan.wait()
    assert f"left by pid {dead} on host" in capsys.readouterr().err


def test_the_lock_is_reentrant_and_leaves_no_trace_of_a_refused_start(tmp_path):
    folder = tmp_path / "runs" / "cmp"
    with pytest.raises(ValueError, match="bad grid"), hold(folder):
        with hold(folder):  # the command holds it, then compare() does
            assert (folder / LOCK_FILE).is_file()
        assert (folder / LOCK_FILE).is_file()  # still held by the outer
        raise ValueError("bad grid")
    assert not (tmp_path / "runs").exists()  # the folders it made, removed


def _record(key: str, status: str, score: float | None = None) -> dict:
    task, size, method, seed = key.split("|")
    record = {"key": key, "task": task, "size": int(size), "method": method, "seed": int(seed)}
    record.update(status=status, wall_time_s=1.0, error=None if status == "ok" else "boom")
    if status == "ok":
        record.update(score=score, metrics={"accuracy": score}, steps=10, passes=10.0)
    return record


def test_a_finished_result_is_never_replaced_by_a_later_failure(tmp_path):
    """The store of issue 39's two runs: a cell recorded ok by one and failed by the other,
    one recorded ok twice, one failed then ok, and a line a crash cut short."""
    spec = GridSpec(tasks=["glue/sst2"], sizes=[16], methods=["baseline", "sam"], seeds=2)
    (tmp_path / store_module.SPEC_FILE).write_text(yaml.safe_dump(spec.to_dict()))
    lines = [
        _record("glue/sst2|16|baseline|0", "ok", 50.0),
        _record("glue/sst2|16|baseline|1", "failed"),
        _record("glue/sst2|16|baseline|1", "ok", 52.0),
        _record("glue/sst2|16|sam|0", "ok", 53.0),
        _record("glue/sst2|16|sam|0", "ok", 53.0),  # the same cell finished twice
        _record("glue/sst2|16|sam|1", "ok", 54.5),
        _record("glue/sst2|16|sam|1", "failed"),  # the other run's attempt failed after
    ]
    text = "".join(json.dumps(r) + "\n" for r in lines)
    (tmp_path / store_module.FILE).write_text(text + '{"key": "glue/sst2|16|sam|1", "sta')
    store_module.append(tmp_path, _record("glue/sst2|16|baseline|0", "failed"))
    records = store_module.read(tmp_path)
    assert len(records) == 4
    assert records["glue/sst2|16|sam|1"]["score"] == 54.5
    assert records["glue/sst2|16|baseline|0"]["score"] == 50.0  # appended after a cut line
    assert records["glue/sst2|16|baseline|1"]["score"] == 52.0
    result = analyse(tmp_path)
    stratum = result.scores[("glue/sst2", 16)]
    assert stratum == {"baseline": {0: 50.0, 1: 52.0}, "sam": {0: 53.0, 1: 54.5}}
    assert not result.failures and not result.missing


def test_stored_lines_stay_whole(tmp_path):
    (tmp_path / store_module.FILE).write_text('{"key": "a", "status": "ok", "sc')  # cut short
    store_module.append(tmp_path, {"key": "b", "status": "ok"})
    assert (tmp_path / store_module.FILE).read_text().endswith('sc\n{"key": "b", "status": "ok"}\n')
    assert list(store_module.read(tmp_path)) == ["b"]


def test_a_stale_lock_file_does_not_make_a_folder_foreign(tmp_path):
    """A folder whose only content is a killed run's lock is a fresh folder to compare."""
    from samlm.compare.runner import _prepare

    (tmp_path / LOCK_FILE).write_text(json.dumps({"host": "x", "pid": 1, "started": time.time()}))
    spec = GridSpec(tasks=["glue/sst2"], sizes=[16], methods=["baseline"], seeds=1)
    _prepare(spec, tmp_path, overwrite=False)
    (tmp_path / "results.jsonl").write_text("")
    _prepare(spec, tmp_path, overwrite=True)  # the lock stays: its holder holds it
    assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK_FILE, store_module.SPEC_FILE]
