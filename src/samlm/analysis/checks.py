"""Argument checks that raise ``ValueError`` naming the argument and its value."""

from __future__ import annotations

import math
from typing import Any


def positive_int(name: str, value: Any, *, minimum: int = 1) -> int:
    """``value`` as an int, when it is an integer ``>= minimum`` (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}={value!r} must be an integer >= {minimum}")
    return value


def positive_float(name: str, value: Any, *, allow_zero: bool = False) -> float:
    """``value`` as a float, when it is finite and ``> 0`` (``>= 0`` with ``allow_zero``)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name}={value!r} must be a number")
    ok = math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise ValueError(
            f"{name}={value!r} must be a finite number {'>=' if allow_zero else '>'} 0"
        )
    return float(value)


def optional_positive_int(name: str, value: Any) -> int | None:
    return None if value is None else positive_int(name, value)
