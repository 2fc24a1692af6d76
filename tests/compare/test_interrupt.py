"""``samlm compare`` in this process (fast; the real processes and signals are in
test_processes.py, marked slow): a folder another process holds exits 2 before any data is
read (issue 39); Ctrl-C in a cell stops the grid with exit 130 and says what is kept (issue
40)."""

from __future__ import annotations

import json
import shlex

import samlm.compare
from samlm.cli import main

from .fake import InlineBackend, slow_cell
from .test_lock import HOLDER, _start


def test_samlm_compare_on_a_folder_another_process_writes_exits_2(tmp_path, capsys):
    out = tmp_path / "cmp"
    other = _start(HOLDER, str(out))
    try:
        # no --data-dir: the grid would need data, and the lock refuses before it looks
        assert main(["compare", "--tasks", "glue/sst2", "--output", str(out)]) == 2
    finally:
        other.kill()
        other.wait()
    err = capsys.readouterr().err
    assert f"is being written by another samlm compare: pid {other.pid} on host" in err
    assert sorted(p.name for p in out.iterdir()) == ["compare.lock"]  # nothing written


def _interrupted_at_sam_1(spec, cell, folder, threads, setting=None):
    """:func:`slow_cell`; Ctrl-C comes when seed 1's sam cell has run its steps."""
    record = slow_cell(spec, cell, folder, threads, setting)
    if cell["method"] == "sam" and cell["seed"] == 1:
        raise KeyboardInterrupt
    return record


def test_ctrl_c_says_what_is_kept_and_the_command_that_goes_on(
    tmp_path, data_dir, monkeypatch, capsys
):
    real = samlm.compare.compare

    def inline(spec, folder, backend=None, **options):
        return real(spec, folder, backend=InlineBackend(), cell_fn=_interrupted_at_sam_1, **options)

    monkeypatch.setattr(samlm.compare, "compare", inline)
    monkeypatch.setenv("SAMLM_FAKE_STEP_S", "0")
    monkeypatch.setenv("SAMLM_FAKE_STEPS", "4")
    out = tmp_path / "cmp"
    argv = ["compare", "--tasks", "glue/sst2", "--sizes", "16", "--methods", "baseline,sam"]
    argv += ["--seeds", "2", "--data-dir", str(data_dir), "--output", str(out)]
    assert main([*argv, "--overwrite"]) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"samlm compare: interrupted.\nKept in {out}/results.jsonl: 3 of 4 cells done." in err
    assert "  glue/sst2|16|sam|1: checkpoint-4\n" in err
    assert f"To go on: {shlex.join(['samlm', *argv])}\n" in err
    lines = (out / "results.jsonl").read_text().splitlines()
    assert [json.loads(x)["status"] for x in lines] == ["ok"] * 3  # whole records only
    assert not (out / "compare.lock").exists()  # released
