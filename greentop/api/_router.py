"""Routes ``greentop.phase``/``mark``/``count`` of this process to its running Monitors.

While at least one Monitor runs, one :class:`Router` is installed as the phase module's event
sink (``phases._swap_client``). It takes the same datagrams a launcher would receive, parses them
with the launcher's own parser (``events.parse_event``), hands each event to every running
Monitor, and forwards the datagram unchanged to the launcher when the process runs under one, so
``greentop record -- python train.py`` still sees every phase of a script that also has a Monitor.
A forked child re-decides its sink from its environment: its phases reach a launcher, never the
parent's Monitors (they live in the parent's memory).
"""

from __future__ import annotations

import itertools
import os
import threading
from typing import Any, Callable, Protocol

from greentop import phases
from greentop.events import Event, parse_event


class EventSink(Protocol):
    def add_event(self, event: Event) -> None: ...


class Router:
    """The in-process event sink: the interface of ``phases._Client`` over a list of Monitors."""

    def __init__(self, launcher: Any) -> None:
        from json.encoder import encode_basestring_ascii

        self.launcher = launcher  # the launcher's _Client, or None
        self.pid = os.getpid()
        self.json_str: Callable[[str], str] = encode_basestring_ascii
        self.sinks: tuple[EventSink, ...] = ()  # replaced, never mutated: send() reads it unlocked
        self._ids = itertools.count(1)
        # A rank of a distributed job tags its windows and phases with its rank, as under a launcher.
        self.rank_attrs: dict[str, int] = launcher.rank_attrs if launcher is not None else phases.rank_attrs()

    def new_id(self) -> str:
        # Under a launcher its ids stay unique across the whole run's processes.
        return self.launcher.new_id() if self.launcher is not None else f"{self.pid}:{next(self._ids)}"

    def send(self, data: bytes) -> bool:
        event = parse_event(data)
        if event is not None:
            for sink in self.sinks:
                sink.add_event(event)
        if self.launcher is not None:
            return bool(self.launcher.send(data))
        return event is not None

    def close(self) -> None:
        return None


_lock = threading.Lock()
_router: Router | None = None


def attach(sink: EventSink) -> None:
    """Start routing this process's events to ``sink`` (installing the router if needed)."""
    global _router
    with _lock:
        if _router is None or _router.pid != os.getpid():
            _router = Router(None)
            _router.launcher = phases._swap_client(_router)
        _router.sinks = (*_router.sinks, sink)


def detach(sink: EventSink) -> None:
    """Stop routing to ``sink``; the last one out puts the launcher's sink (or none) back."""
    global _router
    with _lock:
        router = _router
        if router is None or sink not in router.sinks:
            return
        router.sinks = tuple(s for s in router.sinks if s is not sink)
        if not router.sinks:
            if router.pid == os.getpid():
                phases._swap_client(router.launcher)
            _router = None
