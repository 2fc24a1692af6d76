"""Shared by the benchmark scripts that drive ``samlm train`` runs: one resumable run as
a subprocess (one thread), and the command line that runs jobs two at a time and prints
a markdown summary."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def train(folder: Path, options: Sequence[str], data_dir: str) -> str:
    """``samlm train OPTIONS`` into ``folder`` (``--resume`` if it exists); its output goes
    to ``folder.log``; returns a one-line status."""
    if (folder / "metrics.json").is_file():
        return f"{folder.name}: done"
    cmd = [sys.executable, "-m", "samlm", "train", *options]
    cmd += ["--data-dir", data_dir, "--output", str(folder), "--no-progress"]
    if folder.exists():
        cmd.append("--resume")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    folder.with_name(f"{folder.name}.log").write_text(done.stdout + done.stderr)
    return f"{folder.name}: exit {done.returncode}"


def main(
    doc: str,
    default_output: str,
    jobs: list[tuple],
    run: Callable[..., str],
    summary: Callable[[Path, str], str],
) -> None:
    """``--data-dir``, ``--output``, ``--summary FILE``, ``--summary-only``: runs
    ``run(out, data_dir, *job)`` for every job, two at a time, then prints the summary."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--output", default=default_output)
    parser.add_argument("--summary", help="also write the summary (markdown) here")
    parser.add_argument("--summary-only", action="store_true")
    args = parser.parse_args()
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    if not args.summary_only:
        with ThreadPoolExecutor(2) as pool:
            for line in pool.map(lambda job: run(out, args.data_dir, *job), jobs):
                print(line, flush=True)
    text = summary(out, args.data_dir)
    print(text)
    if args.summary:
        Path(args.summary).write_text(text + "\n")
