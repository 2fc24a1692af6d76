"""StepClock: wall and CPU time of the optimizer steps, CPU time reported on a CPU only."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from samlm.training.clock import StepClock


def _step(clock, device, work):
    args = SimpleNamespace(device=SimpleNamespace(type=device))
    clock.on_step_begin(args, None, None)
    work()
    clock.on_step_end(args, None, None)


def _busy(seconds):
    """Work for ``seconds`` of this process's CPU time (however loaded the machine)."""
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_a_paused_step_costs_wall_time_but_no_cpu_time():
    clock = StepClock()
    assert clock.cpu_per_step() is None  # no step yet
    _step(clock, "cpu", lambda: _busy(0.2))
    _step(clock, "cpu", lambda: time.sleep(0.3))  # as a SIGSTOPped process: no CPU
    assert clock.steps == 2
    # the sleep's 0.3 s, and about the busy step's 0.2 (wall and CPU clocks differ in
    # resolution: 0.4995 s was seen)
    assert clock.wall_s >= 0.3 + 0.9 * 0.2
    assert 0.2 <= clock.cpu_s < 0.25  # the busy step's, not the sleeping one's
    assert clock.cpu_per_step() == pytest.approx(clock.cpu_s / 2)
    clock.on_step_end(SimpleNamespace(device=SimpleNamespace(type="cpu")), None, None)
    assert clock.steps == 2  # an end without a begin counts nothing


def test_on_an_accelerator_no_cpu_time_is_reported():
    clock = StepClock()
    _step(clock, "cuda", lambda: _busy(0.01))
    assert clock.steps == 1 and clock.wall_s > 0 and clock.cpu_per_step() is None


def test_the_machine_is_the_host_and_its_boot(tmp_path, monkeypatch):
    from samlm.training import clock

    monkeypatch.setattr(clock.socket, "gethostname", lambda: "vm")
    (tmp_path / "boot_id").write_text("b397aeb6-0d2c-4c1e-9a8f-123456789abc\n")
    monkeypatch.setattr(clock, "BOOT_ID", tmp_path / "boot_id")
    assert clock.machine_id() == "vm/b397aeb6"
    monkeypatch.setattr(clock, "BOOT_ID", tmp_path / "absent")  # not Linux: the host alone
    assert clock.machine_id() == "vm"
