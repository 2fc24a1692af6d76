"""`samlm train --peft lora --flat-lora / --bar` end to end: runs that finish, resume
bitwise, and bad options that exit 2 naming the option."""

from __future__ import annotations

import json

import pytest
import torch

from samlm.cli import main
from samlm.pipeline import TrainConfig, train
from tests.pipeline.test_train import Kill

pytest.importorskip("peft", reason="needs the peft extra")


def _adapter(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "best" / "adapter_model.safetensors"))


@pytest.mark.parametrize(
    "options",
    [
        {"flat_lora": True, "flat_lora_sigma": 0.5, "optimizer": "sam"},  # combined with SAM
        {"bar": True, "bar_alpha": 2.0, "optimizer": "baseline"},  # nBAR: gradient norms
        {"bar": True, "bar_alpha": 2.0, "bar_variant": "obar", "optimizer": "baseline"},
    ],
    ids=["flat_lora+sam", "nbar", "obar"],
)
def test_flat_lora_and_bar_runs_resume_bitwise(tmp_path, data_dir, tiny_bert_dir, options):
    common = dict(
        task="glue/sst2",
        model=str(tiny_bert_dir),
        peft="lora",
        lora_targets="query,value",
        train_size=16,
        eval_size=16,
        epochs=2,
        batch_size=4,
        save_steps=2,
        data_dir=str(data_dir),
        learning_rate=1e-2,
        **options,
    )
    quiet = dict(log=lambda *a: None)
    full = train(TrainConfig(output=str(tmp_path / "full"), **common), **quiet)
    killed = TrainConfig(output=str(tmp_path / "killed"), **common)
    with pytest.raises(KeyboardInterrupt):
        train(killed, callbacks=[Kill()], **quiet)
    resumed = train(killed, resume=True, **quiet)
    assert resumed["resumed_from"] == "checkpoint-2"
    assert resumed["metrics"] == full["metrics"] and full["global_steps"] == 8
    a, b = _adapter(tmp_path / "full"), _adapter(tmp_path / "killed")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # bitwise
    saved = json.loads((tmp_path / "full" / "metrics.json").read_text())
    assert saved["method"] == options["optimizer"]
    off = {k: v for k, v in common.items() if not k.startswith(("flat_lora_", "bar_"))}
    off.update(flat_lora=False, bar=False)
    train(TrainConfig(output=str(tmp_path / "off"), **off), **quiet)
    c = _adapter(tmp_path / "off")
    assert any(not torch.equal(a[k], c[k]) for k in a)  # the option changed the training


def test_bad_flat_lora_and_bar_options_exit_2_naming_the_option(tmp_path, data_dir, capsys):
    out = tmp_path / "run"
    base = ["train", "--data-dir", str(data_dir), "--output", str(out), "--task", "glue/sst2"]
    cases = [
        (["--flat-lora"], "--flat-lora needs --peft lora"),
        (["--bar", "--optimizer", "baseline"], "--bar needs --peft lora"),
        (["--peft", "lora", "--flat-lora", "--flat-lora-sigma", "-0.1"], "flat_lora_sigma=-0.1"),
        (["--peft", "lora", "--flat-lora-sigma", "0.1"], "only with --flat-lora"),
        (["--peft", "lora", "--bar"], "--bar with --optimizer sam"),
        (
            ["--peft", "lora", "--bar", "--optimizer", "baseline", "--bar-alpha", "-1"],
            "bar_alpha=-1",
        ),
        (
            ["--peft", "lora", "--bar-schedule", "cosine"],
            "--bar-schedule cosine has an effect only with --bar",
        ),
    ]
    for extra, message in cases:
        assert main([*base, *extra]) == 2, extra
        assert message in capsys.readouterr().err, extra
    assert not out.exists()  # nothing written
