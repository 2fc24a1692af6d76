"""The packages whose names load on first use (samlm._lazy): each name resolves, and the
command line builds its options without the Trainer or the report's statistics."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

LAZY = ["samlm.compare", "samlm.pipeline", "samlm.training"]


@pytest.mark.parametrize("package", LAZY)
def test_each_exported_name_is_its_submodules(package):
    module = importlib.import_module(package)
    assert sorted(module.__all__) == sorted(module._WHERE)
    for name, where in module._WHERE.items():
        source = importlib.import_module(where, package)
        assert getattr(module, name) is getattr(source, name)
        assert name in dir(module)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        module.nothing  # noqa: B018


def test_the_command_lines_options_need_neither_the_trainer_nor_scipy():
    code = (
        "import sys; from samlm.cli import build_parser; build_parser(); "
        "print(sorted(m for m in ('transformers.trainer', 'scipy.stats', 'samlm.training.trainer', "
        "'samlm.compare.report') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
