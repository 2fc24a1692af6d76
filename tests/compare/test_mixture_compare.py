"""``samlm compare`` with a task mixture as a grid task (issue 16) and samlm train's
modelling and LoRA options (issue 15)."""

from __future__ import annotations

import json

import pytest
import yaml
from transformers import BertConfig

from samlm.cli import main
from samlm.compare import GridSpec, compare, write_report
from samlm.compare.grid import Cell
from samlm.compare.report import markdown, terminal
from samlm.compare.store import SPEC_FILE
from samlm.compare.validate import grid_problems
from tests.helpers import tiny_spec

from .fake import InlineBackend, mixture_cell

MIX = "glue/sst2+superglue/cb"


@pytest.fixture
def encoder(tmp_path) -> str:
    """A model folder with only a config: enough for resolve_model."""
    folder = tmp_path / "encoder"
    BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2).save_pretrained(folder)
    return str(folder)


def test_a_mixture_grid_on_a_tiny_bert(tmp_path, data_dir, tiny_bert_dir):
    spec = tiny_spec(
        tasks=[MIX],
        seeds=2,
        model=tiny_bert_dir,
        data_dir=data_dir,
        sharpness=True,  # samlm sharpness measures a mixture run
        min_steps=4,
    )
    records = compare(spec, tmp_path / "cmp", workers=2)
    ok = [r for r in records.values() if r["status"] == "ok"]
    assert len(ok) == 4, [r["error"] for r in records.values()]
    for r in ok:
        assert set(r["sharpness"]) == {"sharpness", "lambda_max", "trace"}
        assert set(r["per_task"]) == {"glue/sst2", "superglue/cb"}
        assert r["score"] == pytest.approx(sum(r["per_task"].values()) / 2)
        assert r["score"] == r["metrics"]["average"] and r["steps"] == 4
        assert [s for s, _ in r["curve"]] == [2, 4]  # the average, as selection saw it
        assert r["examples"] == {
            "train_examples": 32,
            "validation_examples": 32,
            "validation_from": "train",
            "reported_examples": 32,
        }
    config = yaml.safe_load((tmp_path / "cmp" / ok[0]["run_dir"] / "config.yaml").read_text())
    assert config["options"]["task"] == "glue/sst2,superglue/cb"
    a = write_report(tmp_path / "cmp")
    text = terminal(a)
    assert "Mixtures by task" in text and text.count("superglue/cb ") >= 2
    assert "Mixtures by task" in (tmp_path / "cmp" / "report.html").read_text()


def test_a_tasksam_cell_on_a_mixture_and_its_refusal_on_one_task(tmp_path, data_dir, tiny_bert_dir):
    """A compare cell of method tasksam trains the mixture task by task (4 SAM steps, each
    two passes per task: the batch's examples twice, counted as 2 passes a step); a single
    task in the grid is refused before any cell runs."""
    common = dict(model=tiny_bert_dir, data_dir=data_dir, min_steps=4)
    spec = tiny_spec(tasks=[MIX], methods=["baseline", "tasksam"], **common)
    records = compare(spec, tmp_path / "cmp", backend=InlineBackend())  # real cells, inline
    assert all(r["status"] == "ok" for r in records.values()), records
    (record,) = [r for r in records.values() if r["method"] == "tasksam"]
    assert record["steps"] == 4 and record["passes"] == 8  # each example twice a step
    assert set(record["per_task"]) == {"glue/sst2", "superglue/cb"}
    run = tmp_path / "cmp" / record["run_dir"]
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["options"]["optimizer"] == "tasksam"
    assert config["resolved"]["batch_counts"] == {"glue/sst2": 4, "superglue/cb": 4}
    single = tiny_spec(tasks=["glue/sst2", MIX], methods=["baseline", "tasksam"], **common)
    problems = grid_problems(single)
    assert problems == [
        "method tasksam perturbs each task of a mixture on its own, and glue/sst2 is a single "
        "task: list mixtures only (tasks joined by +, or mixture/NAME) or drop tasksam"
    ]


