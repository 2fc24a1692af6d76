"""``samlm compare`` / ``samlm report``: SAM against its baseline where data is scarce.
The grid's options (``GridSpec``) and the backend's (``BackendOptions``) are declared
once, as ``samlm compare``'s flags (:mod:`samlm.options`). Names load on first use
(:mod:`samlm._lazy`): ``samlm.compare.grid`` imports without the report's statistics."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .grid import METHODS, PRESETS, Cell, GridSpec
    from .report import analyse, write_report
    from .runner import compare

_WHERE = {
    "METHODS": ".grid",
    "PRESETS": ".grid",
    "Cell": ".grid",
    "GridSpec": ".grid",
    "analyse": ".report",
    "write_report": ".report",
    "compare": ".runner",
}
__all__ = [
    "METHODS",
    "PRESETS",
    "Cell",
    "GridSpec",
    "analyse",
    "compare",
    "write_report",
]  # the names _WHERE maps (tests/test_lazy.py)
__getattr__, __dir__ = lazy_exports(__name__, globals(), _WHERE)
