"""Any Hugging Face model a user has, on a user's task (issue 34): tiny random BERT,
RoBERTa, DeBERTa-v2 and ELECTRA saved to folders as a user's checkpoint is, on sentence
pairs; a tiny T5 (text2text) and GPT-2 (causal) on the label names as targets."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import (
    AutoModelForSequenceClassification,
    BertConfig,
    DebertaV2Config,
    ElectraConfig,
    RobertaConfig,
)

from samlm.cli import main

from ..tasks.test_user_task import ROWS, write

SMALL = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
CONFIGS = {
    "bert": lambda v: BertConfig(vocab_size=v, max_position_embeddings=64, **SMALL),
    # MiniLM's WordPiece gives the second text of a pair token type 1: two types
    "roberta": lambda v: RobertaConfig(
        vocab_size=v, max_position_embeddings=66, type_vocab_size=2, pad_token_id=0, **SMALL
    ),
    "deberta-v2": lambda v: DebertaV2Config(
        vocab_size=v, max_position_embeddings=64, type_vocab_size=2, **SMALL
    ),
    "electra": lambda v: ElectraConfig(
        vocab_size=v, embedding_size=16, max_position_embeddings=64, **SMALL
    ),
}


pytestmark = pytest.mark.usefixtures("fresh_user_tasks")


def _train(tmp_path, model, task: str) -> dict:
    out = tmp_path / "out"
    argv = ["train", "--task", task, "--model", str(model), "--max-steps", "2",
            "--batch-size", "4", "--max-length", "32", "--max-target-length", "4",
            "--no-progress", "--output", str(out)]  # fmt: skip
    assert main(argv) == 0
    return json.loads((out / "metrics.json").read_text())


@pytest.mark.parametrize("kind", list(CONFIGS))
def test_tiny_encoders_train_on_sentence_pairs(tmp_path, tokenizer, kind):
    folder = tmp_path / kind
    torch.manual_seed(0)
    AutoModelForSequenceClassification.from_config(
        CONFIGS[kind](tokenizer.vocab_size)
    ).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    rows = [{"sentence1": t, "sentence2": t[::-1], "label": y} for t, y in ROWS * 2]
    path = write(tmp_path / "pairs.csv", rows)
    result = _train(tmp_path, folder, f"{path}?test_size=4")
    assert result["modelling"] == "encoder" and result["reported_examples"] == 4
    saved = json.loads((tmp_path / "out" / "best" / "config.json").read_text())
    assert saved["model_type"] == kind and saved["id2label"] == {"0": "negative", "1": "positive"}


@pytest.mark.parametrize("model", ["tiny_t5_dir", "tiny_gpt2_dir"])
def test_text_models_train_on_label_names(tmp_path, request, model):
    path = write(tmp_path / "reviews.jsonl", [{"text": t, "label": y} for t, y in ROWS * 2])
    result = _train(tmp_path, request.getfixturevalue(model), f"{path}?test_size=4")
    assert result["modelling"] == ("text2text" if model == "tiny_t5_dir" else "causal")
    assert set(result["metrics"]) >= {"accuracy", "f1_macro"}


@pytest.mark.parametrize("model", ["tiny_t5_dir", "tiny_gpt2_dir"])
def test_text_to_text_with_a_target_column(tmp_path, request, model, capsys):
    rows = [{"question": f"what is {t}", "answer": y} for t, y in ROWS * 2]
    path = write(tmp_path / "qa.csv", rows)
    result = _train(tmp_path, request.getfixturevalue(model), f"{path}?target=answer&test_size=4")
    assert result["main_metric"] == "exact_match"
    assert set(result["metrics"]) >= {"exact_match", "f1"} and result["reported_examples"] == 4


def test_a_text_to_text_task_refuses_an_encoder(tmp_path, tiny_bert_dir, capsys):
    path = write(tmp_path / "qa.csv", [{"question": t, "answer": y} for t, y in ROWS])
    out = tmp_path / "out"
    argv = ["train", "--train-file", str(path), "--target-column", "answer", "--model",
            str(tiny_bert_dir), "--output", str(out)]  # fmt: skip
    assert main(argv) == 2
    assert "cannot be modelled as encoder" in capsys.readouterr().err and not out.exists()
