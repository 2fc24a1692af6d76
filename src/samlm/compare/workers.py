"""What the local backend's worker processes do when they start (:func:`worker_init`)."""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # prctl(2)


def worker_init(driver: int) -> None:
    """In a local worker process: Ctrl-C is the driver's to handle (it stops the workers),
    and the worker dies with the driver (``prctl(PR_SET_PDEATHSIG)``, Linux), so none is
    left training when the driver is killed."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != driver:  # the driver died before the line above
        os._exit(1)
