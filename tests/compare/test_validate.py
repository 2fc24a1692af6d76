"""check_grid: every problem of a grid in one message, before any cell starts."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import BertConfig

from samlm.compare import GridSpec
from samlm.compare.validate import check_grid, grid_problems

SST2_HEADER = "sentence\tlabel\n"
SST2_ROWS = [
    "a gorgeous , witty , seductive movie .\t1\n",
    "it 's a mess .\t0\n",
    "a charming , funny film .\t1\n",
    "the plot is nowhere .\t0\n",
]


@pytest.fixture(autouse=True)
def _no_env_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SAMLM_DATA_DIR", raising=False)


@pytest.fixture
def encoder(tmp_path) -> str:
    """A model folder with only a config: enough for resolve_model, nothing to download."""
    folder = tmp_path / "encoder"
    BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2).save_pretrained(folder)
    return str(folder)


def _sst2(root: Path, train: str, dev: str | None = None) -> Path:
    folder = root / "glue" / "SST-2"
    folder.mkdir(parents=True)
    (folder / "train.tsv").write_bytes(train.encode("utf-8", "surrogateescape"))
    (folder / "dev.tsv").write_text(dev if dev is not None else SST2_HEADER + "".join(SST2_ROWS))
    return folder / "train.tsv"


def _spec(**kw) -> GridSpec:
    kw.setdefault("tasks", ["glue/sst2"])
    kw.setdefault("sizes", [2])
    return GridSpec(methods=["baseline", "sam"], seeds=1, **kw)


def _error(spec: GridSpec, **kw) -> str:
    with pytest.raises(ValueError) as info:
        check_grid(spec, **kw)
    return str(info.value)


def test_unknown_task(encoder):
    text = _error(_spec(tasks=["glue/nosuch"], model=encoder))
    assert "unknown task 'glue/nosuch'" in text
    assert "known tasks: superglue/boolq" in text and "glue/sst2" in text
    assert text.startswith("the grid cannot run (1 problem;")


def test_malformed_train_row_names_file_and_line(tmp_path, encoder):
    path = _sst2(tmp_path, SST2_HEADER + SST2_ROWS[0] + "no label here\n" + SST2_ROWS[1])
    text = _error(_spec(model=encoder, data_dir=str(tmp_path)))
    assert f"{path}, line 3: expected 2 tab-separated columns" in text


def test_invalid_utf8_names_file_and_line(tmp_path, encoder):
    bad = "caf\udce9 au lait\t1\n"  # a lone latin-1 byte 0xE9
    path = _sst2(tmp_path, SST2_HEADER + SST2_ROWS[0] + SST2_ROWS[1] + bad)
    text = _error(_spec(model=encoder, data_dir=str(tmp_path)))
    assert f"{path}, line 4: not valid UTF-8" in text


def test_size_larger_than_the_training_split(tmp_path, encoder):
    _sst2(tmp_path, SST2_HEADER + "".join(SST2_ROWS))
    text = _error(_spec(sizes=[2, 0, 50], model=encoder, data_dir=str(tmp_path)))
    assert "glue/sst2: size 50 is larger than its training split (4 examples" in text
    assert "size 2 is" not in text and "size 0 is" not in text
    assert "(1 problem;" in text


def test_validation_sample_that_does_not_fit(tmp_path, encoder):
    _sst2(tmp_path, SST2_HEADER + "".join(SST2_ROWS), dev="sentence\tlabel\nfine\t1\n")
    spec = _spec(sizes=[1, 2, 0], model=encoder, data_dir=str(tmp_path), validation_size=3)
    # size 1 and 2 leave 3 and 2 training examples (fewer than 3 but all of min(3, 100)
    # would be needed: 2 is short of 3), so 2 and all draw from a 1-example dev split
    text = _error(spec)
    assert "(1 problem;" in text
    assert "glue/sst2: no room for a validation sample of validation_size 3" in text
    assert "cells of size 2, all" in text


def test_every_problem_in_one_message(tmp_path, encoder):
    _sst2(tmp_path, SST2_HEADER + "".join(SST2_ROWS))
    wq = tmp_path / "webquestions"
    wq.mkdir()
    for name in ("trainmodel.json", "val.json"):
        (wq / name).write_text('[{"qId": "wqr1", "answers": ["Paris"], "qText": "where?"}]')
    spec = _spec(
        tasks=["glue/nosuch", "glue/sst2", "qa/webquestions"],
        sizes=[2, 10],
        model=encoder,
        data_dir=str(tmp_path),
    )
    problems = grid_problems(spec)
    assert len(problems) == 5, problems
    text = _error(spec)
    assert "(5 problems;" in text
    assert "qa/webquestions: size 10 is larger" in text
    assert "unknown task 'glue/nosuch'" in text
    assert "glue/sst2: size 10 is larger than its training split (4 examples" in text
    assert "qa/webquestions: task qa/webquestions cannot be modelled as encoder" in text
    assert "qa/webquestions: size 2 is larger than its training split (1 example;" in text


def test_missing_files_name_the_paths_looked_at(tmp_path, encoder):
    folder = _sst2(tmp_path, SST2_HEADER + "".join(SST2_ROWS)).parent
    (folder / "dev.tsv").unlink()
    text = _error(_spec(model=encoder, data_dir=str(tmp_path)), hub=False)  # offline here
    assert "glue/sst2 split 'validation': no data for glue/sst2" in text
    assert f"{folder / 'dev.tsv'} (missing)" in text


def test_data_folder_that_does_not_exist(tmp_path, encoder):
    text = _error(_spec(model=encoder, data_dir=str(tmp_path / "nowhere")))
    assert f"data folder {tmp_path / 'nowhere'} (--data-dir) does not exist" in text


def test_unresolvable_model_is_reported_once(tmp_path, data_dir):
    model = str(tmp_path / "no-model")
    text = _error(_spec(tasks=["glue/cola", "superglue/cb"], model=model, data_dir=str(data_dir)))
    assert text.count(f"model {model!r}: model folder {model!r} does not exist") == 1
    assert "(1 problem;" in text


def test_a_good_grid_with_the_real_data_passes(data_dir, encoder):
    spec = _spec(
        tasks=["glue/sst2", "superglue/cb", "superglue/boolq"],
        sizes=[250, 0],
        model=encoder,
        data_dir=str(data_dir),
    )
    assert grid_problems(spec) == []
    assert check_grid(spec) is None
