"""``samlm compare`` as a user runs it: a bad grid exits 2 before any work and writes
nothing; a run where every cell failed exits non-zero."""

from __future__ import annotations

import json

import pytest

import samlm.compare
from samlm.cli import main

from .fake import InlineBackend, failing_cell


def _inline(cell_fn):
    """``compare`` as the command calls it, with fake cells in this process (the command's
    local backend is not what these tests look at: it has its own tests)."""
    real = samlm.compare.compare

    def run(spec, folder, backend=None, **options):
        assert backend is not None and backend.name == "local"  # the command's choice
        return real(spec, folder, backend=InlineBackend(), cell_fn=cell_fn, **options)

    return run


def test_unknown_task_exits_2_and_writes_nothing(tmp_path, data_dir, capsys):
    out = tmp_path / "cmp"
    code = main(
        ["compare", "--tasks", "glue/nosuch", "--data-dir", str(data_dir), "--output", str(out)]
    )
    assert code == 2 and not out.exists()
    err = capsys.readouterr().err
    assert "glue/nosuch" in err and "no cell was started" in err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--tune", "--learning-rate", "1e-4"], "--learning-rate 0.0001 with --tune: the tuning"),
        (["--preset", "evidence", "--rho-sam", "0.1"], "--rho-sam 0.1 with --tune"),
        (["--rho-asam", "0.5"], "--rho-asam 0.5 has an effect only with asam among the methods"),
        (
            ["--methods", "baseline,asam", "--rho-sam", "0.1"],
            "--rho-sam 0.1 has an effect only with a SAM method other than asam",
        ),
        (["--lora-r", "4"], "--lora-r 4 has an effect only with --peft lora"),
        (["--lora-r", "4", "--lora-dropout", "0"], "--lora-r 4, --lora-dropout 0.0 have an effect"),
    ],
)
def test_settings_the_grid_would_not_use_exit_2(tmp_path, data_dir, capsys, flags, message):
    out = tmp_path / "cmp"
    argv = ["compare", *flags, "--data-dir", str(data_dir), "--output", str(out)]
    assert main(argv) == 2 and not out.exists()
    assert message in capsys.readouterr().err


def test_an_output_that_is_a_file_exits_2(tmp_path, data_dir, capsys):
    (tmp_path / "afile").write_text("mine")
    argv = ["compare", "--data-dir", str(data_dir), "--output", str(tmp_path / "afile")]
    assert main(argv) == 2 and (tmp_path / "afile").read_text() == "mine"
    assert "is a file, not a folder" in capsys.readouterr().err


def test_tasks_with_a_data_folder_that_is_not_there_exits_2(tmp_path, capsys):
    assert main(["tasks", "--data-dir", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err


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
    monkeypatch.setattr(samlm.compare, "compare", _inline(failing_cell))
    out = tmp_path / "cmp"
    code = main(["compare", "--data-dir", str(data_dir), "--seeds", "1", "--output", str(out)])
    captured = capsys.readouterr()
    assert code == 1 and "every cell failed" in captured.err
    assert "nan" not in captured.out and (out / "report.html").is_file()


def test_default_preset_runs_at_the_recorded_settings(tmp_path, data_dir, monkeypatch, capsys):
    import samlm.compare.recorded as recorded

    from .test_tuning import tuning_cell

    monkeypatch.setattr(
        recorded, "SETTINGS", {"glue/sst2|250|sam": {"learning_rate": 2e-4, "rho": 0.02}}
    )
    monkeypatch.setattr(samlm.compare, "compare", _inline(tuning_cell))
    out = tmp_path / "cmp"
    assert main(["compare", "--data-dir", str(data_dir), "--seeds", "1", "--output", str(out)]) == 0
    text = capsys.readouterr().out
    assert "recorded tuning (bench/results/evidence)" in text  # sam's source
    assert "untuned defaults" in text  # the others: nothing recorded for them yet
    calls = [json.loads(x) for x in (out / "calls.jsonl").read_text().splitlines()]
    assert {(c["method"], c["lr"], c["rho"]) for c in calls} == {
        ("baseline", None, None),
        ("sam", 2e-4, 0.02),
        ("sam_quarter", None, 0.05),
    }
    # an explicit learning rate is the user's choice: nothing recorded is applied
    out2 = tmp_path / "cmp2"
    main(
        [
            "compare",
            "--data-dir",
            str(data_dir),
            "--seeds",
            "1",
            "--learning-rate",
            "3e-4",
            "--output",
            str(out2),
        ]
    )
    assert "recorded tuning" not in capsys.readouterr().out


@pytest.mark.parametrize("option", [["--peft", "lora"], ["--model", "other"]])
def test_recorded_settings_apply_only_to_what_they_were_tuned_for(option):
    from samlm.compare import PRESETS
    from samlm.compare.grid import with_recorded_settings

    options = dict(PRESETS["default"])
    assert "settings" in with_recorded_settings(options)  # full fine-tuning of MiniLM
    name = option[0].removeprefix("--")
    assert "settings" not in with_recorded_settings({**options, name: option[1]})
