"""Continuous batching for ``python -m workloads serve --engine continuous``: transformers' own
``ContinuousBatchingManager`` behind the interface of ``server.BatchEngine``.

The manager (``model.init_continuous_batching``, transformers 4.56 and later) keeps a paged KV
cache and schedules per step: a request joins the running batch at the next step instead of
waiting for the batch to finish, and its prompt is prefilled in chunks next to the other requests'
decodes. Prefill and decode therefore share steps, so this engine cannot tag them apart: it tags
each *busy period* (from the first request in flight to the moment none is) as a ``generate``
phase, and counts ``input_tokens``, ``output_tokens`` and ``requests`` there as each request ends.

One dispatcher thread owns every call into the manager: it adds new requests (inside the busy
period's phase), routes the streamed results to each request's event loop, cancels requests
whose client went away, and opens and closes the phases. The manager's own thread runs the model.
"""

from __future__ import annotations

import math
import queue
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

import greentop
from workloads import llm
from workloads.genrequest import (
    GenRequest,
    QueueFull,
    deliver_many,
    start_engine_thread,
)

POLL_S = 0.02  # how long the dispatcher waits for a result before it looks at new and cancelled requests
CPU_BATCH_TOKENS = 512  # tokens per step on the CPU (on a GPU transformers sizes it from free memory)


def available(model: Any) -> bool:
    """Whether the installed transformers offers continuous batching for this model."""
    return hasattr(model, "init_continuous_batching")


@dataclass
class _Flight:
    req: GenRequest
    sent: int = 0  # tokens handed to the event loop so far


