"""The time a run's optimizer steps take, evaluations and checkpoints left out.

``StepClock`` sums, over this process's steps (``on_step_begin`` to ``on_step_end``: the
micro-batches' forward-backward passes, SAM's ascent and the optimizer step), the wall
time and the process's CPU time (``time.process_time``: every thread of the process).
On a CPU the CPU time is the step's cost as the machine's load leaves it: a process that
is paused (SIGSTOP) or waits for a core while another job runs accrues none of it, where
its wall time grows. On an accelerator the CPU only launches the work, so there the CPU
time is not reported.

Two step times compare only when they were taken on one machine: :func:`machine_id`
names it.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

from transformers import TrainerCallback

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")  # Linux: new on every boot


def machine_id() -> str:
    """This machine as ``host`` or ``host/boot`` (the first 8 characters of Linux's boot
    id): a virtual machine restarted or replaced under the same name, whose CPU time per
    step may differ severalfold, is another machine."""
    host = socket.gethostname()
    try:
        return f"{host}/{BOOT_ID.read_text().strip()[:8]}"
    except OSError:
        return host


class StepClock(TrainerCallback):
    """Wall and CPU seconds of the optimizer steps this process ran (a resumed run: the
    steps since its checkpoint)."""

    def __init__(self) -> None:
        self.steps = 0
        self.wall_s = 0.0
        self.cpu_s = 0.0
        self.on_cpu = False
        self._start: tuple[float, float] | None = None

    def on_step_begin(self, args, state, control, **kwargs):
        self.on_cpu = args.device.type == "cpu"
        self._start = (time.perf_counter(), time.process_time())

    def on_step_end(self, args, state, control, **kwargs):
        if self._start is None:
            return
        wall, cpu = self._start
        self.wall_s += time.perf_counter() - wall
        self.cpu_s += time.process_time() - cpu
        self.steps += 1
        self._start = None

    def cpu_per_step(self) -> float | None:
        """CPU seconds per step; ``None`` on an accelerator or before any step."""
        return self.cpu_s / self.steps if self.on_cpu and self.steps else None
