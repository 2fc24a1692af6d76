"""The Hugging Face libraries' own progress bars (transformers' weight loading, datasets'
``map``), switched off for a quiet run and restored after it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


def disable_hf_bars() -> tuple[bool, bool]:
    """Switch transformers' and datasets' bars off; returns whether each was on."""
    import datasets
    from transformers.utils import logging

    before = logging.is_progress_bar_enabled(), datasets.is_progress_bar_enabled()
    logging.disable_progress_bar()
    datasets.disable_progress_bars()
    return before


@contextmanager
def hf_bars(enabled: bool) -> Iterator[None]:
    """Within the block, transformers' and datasets' bars are as they were (``enabled``)
    or off; their previous state comes back on leaving it."""
    if enabled:
        yield
        return
    transformers_on, datasets_on = disable_hf_bars()
    try:
        yield
    finally:
        import datasets
        from transformers.utils import logging

        if transformers_on:
            logging.enable_progress_bar()
        if datasets_on:
            datasets.enable_progress_bars()
