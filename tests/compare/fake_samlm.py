"""``samlm`` with ``samlm compare``'s cells replaced by :func:`.fake.slow_cell`, for tests
that run the command as a user does (its own process, its worker processes, signals) in
seconds: ``python -m tests.compare.fake_samlm compare ...`` from the repository root."""

from __future__ import annotations

import functools

import samlm.compare
from samlm.cli import entry
from samlm.compare.runner import compare

from .fake import slow_cell

if __name__ == "__main__":
    samlm.compare.compare = functools.partial(compare, cell_fn=slow_cell)
    entry()
