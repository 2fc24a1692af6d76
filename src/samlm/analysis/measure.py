"""Every measure on one model and sample: sharpness (plain, m-, adaptive), the Hessian's
top eigenvalue and trace, and the 1-D / 2-D landscapes with their plots."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from torch import nn

from ..optim.validation import (
    of_type,
    one_of,
    optional_positive_int,
    positive_float,
    positive_int,
)
from ..options import option
from .hessian import hessian_trace, top_eigenvalue
from .landscape import Landscape1D, Landscape2D, landscape_1d, landscape_2d
from .objective import LossFn, Objective
from .plots import plot_landscape_1d, plot_landscape_2d
from .sharpness import rho_sharpness

PLOTS = {"landscape_1d": "landscape_1d.png", "landscape_2d": "landscape_2d.png"}


# the weights measure_run measures a run's model in (run.py): what the run trained, or
# every weight with a LoRA run's adapters merged in
WEIGHTS = ("trained", "merged")


@dataclass
class RunOptions:
    """:func:`~samlm.analysis.run.measure_run`'s options beside the measures'
    (:class:`MeasureOptions`), each declared with its ``samlm sharpness`` flag
    (:mod:`samlm.options`)."""

    samples: int | None = option(
        128,
        help="training examples measured (a seeded sample; a mixture's, over its tasks at "
        "their mixing rates)",
    )
    batch_size: int = option(32, help="examples per forward pass; bounds memory")
    weights: str = option(
        "trained",
        choices=WEIGHTS,
        help="the weights measured: trained (what the run trained: a --peft lora run's "
        "adapters and task head, the base fixed) or merged (every weight, a LoRA run's "
        "adapters merged into the base); the same for a full fine-tuning run",
    )
    data_dir: str | None = option(None, help="override the run's data folder")
    device: str | None = option(None, help="cpu, cuda, ... (default: cuda if available)")

    def __post_init__(self) -> None:  # data_dir may be a Path
        one_of("weights", self.weights, WEIGHTS)
        optional_positive_int("samples", self.samples)
        positive_int("batch_size", self.batch_size)


@dataclass
class MeasureOptions:
    """Settings of :func:`measure_all`, each declared with its ``samlm sharpness`` flag
    (:mod:`samlm.options`). A count of 0 skips its measure: ``m`` (the m-sharpness),
    ``hessian_iters`` (the top eigenvalue), ``probes`` (the trace), ``grid`` (both
    landscapes; the line has ``2 grid - 1`` points, the contour ``grid x grid``).
    ``adaptive_rho`` defaults to ``rho``."""

    rho: float = option(0.05, help="radius of the sharpness ball")
    steps: int = option(5, help="projected ascent steps; 1 is SAM's estimate")
    m: int = option(
        8,
        flag="--m-examples",
        help="m-sharpness: examples per chunk, each perturbed on its own (Foret et al.'s m, "
        "as train's --m-examples); 0 skips it",
    )
    adaptive_rho: float | None = option(
        None, help="radius of the adaptive (ASAM) ball (default: --rho)"
    )
    eta: float = option(0.01, help="ASAM's offset in T = |w| + eta")
    hessian_iters: int = option(20, help="power iterations for the top eigenvalue, 0 skips it")
    hessian_tol: float = option(
        1e-3, cli=False, help="the power iteration stops at this relative change"
    )
    probes: int = option(10, help="Hutchinson probes for the trace, 0 skips it")
    grid: int = option(
        9, help="landscape grid: GRID x GRID contour, 2 GRID - 1 line points; 0 skips"
    )
    span: float = option(1.0, help="landscape range [-span, span]")
    seed: int = option(0, help="seed of the sample, random starts, probes and directions")
    batch_size: int | None = option(
        None, cli=False, help="examples per forward pass (None: the batches as given)"
    )
    train: bool = option(
        False, flag="--train-mode", shown_default="eval mode", help="measure with dropout on"
    )
    progress: bool = option(True, shown_default="on", help="show the progress bars")

    def __post_init__(self) -> None:
        positive_float("rho", self.rho)
        positive_int("steps", self.steps)
        if self.adaptive_rho is not None:
            positive_float("adaptive_rho", self.adaptive_rho)
        positive_float("eta", self.eta, allow_zero=True)
        for name in ("m", "hessian_iters", "probes", "grid"):
            positive_int(name, getattr(self, name), minimum=0)
        positive_float("hessian_tol", self.hessian_tol)
        positive_float("span", self.span)
        of_type("seed", self.seed, int)
        if self.batch_size is not None:
            positive_int("batch_size", self.batch_size)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def measure_all(
    model: nn.Module,
    loss_fn: LossFn,
    batches: Iterable[Any],
    options: MeasureOptions | None = None,
    *,
    output_dir: str | Path | None = None,
    title: str | None = None,
) -> dict[str, Any]:
    """Run every measure with ``options`` on the mean loss over ``batches``; with
    ``output_dir``, also write ``landscape_1d.png`` and ``landscape_2d.png`` there (their
    titles prefixed by ``title``).
    Returns a JSON-ready dict (NaN/inf left as floats)."""
    opts = options or MeasureOptions()
    objective = Objective(model, loss_fn, batches, batch_size=opts.batch_size)
    seconds: dict[str, float] = {}

    def timed(name: str, measure: Callable[..., Any], **kwargs: Any) -> Any:
        """``measure`` on the objective with the common options, its seconds recorded."""
        start = time.perf_counter()
        common = dict(seed=opts.seed, train=opts.train, progress=opts.progress)
        value = measure(objective, **common, **kwargs)
        seconds[name] = round(time.perf_counter() - start, 3)
        return value

    def counted(count: int, name: str, measure: Callable[..., Any], **kwargs: Any) -> Any:
        """The measure's dict, None when its count is 0 (skipped)."""
        return timed(name, measure, **kwargs).as_dict() if count else None

    ascent = dict(steps=opts.steps, eta=opts.eta)
    plain = timed("sharpness", rho_sharpness, rho=opts.rho, **ascent)
    adaptive_rho = opts.adaptive_rho or opts.rho
    eigen = dict(iters=opts.hessian_iters, tol=opts.hessian_tol)
    out: dict[str, Any] = {
        "examples": objective.examples,
        "options": opts.as_dict(),
        "loss": plain.loss,
        "sharpness": plain.as_dict(),
        "m_sharpness": counted(
            opts.m, "m_sharpness", rho_sharpness, rho=opts.rho, m=opts.m, **ascent
        ),
        "adaptive_sharpness": timed(
            "adaptive_sharpness", rho_sharpness, rho=adaptive_rho, adaptive=True, **ascent
        ).as_dict(),
        "hessian": {
            "top_eigenvalue": counted(
                opts.hessian_iters, "top_eigenvalue", top_eigenvalue, **eigen
            ),
            "trace": counted(opts.probes, "trace", hessian_trace, probes=opts.probes),
        },
        "landscape": {"1d": None, "2d": None},
        "plots": {},
    }
    if opts.grid:
        line = timed("landscape_1d", landscape_1d, points=2 * opts.grid - 1, span=opts.span)
        surface = timed("landscape_2d", landscape_2d, points=opts.grid, span=opts.span)
        out["landscape"] = {"1d": line.as_dict(), "2d": surface.as_dict()}
        if output_dir is not None:
            out["plots"] = plots(line, surface, Path(output_dir), title)
    out["seconds"] = seconds
    return out


def plots(
    line: Landscape1D, surface: Landscape2D, folder: Path, title: str | None
) -> dict[str, str]:
    """Draw the two landscapes into ``folder`` (their titles prefixed by ``title``);
    returns :data:`PLOTS`' keys with the files' paths."""
    prefix = f"{title}: " if title else ""
    one = plot_landscape_1d(
        line, folder / PLOTS["landscape_1d"], f"{prefix}loss along a random direction"
    )
    two = plot_landscape_2d(surface, folder / PLOTS["landscape_2d"], f"{prefix}loss around w")
    return {"landscape_1d": str(one), "landscape_2d": str(two)}
