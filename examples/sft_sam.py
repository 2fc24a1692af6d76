"""Supervised fine-tuning of a causal LM with SAM in TRL's SFTTrainer, switched by two
changes (the class and ``sam_config``); packing and the completion-only loss are TRL's.

    python examples/sft_sam.py                          # a tiny random GPT-2: offline, seconds
    python examples/sft_sam.py --lora                   # the same with LoRA adapters
    python examples/sft_sam.py --model Qwen/Qwen2.5-0.5B --lora --steps 300 --batch-size 8

The data are prompt/completion pairs (two-digit sums here, built in the script); TRL
puts the loss on the completion tokens only and, with ``packing``, concatenates the
examples into full rows (padding-free: one row per batch, sequence boundaries in
``position_ids``). SAM takes each packed micro-batch as it comes: the ascent gradient
at ``w``, the update's gradient at ``w + e``. With ``--lora`` TRL wraps the model in
PEFT's LoRA and SAM perturbs the adapters only (its backup is their size).

Without ``--model`` the script builds a tiny random GPT-2 and a byte-level BPE tokenizer
trained on the data, so it runs without downloads. With a real model (any causal LM
on the Hub or in a local folder, e.g. ``--model meta-llama/Llama-3.2-1B``) its own
tokenizer is used; for a chat model give ``{"messages": [...]}`` rows instead and TRL's
``assistant_only_loss=True``. Replace ``arithmetic()`` by your data, e.g.
``datasets.load_dataset("trl-lib/...")`` with ``prompt`` and ``completion`` columns.
It prints one dict last: a packed batch's shape and loss tokens, the run's steps and SAM
steps, the first and last logged losses.
"""

from __future__ import annotations

import argparse
import random

import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2Config, GPT2LMHeadModel
from trl import SFTConfig

from samlm.training import SAMConfig
from samlm.training.sft import SAMSFTTrainer  # SAM: instead of trl.SFTTrainer

END = "<|endoftext|>"


def arithmetic(n: int, seed: int = 0) -> Dataset:
    """``n`` prompt/completion pairs: "12 + 7 =" -> " 19"."""
    rng = random.Random(seed)
    pairs = [(rng.randrange(50), rng.randrange(50)) for _ in range(n)]
    prompts = [f"{a} + {b} =" for a, b in pairs]
    return Dataset.from_dict({"prompt": prompts, "completion": [f" {a + b}" for a, b in pairs]})


def tiny_gpt2(data: Dataset):
    """A random 2-layer GPT-2 and a byte-level BPE tokenizer trained on ``data``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(
        [p + c for p, c in zip(data["prompt"], data["completion"], strict=True)],
        trainers.BpeTrainer(
            vocab_size=300,
            special_tokens=[END],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token=END, eos_token=END, unk_token=END, pad_token=END
    )
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=64,
        n_layer=2,
        n_head=4,
        n_positions=256,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return GPT2LMHeadModel(config), tokenizer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", help="a causal LM (Hub name or folder); default: tiny random")
    parser.add_argument("--lora", action="store_true", help="train LoRA adapters (needs peft)")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rho", type=float, default=0.05)
    parser.add_argument("--output", default="runs/example-sft")
    args = parser.parse_args()

    data = arithmetic(512)
    if args.model:
        tokenizer = AutoTokenizer.from_pretrained(args.model)
        model = AutoModelForCausalLM.from_pretrained(args.model, torch_dtype="auto")
    else:
        model, tokenizer = tiny_gpt2(data)
    peft_config = None
    if args.lora:
        from peft import LoraConfig

        # PEFT's default target modules for the model type (GPT-2: c_attn; Llama: q, v)
        peft_config = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, task_type="CAUSAL_LM")

    sft_args = SFTConfig(
        output_dir=args.output,
        max_steps=args.steps,
        per_device_train_batch_size=args.batch_size,
        learning_rate=2e-4 if args.model else 3e-3,
        lr_scheduler_type="constant",
        packing=True,  # examples concatenated into full rows, padding-free
        completion_only_loss=True,  # the loss on the completions (TRL's default for pairs)
        max_length=128,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
        seed=0,
        bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported(),  # TRL's default: True
        use_cpu=not torch.cuda.is_available(),
    )
    trainer = SAMSFTTrainer(
        model=model,
        args=sft_args,
        train_dataset=data,
        processing_class=tokenizer,
        peft_config=peft_config,
        sam_config=SAMConfig(rho=args.rho),  # SAM: the one new argument
    )
    trainer.train()
    losses = [r["loss"] for r in trainer.state.log_history if "loss" in r]
    sam_logs = [r for r in trainer.state.log_history if "sam_loss_perturbed" in r]
    batch = next(iter(trainer.get_train_dataloader()))  # what each step saw
    print(f"SAM's extra memory (its backup of w): {trainer.sam_optimizer.backup_bytes()} bytes")
    print(
        {
            "packed_batch_shape": tuple(batch["input_ids"].shape),  # (1, the rows' tokens)
            "completion_tokens": int((batch["labels"] != -100).sum()),  # those in the loss
            "steps": trainer.state.global_step,
            "sam_steps": trainer.sam_optimizer.sam_steps,
            "first_loss": losses[0],
            "last_loss": losses[-1],
            "last_loss_at_w_plus_e": sam_logs[-1]["sam_loss_perturbed"],
            "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        }
    )


if __name__ == "__main__":
    main()
