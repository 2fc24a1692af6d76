"""``connect`` through Ray Client: an init that Ray Client's server fails
(``ConnectionAbortedError``, seen once in CI on busy cores) is tried again, 3 tries in
all; a GCS address is tried once; other errors are not retried. A stand-in ``ray`` records
each ``init``: no Ray process is started."""

from __future__ import annotations

import types

import pytest

from samlm.compare import ray_connect

FAILED = "Initialization failure from server:\n"


def _ray(failures: int, error: type[Exception] = ConnectionAbortedError):
    """A ``ray`` whose ``init`` raises ``error`` ``failures`` times, then succeeds."""
    calls = []

    def init(**kwargs):
        calls.append(kwargs)
        if len(calls) <= failures:
            raise error(FAILED)

    auth = type("AuthenticationError", (Exception,), {})
    return types.SimpleNamespace(
        init=init, exceptions=types.SimpleNamespace(AuthenticationError=auth)
    ), calls


@pytest.fixture
def pauses(monkeypatch):
    """The pauses between tries (not slept), with the probe saying nothing is wrong."""
    slept = []
    monkeypatch.setattr(ray_connect, "diagnose", lambda address: None)
    monkeypatch.setattr(ray_connect.time, "sleep", slept.append)
    return slept


def test_a_failed_ray_client_init_is_tried_again(pauses):
    ray, calls = _ray(failures=2)
    ray_connect.connect(ray, "ray://head:10001", {"log_to_driver": False})
    assert calls == [{"address": "ray://head:10001", "log_to_driver": False}] * 3
    assert pauses == [2.0, 4.0]


def test_three_failed_ray_client_inits_are_named_with_the_tries(pauses):
    ray, calls = _ray(failures=3)
    with pytest.raises(ValueError) as err:
        ray_connect.connect(ray, "ray://head:10001", {})
    assert str(err.value) == (
        "--address ray://head:10001: cannot reach Ray: Initialization failure from server: "
        "(3 tries)"
    )
    assert len(calls) == 3


def test_auto_with_a_ray_client_address_is_tried_again(pauses, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")
    ray, calls = _ray(failures=1)
    ray_connect.connect(ray, "auto", {})
    assert len(calls) == 2


@pytest.mark.parametrize(
    "address, error",
    [("head:6379", ConnectionAbortedError), ("ray://head:10001", ConnectionRefusedError)],
)
def test_a_gcs_address_or_another_error_is_tried_once(pauses, monkeypatch, address, error):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    ray, calls = _ray(failures=1, error=error)
    with pytest.raises(ValueError, match=f"--address {address}: cannot reach Ray: Init"):
        ray_connect.connect(ray, address, {})
    assert len(calls) == 1 and pauses == []
