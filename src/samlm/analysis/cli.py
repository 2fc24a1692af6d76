"""``samlm sharpness RUN_DIR``: the sharpness diagnostics of a finished run.

:func:`add_sharpness_parser` adds the ``sharpness`` subcommand to the ``samlm`` parser,
its options generated from the declarations of ``measure.py``'s :class:`RunOptions` and
:class:`MeasureOptions` (:mod:`samlm.options`);
:func:`run_sharpness` runs it: :func:`~samlm.analysis.run.measure_run` rebuilds the run's
training subset, measures the best model on a seeded sample of it (rho-sharpness and its
m- and adaptive variants, the Hessian's top eigenvalue and trace, the loss landscape) as
a function of the weights ``--weights`` names (``trained``: what the run trained, a
``--peft lora`` run's adapters and head; ``merged``: every weight, a LoRA run's adapters
merged into its base), writes ``RUN_DIR/sharpness/`` and prints the lines of
:func:`summary`. A task mixture's run is measured on a sample of its tasks' training
examples drawn at its mixing rates (see ``run.py``). ``samlm.cli`` wires both into its
parser and dispatch.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..options import add_arguments, declared
from .measure import MeasureOptions, RunOptions

DESCRIPTION = (
    "Rebuild a run's training subset, measure on a sample of it: rho-sharpness (plain, m-, "
    "adaptive), the Hessian's top eigenvalue and trace, and the loss along filter-normalised "
    "random directions. Writes RUN_DIR/sharpness/. The weights measured are what the run "
    "trained (--weights trained: every weight of a full fine-tuning run, the adapters and task "
    "head of a --peft lora run) or every weight of the model with a LoRA run's adapters merged "
    "in (--weights merged). A task mixture's sample is drawn from its tasks at the run's "
    "mixing rates."
)


def add_sharpness_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``sharpness`` command to ``subparsers`` (from ``add_subparsers``)."""
    p = subparsers.add_parser(
        "sharpness",
        help="measure the flatness of a run's best model (sharpness, Hessian, landscape)",
        description=DESCRIPTION,
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder from `samlm train`")
    add_arguments(p, RunOptions, with_defaults=True)
    add_arguments(p, MeasureOptions, with_defaults=True)
    # train's --m counts chunks: refused here by name rather than taken (as argparse would
    # take an abbreviation) for --m-examples
    p.add_argument("--m", dest="m_chunks", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run's earlier measurement (default: refuse to)",
    )
    return p


def run_sharpness(args: argparse.Namespace) -> None:
    """Measure ``args.run_dir``, write ``RUN_DIR/sharpness/``, print a short summary.
    An earlier measurement there is kept unless ``args.overwrite``."""
    from pathlib import Path

    from .run import OUTPUT, RESULT, measure_run

    if args.m_chunks is not None:
        raise ValueError(
            "--m: the m-sharpness chunk size is --m-examples here (examples per chunk; "
            "train's --m counts chunks)"
        )
    earlier = Path(args.run_dir) / OUTPUT / RESULT
    if earlier.is_file() and not args.overwrite:
        raise FileExistsError(
            f"{earlier} holds an earlier measurement: give --overwrite to replace it"
        )
    names = [*_cli_fields(RunOptions), *_cli_fields(MeasureOptions)]
    result = measure_run(args.run_dir, **{name: getattr(args, name) for name in names})
    print("\n".join(summary(result)))
    print(f"-> {args.run_dir}/sharpness/{RESULT}")


def _cli_fields(cls: type) -> list[str]:
    return [f.name for f in declared(cls) if f.metadata["cli"]]


def summary(result: dict[str, Any]) -> list[str]:
    """A few lines: loss, the sharpness variants, the Hessian, the plots."""
    mixture = result.get("mixture")
    name = f"{mixture} mixture ({result['task']})" if mixture else result["task"]
    lines = [
        f"{name} ({result['method']}): {result['samples']} of "
        f"{result['train_examples']} training examples, loss {result['loss']:.4f}",
    ]
    for task, part in (result.get("tasks") or {}).items():  # a mixture's
        lines.append(
            f"  {task:<19} {part['samples']} of {part['train_examples']} "
            f"(mixing rate {part['rate']:.3g})"
        )
    lines.append(
        f"  {'weights':<19} {result['weights']}: {result['parameters']:,} parameters"
        + (f" (peft {result['peft']})" if result["peft"] != "none" else "")
    )
    for key, label in (
        ("sharpness", "sharpness"),
        ("m_sharpness", "m-sharpness"),
        ("adaptive_sharpness", "adaptive sharpness"),
    ):
        s = result.get(key)
        if s:
            extra = f", m={s['m']}" if s["m"] else ""
            steps = f"{s['steps']} step" + "s" * (s["steps"] != 1)
            lines.append(f"  {label:<19} {s['sharpness']:.4g}  (rho={s['rho']:g}, {steps}{extra})")
    top = result["hessian"]["top_eigenvalue"]
    if top:
        state = "converged" if top["converged"] else "not converged"
        lines.append(
            f"  {'lambda_max(H)':<19} {top['value']:.4g}  ({top['iterations']} iterations, "
            f"{state}, last change {top['relative_change']:.2g})"
        )
    trace = result["hessian"]["trace"]
    if trace:
        lines.append(
            f"  {'trace(H)':<19} {trace['value']:.4g} +- {trace['stderr']:.2g}  "
            f"({trace['probes']} probes)"
        )
    for path in result.get("plots", {}).values():
        lines.append(f"  plot: {path}")
    return lines
