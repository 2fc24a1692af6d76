"""``samlm report``: the comparison's numbers as a terminal table, markdown and a
self-contained HTML page (plots inlined as PNG data, no scripts, no fonts from elsewhere).

analysis.py reads the results store; tables.py, plots.py and page.py render it."""

from .analysis import Analysis, analyse, step_seconds
from .page import html_page, markdown, write_report
from .plots import DEV_CURVE_LABEL, METHOD_COLOURS, figures, method_colour
from .tables import NO_SHARE, overall_rows, sections, terminal

__all__ = [
    "DEV_CURVE_LABEL",
    "METHOD_COLOURS",
    "NO_SHARE",
    "Analysis",
    "analyse",
    "figures",
    "html_page",
    "markdown",
    "method_colour",
    "overall_rows",
    "sections",
    "step_seconds",
    "terminal",
    "write_report",
]