class ContinuousEngine:
    """Same surface as ``BatchEngine`` (start, stop, submit, queued, health) over transformers'
    continuous batching. ``max_batch_size`` caps the requests per step; ``max_queue`` caps the
    requests admitted beyond those (further ones get 429)."""

    def __init__(self, lm: llm.LoadedModel, max_batch_size: int, max_queue: int, stream_interval_ms: float = 0.0) -> None:
        self.lm = lm
        self.max_batch_size = max_batch_size
        self.max_queue = max_queue
        self.stream_interval_s = stream_interval_ms / 1000.0
        self._new: queue.Queue[GenRequest] = queue.Queue()
        self._admitted = 0  # submitted and not yet finished (guarded by _lock)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()  # set by submit: an idle dispatcher waits on it
        self._thread: threading.Thread | None = None
        self._manager: Any = None
        self.batches = 0  # busy periods, for /health
        self.busy_s = 0.0
        self.tokens_out = 0

    # ---- the BatchEngine interface ----

    def run(self) -> None:
        """Dispatch in this thread; the generation itself runs in transformers' own thread."""
        self._start_manager()
        self._run()

    def start(self) -> None:
        self._start_manager()
        self._thread = start_engine_thread(self._run, "cb-dispatch")

    def ask_stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def _start_manager(self) -> None:
        if self._manager is None:
            self._manager = self._make_manager()
            self._manager.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Requests still in flight or waiting get an error; the manager's thread is joined."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
        if self._manager is not None and self._manager.is_running():
            self._manager.stop(block=True, timeout=timeout_s)

    def submit(self, req: GenRequest) -> None:
        with self._lock:
            if self._admitted >= self.max_batch_size + self.max_queue:
                raise QueueFull(f"server overloaded: {self.max_batch_size} requests running and {self.max_queue} "
                                "waiting; retry later")
            self._admitted += 1
        self._new.put(req)
        self._wake.set()

    def queued(self) -> int:
        """Requests admitted beyond one full step's worth (an estimate: the manager's queue is its own)."""
        with self._lock:
            return max(0, self._admitted - self.max_batch_size)

    def health(self) -> dict[str, Any]:
        with self._lock:
            in_flight = self._admitted
        return {"engine": "continuous", "in_flight": in_flight, "busy_periods": self.batches, "busy_s": self.busy_s,
                "output_tokens": self.tokens_out}

    # ---- the dispatcher thread ----

    def _make_manager(self) -> Any:
        from transformers import GenerationConfig
        from transformers.generation.configuration_utils import ContinuousBatchingConfig

        # Fixed-length greedy generation (eos -1 never matches), as in the batch engine.
        gen = GenerationConfig(do_sample=False, eos_token_id=-1, pad_token_id=0)
        sizes: dict[str, Any] = {"max_requests_per_batch": self.max_batch_size}
        if self.lm.device.type == "cpu":
            # Left alone, transformers sizes the paged cache from free memory, which on a CPU host
            # takes tens of seconds and gigabytes: give it what max_batch_size full-length requests need.
            block = 256  # transformers' default page size (``block_size``/``page_size`` by version)
            sizes |= {"num_blocks": self.max_batch_size * math.ceil(self.lm.max_positions / block) + 1,
                      "max_batch_tokens": CPU_BATCH_TOKENS}
        model: Any = self.lm.model
        return model.init_continuous_batching(generation_config=gen, continuous_batching_config=ContinuousBatchingConfig(**sizes))

    def _run(self) -> None:
        flights: dict[str, _Flight] = {}
        pending: list[tuple[GenRequest, int | Exception | None]] = []
        last_flush = 0.0
        phase: Any = None
        t_busy = 0.0
        try:
            while not self._stop.is_set():
                phase, t_busy = self._admit(flights, phase, t_busy)
                self._cancel_gone(flights)
                result = self._manager.get_result(timeout=POLL_S) if flights else None
                if result is not None:
                    self._route(result, flights, pending)
                elif flights and not self._manager.is_running():  # its thread died: nothing more will come
                    raise RuntimeError("transformers' continuous batching thread stopped")
                if pending and (self.stream_interval_s <= 0 or time.monotonic() - last_flush >= self.stream_interval_s
                                or any(item is None or isinstance(item, Exception) for _, item in pending)):
                    _flush(pending)
                    pending = []
                    last_flush = time.monotonic()
                if not flights and phase is not None:
                    phase.__exit__(None, None, None)
                    phase = None
                    self.busy_s += time.monotonic() - t_busy
                if not flights and self._new.empty():
                    self._wake.wait(POLL_S)  # idle: the next request wakes it at once
                    self._wake.clear()
        except Exception as exc:  # noqa: BLE001 -- the engine failing must fail its requests, not hang them
            print(f"serve: continuous batching failed: {exc!r}", file=sys.stderr, flush=True)
            err: Exception = RuntimeError(f"generation failed: {exc}")
        else:
            err = RuntimeError("server shutting down")
        _flush(pending)
        self._fail_all(flights, err)
        if phase is not None:
            phase.__exit__(None, None, None)
            self.busy_s += time.monotonic() - t_busy

    def _admit(self, flights: dict[str, _Flight], phase: Any, t_busy: float) -> tuple[Any, float]:
        while True:
            try:
                req = self._new.get_nowait()
            except queue.Empty:
                return phase, t_busy
            if req.cancelled.is_set():
                self._finished()
                continue
            if phase is None:  # a busy period starts: the work it does is tagged from here
                phase = greentop.phase("generate")
                phase.__enter__()
                t_busy = time.monotonic()
                self.batches += 1
            rid = self._manager.add_request(req.prompt_ids, max_new_tokens=req.max_tokens, streaming=True)
            if rid is None:  # the manager refused it (stopping)
                _flush([(req, RuntimeError("server shutting down"))])
                self._finished()
                continue
            flights[rid] = _Flight(req)

    def _cancel_gone(self, flights: dict[str, _Flight]) -> None:
        for rid in [rid for rid, f in flights.items() if f.req.cancelled.is_set()]:
            self._manager.cancel_request(rid)  # the manager sends nothing more for it
            self._count(flights.pop(rid))

    def _route(self, result: Any, flights: dict[str, _Flight], pending: list[tuple[GenRequest, int | Exception | None]]) -> None:
        flight = flights.get(result.request_id)
        if flight is None:  # cancelled meanwhile
            return
        if result.error:
            pending.append((flight.req, RuntimeError(f"generation failed: {result.error}")))
            self._count(flights.pop(result.request_id))
            return
        tokens = list(result.generated_tokens)[: flight.req.max_tokens]
        pending.extend((flight.req, t) for t in tokens[flight.sent:])
        flight.sent = len(tokens)
        if result.is_finished() or flight.sent >= flight.req.max_tokens:
            pending.append((flight.req, None))
            self._count(flights.pop(result.request_id))
            if not result.is_finished():  # all its tokens are out: free its slot now
                self._manager.cancel_request(result.request_id)

    def _count(self, flight: _Flight) -> None:
        greentop.count(input_tokens=len(flight.req.prompt_ids), output_tokens=flight.sent, requests=1)
        self.tokens_out += flight.sent
        self._finished()

    def _finished(self) -> None:
        with self._lock:
            self._admitted -= 1

    def _fail_all(self, flights: dict[str, _Flight], err: Exception) -> None:
        items: list[tuple[GenRequest, int | Exception | None]] = [(f.req, err) for f in flights.values()]
        for f in list(flights.values()):
            self._count(f)
        flights.clear()
        while True:
            try:
                req = self._new.get_nowait()
            except queue.Empty:
                break
            items.append((req, err))
            self._finished()
        _flush(items)


def _flush(items: list[tuple[GenRequest, int | Exception | None]]) -> None:
    """Hand items to the event loop in one wake-up (every request comes from the server's one loop)."""
    if items:
        deliver_many(items[0][0].loop, items)
