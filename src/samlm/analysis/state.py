"""Leave a model exactly as it was: weights (bitwise), buffers, modes and the global RNG."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor, nn


class Snapshot:
    """Copies of a model's parameters and buffers, its modules' train/eval flags and the
    global RNG states (CPU, and CUDA when initialised)."""

    def __init__(self, model: nn.Module) -> None:
        self.tensors = [t for t in (*model.parameters(), *model.buffers())]
        with torch.no_grad():
            self.copies = [t.detach().clone() for t in self.tensors]
        self._by_id = {id(t): c for t, c in zip(self.tensors, self.copies, strict=True)}
        self.modes = [(m, m.training) for m in model.modules()]
        self.cpu_rng = torch.get_rng_state()
        self.cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None

    def original(self, tensor: Tensor) -> Tensor:
        """The saved copy of ``tensor`` (a parameter or buffer of the model)."""
        return self._by_id[id(tensor)]

    def restore(self) -> None:
        """Copy every tensor back (bitwise), reset every module's flag and the RNG."""
        with torch.no_grad():
            for t, c in zip(self.tensors, self.copies, strict=True):
                t.copy_(c)
        for module, training in self.modes:
            module.training = training
        torch.set_rng_state(self.cpu_rng)
        if self.cuda_rng is not None:
            torch.cuda.set_rng_state_all(self.cuda_rng)


@contextmanager
def preserved(model: nn.Module, *, train: bool = False, seed: int = 0) -> Iterator[Snapshot]:
    """Run a measure on ``model`` in eval mode (``train=True``: train mode, dropout drawn
    from the global RNG seeded with ``seed``); on exit, even on an error, the weights,
    buffers, modes and global RNG states are restored exactly."""
    snap = Snapshot(model)
    try:
        model.train(train)
        if train:
            torch.default_generator.manual_seed(seed)
            if any(t.is_cuda for t in snap.tensors):
                torch.cuda.manual_seed_all(seed)
        yield snap
    finally:
        snap.restore()


def set_weights(
    params: Sequence[Tensor], base: Sequence[Tensor], *terms: tuple[float, Sequence[Tensor]]
) -> None:
    """``w <- base + sum_j c_j d_j`` for the ``(c_j, d_j)`` in ``terms``; a zero
    coefficient adds nothing, so ``w <- base`` is an exact copy."""
    with torch.no_grad():
        for i, p in enumerate(params):
            active = [(c, d[i]) for c, d in terms if c != 0]
            if not active:
                p.copy_(base[i])
                continue
            value = base[i].to(torch.float32)
            for c, d in active:
                value = value.add(d.to(device=p.device, dtype=torch.float32), alpha=c)
            p.copy_(value)
