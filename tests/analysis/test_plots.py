"""The landscape plots are written as PNG files that open as images."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import matplotlib.image

from samlm.analysis import landscape_1d, landscape_2d, plot_landscape_1d, plot_landscape_2d
from samlm.analysis.landscape import Landscape2D

from .conftest import ce_loss, tiny_batches, tiny_net

QUIET = dict(progress=False)


def _image(path):
    assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return matplotlib.image.imread(path)


def test_plots_are_written_and_open_as_images(tmp_path):
    model, batches = tiny_net(), tiny_batches()
    line = landscape_1d(model, ce_loss, batches, points=5, **QUIET)
    surface = landscape_2d(model, ce_loss, batches, points=4, **QUIET)
    one = plot_landscape_1d(line, tmp_path / "plots" / "landscape_1d.png")
    two = plot_landscape_2d(surface, tmp_path / "plots" / "landscape_2d.png", title="tiny")
    for path in (one, two):
        image = _image(path)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
        assert image.std() > 0  # not a blank canvas


def test_a_flat_surface_still_plots(tmp_path):
    flat = Landscape2D([-1.0, 0.0, 1.0], [-1.0, 0.0, 1.0], [[2.0] * 3] * 3, 2.0, 1.0, 0)
    assert _image(plot_landscape_2d(flat, tmp_path / "flat.png")).ndim == 3


def test_plotting_leaves_pyplot_alone(tmp_path):
    """Plotting uses matplotlib's object API: pyplot (and its global figure state) is
    never imported. In a fresh interpreter, whatever other tests imported."""
    script = f"""
import sys
from samlm.analysis import landscape_1d, plot_landscape_1d
from tests.analysis.conftest import ce_loss, tiny_batches, tiny_net
line = landscape_1d(tiny_net(), ce_loss, tiny_batches(), points=3, progress=False)
plot_landscape_1d(line, {str(tmp_path / "line.png")!r})
assert "matplotlib.pyplot" not in sys.modules, "pyplot was imported"
"""
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "line.png").stat().st_size > 1000
