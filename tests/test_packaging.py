"""The optimizer installs and runs with torch alone; the application is in the extras.

Each check runs a fresh interpreter whose import system cannot see the application's
packages (every ``sys.meta_path`` finder is wrapped so that it finds none of them, as if
they were not installed), so the checks hold in this fully installed environment too.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# What the extras add, by import name (torch imports fine without numpy).
APPLICATION = (
    "accelerate",
    "datasets",
    "matplotlib",
    "numpy",
    "scipy",
    "sklearn",
    "tensorboard",
    "tqdm",
    "transformers",
    "yaml",
)
HIDE = """
import sys

HIDDEN = frozenset({hidden!r})


class _Hide:
    def __init__(self, finder):
        self.finder = finder

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in HIDDEN:
            return None
        find = getattr(self.finder, "find_spec", None)
        return find(name, path, target) if find else None

    def __getattr__(self, attr):
        return getattr(self.finder, attr)


sys.meta_path[:] = [_Hide(f) for f in sys.meta_path]
"""
# torch's own note when numpy is absent; not samlm's output
QUIET = ["-W", "ignore:Failed to initialize NumPy:UserWarning"]


def _run(code: str, *args: str, hidden=APPLICATION) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    prelude = HIDE.format(hidden=tuple(hidden))
    return subprocess.run(
        [sys.executable, *QUIET, "-c", prelude + code, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=ROOT,
    )


def _entry(*argv: str) -> str:
    """Code that calls the ``samlm`` console script's entry point with ``argv``."""
    return (
        "from importlib.metadata import entry_points\n"
        "(ep,) = entry_points(group='console_scripts', name='samlm')\n"
        f"sys.argv = ['samlm', *{list(argv)!r}]\n"
        "ep.load()()\n"
    )


def test_hiding_works():
    done = _run("import yaml")
    assert done.returncode != 0
    assert "No module named 'yaml'" in done.stderr


def test_core_imports_with_torch_alone():
    done = _run(
        "from samlm import SAM, load_checkpoint, sam_param_groups, sam_step, save_checkpoint\n"
        "import samlm.optim\n"
        f"loaded = sorted({{m.partition('.')[0] for m in sys.modules}} & set({APPLICATION!r}))\n"
        "print('loaded:', loaded)\n"
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert "loaded: []" in done.stdout


def test_plain_loop_example_runs_with_torch_alone():
    done = _run("import runpy\nrunpy.run_path('examples/plain_loop.py', run_name='__main__')\n")
    assert done.returncode == 0, done.stderr[-4000:]
    assert done.stdout.count("train accuracy") == 3, done.stdout


def test_core_source_imports_only_torch_and_the_standard_library():
    """Statically too: samlm/__init__.py and samlm/optim/ import nothing else."""
    files = [ROOT / "src/samlm/__init__.py", *sorted((ROOT / "src/samlm/optim").glob("*.py"))]
    foreign = {}
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.partition(".")[0]
                if top not in sys.stdlib_module_names and top not in ("torch", "samlm"):
                    foreign.setdefault(path.name, []).append(name)
    assert not foreign


def test_command_line_without_the_extras_says_what_to_install():
    for argv in (["tasks"], ["train", "--help"], ["--help"]):
        done = _run(_entry(*argv))
        assert done.returncode == 1, (argv, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        found = re.fullmatch(r"samlm: error: .*needs the module '(\w+)'.*", lines[0])
        assert found and found.group(1) in APPLICATION, lines[0]
        assert "pip install 'samlm[all]'" in lines[0]


def test_train_extra_suffices_for_the_train_command_line():
    """samlm[train] is everything but matplotlib: the whole parser builds without it."""
    done = _run(_entry("train", "--help"), hidden=("matplotlib",))
    assert done.returncode == 0, done.stderr[-4000:]
    assert "--optimizer" in done.stdout


def test_only_torch_is_a_hard_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = [re.match(r"[A-Za-z0-9_.-]+", d).group(0).lower() for d in project["dependencies"]]
    assert names == ["torch"]
    extras = project["optional-dependencies"]
    assert {"train", "compare", "all", "dev", "bench"} <= set(extras)
    assert any(d.startswith("samlm[") and "compare" in d for d in extras["all"])
    assert any(d.startswith("matplotlib") for d in extras["compare"])


def test_make_install_installs_everything():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r'pip install -e "\.\[all,dev,bench\]"', makefile), makefile


def test_version_option_prints_the_package_version(capsys):
    from samlm import __version__, cli

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert __version__ == project["version"]
    with pytest.raises(SystemExit) as stop:
        cli.main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"samlm {__version__}"
