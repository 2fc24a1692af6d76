"""Fixtures for the task tests: the real benchmark folder and writers of official files."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

SHARED_DATA = Path(
    os.environ.get("SAMLM_DATA_DIR", Path(__file__).resolve().parents[3] / "shared" / "data")
)


@pytest.fixture
def real_data() -> Callable[[str], Path]:
    """``real_data("superglue/RTE")``: the shared data folder, skipping the test when the
    folder (or that task's subfolder) is absent."""

    def need(sub: str) -> Path:
        if not (SHARED_DATA / sub).is_dir():
            pytest.skip(f"benchmark data {SHARED_DATA / sub} is absent (set SAMLM_DATA_DIR)")
        return SHARED_DATA

    return need


@pytest.fixture(autouse=True)
def _no_env_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests pass folders explicitly; a user's $SAMLM_DATA_DIR must not leak in."""
    monkeypatch.delenv("SAMLM_DATA_DIR", raising=False)


def write_jsonl(path: Path, records: Sequence[Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def write_tsv(path: Path, rows: Sequence[Sequence[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join("\t".join(row) + "\n" for row in rows), encoding="utf-8")
    return path
