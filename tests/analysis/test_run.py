"""`samlm sharpness RUN_DIR` end to end, on a run trained in the test (tiny random BERT,
a slice of SST-2)."""

from __future__ import annotations

import argparse
import json
import math

import matplotlib.image
import pytest
from transformers import AutoModelForSequenceClassification

from samlm.analysis import measure_run
from samlm.analysis.cli import add_sharpness_parser, run_sharpness
from samlm.cli import main
from samlm.pipeline import TrainConfig, train

FAST = [
    "--samples", "16", "--batch-size", "8", "--steps", "2", "--m-examples", "4",
    "--hessian-iters", "3", "--probes", "2", "--grid", "3", "--no-progress",
]  # fmt: skip


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, sst2_data_dir, tiny_bert_dir):
    out = tmp_path_factory.mktemp("runs") / "sst2-sam"
    cfg = TrainConfig(
        task="glue/sst2",
        output=str(out),
        model=str(tiny_bert_dir),
        optimizer="sam",
        train_size=24,
        eval_size=16,
        max_steps=2,
        batch_size=8,
        eval_batch_size=16,
        logging_steps=1,
        seed=3,
        data_dir=str(sst2_data_dir),
        progress=False,
    )
    train(cfg, log=lambda *_: None)
    return out


def _parse(argv):
    parser = argparse.ArgumentParser(prog="samlm")
    add_sharpness_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_samlm_sharpness_writes_its_outputs(run_dir, capsys):
    args = _parse(["sharpness", str(run_dir), *FAST])
    assert args.command == "sharpness"
    run_sharpness(args)
    printed = capsys.readouterr().out
    assert "glue/sst2 (sam): 16 of 24 training examples" in printed
    assert "lambda_max(H)" in printed and "trace(H)" in printed
    folder = run_dir / "sharpness"
    result = json.loads((folder / "sharpness.json").read_text())
    assert result["task"] == "glue/sst2" and result["method"] == "sam"
    assert result["train_examples"] == 24 and result["samples"] == 16 == result["examples"]
    assert result["run_rho"] == 0.05 and result["options"]["rho"] == 0.05
    best = AutoModelForSequenceClassification.from_pretrained(run_dir / "best")
    assert (result["peft"], result["weights"]) == ("none", "trained")
    assert result["parameters"] == sum(p.numel() for p in best.parameters())  # every weight
    for key in ("sharpness", "m_sharpness", "adaptive_sharpness"):
        assert math.isfinite(result[key]["sharpness"]) and result[key]["steps"] == 2
    assert result["m_sharpness"]["chunks"] == 4
    top = result["hessian"]["top_eigenvalue"]
    assert top["iterations"] <= 3 and isinstance(top["converged"], bool)
    assert result["hessian"]["trace"]["probes"] == 2
    line = result["landscape"]["1d"]
    assert line["losses"][2] == pytest.approx(result["loss"], abs=1e-6)
    for name in ("landscape_1d.png", "landscape_2d.png"):
        assert matplotlib.image.imread(folder / name).ndim == 3
    assert result["seconds"]["total"] > 0

    # a second measurement keeps the first unless told to replace it
    written = (folder / "sharpness.json").read_text()
    assert main(["sharpness", str(run_dir), *FAST]) == 2
    err = capsys.readouterr().err
    assert "sharpness.json holds an earlier measurement: give --overwrite" in err
    assert (folder / "sharpness.json").read_text() == written
    assert main(["sharpness", str(run_dir), *FAST, "--overwrite", "--grid", "0"]) == 0
    assert json.loads((folder / "sharpness.json").read_text())["options"]["grid"] == 0
    assert not list(folder.glob("*.png"))  # no landscape this time: none of the last one's

    # measure_run, for the comparison tool: the same numbers from Python
    again = measure_run(
        run_dir, samples=16, batch_size=8, steps=2, m=4, hessian_iters=3, probes=2, grid=3,
        progress=False, write=False,
    )  # fmt: skip
    assert again["sharpness"] == result["sharpness"]
    assert again["hessian"]["trace"]["value"] == pytest.approx(
        result["hessian"]["trace"]["value"], rel=1e-6
    )


def test_merged_weights_of_a_full_run_are_its_trained_weights(run_dir):
    fast = dict(samples=8, steps=1, m=0, hessian_iters=0, probes=0, grid=0, progress=False)
    trained = measure_run(run_dir, write=False, **fast)
    merged = measure_run(run_dir, weights="merged", write=False, **fast)
    assert merged["weights"] == "merged" and merged["parameters"] == trained["parameters"]
    assert merged["sharpness"] == trained["sharpness"]


def test_a_different_data_folder_is_refused(run_dir, tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        measure_run(run_dir, data_dir=tmp_path / "nowhere", progress=False, write=False)


def test_a_subset_that_differs_from_the_runs_is_refused(run_dir, tmp_path):
    import shutil

    import yaml

    copy = tmp_path / "copy"
    shutil.copytree(run_dir / "best", copy / "best")
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    config["resolved"]["train_examples"] = 99
    (copy / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ValueError, match="has 24 examples but the run had 99"):
        measure_run(copy, progress=False, write=False)


def test_trains_m_is_refused_for_the_chunk_size(tmp_path, capsys):
    """train's --m counts chunks; here the size is --m-examples, and --m is not taken for
    it (as argparse would take an abbreviation)."""
    assert main(["sharpness", str(tmp_path), "--m", "4"]) == 2
    err = capsys.readouterr().err
    assert "--m: the m-sharpness chunk size is --m-examples here" in err
    assert _parse(["sharpness", "x", "--m-examples", "4"]).m == 4
