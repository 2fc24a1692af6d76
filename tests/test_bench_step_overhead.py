"""The statistics, the round-robin timing, the own-work meters and the memory helpers of
bench/timing.py (used by bench/step_overhead.py)."""

from __future__ import annotations

import math
import time
from types import SimpleNamespace

import torch

import samlm
from bench import timing


def test_median_ci_takes_the_order_statistics_of_the_binomial_rule():
    # n = 40: P(B <= 13) = 0.019 <= 0.025 < P(B <= 14), so [x_(14), x_(27)] (1-indexed)
    median, low, high = timing.median_ci([float(v) for v in range(40)])
    assert (median, low, high) == (19.5, 13.0, 26.0)
    assert timing.median_ci([1.0, 2.0, 3.0, 4.0, 5.0]) == (3.0, -math.inf, math.inf)


def test_median_ci_covers_the_true_median_at_least_95_percent_of_the_time():
    gen = torch.Generator().manual_seed(0)
    true_median = math.log(2.0)  # of Exp(1)
    trials = 2000
    samples = torch.empty(trials, 30).exponential_(generator=gen)
    covered = 0
    for row in samples.tolist():
        _, low, high = timing.median_ci(row)
        covered += low <= true_median <= high
    assert covered / trials >= 0.94  # nominal 0.957 for n = 30; 0.94 leaves room for chance


def test_verdict_needs_the_whole_interval_on_one_side():
    assert timing.verdict(0.95, 1.02, 1.03) == "PASS"
    assert timing.verdict(1.04, 1.10, 1.03) == "MISS"
    assert timing.verdict(1.00, 1.06, 1.03) == "UNSURE"


class SlowSGD(torch.optim.SGD):
    def step(self, closure=None):
        time.sleep(0.05)
        return super().step(closure)


def test_engine_time_leaves_out_the_base_step():
    torch.optim.SGD([torch.zeros(1, requires_grad=True)])  # hooks SGD.step: nested in SlowSGD's
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    x, y = torch.randn(8, 4), torch.randn(8, 1)
    opt = samlm.SAM(SlowSGD(model.parameters(), lr=0.1), rho=0.05)
    calls = []
    meter = timing.EngineTime(opt)
    opt.engine.perturb = _spy(opt.engine.perturb, calls)  # the engine's timing runs inside

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss

    t0 = time.perf_counter()
    opt.step(closure)
    wall = time.perf_counter() - t0
    own = meter.take()
    assert calls == ["perturb"]  # the step ran through the engine the meter reads
    assert opt.last_stats.sam_step
    assert 0.0 < own < 0.02 < 0.05 <= wall  # the 50 ms of the base step are not SAM's
    assert meter.take() == 0.0


def _spy(fn, calls):
    def wrapper(*args, **kwargs):
        calls.append(fn.__name__)
        return fn(*args, **kwargs)

    return wrapper


def test_paired_ratios_divide_within_each_round():
    times = {"a": [2.0, 6.0], "b": [1.0, 1.0], "c": [1.0, 2.0]}
    assert timing.paired_ratios(times, ["a"], ["b", "c"]) == [1.0, 2.0]


class _Counter:
    def __init__(self):
        self.total = 0.0

    def take(self):
        total, self.total = self.total, 0.0
        return total


def test_time_variants_runs_each_variant_once_per_round_from_one_seed():
    calls = []  # (variant, first draw of the global RNG)
    meter = _Counter()

    def step(name):
        def run():
            calls.append((name, torch.rand(()).item()))
            if name == "b":
                meter.total += 1.0

        return run

    names = ["a", "b", "c", "d"]
    steps = {name: step(name) for name in names}
    wall, own = timing.time_variants(steps, {"b": meter}, repeats=3, warmup=2, seed=7)
    assert len(calls) == 5 * len(names)
    rounds = [calls[i : i + len(names)] for i in range(0, len(calls), len(names))]
    for k, rnd in zip([0, 1, 1000, 1001, 1002], rounds, strict=True):
        assert [name for name, _ in rnd] == timing.shuffled(names, k, seed=7)
        assert sorted(name for name, _ in rnd) == names
        assert len({draw for _, draw in rnd}) == 1  # every variant from torch.manual_seed
    assert list(wall) == names and all(len(ts) == 3 for ts in wall.values())
    assert own == {"b": [1.0, 1.0, 1.0]}  # taken after each timed call, warm-up discarded


class _Peer:
    """The shape of pytorch_optimizer's SAM: first_step, then second_step runs the base."""

    def __init__(self, params):
        self.base_optimizer = SlowSGD(params, lr=0.1)

    def first_step(self):
        time.sleep(0.01)

    def second_step(self):
        self.base_optimizer.step()

    def step(self):
        self.first_step()
        self.second_step()


def test_own_work_wrapper_leaves_out_the_base_step():
    torch.optim.SGD([torch.zeros(1, requires_grad=True)])  # hooks SGD.step: nested in SlowSGD's
    param = torch.zeros(3, requires_grad=True)
    param.grad = torch.ones(3)
    peer = _Peer([param])
    meter = timing.OwnWork(peer, ("first_step", "second_step"), peer.base_optimizer)
    t0 = time.perf_counter()
    peer.step()
    wall = time.perf_counter() - t0
    own = meter.take()
    assert 0.01 <= own < 0.04 < 0.05 <= wall  # the 10 ms sleep is its own, the 50 ms base not
    assert meter.take() == 0.0


def test_memory_helpers_count_distinct_storages_and_the_sam_backups():
    t = torch.zeros(10)
    assert timing.storage_bytes([t, t[:5], t.view(2, 5)]) == 40  # one storage
    assert timing.storage_bytes([t, torch.ones(2)], exclude=[t[3:]]) == 8
    assert list(timing.tensors_in({"a": [t, (t,)], "b": samlm.SAMStats()})) == [t]

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    x, y = torch.randn(8, 4), torch.randn(8, 1)
    opt = samlm.SAM(torch.optim.SGD(model.parameters(), lr=0.1), rho=0.05)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss

    opt.step(closure)
    backup, total = timing.sam_extra_bytes(opt)
    assert backup == timing.perturbed_bytes(opt) == 5 * 4  # one float32 copy of w and b
    assert backup <= total < backup + 1024  # beyond the backups: a few scalar statistics

    entries = {"step": torch.tensor(1.0), "old_p": torch.zeros(3), "e_w": torch.zeros(2)}
    wrapper = SimpleNamespace(state={t: entries})
    assert timing.extra_state_bytes(wrapper, {"step"}) == (20, ["e_w", "old_p"])


def test_sync_brackets_every_timed_call_so_queued_work_is_timed():
    """On a GPU a call returns before its kernels finish: ``sync`` (here a stand-in that
    finishes 20 ms of queued work) runs before and after each call, inside its time."""
    queued, syncs = [], []

    def sync():
        syncs.append(1)
        while queued:
            time.sleep(queued.pop())

    def step():
        queued.append(0.02)  # returns at once, its work still queued

    wall, _ = timing.time_variants({"a": step, "b": lambda: None}, {}, 3, 1, sync=sync)
    assert len(syncs) == 2 * 2 * (1 + 3)  # before and after each call, warm-up included
    assert min(wall["a"]) >= 0.02 > max(wall["b"])