def test_the_report_of_a_mixture_row(tmp_path):
    spec = GridSpec(
        tasks=["glue/sst2", "glue/cola", "glue/sst2+glue/cola"],
        sizes=[100],
        methods=["baseline", "sam"],
        seeds=3,
    )
    compare(spec, tmp_path, backend=InlineBackend(), cell_fn=mixture_cell)
    a = write_report(tmp_path)
    by_method = a.scores[("glue/sst2+glue/cola", 100)]
    assert by_method["baseline"] == {0: 70.0, 1: 71.0, 2: 72.0}
    assert a.per_task[("glue/sst2+glue/cola", 100)]["sam"]["glue/cola"] == {0: 81, 1: 82, 2: 83}
    # the GLUE average is over the single tasks only; the mixture is a row of its own
    assert set(a.benchmarks()) == {("glue average", 100)}
    text = terminal(a)
    by_task = text.split("Mixtures by task")[1].split("Overall")[0]
    assert by_task.count("glue/sst2+glue/cola  100") == 4  # per method, its two tasks
    rows = [line for line in text.splitlines() if line.startswith("glue/sst2+glue/cola")]
    assert any(" sam " in r and "+1.00, significantly better" in r for r in rows)
    assert "| glue/sst2+glue/cola | 100 | sam | glue/cola | 82.00 ± 1.00 (n=3) |" in markdown(a, {})


def test_mixture_problems_in_one_message(tmp_path, data_dir, encoder):
    spec = GridSpec(
        tasks=["glue/sst2+glue/nosuch", "superglue/cb+superglue/cb", "mixture/nosuch", MIX],
        sizes=[300],
        methods=["baseline"],
        model=encoder,
        data_dir=str(data_dir),
        peft="lora",
    )
    problems = grid_problems(spec)
    assert problems[0].startswith("unknown task 'glue/nosuch' (in 'glue/sst2+glue/nosuch')")
    text = "\n".join(problems)
    assert "mixture 'superglue/cb+superglue/cb' lists superglue/cb twice" in text
    assert "unknown mixture 'mixture/nosuch'" in text
    assert "peft" not in text  # LoRA trains a mixture too
    assert "superglue/cb: size 300 is larger than its training split (250 examples" in text
    assert len(problems) == 4, problems  # CB's size problem said once


def test_a_named_mixture_and_options_pass_through(data_dir, encoder):
    spec = GridSpec(
        tasks=["mixture/superglue", MIX],
        sizes=[100],
        methods=["baseline"],
        model=encoder,
        data_dir=str(data_dir),
    )
    assert grid_problems(spec) == []
    assert grid_problems(GridSpec(**{**spec.to_dict(), "sharpness": True})) == []
    options = spec.train_options(Cell("mixture/superglue", 100, "baseline", 0))
    assert options["task"] == "" and options["mixture"] == "superglue"
    lora_mix = GridSpec(**{**spec.to_dict(), "peft": "lora", "lora_targets": "query"})
    assert grid_problems(lora_mix) == []  # LoRA on a mixture: a cell's options as usual
    options = lora_mix.train_options(Cell(MIX, 100, "sam", 0))
    assert options["task"] == "glue/sst2,superglue/cb" and options["peft"] == "lora"
    assert options["lora_targets"] == "query"
    lora = GridSpec(
        tasks=["glue/sst2"],
        sizes=[100],
        methods=["baseline"],
        peft="lora",
        lora_r=4,
        lora_targets="query,value",
        modelling="encoder",
    )
    options = lora.train_options(Cell("glue/sst2", 100, "baseline", 0))
    assert options["task"] == "glue/sst2" and "mixture" not in options
    assert (options["peft"], options["lora_r"], options["lora_targets"]) == (
        "lora",
        4,
        "query,value",
    )
    bad = GridSpec(
        tasks=["glue/sst2"],
        sizes=[100],
        methods=["baseline"],
        model=encoder,
        data_dir=str(data_dir),
        peft="lora",
        lora_r=0,
    )
    assert "lora_r=0 must be an integer >= 1" in "\n".join(grid_problems(bad))


