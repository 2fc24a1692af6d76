"""Hub names when the Hub cannot be reached: the cached snapshot, found at once.

Asked for a file it cannot fetch, ``huggingface_hub`` retries five times (about 30 s)
before it looks in its cache, and a run asks for several files. When the Hub cannot be
reached (``HF_HUB_OFFLINE`` is set, or the Hub's host name does not resolve and no proxy
is configured), a Hub name resolves here to its snapshot folder in the local cache, so
that every later load reads local files; a name that is not cached fails at once.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from huggingface_hub import constants, try_to_load_from_cache

PROXIES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


def host() -> str:
    return urlparse(constants.ENDPOINT).hostname or constants.ENDPOINT


def reachable() -> bool:
    """False when offline is asked for or the Hub's host does not resolve; behind a
    proxy the proxy resolves it, so no lookup is made here."""
    if constants.HF_HUB_OFFLINE:
        return False
    if any(os.environ.get(name) for name in PROXIES):
        return True
    try:
        socket.getaddrinfo(host(), 443)
    except OSError:
        return False
    return True


def cached_snapshot(repo_id: str) -> str | None:
    """The cached snapshot folder of ``repo_id`` (its ``main`` revision) holding its
    ``config.json``, or None."""
    try:
        found = try_to_load_from_cache(repo_id, "config.json")
    except ValueError:  # not a valid repo id
        return None
    return str(Path(found).parent) if isinstance(found, str) else None
