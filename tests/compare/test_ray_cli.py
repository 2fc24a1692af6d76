"""``samlm compare --backend ...``: options of the other backend and a missing Ray exit 2
naming the option, nothing written (no Ray instance runs here; an unreachable or refusing
cluster: ``test_ray_connect.py``)."""

from __future__ import annotations

import sys

import pytest

from samlm.cli import main


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--address", "auto"], "--address auto: only with --backend ray"),
        (["--cpus-per-cell", "2", "--retries", "1"], "--cpus-per-cell 2.0, --retries 1: only with"),
        (["--backend", "ray", "--workers", "2"], "--workers: only with --backend local"),
        (["--backend", "ray", "--cpus-per-cell", "0"], "--cpus-per-cell must be positive"),
        (["--backend", "ray", "--gpus-per-cell", "-1"], "--gpus-per-cell must be at least 0"),
    ],
)
def test_backend_options_of_the_other_backend_exit_2(tmp_path, capsys, argv, message):
    if "ray" in argv:
        pytest.importorskip("ray", reason="needs ray (pip install 'samlm[ray]')")
    out = tmp_path / "out"
    assert main(["compare", "--output", str(out), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_ray_backend_without_ray_exits_2_with_the_install_command(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails
    out = tmp_path / "out"
    assert main(["compare", "--backend", "ray", "--output", str(out)]) == 2
    assert "pip install 'samlm[ray]'" in capsys.readouterr().err
    assert not out.exists()
