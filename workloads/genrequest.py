"""What a serving engine and the HTTP side share: a request, its way back, and overload.

The HTTP handlers make a ``GenRequest`` and submit it to an engine (``server.BatchEngine`` or
``cbatch.ContinuousEngine``); the engine's thread hands each token back to the request's event
loop with ``deliver_many``, then ``None`` at the end, or an ``Exception``.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


class QueueFull(RuntimeError):
    """More requests waiting than ``--max-queue``: answered with 429."""


@dataclass
class GenRequest:
    """One completion request as the worker sees it. Results go back to the event loop through
    ``events`` (filled with ``loop.call_soon_threadsafe``): a token id, then ``None`` at the end,
    or an ``Exception`` if the batch failed."""

    prompt_ids: list[int]
    max_tokens: int
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue[int | Exception | None] = field(default_factory=asyncio.Queue)
    cancelled: threading.Event = field(default_factory=threading.Event)  # the client went away


class Engine(Protocol):
    """What the HTTP side needs of an engine."""

    lm: Any  # llm.LoadedModel

    def run(self) -> None:
        """Serve in the calling thread until ``ask_stop`` or ``stop``."""
    def start(self) -> None:
        """``run`` in a thread of its own."""
    def ask_stop(self) -> None:
        """Make ``run`` return soon; safe from a signal handler."""
    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop, join the engine's threads; requests still waiting get an error."""
    def submit(self, req: GenRequest) -> None:
        """Take the request, or raise ``QueueFull``."""
    def queued(self) -> int: ...
    def health(self) -> dict[str, Any]:
        """The engine's own figures for ``/health``."""


def start_engine_thread(target: Callable[[], None], name: str) -> threading.Thread:
    """A daemon thread running ``target`` in a copy of the caller's context, so the phases it
    opens nest under the caller's ``serve`` phase (greentop's current phase is a ContextVar; a
    bare thread would start at top level)."""
    ctx = contextvars.copy_context()
    thread = threading.Thread(target=ctx.run, args=(target,), name=name, daemon=True)
    thread.start()
    return thread


def deliver_many(loop: asyncio.AbstractEventLoop, items: list[tuple[GenRequest, int | Exception | None]]) -> None:
    def put_all() -> None:
        for req, item in items:
            req.events.put_nowait(item)

    try:
        loop.call_soon_threadsafe(put_all)
    except RuntimeError:  # the event loop is closed: the server is gone
        pass


def deliver(req: GenRequest, item: int | Exception | None) -> None:
    deliver_many(req.loop, [(req, item)])
