"""The ``samlm train`` pipeline: options (``TrainConfig``, each declared once with its
flag's help, choices and rule: :mod:`samlm.options`), models, features and the run
itself. Names load on first use (:mod:`samlm._lazy`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .config import TrainConfig
    from .run import train

_WHERE = {"TrainConfig": ".config", "train": ".run"}
__all__ = ["TrainConfig", "train"]  # the names _WHERE maps (tests/test_lazy.py)
__getattr__, __dir__ = lazy_exports(__name__, globals(), _WHERE)
