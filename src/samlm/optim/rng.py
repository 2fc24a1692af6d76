"""Replay of the global random state, so SAM's two passes draw the same dropout masks."""

from __future__ import annotations

from collections.abc import Iterable

import torch


class RNGReplay:
    """Snapshot of the CPU generator and the CUDA generators of ``devices``.

    ``replay()`` rewinds to the snapshot (the second pass then draws what the first
    drew); ``resume()`` puts back the state the first pass left, so the step as a
    whole consumes the random stream once, like a plain step, and later steps never
    reuse its numbers.
    """

    def __init__(self, devices: Iterable[torch.device]) -> None:
        self._cuda = sorted({d.index or 0 for d in devices if d.type == "cuda"})
        self._start = self._get()
        self._after_first: tuple | None = None

    def _get(self) -> tuple:
        return torch.get_rng_state(), [torch.cuda.get_rng_state(i) for i in self._cuda]

    def _set(self, state: tuple) -> None:
        cpu, cuda = state
        torch.set_rng_state(cpu)
        for i, s in zip(self._cuda, cuda, strict=True):
            torch.cuda.set_rng_state(s, i)

    def replay(self) -> None:
        self._after_first = self._get()
        self._set(self._start)

    def resume(self) -> None:
        if self._after_first is not None:
            self._set(self._after_first)
