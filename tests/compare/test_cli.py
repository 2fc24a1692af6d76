"""``samlm compare`` as a user runs it: a bad grid exits 2 before any work and writes
nothing; a run where every cell failed exits non-zero."""

from __future__ import annotations

import functools

import samlm.compare
from samlm.cli import main

from .fake import failing_cell


def test_unknown_task_exits_2_and_writes_nothing(tmp_path, data_dir, capsys):
    out = tmp_path / "cmp"
    code = main(
        ["compare", "--tasks", "glue/nosuch", "--data-dir", str(data_dir), "--output", str(out)]
    )
    assert code == 2 and not out.exists()
    err = capsys.readouterr().err
    assert "glue/nosuch" in err and "no cell was started" in err


def test_unreadable_data_exits_2(tmp_path, capsys):
    bad = tmp_path / "data" / "glue" / "SST-2"
    bad.mkdir(parents=True)
    (bad / "train.tsv").write_bytes(b"sentence\tlabel\ngood\t1\n\xff\xfe bad\t0\n")
    (bad / "dev.tsv").write_text("sentence\tlabel\nfine\t1\n")
    out = tmp_path / "cmp"
    code = main(
        ["compare", "--data-dir", str(tmp_path / "data"), "--sizes", "1", "--output", str(out)]
    )
    assert code == 2 and not out.exists()
    assert "train.tsv, line 3" in capsys.readouterr().err


def test_every_cell_failing_exits_non_zero(tmp_path, data_dir, monkeypatch, capsys):
    real = samlm.compare.compare
    monkeypatch.setattr(
        samlm.compare, "compare", functools.partial(real, cell_fn=failing_cell, workers=1)
    )
    out = tmp_path / "cmp"
    code = main(["compare", "--data-dir", str(data_dir), "--seeds", "1", "--output", str(out)])
    captured = capsys.readouterr()
    assert code == 1 and "every cell failed" in captured.err
    assert "nan" not in captured.out and (out / "report.html").is_file()
