"""A user's task from a Hugging Face dataset, offline (issue 34): read from the local
cache as ``datasets`` left it after an online load; absent, an error naming it. No network:
the Hub is switched off for these tests."""

from __future__ import annotations

import glob
import json
import os

import pytest

from samlm.cli import main
from samlm.tasks import DataError, get_task, load_split
from samlm.tasks import user as user_module

ROWS = [("good film", "pos"), ("bad film", "neg"), ("fine film", "pos"), ("awful", "neg")] * 3


@pytest.fixture
def offline_cache(tmp_path, monkeypatch):
    """The Hub off, and a ``datasets`` cache holding ``someone/tiny`` (train and test) laid
    out as an online ``load_dataset("someone/tiny")`` leaves it."""
    import datasets.config
    import huggingface_hub.constants
    from datasets.packaged_modules.json.json import Json

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    cache = tmp_path / "hf-datasets"
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(cache))
    files = {}
    for split, rows in (("train", ROWS), ("test", ROWS[:4])):
        files[split] = str(tmp_path / f"{split}.jsonl")
        with open(files[split], "w") as f:
            f.writelines(json.dumps({"text": t, "label": y}) + "\n" for t, y in rows)
    Json(
        cache_dir=str(cache), dataset_name="tiny", hash="0123abcd", data_files=files
    ).download_and_prepare()
    os.rename(cache / "tiny", cache / "someone___tiny")
    [config] = glob.glob(str(cache / "someone___tiny" / "default-*"))
    os.rename(config, cache / "someone___tiny" / "default")
    user_module._CACHE.clear()
    return cache


def test_a_cached_hub_dataset_offline(offline_cache):
    task = get_task("hub:someone/tiny?test_split=test")
    assert task.label_names == ("neg", "pos") and task.keys == ("text",)
    assert len(load_split(task, "train")) == 12 and len(load_split(task, "validation")) == 4
    carved = get_task("hub:someone/tiny?test_size=4")  # no test split named: one is held out
    assert len(load_split(carved, "train")) == 8 and "held out 4" in carved.data_note()


def test_an_absent_hub_dataset_names_it(offline_cache, tmp_path, capsys):
    with pytest.raises(DataError) as info:
        get_task("hub:someone/absent?config=cfg")
    text = str(info.value)
    assert "Hub dataset someone/absent (config cfg), split 'train': is not in the local " in text
    assert "HF_DATASETS_OFFLINE" in text
    out = tmp_path / "out"
    code = main(["train", "--dataset-name", "someone/absent", "--output", str(out)])
    assert code == 2 and "someone/absent" in capsys.readouterr().err and not out.exists()


def test_train_on_a_cached_hub_dataset(offline_cache, tmp_path, tiny_bert_dir):
    out = tmp_path / "out"
    argv = [
        "train",
        "--dataset-name",
        "someone/tiny",
        "--test-split-name",
        "test",
        "--model",
        str(tiny_bert_dir),
        "--max-steps",
        "1",
        "--no-progress",
        "--output",
        str(out),
    ]
    assert main(argv) == 0
    result = json.loads((out / "metrics.json").read_text())
    assert result["task"] == "hub:someone/tiny?test_split=test"
    assert (result["train_examples"], result["reported_examples"]) == (12, 4)