def test_an_unknown_task_in_a_mixture_exits_2(tmp_path, data_dir, tiny_bert_dir, capsys):
    out = tmp_path / "cmp"
    argv = [
        "compare",
        "--tasks",
        "glue/sst2+glue/nosuch",
        "--sizes",
        "16",
        "--model",
        str(tiny_bert_dir),
        "--data-dir",
        str(data_dir),
        "--output",
        str(out),
    ]
    assert main(argv) == 2 and not out.exists()
    err = capsys.readouterr().err
    assert "unknown task 'glue/nosuch' (in 'glue/sst2+glue/nosuch')" in err


def test_a_causal_grid_on_a_tiny_gpt2(tmp_path, data_dir, tiny_gpt2_dir, capsys):
    out = tmp_path / "cmp"
    argv = [
        "compare",
        "--tasks",
        "superglue/cb",
        "--sizes",
        "8",
        "--methods",
        "baseline,sam",
        "--seeds",
        "1",
        "--model",
        str(tiny_gpt2_dir),
        "--modelling",
        "causal",
        "--epochs",
        "1",
        "--min-steps",
        "2",
        "--eval-steps",
        "2",
        "--batch-size",
        "4",
        "--max-length",
        "96",
        "--eval-size",
        "4",
        "--validation-size",
        "4",
        "--workers",
        "2",
        "--data-dir",
        str(data_dir),
        "--output",
        str(out),
    ]
    assert main(argv) == 0, capsys.readouterr().err
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(records) == 2 and all(r["status"] == "ok" for r in records)
    assert yaml.safe_load((out / SPEC_FILE).read_text())["modelling"] == "causal"
    config = yaml.safe_load((out / records[0]["run_dir"] / "config.yaml").read_text())
    assert config["resolved"]["modelling"] == "causal"


def test_an_older_compare_yaml_without_the_new_fields_resumes(tmp_path):
    spec = GridSpec(tasks=["glue/sst2"], sizes=[100], methods=["baseline", "sam"], seeds=2)
    compare(spec, tmp_path, workers=2, cell_fn=mixture_cell)
    saved = yaml.safe_load((tmp_path / SPEC_FILE).read_text())
    new = ("modelling", "peft", "lora_r", "lora_alpha", "lora_dropout", "lora_targets")
    new += ("mixing", "mixing_limit", "temperature")
    old = {k: v for k, v in saved.items() if k not in new}
    (tmp_path / SPEC_FILE).write_text(yaml.safe_dump(old, sort_keys=False))
    calls = (tmp_path / "calls.jsonl").read_text()
    compare(spec, tmp_path, workers=2, cell_fn=mixture_cell)  # no "other settings" error
    assert (tmp_path / "calls.jsonl").read_text() == calls  # nothing ran again
    (tmp_path / SPEC_FILE).write_text(yaml.safe_dump(old, sort_keys=False))
    with pytest.raises(ValueError, match=r"other settings \(modelling\)"):
        compare(
            GridSpec(**{**spec.to_dict(), "modelling": "encoder"}),
            tmp_path,
            workers=1,
            cell_fn=mixture_cell,
        )


