"""One writer per results folder: the lock ``samlm compare`` holds on its ``--output``.

The lock is ``compare.lock`` (:data:`LOCK_FILE`) in the folder with an exclusive
``fcntl.flock`` on it, which the operating system drops when the holding process ends,
however it ends. The file says who holds it: ``{"host", "pid", "started", "command"}``.

- :func:`hold` takes the lock before anything is written; a folder another live process
  holds is refused with :class:`FolderLocked` (a ``ValueError``: ``samlm compare`` exits 2)
  naming that process and how to wait for it or stop it. A lock left by a process that is
  gone (its file's OS lock free; or held, though the pid it names on this host is dead, by
  a process it left behind) is taken over with a message. Holding is re-entrant within a
  process. On release the file is deleted, and the folders :func:`hold` made for it are
  removed again if nothing else was written in them.
- :func:`holder` reads who holds a folder without locking (``samlm report`` reads a
  folder being written).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

LOCK_FILE = "compare.lock"
_held: dict[Path, int] = {}  # folders this process holds, with the depth of hold()s


class FolderLocked(ValueError):
    """The folder is held by another live ``samlm compare``."""


def describe(info: dict[str, Any]) -> str:
    """``pid 123 on host h, started 2026-12-07 10:40:00 UTC (samlm compare ...)``."""
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(info.get("started", 0)))
    text = f"pid {info.get('pid')} on host {info.get('host')}, started {started}"
    return text + (f" ({info['command']})" if info.get("command") else "")


def _read(path: Path) -> dict[str, Any] | None:
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):  # absent, or being written
        return None
    return info if isinstance(info, dict) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _gone(info: dict[str, Any] | None) -> bool:
    """Whether the holder ``info`` names is known dead: on this host, its pid gone."""
    if not info or info.get("host") != socket.gethostname():
        return False
    return isinstance(info.get("pid"), int) and not _alive(info["pid"])


def holder(folder: str | Path) -> dict[str, Any] | None:
    """Who holds ``folder``, as its lock file says, if that process may be running (on
    another host it cannot be checked); None for no lock or a dead holder."""
    info = _read(Path(folder) / LOCK_FILE)
    return None if info is None or _gone(info) else info


def _refusal(folder: Path, info: dict[str, Any] | None) -> FolderLocked:
    who = describe(info) if info else "a process that is starting"
    pid = info.get("pid") if info else "PID"
    where = "" if not info or info.get("host") == socket.gethostname() else f" on {info['host']}"
    return FolderLocked(
        f"{folder} is being written by another samlm compare: {who}. Wait for it to finish "
        f"(`samlm report {folder}` shows the cells done so far), or stop it (Ctrl-C in its "
        f"terminal, or `kill -INT {pid}`{where}) and rerun this command to go on where it "
        "stopped"
    )


def _try_lock(path: Path) -> int | None:
    """An fd holding the OS lock on ``path`` (the file there now), or None if busy."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    try:
        same = os.fstat(fd).st_ino == path.stat().st_ino
    except FileNotFoundError:  # deleted by its holder's release meanwhile
        same = False
    if not same:
        os.close(fd)
        return _try_lock(path)
    return fd


def _acquire(path: Path) -> int:
    """Lock ``path``, taking over a dead holder's lock with a message."""
    fd = _try_lock(path)
    before = _read(path)
    if fd is None:
        if not _gone(before):
            raise _refusal(path.parent, before)
        # held by what a dead holder left behind: a new file, the old one's lock kept there
        path.unlink(missing_ok=True)
        fd = _try_lock(path)
        if fd is None:
            raise _refusal(path.parent, _read(path))
    if before:
        print(
            f"samlm compare: taking over {path}, left by {describe(before)}, which is no "
            "longer running",
            file=sys.stderr,
        )
    return fd


def _make(folder: Path) -> list[Path]:
    """Make ``folder`` and its missing parents; returns those it made, deepest first."""
    made = []
    for path in [folder, *folder.parents]:
        if path.exists():
            break
        made.append(path)
    folder.mkdir(parents=True, exist_ok=True)
    return made


@contextlib.contextmanager
def hold(folder: str | Path, argv: list[str] | None = None) -> Iterator[None]:
    """Hold ``folder``'s lock for the block (see the module docstring); ``argv``: the
    command's arguments, recorded for the message a second run gets."""
    folder = Path(folder).resolve()
    if folder in _held:  # this process holds it already
        _held[folder] += 1
        try:
            yield
        finally:
            _held[folder] -= 1
        return
    made = _make(folder)
    path = folder / LOCK_FILE
    try:
        fd = _acquire(path)
    except BaseException:
        _remove_empty(made)
        raise
    info = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}
    info["command"] = shlex.join(["samlm", *(sys.argv[1:] if argv is None else argv)])
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps(info).encode() + b"\n")
    _held[folder] = 1
    try:
        yield
    finally:
        del _held[folder]
        path.unlink(missing_ok=True)  # before the OS lock goes: no next holder's file
        os.close(fd)
        _remove_empty(made)


def _remove_empty(made: list[Path]) -> None:
    """Remove the folders :func:`hold` made, where nothing else was written."""
    for path in made:
        with contextlib.suppress(OSError):  # not empty: something was written there
            path.rmdir()


def contents(folder: Path) -> list[Path]:
    """What ``folder`` holds besides its lock."""
    return [p for p in folder.iterdir() if p.name != LOCK_FILE]
