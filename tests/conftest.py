"""Shared fixtures: the location of the benchmark data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

DATA_DIR = Path(
    os.environ.get("SAMLM_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data")
)


@pytest.fixture
def data_dir() -> Path:
    if not DATA_DIR.is_dir():
        pytest.skip(f"benchmark data folder {DATA_DIR} is absent (set SAMLM_DATA_DIR)")
    return DATA_DIR
