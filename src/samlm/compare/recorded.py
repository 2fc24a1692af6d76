"""Settings chosen by the evidence grid's tuning (``bench/results/evidence``), per
``"task|size|method"``: the default preset runs its seeds at these instead of tuning
within its 30 minutes. The values are package data, ``recorded.json`` beside this module
(``{"source": ..., "settings": {...}}``), written by ``python bench/evidence.py
--export-settings``."""

from __future__ import annotations

import json
from importlib import resources

FILE = "recorded.json"

_DATA = json.loads(resources.files(__package__).joinpath(FILE).read_text())
SOURCE: str = _DATA["source"]  # the results store the settings were chosen from
SETTINGS: dict[str, dict[str, float]] = _DATA["settings"]
