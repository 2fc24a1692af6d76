"""Slicing a batch along its first dimension: a tensor, a mapping (a dict or a
``BatchEncoding``) or a tuple/list of tensors; other values pass through unchanged."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from torch import Tensor


def _tensors(batch: Any) -> list[Tensor]:
    if isinstance(batch, Tensor):
        return [batch]
    if isinstance(batch, Mapping):
        return [v for v in batch.values() if isinstance(v, Tensor)]
    if isinstance(batch, list | tuple):
        return [v for v in batch if isinstance(v, Tensor)]
    raise TypeError(
        "a batch must be a tensor, a mapping or a tuple/list of tensors, "
        f"not {type(batch).__name__}"
    )


def batch_size(batch: Any) -> int:
    """The common first-dimension size of the batch's tensors."""
    sizes = {t.shape[0] for t in _tensors(batch) if t.dim() > 0}
    if len(sizes) != 1:
        raise ValueError(
            f"the batch's tensors must share one first-dimension size, got {sorted(sizes)} "
            "(a packed, padding-free batch is one row of concatenated sequences: a partial "
            "ascent and m-sharpness need one row per example)"
        )
    return sizes.pop()


def slice_batch(batch: Any, start: int, stop: int) -> Any:
    """``batch[start:stop]`` for every tensor of the batch (a view, no copy)."""
    if isinstance(batch, Tensor):
        return batch[start:stop]
    if isinstance(batch, Mapping):
        return type(batch)(
            {k: slice_batch(v, start, stop) if _sliceable(v) else v for k, v in batch.items()}
        )
    items = [slice_batch(v, start, stop) if _sliceable(v) else v for v in batch]
    return type(batch)(*items) if hasattr(batch, "_fields") else type(batch)(items)


def _sliceable(value: Any) -> bool:
    return isinstance(value, Tensor) and value.dim() > 0


def split_batch(batch: Any, chunks: int) -> list[tuple[Any, int]]:
    """``chunks`` contiguous slices of near-equal size, each with its size."""
    n = batch_size(batch)
    if chunks > n:
        raise ValueError(f"cannot split a batch of {n} examples into {chunks} chunks")
    base, extra = divmod(n, chunks)
    out, start = [], 0
    for i in range(chunks):
        size = base + (1 if i < extra else 0)
        out.append((slice_batch(batch, start, start + size), size))
        start += size
    return out


def head(batch: Any, fraction: float) -> tuple[Any, int]:
    """The first ``ceil(fraction * n)`` examples of the batch, with their count."""
    n = batch_size(batch)
    size = max(1, math.ceil(fraction * n - 1e-9))
    return (batch if size == n else slice_batch(batch, 0, size)), size
