"""Ray confined for the tests: its temp folder (where Ray records the cluster to join) a
short folder of the test's own, a test token in ``RAY_AUTH_TOKEN`` (nothing written to
``~/.ray``), no ``RAY_ADDRESS``, and its servers on 127.0.0.1 only: a user's cluster on
the same machine is neither joined nor touched, nor is any other address used."""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

# Ray 2.60 turns token authentication on for an instance that ray.init starts; one token
# for the whole session (Ray's token loader caches the first it reads in a process)
TOKEN = "5a31" * 16
NAMES = ("RAY_TMPDIR", "RAY_AUTH_TOKEN", "RAY_AUTH_MODE", "RAY_ADDRESS", "RAY_AUTH_TOKEN_PATH")


def short_dir() -> Path:
    """A fresh folder under /tmp with a short path (Ray's socket paths must stay under
    107 characters, which a pytest tmp_path may not)."""
    return Path(tempfile.mkdtemp(prefix="samlm-ray-", dir="/tmp"))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def confined(temp_dir: Path) -> Iterator[None]:
    """This process's Ray confined as the module says, for the ``with`` block; the
    environment and Ray's constant restored after."""
    from ray._private import ray_constants

    saved = {name: os.environ.get(name) for name in NAMES}
    cluster = ray_constants.ENABLE_RAY_CLUSTER
    for name in ("RAY_AUTH_MODE", "RAY_ADDRESS", "RAY_AUTH_TOKEN_PATH"):
        os.environ.pop(name, None)
    os.environ.update(RAY_TMPDIR=str(temp_dir), RAY_AUTH_TOKEN=TOKEN)
    # what RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 does when read at import: this machine's
    # Ray on 127.0.0.1 (else Ray replaces 127.0.0.1 by the machine's address, and listens
    # on every interface)
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = cluster
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def clean_env(temp_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a Ray command line or driver started by a test: this one
    without Ray's variables, Ray's temp folder ``temp_dir``, no usage statistics."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(RAY_TMPDIR=str(temp_dir), RAY_USAGE_STATS_ENABLED="0", **extra)
    return env
