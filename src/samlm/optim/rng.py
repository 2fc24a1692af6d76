"""Replay of the global random state, so SAM's two passes draw the same dropout masks."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

import torch


class RNGReplay:
    """Snapshot, at construction, of the CPU generator and the CUDA generators of ``devices``.

    ``with replay.again():`` runs its body from the snapshot (the second pass draws what
    the first drew) and, on exit, puts back the state the first pass left, so the step
    as a whole consumes the random stream once, like a plain step, and later steps never
    reuse its numbers.
    """

    def __init__(self, devices: Iterable[torch.device]) -> None:
        self._cuda = sorted({d.index or 0 for d in devices if d.type == "cuda"})
        self._start = self._get()

    def _get(self) -> tuple:
        return torch.get_rng_state(), [torch.cuda.get_rng_state(i) for i in self._cuda]

    def _set(self, state: tuple) -> None:
        cpu, cuda = state
        torch.set_rng_state(cpu)
        for i, s in zip(self._cuda, cuda, strict=True):
            torch.cuda.set_rng_state(s, i)

    @contextlib.contextmanager
    def again(self) -> Iterator[None]:
        after_first = self._get()
        self._set(self._start)
        try:
            yield
        finally:
            self._set(after_first)
