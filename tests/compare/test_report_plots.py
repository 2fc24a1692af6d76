"""The report's plots: each stratum's gain with its interval (a forest plot), cost against
gain with the gains' intervals; written as PNG files and embedded in the HTML page."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from samlm.compare import GridSpec, compare, write_report
from samlm.compare.report import analyse, figures, method_colour
from samlm.compare.report.analysis import gain_over_baseline

from .fake import InlineBackend, fake_cell

SPEC = dict(
    tasks=["glue/sst2", "glue/cola"], sizes=[100], methods=["baseline", "sam", "asam"], seeds=3
)


@pytest.fixture
def folder(tmp_path):
    compare(GridSpec(**SPEC), tmp_path, backend=InlineBackend(), cell_fn=fake_cell)
    return tmp_path


def _bars(ax, along: str) -> dict[str, list[tuple[float, float, float, float]]]:
    """Method -> (x, y, low, high) of each error bar, the interval ``along`` "x" or "y"."""
    out: dict[str, list] = {}
    last = None
    for c in ax.containers:
        line, _, (bars,) = c.lines
        (x,), (y,) = line.get_xdata(), line.get_ydata()
        (start, end) = bars.get_segments()[0]
        label = c.get_label() if not c.get_label().startswith("_") else last
        colour = line.get_color()
        assert colour == method_colour(label), (label, colour)
        low, high = (start[0], end[0]) if along == "x" else (start[1], end[1])
        out.setdefault(label, []).append((x, y, low, high))
        last = label
    return out


def test_the_forest_plot_shows_each_strata_gain_and_the_mean(folder):
    import matplotlib.pyplot as plt

    a = analyse(folder)
    fig = figures(a)["gain_by_stratum"]
    try:
        (ax,) = fig.axes
        labels = [t.get_text() for t in ax.get_yticklabels()]
        assert labels == ["glue/cola, n=100", "glue/sst2, n=100", "mean over them"]
        zero = [line for line in ax.get_lines() if list(line.get_xdata()) == [0, 0]]
        assert zero, "no line at zero gain"
        bars = _bars(ax, "x")
    finally:
        plt.close(fig)
    overall = a.overall()
    for method in ("sam", "asam"):
        rows = {round(y): (x, low, high) for x, y, low, high in bars[method]}
        expected = {
            row: gain_over_baseline(a.scores[key], method)
            for row, key in enumerate(sorted(a.scores))
        }
        expected = {row: (g.mean, g.low, g.high) for row, g in expected.items() if g}
        g = overall[method]
        expected[2] = (g.mean, g.low, g.high)
        assert rows.keys() == expected.keys(), method  # asam: no gain on CoLA (it failed)
        for row, values in expected.items():
            assert np.allclose(rows[row], values), (method, row)


def test_cost_against_gain_draws_the_gains_intervals(folder):
    import matplotlib.pyplot as plt

    a = analyse(folder)
    fig = figures(a)["cost_vs_gain"]
    try:
        bars = _bars(fig.axes[0], "y")
    finally:
        plt.close(fig)
    for method, g in a.overall().items():
        ((x, y, low, high),) = bars[method]
        assert x == pytest.approx(a.cost[method]["time_per_step_vs_baseline"])
        assert (y, low, high) == pytest.approx((g.mean, g.low, g.high))
        assert low < high or method == "asam"  # SAM's seeds differ; asam's gain is constant


def test_the_picture_files_exist_and_the_page_embeds_them(folder):
    write_report(folder)
    names = ["gain_by_stratum", "gain_vs_size", "dev_metric_during_training", "cost_vs_gain"]
    page = (folder / "report.html").read_text()
    markdown = (folder / "report.md").read_text()
    for name in names:
        png = (folder / f"{name}.png").read_bytes()
        assert png.startswith(b"\x89PNG\r\n\x1a\n"), name
        assert f'src="data:image/png;base64,{base64.b64encode(png).decode()}"' in page, name
        assert f"]({name}.png)" in markdown, name
    # the forest plot with the answer, before the tables; the other plots at the end
    first_table = page.index("<table>")
    assert page.index("<h2>The answer</h2>") < page.index('alt="gain_by_stratum"') < first_table
    assert page.index('alt="gain_vs_size"') > first_table
    assert markdown.index("](gain_by_stratum.png)") < markdown.index("## Scores and gains")


def test_validation_curves_wrap_into_rows_of_four(tmp_path):
    """Six strata: a row of four panels and a row of two, each stratum titled once, in
    order, reading row by row; no empty panel is left in the figure."""
    import matplotlib.pyplot as plt

    spec = dict(SPEC, tasks=["glue/sst2", "glue/cola", "glue/mrpc"], sizes=[100, 250], seeds=1)
    compare(GridSpec(**spec), tmp_path, backend=InlineBackend(), cell_fn=fake_cell)
    a = analyse(tmp_path)
    keys = sorted(a.curves)
    assert len(keys) == 6
    fig = figures(a)["dev_metric_during_training"]
    try:
        axes = fig.axes
        assert [ax.get_title() for ax in axes] == [f"{t}, n={n}" for t, n in keys]
        grid = [ax.get_subplotspec().get_geometry()[:2] for ax in axes]
        assert set(grid) == {(2, 4)}  # 2 rows of at most 4 columns
        rows = [ax.get_subplotspec().rowspan.start for ax in axes]
        assert rows == [0, 0, 0, 0, 1, 1]
        assert all(ax.lines for ax in axes)  # every panel drawn
    finally:
        plt.close(fig)
