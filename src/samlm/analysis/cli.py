"""``samlm sharpness RUN_DIR``: the sharpness diagnostics of a finished run.

:func:`add_sharpness_parser` adds the ``sharpness`` subcommand and its options (the
defaults of :class:`~samlm.analysis.measure.MeasureOptions`) to the ``samlm`` parser;
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

from .measure import WEIGHTS, MeasureOptions

DEFAULTS = MeasureOptions()


def add_sharpness_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``sharpness`` command to ``subparsers`` (from ``add_subparsers``)."""
    p = subparsers.add_parser(
        "sharpness",
        help="measure the flatness of a run's best model (sharpness, Hessian, landscape)",
        description=(
            "Rebuild a run's training subset, measure on a sample of it: rho-sharpness "
            "(plain, m-, adaptive), the Hessian's top eigenvalue and trace, and the loss "
            "along filter-normalised random directions. Writes RUN_DIR/sharpness/. "
            "The weights measured are what the run trained (--weights trained: every weight "
            "of a full fine-tuning run, the adapters and task head of a --peft lora run) or "
            "every weight of the model with a LoRA run's adapters merged in (--weights merged). "
            "A task mixture's sample is drawn from its tasks at the run's mixing rates."
        ),
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder from `samlm train`")
    p.add_argument(
        "--samples",
        type=int,
        default=128,
        help="training examples measured (a seeded sample; a mixture's, over its tasks at "
        "their mixing rates; default: 128)",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=32,
        help="examples per forward pass; bounds memory (default: 32)",
    )
    p.add_argument(
        "--weights",
        choices=WEIGHTS,
        default="trained",
        help="the weights measured: trained (what the run trained: a --peft lora run's "
        "adapters and task head, the base fixed) or merged (every weight, a LoRA run's "
        "adapters merged into the base); the same for a full fine-tuning run (default: trained)",
    )
    p.add_argument(
        "--rho",
        type=float,
        default=DEFAULTS.rho,
        help=f"radius of the sharpness ball (default: {DEFAULTS.rho})",
    )
    p.add_argument(
        "--adaptive-rho",
        type=float,
        default=None,
        help="radius of the adaptive (ASAM) ball (default: --rho)",
    )
    p.add_argument(
        "--eta",
        type=float,
        default=DEFAULTS.eta,
        help=f"ASAM's offset in T = |w| + eta (default: {DEFAULTS.eta})",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=DEFAULTS.steps,
        help=f"projected ascent steps; 1 is SAM's estimate (default: {DEFAULTS.steps})",
    )
    p.add_argument(
        "--m-examples",
        dest="m",
        type=int,
        default=DEFAULTS.m,
        help="m-sharpness: examples per chunk, each perturbed on its own (Foret et al.'s m, "
        f"as train's --m-examples); 0 skips it (default: {DEFAULTS.m})",
    )
    # train's --m counts chunks: refused here by name rather than taken (as argparse would
    # take an abbreviation) for --m-examples
    p.add_argument("--m", dest="m_chunks", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument(
        "--hessian-iters",
        type=int,
        default=DEFAULTS.hessian_iters,
        help="power iterations for the top eigenvalue, 0 skips it "
        f"(default: {DEFAULTS.hessian_iters})",
    )
    p.add_argument(
        "--probes",
        type=int,
        default=DEFAULTS.probes,
        help=f"Hutchinson probes for the trace, 0 skips it (default: {DEFAULTS.probes})",
    )
    p.add_argument(
        "--grid",
        type=int,
        default=DEFAULTS.grid,
        help="landscape grid: GRID x GRID contour, 2 GRID - 1 line points; 0 skips "
        f"(default: {DEFAULTS.grid})",
    )
    p.add_argument(
        "--span",
        type=float,
        default=DEFAULTS.span,
        help=f"landscape range [-span, span] (default: {DEFAULTS.span})",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=DEFAULTS.seed,
        help="seed of the sample, random starts, probes and directions (default: 0)",
    )
    p.add_argument("--data-dir", default=None, help="override the run's data folder")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    p.add_argument(
        "--train-mode",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="measure with dropout on (default: eval mode)",
    )
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="show the progress bars (default: on)",
    )
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
    result = measure_run(
        args.run_dir,
        samples=args.samples,
        batch_size=args.batch_size,
        data_dir=args.data_dir,
        device=args.device,
        weights=args.weights,
        rho=args.rho,
        adaptive_rho=args.adaptive_rho,
        eta=args.eta,
        steps=args.steps,
        m=args.m,
        hessian_iters=args.hessian_iters,
        probes=args.probes,
        grid=args.grid,
        span=args.span,
        seed=args.seed,
        train=args.train_mode,
        progress=args.progress,
    )
    print("\n".join(summary(result)))
    print(f"-> {args.run_dir}/sharpness/{RESULT}")


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
