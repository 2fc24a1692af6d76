"""One declaration per option (samlm/options.py): a dataclass field's metadata drives the
command-line flag (type, default, help, choices), the inert-option check, the fields a
grid passes to its cells, and the reading of renamed keys in saved files."""

from __future__ import annotations

import argparse
from dataclasses import MISSING, dataclass, fields

import pytest
import yaml

from samlm.analysis.measure import MeasureOptions, RunOptions
from samlm.cli import build_parser, main
from samlm.compare.backends import BackendOptions
from samlm.compare.grid import CELL_OPTIONS, MIXTURE_OPTIONS, PRESETS, Cell, GridSpec
from samlm.compare.store import SPEC_FILE, read_spec
from samlm.options import Needs, add_arguments, check_inert, declared, flag, option, upgrade
from samlm.pipeline.config import TrainConfig
from samlm.pipeline.look import LookOptions
from samlm.tasks.user_spec import DataFlags
from samlm.training import SAMConfig


def _command(name: str) -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


def _actions(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {a.dest: a for a in parser._actions}


@pytest.mark.parametrize(
    ("command", "classes"),
    [
        ("train", [TrainConfig, DataFlags]),
        ("compare", [GridSpec, BackendOptions]),
        ("sharpness", [RunOptions, MeasureOptions]),
        ("tasks", [LookOptions]),
    ],
)
def test_every_declared_field_is_a_flag_with_its_help(command, classes):
    """Each command's flags are its dataclasses' declared fields, nothing hand-written
    beside them: the flag, the help text, the choices, and (train, sharpness) the default
    in the help."""
    actions = _actions(_command(command))
    for cls in classes:
        for f in declared(cls):
            if not f.metadata["cli"]:  # (sharpness's --batch-size is RunOptions')
                assert f.name not in actions or actions[f.name].help != f.metadata["help"]
                continue
            action = actions[f.name]
            assert (f.metadata["flag"] or flag(f.name)) in action.option_strings
            assert action.help.startswith(f.metadata["help"])
            if f.metadata["choices"]:
                assert tuple(action.choices) == f.metadata["choices"]
            shown = f.metadata["shown_default"]
            shown = f.default if shown is None and f.default is not MISSING else shown
            if shown is None and f.default_factory is not MISSING:
                shown = f.default_factory()
            if command != "compare" and shown is not None:  # compare's come from a preset
                assert action.help.endswith(f"(default: {shown})")


def test_train_and_sharpness_parse_their_declared_types():
    args = _command("train").parse_args(["--lora-r", "4", "--epochs", "2", "--bf16"])
    assert (args.lora_r, args.epochs, args.bf16, args.rho) == (4, 2.0, True, None)
    args = _command("sharpness").parse_args(["run", "--m-examples", "4", "--no-progress"])
    assert (args.m, args.progress, args.samples, args.weights) == (4, False, 128, "trained")
    args = _command("compare").parse_args(["--sizes", "16,32", "--methods", "baseline,sam"])
    assert (args.sizes, args.methods) == ([16, 32], ["baseline", "sam"])
    args = _command("tasks").parse_args(["t.csv"])  # a look at a run's own defaults
    assert (args.sizes, args.max_length, args.model) == ([100, 250, 0], 128, "minilm")
    assert args.max_length == TrainConfig.max_length


def test_alpha_with_sam_is_refused_by_the_generated_inert_check(tmp_path, capsys):
    """--alpha is declared "only with gsam / looksam / eigensam": the config refuses it
    with --optimizer sam, and the command exits 2 naming the flag, value and need."""
    with pytest.raises(ValueError, match=r"--alpha 0\.3 has an effect only with --optimizer gsam"):
        TrainConfig(task="glue/sst2", output="x", optimizer="sam", alpha=0.3)
    argv = ["train", "--task", "glue/sst2", "--output", str(tmp_path / "o")]
    assert main([*argv, "--optimizer", "sam", "--alpha", "0.3"]) == 2
    err = capsys.readouterr().err
    assert "--alpha 0.3 has an effect only with --optimizer gsam or looksam or eigensam" in err
    assert not (tmp_path / "o").exists()
    TrainConfig(task="glue/sst2", output="x", optimizer="looksam", alpha=0.3)  # its user


def test_a_new_declaration_is_a_flag_and_a_check_with_nothing_else_written():
    """A dataclass of two declared options: its parser and its inert check come from the
    declaration alone."""

    @dataclass
    class Options:
        mode: str = option("a", choices=("a", "b"), help="the mode")
        level: int = option(1, needs=Needs(lambda o: o.mode == "b", "--mode b"), help="b's level")

    parser = argparse.ArgumentParser()
    add_arguments(parser, Options)
    assert "b's level (default: 1)" in parser.format_help()
    args = parser.parse_args(["--level", "3"])
    with pytest.raises(ValueError, match=r"^--level 3 has an effect only with --mode b$"):
        check_inert(Options, argparse.Namespace(mode="a", level=3), ["level"])
    check_inert(Options, argparse.Namespace(mode="b", level=args.level), ["level"])
    with pytest.raises(SystemExit):
        parser.parse_args(["--mode", "c"])


def test_grid_fields_are_train_options_declared_once():
    """The fields a grid passes to its cells are those marked so, with train's defaults
    and help (LoRA's included), and every cell's TrainConfig takes them."""
    spec = GridSpec(tasks=["glue/sst2"], sizes=[16])
    train = {f.name: f for f in fields(TrainConfig)}
    grid = {f.name: f for f in fields(GridSpec)}
    assert {"lora_r", "lora_alpha", "lora_dropout", "peft", "save_steps"} <= set(CELL_OPTIONS)
    for name in CELL_OPTIONS:
        assert grid[name].default == train[name].default
        assert grid[name].metadata["needs"] == train[name].metadata["needs"]
    assert set(MIXTURE_OPTIONS) == {"mixing", "mixing_limit", "temperature"}
    options = spec.train_options(Cell("glue/sst2", 16, "sam", 0))
    assert {k: options[k] for k in CELL_OPTIONS} == {k: getattr(spec, k) for k in CELL_OPTIONS}
    TrainConfig(output="x", **options)


def test_sam_fields_have_one_name_in_both_configs():
    """SAMConfig's options are TrainConfig's of the same names (the bridge is gone):
    TrainConfig.sam_config passes each by name."""
    own = {"adaptive", "variant", "track_cosine", "exclude_bias_and_norm", "exclude_embeddings"}
    train = {f.name for f in fields(TrainConfig)}
    assert {f.name for f in fields(SAMConfig)} - own <= train
    cfg = TrainConfig(task="glue/sst2", output="x", optimizer="looksam", looksam_k=3)
    sam = cfg.sam_config(0.05)
    assert (sam.looksam_k, sam.variant, sam.rho) == (3, "looksam", 0.05)
    with pytest.raises(ValueError, match=r"looksam_k=0 must be an integer >= 1"):
        SAMConfig(variant="looksam", looksam_k=0)


def test_a_compare_yaml_with_eval_steps_reads_as_save_steps(tmp_path):
    """eval_steps was renamed save_steps: a folder written before reads the old key (in
    one place, the field's old_names), and --eval-steps still parses."""
    old = {**GridSpec(tasks=["glue/sst2"], sizes=[16]).to_dict(), "save_steps": None}
    del old["save_steps"]
    (tmp_path / SPEC_FILE).write_text(yaml.safe_dump({**old, "eval_steps": 50}))
    assert read_spec(tmp_path).save_steps == 50
    assert upgrade(GridSpec, {"eval_steps": 5, "save_steps": 7}) == {"save_steps": 7}
    assert PRESETS["default"]["save_steps"] == 50
    assert _command("compare").parse_args(["--eval-steps", "4"]).save_steps == 4
