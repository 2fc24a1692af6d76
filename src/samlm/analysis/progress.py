"""Progress bars for the measures (tqdm; one tick per mini-batch pass)."""

from __future__ import annotations

from typing import Any

from tqdm.auto import tqdm


def progress_bar(total: int, desc: str, enabled: bool) -> Any:
    """A tqdm bar over ``total`` mini-batch passes, silent when ``enabled`` is False."""
    return tqdm(total=total, desc=desc, unit="batch", leave=False, disable=not enabled)
