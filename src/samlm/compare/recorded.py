"""Settings chosen by the evidence grid's tuning (``bench/results/evidence``), per
``"task|size|method"``: the default preset runs its seeds at these instead of tuning
within its 30 minutes. Written by ``python bench/evidence.py --export-settings``."""

SOURCE = "bench/results/evidence"
SETTINGS: dict[str, dict[str, float]] = {}
