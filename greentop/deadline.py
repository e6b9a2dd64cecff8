"""A time limit on each read of a trace, so a damaged file fails instead of hanging.

Some damage sends HDF5 itself into a loop: 512 zeroed bytes in the global heap that holds a
trace's strings made reading ``/events/kind`` spin forever, inside the library, where no retry
limit applies. h5py releases the GIL while HDF5 works, so the read runs in a worker thread and the
caller waits at most ``read_timeout_s()`` (``GREENTOP_READ_TIMEOUT_S``, 120 s by default: reading
one channel of an hour at 1 kHz takes well under a second) before giving up.

A read that timed out cannot be stopped: its thread keeps HDF5's lock, so nothing in this process
can use h5py afterwards (``stuck()`` says so; trace files then skip their close, which would wait
on that lock forever). The ``greentop`` command prints its one line and exits at once.
"""

from __future__ import annotations

import os
import threading
import traceback
from typing import Callable, TypeVar

T = TypeVar("T")
ENV_VAR = "GREENTOP_READ_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 120.0

_stuck = threading.Event()


def read_timeout_s() -> float:
    """The limit on one read, s (``GREENTOP_READ_TIMEOUT_S``; 0 or less: none)."""
    try:
        return float(os.environ.get(ENV_VAR, DEFAULT_TIMEOUT_S))
    except ValueError:
        return DEFAULT_TIMEOUT_S


def stuck() -> bool:
    """Whether a read timed out in this process (h5py is then unusable here)."""
    return _stuck.is_set()


def bounded(fn: Callable[[], T], on_timeout: Callable[[float], BaseException]) -> T:
    """``fn()``, or ``on_timeout(limit_s)`` raised when it takes longer than ``read_timeout_s()``."""
    limit = read_timeout_s()
    if limit <= 0 or _stuck.is_set():
        return fn()
    box: dict[str, object] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 -- handed to the caller as is
            # Free what the failed read's frames hold, here, in this thread: an h5py generator
            # left suspended mid-iteration (attrs.items()) keeps h5py's lock, which only this
            # thread can release; the caller would wait on it forever.
            traceback.clear_frames(exc.__traceback__)
            box["error"] = exc

    worker = threading.Thread(target=run, name="greentop-read", daemon=True)
    worker.start()
    worker.join(limit)
    if worker.is_alive():
        _stuck.set()
        raise on_timeout(limit)
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]
