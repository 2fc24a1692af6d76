"""Package names that load on first use (PEP 562).

A package whose ``__init__`` imported its heavy modules (the Trainer, scipy) would make
every submodule import pay for them: the command line builds its options from light
submodules, and ``samlm --help`` then takes seconds less.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any


def lazy_exports(
    package: str, namespace: dict[str, Any], where: dict[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``: ``name`` comes from the submodule
    ``where[name]`` (relative, e.g. ``".trainer"``) when first asked for, then stays in
    ``namespace`` (the package's globals)."""

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(where[name], package), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(where))

    return __getattr__, __dir__
