"""`samlm train --optimizer tasksam` on a mixture: stratified batches, each task's two
passes on its own slice, exact resume; refused on one task, naming the option."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import TrainerCallback

from samlm.cli import main
from samlm.pipeline import TrainConfig, train

OPTIONS = dict(
    task="glue/sst2,superglue/cb,superglue/rte",
    model=None,  # the tiny BERT's folder
    optimizer="tasksam",
    mixing="equal",
    train_size=16,
    validation_size=8,
    eval_size=8,
    max_steps=6,
    batch_size=6,
    save_steps=2,
    logging_steps=1,
    progress=False,
)


class Forwards(TrainerCallback):
    """``(step, task_ids, input_ids)`` of every training forward; kills at ``kill_at``."""

    def __init__(self, kill_at: int | None = None) -> None:
        self.seen: list[tuple[int, list[int], torch.Tensor]] = []
        self.kill_at = kill_at

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        def hook(module, inputs, kw):
            if module.training:
                ids = kw["task_ids"].tolist()
                self.seen.append((state.global_step, ids, kw["input_ids"].clone()))

        model.register_forward_pre_hook(hook, with_kwargs=True)

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.kill_at:
            raise KeyboardInterrupt("killed")


def test_tasksam_trains_task_by_task_and_resumes_exactly(tmp_path, data_dir, tiny_bert_dir):
    """Three tasks at equal rates, batches of 6: every step is two forwards of each task's
    2 examples (ascent, then at w + e_i), task after task; killed after step 3 and
    resumed from checkpoint-2, the run sees the same batches and ends with the same
    metrics and logged L(w + e)."""
    options = {**OPTIONS, "model": str(tiny_bert_dir), "data_dir": str(data_dir)}
    whole = Forwards()
    full = train(TrainConfig(output=str(tmp_path / "full"), **options), callbacks=[whole])
    assert full["batch_counts"] == {"glue/sst2": 2, "superglue/cb": 2, "superglue/rte": 2}
    per_step = [[t, t] for t in (0, 0, 1, 1, 2, 2)]
    assert [ids for _, ids, _ in whole.seen] == per_step * 6
    killed = TrainConfig(output=str(tmp_path / "killed"), **options)
    first = Forwards(kill_at=3)
    with pytest.raises(KeyboardInterrupt):
        train(killed, callbacks=[first])
    second = Forwards()
    resumed = train(killed, resume=True, callbacks=[second])
    seen = [s for s in first.seen if s[0] < 2] + second.seen
    assert len(seen) == len(whole.seen) == 36
    for (step_a, _, a), (step_b, _, b) in zip(seen, whole.seen, strict=True):
        assert step_a == step_b and torch.equal(a, b)
    assert resumed["metrics"] == full["metrics"]

    def losses(run):
        rows = [
            json.loads(line) for line in (tmp_path / run / "log.jsonl").read_text().splitlines()
        ]
        return {r["step"]: r["sam_loss_perturbed"] for r in rows if "sam_loss_perturbed" in r}

    assert losses("killed") == losses("full") and len(losses("full")) == 6


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--task", "glue/sst2"], "--optimizer tasksam perturbs each task of a mixture"),
        (["--task", "glue/sst2,superglue/cb", "--alpha", "0.3"], "--alpha 0.3 has an effect"),
        (
            ["--task", "glue/sst2,superglue/cb", "--m", "2"],
            "variant='tasksam' with m-sharpness",
        ),
    ],
)
def test_tasksam_refuses_one_task_and_foreign_options(tmp_path, capsys, extra, message):
    out = tmp_path / "out"
    code = main(["train", "--optimizer", "tasksam", *extra, "--output", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and message in err, err
    assert not out.exists()


def test_a_batch_smaller_than_the_mixture_is_refused(tmp_path, capsys, data_dir, tiny_bert_dir):
    out = tmp_path / "out"
    argv = ["train", "--optimizer", "tasksam", "--task", OPTIONS["task"], "--batch-size", "2"]
    argv += ["--model", str(tiny_bert_dir), "--data-dir", str(data_dir), "--output", str(out)]
    assert main([*argv, "--no-progress"]) == 2
    assert "a batch of 2 examples cannot hold one of each of 3 tasks" in capsys.readouterr().err
    assert not out.exists()


def test_a_named_mixture_of_one_found_task_is_refused(tmp_path, capsys, data_dir, tiny_bert_dir):
    """--mixture glue where only SST-2's data is found: one task, refused by name."""
    folder = tmp_path / "data" / "glue"
    folder.mkdir(parents=True)
    (folder / "SST-2").symlink_to(data_dir / "glue" / "SST-2")
    out = tmp_path / "out"
    argv = ["train", "--optimizer", "tasksam", "--mixture", "glue", "--model", str(tiny_bert_dir)]
    code = main([*argv, "--data-dir", str(tmp_path / "data"), "--output", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "and glue/sst2 is one task: on one task it is --optimizer sam" in err
    assert not out.exists()
