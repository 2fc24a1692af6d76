"""Argument checks of the whole library: each raises ``ValueError`` naming the argument,
its value and the rule (``"rho=-1 (param group 2) must be a finite number >= 0"``).

Used by :class:`samlm.SAM`, :func:`samlm.sam_step`, the rho schedules, the variants,
``SAMConfig``, the sharpness diagnostics and :mod:`samlm.options` (the type and choices
of every declared option: ``TrainConfig``, ``GridSpec``, ``MeasureOptions``), so one
option is checked by one rule everywhere.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

ACCUMULATION_MODES = ("global", "per_microbatch")


def positive_int(name: str, value: Any, *, minimum: int = 1, where: str = "") -> int:
    """``value`` as an int, when it is an integer ``>= minimum`` (bools refused)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or isinstance(value, float)
        or value < minimum
    ):
        raise ValueError(f"{name}={value!r}{where} must be an integer >= {minimum}")
    return int(value)


def optional_positive_int(name: str, value: Any) -> int | None:
    return None if value is None else positive_int(name, value)


def positive_float(name: str, value: Any, *, allow_zero: bool = False, where: str = "") -> float:
    """``value`` as a float, when it is finite and ``> 0`` (``>= 0`` with ``allow_zero``)."""
    ok = (
        not isinstance(value, bool)
        and isinstance(value, numbers.Real)
        and math.isfinite(value)
        and (value >= 0 if allow_zero else value > 0)
    )
    if not ok:
        rule = ">=" if allow_zero else ">"
        raise ValueError(f"{name}={value!r}{where} must be a finite number {rule} 0")
    return float(value)


def non_negative(name: str, value: Any, where: str = "") -> float:
    """``value`` as a float, when it is finite and ``>= 0``."""
    return positive_float(name, value, allow_zero=True, where=where)


def finite(name: str, value: Any) -> float:
    """``value`` as a float, when it is a finite number."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name}={value!r} must be a finite number")
    return float(value)


def warmup_steps(name: str, steps: Any, rho_schedule: str) -> None:
    """A rho warm-up's length: an integer >= 1 with ``rho_schedule='warmup'``."""
    if rho_schedule == "warmup" and not (isinstance(steps, int) and steps >= 1):
        raise ValueError(f"{name}={steps} must be >= 1 with rho_schedule='warmup'")


def in_interval(
    name: str,
    value: Any,
    low: float,
    high: float,
    *,
    open_low: bool = False,
    open_high: bool = False,
) -> float:
    """``value`` as a float in ``[low, high]``; ``open_low`` / ``open_high`` leave out
    that end."""
    real = not isinstance(value, bool) and isinstance(value, numbers.Real)
    above = real and (low < value if open_low else low <= value)
    if not (above and (value < high if open_high else value <= high)):
        bracket = ("(" if open_low else "[", ")" if open_high else "]")
        raise ValueError(f"{name}={value!r} must be in {bracket[0]}{low:g}, {high:g}{bracket[1]}")
    return float(value)


_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def of_type(name: str, value: Any, kind: type, *, none_ok: bool = False) -> Any:
    """``value`` when it is of ``kind``: bool, int (not a bool), float (an int accepted),
    str, list or dict; None where ``none_ok``. (A YAML file can say ``bf16: "no"``.)"""
    if value is None and none_ok:
        return value
    if kind is float:
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    else:
        ok = isinstance(value, kind)
    if not ok:
        raise ValueError(f"{name}={value!r} must be {_TYPE_WORDS.get(kind, kind.__name__)}")
    return value


def one_of(name: str, value: Any, choices: Sequence[Any], *, none_ok: bool = False) -> Any:
    if not (value in choices or (none_ok and value is None)):
        allowed = ("None or " if none_ok else "") + "one of " + ", ".join(map(str, choices))
        raise ValueError(f"{name}={value!r} must be {allowed}")
    return value


def step_options(
    ascent_fraction: float,
    m: int | None,
    accumulation_steps: int,
    accumulation: str,
    m_examples: int | None = None,
) -> None:
    """The options of one step (:func:`samlm.sam_step`, ``SAMConfig``)."""
    in_interval("ascent_fraction", ascent_fraction, 0.0, 1.0, open_low=True)
    if m is not None:
        positive_int("m", m)
    optional_positive_int("m_examples", m_examples)
    if m not in (None, 1) and m_examples is not None:
        raise ValueError(
            f"m={m} and m_examples={m_examples}: give one (m counts chunks per micro-batch, "
            "m_examples is Foret et al.'s m, the examples per chunk)"
        )
    positive_int("accumulation_steps", accumulation_steps)
    one_of("accumulation", accumulation, ACCUMULATION_MODES)
    chunked = (m is not None and m > 1) or m_examples is not None
    if chunked and accumulation_steps > 1 and accumulation == "global":
        option = f"m={m}" if m_examples is None else f"m_examples={m_examples}"
        raise ValueError(
            f"{option} with accumulation='global' and accumulation_steps={accumulation_steps}: "
            "m-sharpness perturbs chunks separately; use accumulation='per_microbatch'"
        )
