"""Where local task data lives: an explicit folder, else ``$SAMLM_DATA_DIR``."""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "SAMLM_DATA_DIR"


def resolve_data_dir(explicit: str | Path | None = None) -> Path | None:
    """``explicit`` (e.g. ``--data-dir``) if given, else ``$SAMLM_DATA_DIR`` if set, else None.

    The folder holds the official layout: ``superglue/RTE/train.jsonl``,
    ``glue/SST-2/dev.tsv``, ``webquestions/val.json``, ... (see each task's ``files``).
    """
    if explicit is not None and str(explicit) != "":
        return Path(os.path.abspath(Path(explicit).expanduser()))
    value = os.environ.get(ENV_VAR, "").strip()
    return Path(os.path.abspath(Path(value).expanduser())) if value else None