def test_mixing_options_reach_the_mixture_cells_train_config(data_dir, encoder):
    from samlm.pipeline import TrainConfig
    from samlm.pipeline.mixture import MixtureJob

    spec = GridSpec(
        tasks=["glue/sst2", MIX],
        sizes=[20],
        methods=["baseline"],
        model=encoder,
        data_dir=str(data_dir),
        mixing="temperature",
        mixing_limit=10,
        temperature=2.0,
    )
    assert grid_problems(spec) == []
    cfg = TrainConfig(output="x", **spec.train_options(Cell(MIX, 20, "baseline", 0)))
    assert (cfg.mixing, cfg.mixing_limit, cfg.temperature) == ("temperature", 10, 2.0)
    job = MixtureJob(cfg)  # the cell's rates: min(20, 10) each, then T = 2 (equal here)
    assert job.rates == pytest.approx([0.5, 0.5])
    single = spec.train_options(Cell("glue/sst2", 20, "baseline", 0))
    assert not {"mixing", "mixing_limit", "temperature"} & set(single)  # a task alone
    plain = GridSpec(tasks=[MIX], sizes=[20], methods=["baseline"])
    options = plain.train_options(Cell(MIX, 20, "baseline", 0))
    assert not {"mixing", "mixing_limit", "temperature"} & set(options)  # train's defaults
    equal = GridSpec(**{**plain.to_dict(), "mixing": "equal"})
    assert TrainConfig(output="x", **equal.train_options(Cell(MIX, 20, "sam", 1))).mixing == "equal"


@pytest.mark.parametrize(
    ("tasks", "extra", "message"),
    [
        ("glue/sst2", ["--mixing", "equal"], "--mixing equal: sets how a mixture's tasks"),
        (
            "glue/sst2,superglue/cb",
            ["--temperature", "2", "--mixing-limit", "9"],
            "--mixing-limit 9, --temperature 2.0: sets how a mixture's tasks are drawn, and "
            "--tasks lists no mixture",
        ),
        (MIX, ["--temperature", "2"], "--temperature 2.0 has an effect only with --mixing temp"),
        (
            MIX,
            ["--mixing", "equal", "--mixing-limit", "9"],
            "--mixing-limit 9 has an effect only with --mixing proportional",
        ),
        (MIX, ["--mixing-limit", "0"], "mixing_limit=0 must be an integer >= 1"),
        (
            MIX,
            ["--mixing", "temperature", "--temperature", "-1"],
            "temperature=-1.0 must be a finite number > 0",
        ),
    ],
)
def test_bad_mixing_options_exit_2(tmp_path, data_dir, encoder, capsys, tasks, extra, message):
    out = tmp_path / "cmp"
    argv = ["compare", "--tasks", tasks, "--sizes", "16", "--model", encoder, *extra]
    assert main([*argv, "--data-dir", str(data_dir), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("samlm compare: error: the grid cannot run") and message in err
    assert err.count(message) == 1  # once, not once per method
    assert not out.exists()


def test_an_unknown_mixing_exits_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit:
        main(["compare", "--tasks", MIX, "--mixing", "nope", "--output", str(tmp_path / "c")])
    assert exit.value.code == 2 and "--mixing: invalid choice: 'nope'" in capsys.readouterr().err


def test_mixing_options_are_recorded_and_reported(tmp_path):
    spec = GridSpec(
        tasks=["glue/sst2+glue/cola"],
        sizes=[100],
        methods=["baseline", "sam"],
        seeds=2,
        mixing="temperature",
        mixing_limit=50,
        temperature=2.0,
    )
    compare(spec, tmp_path, backend=InlineBackend(), cell_fn=mixture_cell)
    saved = yaml.safe_load((tmp_path / SPEC_FILE).read_text())
    assert (saved["mixing"], saved["mixing_limit"], saved["temperature"]) == (
        "temperature",
        50,
        2.0,
    )
    text = terminal(write_report(tmp_path))
    assert "at temperature-scaled rates (T = 2), each counting at most 50 examples" in text
    with pytest.raises(ValueError, match=r"other settings \(temperature\)"):
        compare(
            GridSpec(**{**saved, "temperature": 3.0}), tmp_path, workers=1, cell_fn=mixture_cell
        )
    default = GridSpec(tasks=["glue/sst2+glue/cola"], sizes=[100], methods=["baseline"], seeds=1)
    compare(default, tmp_path / "plain", workers=1, cell_fn=mixture_cell)
    assert "(--mixing proportional, the default)" in terminal(write_report(tmp_path / "plain"))
