"""Selection apart from the reported score: the validation examples are held out from
the training pool (or the dev set), disjoint from the training subset and the reported
examples, and the same for every method and seed."""

from __future__ import annotations

import json

import pytest

from samlm.pipeline import TrainConfig, train
from samlm.pipeline.data import run_splits, size_note
from samlm.tasks import get_task


def _texts(examples):
    return [ex.fields for ex in examples]


def _key(ex):
    return json.dumps([ex.fields, ex.idx], sort_keys=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_validation_from_the_training_pool_is_disjoint_and_fixed(data_dir, seed):
    task = get_task("glue/sst2")
    s = run_splits(task, data_dir, train_size=250, seed=seed, validation_size=500)
    reference = run_splits(task, data_dir, train_size=250, seed=0, validation_size=500)
    assert s.validation_from == "train"
    assert (len(s.train), len(s.validation), len(s.reported)) == (250, 500, 872)
    assert _texts(s.validation) == _texts(reference.validation)  # the same for every seed
    train, val = {_key(e) for e in s.train}, {_key(e) for e in s.validation}
    assert not train & val and len(train) == 250 and len(val) == 500  # idx tells repeats apart
    dev = {_key(e) for e in s.reported}
    assert len(dev) > 800 and not dev & val


def test_training_subset_comes_from_what_validation_left(data_dir):
    task = get_task("superglue/rte")
    s = run_splits(task, data_dir, train_size=1000, seed=3, validation_size=500)
    assert not {_key(e) for e in s.train} & {_key(e) for e in s.validation}
    labels = [e.label for e in s.validation]
    assert abs(labels.count(0) - labels.count(1)) <= 10  # stratified by label


def test_validation_from_dev_reports_on_the_rest(data_dir):
    task = get_task("superglue/cb")  # 250 training examples: the pool cannot hold both
    s = run_splits(task, data_dir, train_size=250, seed=0, validation_size=20)
    assert s.validation_from == "dev"
    assert (len(s.train), len(s.validation), len(s.reported)) == (250, 20, 36)
    assert not {_key(e) for e in s.validation} & {_key(e) for e in s.reported}


def test_without_validation_the_run_selects_on_what_it_reports(data_dir):
    s = run_splits(get_task("superglue/cb"), data_dir, train_size=100, eval_size=30)
    assert s.validation_from == "reported" and s.validation is s.reported


def test_impossible_splits_name_the_option(data_dir):
    task = get_task("superglue/cb")
    with pytest.raises(ValueError, match="validation_size=56"):
        run_splits(task, data_dir, validation_size=56, validation_from="dev")
    with pytest.raises(ValueError, match=r"train_size=200 .* left after the validation"):
        run_splits(task, data_dir, train_size=200, validation_size=100, validation_from="train")
    with pytest.raises(ValueError, match="validation_from"):
        TrainConfig(task="superglue/cb", output="x", validation_from="test")


def test_train_reports_on_examples_it_did_not_select_on(tmp_path, data_dir, tiny_bert_dir):
    out = tmp_path / "run"
    result = train(
        TrainConfig(
            task="glue/sst2",
            output=str(out),
            model=str(tiny_bert_dir),
            optimizer="baseline",
            train_size=32,
            validation_size=24,
            eval_size=40,
            max_steps=4,
            save_steps=2,
            batch_size=8,
            max_length=32,
            data_dir=str(data_dir),
            progress=False,
        ),
        log=lambda *a: None,
    )
    assert result["validation_from"] == "train"
    assert (result["validation_examples"], result["reported_examples"]) == (24, 40)
    assert set(result["metrics"]) == set(result["validation_metrics"]) == {"accuracy", "loss"}
    logs = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    reported = [r for r in logs if "reported_accuracy" in r]
    assert len(reported) == 1 and "eval_accuracy" not in reported[0]  # apart from the curve
    assert reported[0]["reported_accuracy"] == result["metrics"]["accuracy"]


def test_step_budget():
    from samlm.pipeline.run import _steps

    cfg = TrainConfig(task="glue/sst2", output="x", min_steps=200, epochs=3.0, batch_size=16)
    assert _steps(cfg, 250) == 200  # 3 epochs of 16 steps are fewer
    assert _steps(cfg, 2000) == 3 * 125  # more epochs' worth than the budget
    assert _steps(TrainConfig(task="glue/sst2", output="x", max_steps=7, min_steps=200), 250) == 7
    assert _steps(TrainConfig(task="glue/sst2", output="x"), 250) == -1  # epochs
    with pytest.raises(ValueError, match="min_steps"):
        TrainConfig(task="glue/sst2", output="x", min_steps=-1)


def test_a_run_says_when_the_data_held_fewer_examples_than_asked(data_dir):
    """CB's 250 training examples leave 234 outside a 16-example subset, fewer than 500;
    its 56 dev examples fewer than 100 reported."""
    cb = get_task("superglue/cb")
    splits = run_splits(cb, data_dir, train_size=16, validation_size=500, eval_size=100)
    note = size_note(splits, 500, 100)
    assert len(splits.validation) == 234 and len(splits.reported) == 56
    assert note == (
        "validation sample: 234 examples, not the 500 of --validation-size (the training "
        "pool outside the subset holds no more); reported examples: 56, not the 100 of "
        "--eval-size (all the dev set has left)"
    )
    assert size_note(splits, 200, 56) is None
    from_dev = run_splits(cb, data_dir, train_size=240, validation_size=500)
    assert len(from_dev.validation) == 28 and "(half the dev set holds no more)" in size_note(
        from_dev, 500, None
    )
