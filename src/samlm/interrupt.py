"""Ctrl-C on ``samlm compare``, ``samlm train`` and ``samlm sharpness``: a short message
saying what is kept and the command that goes on, exit code 130, no traceback (unless
``SAMLM_DEBUG=1``). A second Ctrl-C while the first one's cleanup runs exits at once.

:func:`run` wraps a command; the ``*_kept`` functions say what each command keeps.
(``samlm compare``'s local workers leave Ctrl-C to the driver: ``compare/workers.py``.)
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

DEBUG = "SAMLM_DEBUG"  # set to 1: the interrupted command's traceback too
EXIT_CODE = 130  # 128 + SIGINT, as a shell reports a command Ctrl-C stopped


def _first(signum, frame):
    signal.signal(signal.SIGINT, _again)
    raise KeyboardInterrupt


def _again(signum, frame):
    os.write(2, b"\nsamlm: interrupted again: stopped at once\n")
    os._exit(EXIT_CODE)


def run(
    command: str,
    argv: list[str],
    fn: Callable[[], int | None],
    kept: Callable[[float], list[str]],
) -> int | None:
    """``fn()``; on Ctrl-C, the lines ``kept(time fn started)`` returns, the command that goes on
    (:func:`continue_command`) and :data:`EXIT_CODE`."""
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, _first) if main else None
    started = time.time()
    try:
        return fn()
    except KeyboardInterrupt:
        if os.environ.get(DEBUG, "") not in ("", "0"):
            traceback.print_exc()
        _close_bars()
        if os.environ.get("RANK", "0") == "0":  # under a launcher, one message
            lines = [f"samlm {command}: interrupted.", *kept_safely(kept, started)]
            lines.append(f"To go on: {continue_command(command, argv)}")
            print("\n" + "\n".join(lines), file=sys.stderr, flush=True)
        return EXIT_CODE
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)


def _close_bars() -> None:
    """Close the progress bars still open, so that their last line comes before the
    message, not after it (when the interpreter exits)."""
    if "tqdm" in sys.modules:
        from tqdm import tqdm

        for bar in list(getattr(tqdm, "_instances", ())):
            bar.close()


def kept_safely(kept: Callable[[float], list[str]], started: float) -> list[str]:
    """``kept(started)``, or a line saying it could not be read (never a traceback)."""
    try:
        return kept(started)
    except Exception as err:  # what is kept is a courtesy: the command is what matters
        return [f"(what is kept could not be read: {type(err).__name__}: {err})"]


def _without(argv: list[str], option: str) -> list[str]:
    """``argv`` without ``option`` (or an abbreviation of it that argparse took)."""
    return [a for a in argv if not (a.startswith(option[:4]) and option.startswith(a))]


def continue_command(command: str, argv: list[str]) -> str:
    """The command that goes on: the same arguments, never ``--overwrite`` (it would delete
    what is kept); ``samlm train`` with ``--resume``."""
    args = _without(argv, "--overwrite")
    if command == "train":
        args = [*_without(args, "--resume"), "--resume"]
    return shlex.join(["samlm", *args])


def compare_kept(args: argparse.Namespace, started: float) -> list[str]:
    """The cells done, and those this run stopped, with the checkpoint each resumes from."""
    from .compare.store import FILE, SPEC_FILE, read, read_spec
    from .pipeline.run import last_complete_checkpoint

    folder = Path(args.output)
    if not (folder / SPEC_FILE).is_file():
        return ["Nothing was stored yet."]
    spec = read_spec(folder)
    records = read(folder)
    cells = spec.trials() + spec.cells()
    done = sum(records.get(c.key, {}).get("status") == "ok" for c in cells)
    lines = [f"Kept in {folder / FILE}: {done} of {len(cells)} cells done."]
    stopped = [c for c in cells if records.get(c.key, {}).get("status") != "ok"]
    stopped = [c for c in stopped if _attempted_since(folder / "cells" / c.folder, started)]
    if stopped:
        lines.append("Stopped (a rerun resumes each from its last checkpoint):")
    for c in stopped:
        checkpoint = last_complete_checkpoint(folder / "cells" / c.folder / "checkpoints")
        lines.append(f"  {c.key}: " + (checkpoint.name if checkpoint else "no checkpoint yet"))
    return lines


def _attempted_since(cell_dir: Path, started: float) -> bool:
    """Whether a cell was started after ``started`` (its ``attempts.jsonl``)."""
    import json

    log = cell_dir / "attempts.jsonl"
    if not log.is_file():
        return False
    times = []
    for line in log.read_text().splitlines():
        try:
            times.append(json.loads(line)["time"])
        except (ValueError, KeyError):
            continue  # a line cut short
    return any(t >= started for t in times)


def train_kept(args: argparse.Namespace, started: float) -> list[str]:
    """The run's last checkpoint."""
    from .cli import train_config
    from .pipeline.run import last_complete_checkpoint

    out = Path(train_config(args).output)
    checkpoint = last_complete_checkpoint(out / "checkpoints")
    if checkpoint is None:
        return [f"No checkpoint in {out} yet: the run starts again from its first step."]
    return [f"Kept: {checkpoint} (step {checkpoint.name.removeprefix('checkpoint-')})."]


def sharpness_kept(args: argparse.Namespace, started: float) -> list[str]:
    """Nothing: the measurement is written when it ends."""
    result = Path(args.run_dir) / "sharpness" / "sharpness.json"
    return [f"Nothing measured is kept: {result} is written when the measurement ends."]
