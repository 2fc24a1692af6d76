"""Bad input stops `samlm train` before training, with one clear message and exit 2."""

from __future__ import annotations

import json

import pytest

from samlm.cli import main


def _fail(capsys, *argv: str) -> str:
    assert main(["train", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("samlm train: error:") and err.count("\n") <= 8
    return err


def _offline(monkeypatch) -> None:
    """No Hub: the environment for libraries not imported yet, their constants for those
    already imported (read at import; else each lookup waits out its network retries)."""
    import datasets.config
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def _rte_folder(tmp_path, rows: list[str]):
    folder = tmp_path / "data" / "superglue" / "RTE"
    folder.mkdir(parents=True)
    good = {"premise": "A cat sat.", "hypothesis": "A cat.", "label": "entailment", "idx": 0}
    (folder / "val.jsonl").write_text(json.dumps(good) + "\n")
    (folder / "train.jsonl").write_text("\n".join(rows) + "\n")
    return tmp_path / "data"


def test_malformed_row_names_file_line_and_field(tmp_path, capsys, tiny_bert_dir):
    good = json.dumps({"premise": "p", "hypothesis": "h", "label": "entailment", "idx": 0})
    bad = json.dumps({"premise": "p", "label": "entailment", "idx": 1})  # no hypothesis
    data = _rte_folder(tmp_path, [good, bad])
    err = _fail(
        capsys,
        "--task",
        "superglue/rte",
        "--model",
        str(tiny_bert_dir),
        "--data-dir",
        str(data),
        "--output",
        str(tmp_path / "out"),
    )
    assert "train.jsonl" in err and "line 2" in err and "hypothesis" in err
    assert not (tmp_path / "out").exists()  # nothing written before the data is good


def test_bad_label_names_the_value(tmp_path, capsys, tiny_bert_dir):
    bad = json.dumps({"premise": "p", "hypothesis": "h", "label": "maybe", "idx": 0})
    data = _rte_folder(tmp_path, [bad])
    err = _fail(
        capsys,
        "--task",
        "superglue/rte",
        "--model",
        str(tiny_bert_dir),
        "--data-dir",
        str(data),
        "--output",
        str(tmp_path / "out"),
    )
    assert "line 1" in err and "label" in err and "maybe" in err


def test_unknown_task_lists_the_known_ones(tmp_path, capsys):
    err = _fail(capsys, "--task", "glue/nope", "--output", str(tmp_path / "o"))
    assert "superglue/rte" in err and "glue/sst2" in err


def test_unknown_model(tmp_path, capsys, data_dir):
    err = _fail(
        capsys,
        "--task",
        "glue/sst2",
        "--model",
        str(tmp_path / "no-such-model"),
        "--data-dir",
        str(data_dir),
        "--output",
        str(tmp_path / "o"),
    )
    assert "model folder" in err and "does not exist" in err and "minilm" in err


@pytest.mark.parametrize(
    ("flags", "text"),
    [
        (["--ascent-fraction", "2"], "ascent_fraction=2.0"),
        (["--rho", "-1"], "rho=-1.0"),
        (["--interval", "0"], "interval=0"),
        (["--train-size", "5", "--train-fraction", "0.5"], "not both"),
        (["--batch-size", "0"], "batch_size=0"),
        # SAMConfig's checks, under this command's option names
        (["--optimizer", "looksam", "--looksam-k", "0"], "looksam_k=0 must be"),
        (["--rho-schedule", "warmup"], "rho_warmup_steps=0 must be >= 1"),
        # options that would do nothing
        (
            ["--optimizer", "baseline", "--rho", "0.1"],
            "--rho 0.1 has an effect only with a SAM optimizer, not --optimizer baseline",
        ),
        (
            ["--optimizer", "baseline", "--ascent-fraction", "0.25", "--exclude-head"],
            "--ascent-fraction 0.25, --exclude-head True have an effect only with a SAM",
        ),
        (["--eta", "0.5"], "--eta 0.5 has an effect only with --optimizer asam"),
        (["--optimizer", "asam", "--alpha", "0.5"], "only with --optimizer gsam or looksam"),
        (["--looksam-k", "3"], "--looksam-k 3 has an effect only with --optimizer looksam"),
        (
            ["--optimizer", "gsam", "--aesam-lambda-1", "0"],
            "--aesam-lambda-1 0.0 has an effect only with --optimizer aesam",
        ),
        (["--optimizer", "aesam", "--aesam-delta", "1"], "aesam_delta=1.0 must be in (0, 1)"),
        (["--optimizer", "aesam", "--aesam-lambda-2", "inf"], "aesam_lambda_2=inf must be"),
        (["--optimizer", "eigensam", "--eigensam-refresh", "0"], "eigensam_refresh=0 must be"),
        (
            ["--optimizer", "gsam", "--eigensam-iterations", "3"],
            "--eigensam-iterations 3 has an effect only with --optimizer eigensam",
        ),
        (
            ["--optimizer", "eigensam", "--ascent-fraction", "0.25"],
            "ascent_fraction=0.25 with variant='eigensam'",
        ),
        (["--rho-warmup-steps", "10"], "only with --rho-schedule warmup"),
        (["--sam-accumulation", "global"], "only with --gradient-accumulation-steps > 1"),
        (
            [
                "--gradient-accumulation-steps",
                "2",
                "--optimizer",
                "looksam",
                "--sam-accumulation",
                "per_microbatch",
            ],
            "sam_accumulation='per_microbatch' with variant='looksam'",
        ),
        (["--lora-r", "4"], "--lora-r 4 has an effect only with --peft lora"),
        (["--resume", "--overwrite"], "--overwrite deletes it: give one"),
    ],
)
def test_invalid_option_values(tmp_path, capsys, flags, text):
    err = _fail(capsys, "--task", "glue/sst2", "--output", str(tmp_path / "o"), *flags)
    assert text in err
    assert not (tmp_path / "o").exists()


def test_bf16_without_a_bfloat16_device_names_the_option(
    tmp_path, capsys, data_dir, tiny_bert_dir, monkeypatch
):
    import samlm.pipeline.run as run

    monkeypatch.setattr(run, "is_torch_bf16_gpu_available", lambda: False)  # any machine
    monkeypatch.setattr(run, "is_torch_xla_available", lambda: False)
    monkeypatch.setenv("WORLD_SIZE", "2")  # a CPU launch is refused alike
    err = _fail(capsys, "--task", "glue/sst2", "--model", str(tiny_bert_dir), "--bf16",
                "--data-dir", str(data_dir), "--output", str(tmp_path / "o"))  # fmt: skip
    assert "--bf16 needs a GPU" in err and "drop --bf16" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("below", ["", "sub"])
def test_an_output_that_is_a_file(tmp_path, capsys, data_dir, tiny_bert_dir, below):
    (tmp_path / "afile").write_text("mine")
    out = tmp_path / "afile" / below if below else tmp_path / "afile"
    err = _fail(
        capsys, "--task", "glue/sst2", "--model", str(tiny_bert_dir), "--data-dir",
        str(data_dir), "--output", str(out), "--max-steps", "1",
    )  # fmt: skip
    assert f"--output {out} " in err and "not a folder" in err
    assert (tmp_path / "afile").read_text() == "mine"


def test_every_preset_cell_is_a_valid_training_config():
    """The inert-option checks refuse nothing a preset's cells or trials ask for (at the
    preset's own settings or the recorded ones)."""
    from samlm.compare import PRESETS, GridSpec
    from samlm.compare.grid import with_recorded_settings
    from samlm.pipeline import TrainConfig

    built = 0
    for preset in PRESETS.values():
        for options in (dict(preset), with_recorded_settings(dict(preset))):
            spec = GridSpec(**options)
            for cell in spec.trials() + spec.cells():
                TrainConfig(output="unused", **spec.train_options(cell))
                built += 1
    assert built > 1000


def test_missing_data_folder_says_where_it_looked(tmp_path, capsys, tiny_bert_dir, monkeypatch):
    _offline(monkeypatch)
    missing = tmp_path / "nowhere"
    err = _fail(
        capsys,
        "--task",
        "glue/sst2",
        "--model",
        str(tiny_bert_dir),
        "--data-dir",
        str(missing),
        "--output",
        str(tmp_path / "o"),
    )
    assert str(missing) in err and "does not exist" in err


def test_absent_task_files_say_where_it_looked(tmp_path, capsys, tiny_bert_dir, monkeypatch):
    _offline(monkeypatch)
    empty = tmp_path / "empty"
    empty.mkdir()
    err = _fail(
        capsys,
        "--task",
        "glue/sst2",
        "--model",
        str(tiny_bert_dir),
        "--data-dir",
        str(empty),
        "--output",
        str(tmp_path / "o"),
    )
    assert str(empty / "glue" / "SST-2" / "train.tsv") in err and "SAMLM_DATA_DIR" in err


def test_text2text_only_task_on_an_encoder(tmp_path, capsys, data_dir, tiny_bert_dir):
    err = _fail(
        capsys,
        "--task",
        "qa/webquestions",
        "--model",
        str(tiny_bert_dir),
        "--data-dir",
        str(data_dir),
        "--output",
        str(tmp_path / "o"),
    )
    assert "text2text" in err


def test_existing_output_is_not_overwritten(tmp_path, capsys, data_dir, tiny_bert_dir):
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    err = _fail(
        capsys,
        "--task",
        "glue/sst2",
        "--model",
        str(tiny_bert_dir),
        "--data-dir",
        str(data_dir),
        "--output",
        str(out),
        "--max-steps",
        "1",
    )
    assert "--overwrite" in err and (out / "keep.txt").read_text() == "precious"


def test_unknown_yaml_key(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("task: glue/sst2\nlearning-rat: 0.1\n")
    err = _fail(capsys, "--config", str(config), "--output", str(tmp_path / "o"))
    assert "c.yaml" in err and "learning-rat" in err


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('bf16: "no"', "bf16='no' must be true or false"),  # a quoted no is a truthy string
        ('train_size: "16"', "train_size='16' must be an integer"),
        ("max_steps: true", "max_steps=True must be an integer"),
        ("learning_rate: fast", "learning_rate='fast' must be a number"),
        ("model: 3", "model=3 must be a string"),
    ],
)
def test_yaml_values_of_the_wrong_type(tmp_path, capsys, line, message):
    config = tmp_path / "c.yaml"
    config.write_text(f"task: glue/sst2\n{line}\n")
    err = _fail(capsys, "--config", str(config), "--output", str(tmp_path / "o"))
    assert message in err and not (tmp_path / "o").exists()


def test_aesam_options_show_the_variants_own_defaults(capsys):
    """--aesam-* default to None (the variant's defaults); the help shows those values,
    read from AESAM, so the two cannot drift apart."""
    import inspect

    from samlm.cli import build_parser
    from samlm.optim.variants import AESAM

    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    defaults = inspect.signature(AESAM).parameters
    for name in ("delta", "lambda_1", "lambda_2"):
        option = "--aesam-" + name.replace("_", "-")
        entry = text[text.rindex(option + " AESAM_") :]  # its entry, after the usage
        shown = entry[entry.index("(default: ") :]
        assert shown.startswith(f"(default: {defaults[name].default})")


def test_eigensam_options_show_the_variants_own_defaults(capsys):
    """--eigensam-* default to None; the help shows EigenSAM's defaults (the authors'
    code), read from the class, and says where they come from."""
    import inspect

    from samlm.cli import build_parser
    from samlm.optim.variants import EigenSAM

    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    defaults = inspect.signature(EigenSAM).parameters
    for name in ("refresh", "iterations"):
        option = "--eigensam-" + name
        entry = text[text.rindex(option + " EIGENSAM_") :]
        entry = entry[: entry.index(")", entry.index("(default: ")) + 1]
        assert "the Eigen-SAM authors' code" in entry
        assert entry.endswith(f"(default: {defaults[name].default})")
