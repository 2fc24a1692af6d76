"""``samlm compare`` / ``samlm report``: SAM against its baseline where data is scarce."""

from .grid import METHODS, PRESETS, Cell, GridSpec
from .report import analyse, write_report
from .runner import compare

__all__ = ["METHODS", "PRESETS", "Cell", "GridSpec", "analyse", "compare", "write_report"]
