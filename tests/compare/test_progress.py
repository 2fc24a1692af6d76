"""The grid's progress in steps: a bar that moves within a cell on a terminal, a line per
finished cell and progress lines in a log; locally, in worker processes and on Ray (see
test_ray_backend.py); resumed cells counted from their checkpoint."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from samlm.compare import GridSpec, compare
from samlm.compare import progress as progress_module
from samlm.compare.backends import LocalBackend
from samlm.compare.progress import PROGRESS_FILE, GridProgress, budget

from .fake import STEPS, InlineBackend, stepping_cell

ROOT = Path(__file__).resolve().parents[2]
SPEC = dict(tasks=["glue/sst2"], sizes=[100], methods=["baseline", "sam"], seeds=2)
CELL_LINE = re.compile(
    r"^compare: glue/sst2\|100\|(baseline|sam)\|\d: score \d+\.\d\d, validation \d+\.\d\d, "
    rf"{STEPS} steps, \d+ s, attempt 1$"
)
PROGRESS_LINE = re.compile(
    r"^compare: (\d+)/(\d+) steps \(\d+%\), cells (\d+) done, (\d+) running, (\d+) left, "
    r"at (.+?), (\S+) left"
)


@pytest.fixture
def fast(monkeypatch):
    """Progress polled every 0.05 s, a log line every 0.2 s."""
    monkeypatch.setattr(progress_module, "POLL_S", 0.05)
    monkeypatch.setattr(progress_module, "LOG_EVERY_S", 0.2)


def _check_log(err: str, n_cells: int) -> list[re.Match]:
    assert "\r" not in err  # no bar fragments in a log
    lines = err.splitlines()
    cells = [i for i, x in enumerate(lines) if CELL_LINE.match(x)]
    progress = [(i, m) for i, x in enumerate(lines) if (m := PROGRESS_LINE.match(x))]
    assert len(cells) == n_cells, err
    total = n_cells * STEPS
    # a cell loading counts as running; the grid's steps move while cells train, before
    # the first cell has finished
    before = [m for i, m in progress if i < cells[0]]
    assert any(int(m[1]) == 0 and int(m[4]) >= 1 for m in before), err
    assert any(0 < int(m[1]) < STEPS and int(m[4]) >= 1 for m in before), err
    progress = [m for _, m in progress]
    # before: the step budget, 3 epochs of ceil(100 / 16) steps; after: the cells' count
    assert {int(m[2]) for m in progress if int(m[1]) == 0} <= {n_cells * 21, total}
    assert all(int(m[2]) == total for m in progress if int(m[1]) > 0), err
    assert any(m[7] != "unknown" for m in progress)  # an estimate of the time left
    last = progress[-1]  # the grid's end
    assert (int(last[1]), int(last[3]), int(last[4]), int(last[5])) == (total, n_cells, 0, 0)
    return progress


def test_a_log_gets_a_line_per_cell_and_progress_lines(tmp_path, fast, capsys):
    compare(GridSpec(**SPEC), tmp_path, backend=InlineBackend(), cell_fn=stepping_cell)
    progress = _check_log(capsys.readouterr().err, 4)
    assert {m[6] for m in progress} >= {"glue/sst2 n=100 seeds"}


def test_worker_processes_report_their_steps(tmp_path, fast, capsys):
    backend = LocalBackend(workers=2)
    compare(GridSpec(**SPEC), tmp_path, backend=backend, cell_fn=stepping_cell)
    progress = _check_log(capsys.readouterr().err, 4)
    assert any(int(m[4]) == 2 for m in progress)  # two cells in flight at once


def test_a_resumed_cell_counts_its_steps_from_its_checkpoint(tmp_path, capsys):
    spec = GridSpec(**SPEC)
    compare(spec, tmp_path, backend=InlineBackend(), cell_fn=stepping_cell)
    records = {
        json.loads(x)["key"]: json.loads(x)
        for x in (tmp_path / "results.jsonl").read_text().splitlines()
    }
    cells = spec.cells()
    # the last cell died at step 15 with a checkpoint at step 10; its old progress stays
    killed = cells[-1]
    del records[killed.key]
    folder = tmp_path / "cells" / killed.folder
    (folder / "checkpoints" / "checkpoint-10").mkdir(parents=True)
    (folder / PROGRESS_FILE).write_text(json.dumps({"done": 15, "total": STEPS}))
    with GridProgress(spec, tmp_path, records) as grid:
        done, total, n_done, running, left = grid.snapshot()
        assert not (folder / PROGRESS_FILE).exists()  # an earlier run's: not this one's
        assert (done, total) == (3 * STEPS + 10, 4 * STEPS)
        assert (n_done, running, left) == (3, 0, 1)
    # a stratum none of whose cells reported yet counts its step budget
    grown = GridSpec(**{**SPEC, "sizes": [100, 40], "min_steps": 0, "epochs": 2.0})
    with GridProgress(grown, tmp_path, records) as grid:
        assert grid.snapshot()[1] == 4 * STEPS + 4 * budget(grown, grown.cells()[2])
    assert budget(grown, grown.cells()[2]) == 2 * 3  # 2 epochs of ceil(40 / 16) steps


SCRIPT = """
import sys
sys.path.insert(0, {root!r})
from samlm.compare import GridSpec, compare, progress
from tests.compare.fake import InlineBackend, stepping_cell
progress.POLL_S = 0.05
compare(GridSpec(**{spec!r}), {folder!r}, backend=InlineBackend(), cell_fn=stepping_cell)
"""


def _in_a_terminal(code: str) -> str:
    """Run ``code`` with its output on a pseudo-terminal 150 columns wide; what it wrote."""
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 150, 0, 0))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=child, stderr=child, env=env)
    os.close(child)
    chunks = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            data = os.read(main, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=30)
    os.close(main)
    assert proc.returncode == 0, b"".join(chunks).decode(errors="replace")
    return b"".join(chunks).decode(errors="replace")


def test_on_a_terminal_the_bar_moves_within_a_cell_and_estimates_the_time_left(tmp_path):
    out = _in_a_terminal(SCRIPT.format(root=str(ROOT), spec=SPEC, folder=str(tmp_path)))
    frames = [f.strip() for f in re.split(r"[\r\n]", out) if f.strip().startswith("compare:")]
    bar = re.compile(r"compare:\s+\d+%\|.*\| (\d+)/(\d+) \[([\d:]+)<([\d:?]+)")
    moving = [(int(m[1]), int(m[2]), m[4], f) for f in frames if (m := bar.search(f))]
    total = 4 * STEPS
    # steps of the first cell, before it finished: the bar moved within it, with an estimate
    within = [(n, left, f) for n, t, left, f in moving if 0 < n < STEPS and t == total]
    assert len({n for n, _, _ in within}) >= 3, out
    assert any(left != "?" for _, left, _ in within), out
    assert any("glue/sst2 n=100 seeds | cells 0 done, 1 running, 3 left" in f for *_, f in within)
    assert moving[-1][:2] == (total, total)
    # a finished cell's line, printed above the bar
    lines = [x.strip() for x in out.replace("\r", "\n").splitlines()]
    assert sum(bool(CELL_LINE.match(f"compare: {x}")) for x in lines) == 4, out
