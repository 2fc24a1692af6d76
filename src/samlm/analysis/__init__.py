"""Sharpness diagnostics: the flatness SAM is supposed to buy.

Every measure takes a model, ``loss_fn(model, batch) -> mean loss`` (``hf_loss`` for a
Hugging Face model whose output has ``.loss``) and an iterable of batches, accumulated
over mini-batches of ``batch_size`` (or the :class:`Objective` they make, which
``measure_all`` builds once for all of them); it runs in eval mode, is deterministic under
``seed`` (private generators) and leaves the weights (bitwise), the modes and the global
RNG as they were.

>>> rho_sharpness(model, hf_loss, batches, rho=0.05, steps=5)          # max L(w+e) - L(w)
>>> rho_sharpness(model, hf_loss, batches, m=8)                        # m-sharpness
>>> rho_sharpness(model, hf_loss, batches, adaptive=True, eta=0.01)    # ASAM ball
>>> top_eigenvalue(model, hf_loss, batches, iters=20)                  # power iteration
>>> hessian_trace(model, hf_loss, batches, probes=10)                  # Hutchinson
>>> landscape_2d(model, hf_loss, batches, points=11)                   # Li et al. 2018
>>> measure_run("runs/sst2-sam")                                       # a `samlm train` run

``measure_run``'s options (``RunOptions``, ``MeasureOptions``) are declared once, as
``samlm sharpness``'s flags (:mod:`samlm.options`).
"""

from .hessian import EigenResult, TraceResult, hessian_trace, top_eigenvalue
from .landscape import (
    Landscape1D,
    Landscape2D,
    filter_normalized_direction,
    landscape_1d,
    landscape_2d,
)
from .measure import MeasureOptions, measure_all
from .objective import Objective, hf_loss
from .plots import plot_landscape_1d, plot_landscape_2d
from .sharpness import SharpnessResult, rho_sharpness

__all__ = [
    "EigenResult",
    "Landscape1D",
    "Landscape2D",
    "MeasureOptions",
    "Objective",
    "SharpnessResult",
    "TraceResult",
    "filter_normalized_direction",
    "hessian_trace",
    "hf_loss",
    "landscape_1d",
    "landscape_2d",
    "measure_all",
    "measure_run",
    "plot_landscape_1d",
    "plot_landscape_2d",
    "rho_sharpness",
    "top_eigenvalue",
]


def __getattr__(name: str):
    if name == "measure_run":  # imported on use: it pulls in transformers and the tasks
        from .run import measure_run

        return measure_run
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
