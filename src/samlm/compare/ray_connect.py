"""Connecting ``samlm compare``'s driver to Ray, and saying why it could not.

- No ``--address``: ``ray.init(address="local")``, a Ray instance of the driver's own for
  the grid, never a cluster Ray would find by itself (``RAY_ADDRESS``, or the
  ``ray_current_cluster`` file a crashed cluster leaves in Ray's temp folder: joining that
  hangs). Ray 2.60 turns token authentication on for it and writes a token to
  ``~/.ray/auth_token`` when there is none.
- ``auto`` (``RAY_ADDRESS``, else the cluster this machine started last), ``host:port`` or
  ``ray://host:port`` (Ray Client): before ``ray.init``, one gRPC call without a token to
  the cluster's GCS (or Ray Client server). Nothing answering is an error at once (Ray
  itself retries a dead address for minutes); a refusal for authentication means the
  cluster uses token authentication, and the driver then needs ``RAY_AUTH_MODE=token``
  (Ray sets it by itself only for ``auto`` with a token at hand) and the cluster's token
  (``RAY_AUTH_TOKEN``, the file ``RAY_AUTH_TOKEN_PATH`` names, else ``~/.ray/auth_token``,
  in Ray's order), which a second call checks. Through Ray Client, an init that its
  server fails (``ConnectionAbortedError``) is tried again, 3 tries in all. Each failure
  is a ValueError naming the address and the cause, which ``samlm compare`` reports with
  exit code 2.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

# one cheap call of each server, answered only to an authenticated caller
GCS_METHOD = "/ray.rpc.NodeInfoGcsService/GetClusterId"
CLIENT_METHOD = "/ray.rpc.RayletDriver/ClusterInfo"
CLIENT_PREFIX = "ray://"
PROBE_TIMEOUT_S = 5.0
# Ray Client's server starts a server process of its own for each driver, and that start
# can fail once under load with an empty "Initialization failure from server" (seen in CI
# on 2 busy cores, not reproduced idle): the driver tries again, after 2 s then 4 s
CLIENT_INIT_TRIES = 3
CLIENT_RETRY_PAUSE_S = 2.0
FIX = "copy the head's ~/.ray/auth_token to this machine, or set RAY_AUTH_TOKEN to its content"


def connect(ray: Any, address: str | None, options: dict[str, Any]) -> None:
    """``ray.init`` for ``address`` (None: a local instance of our own) with ``options``;
    a ValueError naming the address and the cause when Ray cannot be joined."""
    if address is None:
        ray.init(address="local", **{"include_dashboard": False, **options})
        return
    problem = diagnose(address)
    if problem:
        raise ValueError(f"--address {address}: {problem}")
    tries = CLIENT_INIT_TRIES if _through_client(address) else 1
    for attempt in range(1, tries + 1):
        try:
            ray.init(address=address, **options)
            return
        except ConnectionAbortedError as err:  # Ray Client's server failed the init
            if attempt == tries:
                raise ValueError(f"--address {address}: {_cause(err)} ({tries} tries)") from None
            time.sleep(CLIENT_RETRY_PAUSE_S * attempt)
        except (ConnectionError, ray.exceptions.AuthenticationError) as err:
            raise ValueError(f"--address {address}: {_cause(err)}") from None


def _cause(err: Exception) -> str:
    """``cannot reach Ray:`` and the first line of ``err`` (its type when it has none)."""
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return f"cannot reach Ray: {first}"


def endpoint(address: str) -> tuple[str, str]:
    """The ``host:port`` that ``ray.init(address=...)`` would call, and the method to probe
    there; a ConnectionError when ``auto`` finds no cluster."""
    if _through_client(address):
        address = os.environ["RAY_ADDRESS"] if address == "auto" else address
        return address[len(CLIENT_PREFIX) :].split("/")[0], CLIENT_METHOD
    from ray._private.services import canonicalize_bootstrap_address

    return canonicalize_bootstrap_address(address), GCS_METHOD  # Ray's own resolution


def _through_client(address: str) -> bool:
    """Whether ``ray.init(address=...)`` goes through Ray Client (``ray://``, or ``auto``
    with a ``ray://`` RAY_ADDRESS)."""
    if address == "auto":
        address = os.environ.get("RAY_ADDRESS", "")
    return address.startswith(CLIENT_PREFIX)


def diagnose(address: str) -> str | None:
    """Why the driver cannot join ``address`` (unreachable, or refused for authentication),
    or None when nothing stands in the way that a probe can see."""
    try:
        target, method = endpoint(address)
    except ConnectionError as err:  # auto, and no cluster recorded on this machine
        return f"cannot reach Ray: {str(err).strip().splitlines()[0]}"
    except ValueError as err:  # not host:port
        return str(err)
    import grpc

    code, details = probe(target, method, token=None)
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return (
            f"cannot reach Ray at {target}: nothing answers there ({details}); is the "
            "cluster started (ray start --head) and are the host and port right?"
        )
    if code != grpc.StatusCode.UNAUTHENTICATED:
        return None  # answered without a token: no token authentication
    token, source = find_token()
    lacks = missing(address, token, source)
    if not lacks and probe(target, method, token)[0] == grpc.StatusCode.UNAUTHENTICATED:
        lacks = [f"the token from {source} is not the cluster's: {FIX}"]
    if not lacks:
        return None
    return (
        f"Ray at {target} refused this driver for authentication: the cluster uses token "
        f"authentication, and {'; '.join(lacks)}"
    )


def missing(address: str, token: str | None, source: str) -> list[str]:
    """What this driver lacks to join a cluster with token authentication, in words."""
    lacks = []
    mode = os.environ.get("RAY_AUTH_MODE")
    if mode is None and not (address == "auto" and token):  # Ray's own rule for auto
        lacks.append("RAY_AUTH_MODE is unset here: set RAY_AUTH_MODE=token")
    elif mode is not None and mode.lower() != "token":
        lacks.append(f"RAY_AUTH_MODE is {mode!r} here: set RAY_AUTH_MODE=token")
    if token is None:
        lacks.append(f"no token was found here ({source}): {FIX}")
    return lacks


def find_token() -> tuple[str | None, str]:
    """The token Ray would send, in Ray's order, and where it comes from (or, without
    one, where it was looked for)."""
    variable = os.environ.get("RAY_AUTH_TOKEN", "").strip()
    if variable:
        return variable, "the RAY_AUTH_TOKEN variable"
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    file = Path(path) if path else Path.home() / ".ray" / "auth_token"
    where = f"the file {file}" + (" (RAY_AUTH_TOKEN_PATH)" if path else "")
    token = file.read_text().strip() if file.is_file() else ""
    if token:
        return token, where
    return None, f"RAY_AUTH_TOKEN is unset and {where} is absent or empty"


def probe(target: str, method: str, token: str | None) -> tuple[Any, str]:
    """The status code and details of one call of ``method`` at ``target`` (an empty
    request), with ``token`` as Ray sends it or without one."""
    import grpc

    metadata = [("authorization", f"Bearer {token}")] if token else None
    with grpc.insecure_channel(target) as channel:
        try:
            channel.unary_unary(method)(b"", timeout=PROBE_TIMEOUT_S, metadata=metadata)
        except grpc.RpcError as err:
            return err.code(), err.details()
    return grpc.StatusCode.OK, ""
