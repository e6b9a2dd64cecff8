"""What phase tagging costs the workload, per call.

    python benchmarks/bench_phase.py [--quick]

Conditions, each timed in batches (``BATCH`` calls per batch, median of the per-call time over
the batches, after a warm-up batch):

- ``nullcontext``:  ``with contextlib.nullcontext():`` -- the floor any ``with`` pays.
- ``off``:          ``with greentop.phase("x"):``, ``greentop.mark("x")``,
                    ``greentop.count(samples=1)`` with no launcher (``GREENTOP_EVENTS`` unset).
- ``on``:           the same inside a launcher: a real ``EventListener`` in another process
                    (where ``greentop record`` keeps it) drained every 20 ms, like the recorder.
                    Bursts of ``BATCH`` calls back to back are a worst case: the kernel holds only
                    ``net.unix.max_dgram_qlen`` datagrams, so the workload waits for the listener.
- ``on_paced``:     inside a launcher with a 50 us pause between calls (not timed), closer to a
                    workload that tags at most tens of thousands of times a second.
- ``on_no_ipc``:    inside a launcher with the datagram send stubbed out: greentop's own Python
                    cost (ids, context variable, message formatting), without the kernel's.

One JSON object per line on stdout (unit: ns per call; a phase is enter + exit = 2 events), and
how many events the listener received versus sent, so a loss would show.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # greentop from a checkout

import greentop  # noqa: E402
from greentop import phases  # noqa: E402
from greentop.listener import EventListener  # noqa: E402

BATCH = 1000
DRAIN_S = 0.02  # the recorder drains at 10-50 Hz


def _listener_process(conn: Connection) -> None:
    """A launcher stand-in: listen, drain every DRAIN_S, report totals when told to stop."""
    with EventListener() as listener:
        conn.send(listener.path)
        received = 0
        while not conn.poll(DRAIN_S):
            received += len(listener.drain())
        conn.recv()
        time.sleep(0.1)
        listener.stop()
        received += len(listener.drain())
        conn.send((received, listener.dropped, listener.overflowed))


def _time_per_call_ns(body: Callable[[int], None], batches: int, pause_s: float = 0.0) -> float:
    """Median over ``batches`` of (time of one batch of BATCH calls) / BATCH, in ns."""
    body(BATCH)  # warm-up
    per_call: list[float] = []
    gc.disable()  # a collection inside one batch would only add noise
    try:
        for _ in range(batches):
            if pause_s:
                total = 0
                for _ in range(BATCH):
                    time.sleep(pause_s)
                    t0 = time.perf_counter_ns()
                    body(1)
                    total += time.perf_counter_ns() - t0
                per_call.append(total / BATCH)
            else:
                t0 = time.perf_counter_ns()
                body(BATCH)
                per_call.append((time.perf_counter_ns() - t0) / BATCH)
    finally:
        gc.enable()
    return statistics.median(per_call)


def _bodies() -> dict[str, Callable[[int], None]]:
    phase, mark, count, nullcontext = greentop.phase, greentop.mark, greentop.count, contextlib.nullcontext

    def with_null(n: int) -> None:
        for _ in range(n):
            with nullcontext():
                pass

    def with_phase(n: int) -> None:
        for _ in range(n):
            with phase("x"):
                pass

    def with_phase_attrs(n: int) -> None:
        for i in range(n):
            with phase("step", epoch=3, step=i):
                pass

    def do_mark(n: int) -> None:
        for _ in range(n):
            mark("x")

    def do_count(n: int) -> None:
        for _ in range(n):
            count(samples=1)

    return {"nullcontext": with_null, "phase": with_phase, "phase_attrs": with_phase_attrs, "mark": do_mark, "count": do_count}


def _events_per_call(op: str) -> int:
    return {"phase": 2, "phase_attrs": 2, "mark": 1, "count": 1}.get(op, 0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer batches")
    args = ap.parse_args()
    batches = 30 if args.quick else 200
    paced_batches = 3 if args.quick else 10
    results: list[dict[str, Any]] = []

    def emit(row: dict[str, Any]) -> None:
        results.append(row)
        print(json.dumps(row), flush=True)

    emit({"machine": platform.node(), "cpus": os.cpu_count(), "python": platform.python_version(), "batch": BATCH,
          "max_dgram_qlen": Path("/proc/sys/net/unix/max_dgram_qlen").read_text().strip()})

    os.environ.pop(phases.ENV_VAR, None)
    phases._reset()
    bodies = _bodies()
    for op, body in bodies.items():
        emit({"condition": "off" if op != "nullcontext" else "baseline", "op": op,
              "ns_per_call": round(_time_per_call_ns(body, batches), 1)})

    ctx = mp.get_context("fork")
    parent_conn, child_conn = ctx.Pipe()
    proc = ctx.Process(target=_listener_process, args=(child_conn,), daemon=True)
    proc.start()
    os.environ[phases.ENV_VAR] = parent_conn.recv()
    phases._reset()
    sent = 0
    for op, body in bodies.items():
        if op == "nullcontext":
            continue
        ns = _time_per_call_ns(body, batches)
        sent += (batches + 1) * BATCH * _events_per_call(op)
        emit({"condition": "on", "op": op, "ns_per_call": round(ns, 1)})
    for op in ("phase", "mark"):
        ns = _time_per_call_ns(bodies[op], paced_batches, pause_s=50e-6)
        sent += (paced_batches * BATCH + BATCH) * _events_per_call(op)
        emit({"condition": "on_paced", "op": op, "ns_per_call": round(ns, 1)})
    parent_conn.send("stop")
    received, dropped, overflowed = parent_conn.recv()
    client = phases._get_client()
    assert client is not None
    client.send = lambda data: True  # type: ignore[method-assign]
    for op, body in bodies.items():
        if op != "nullcontext":
            emit({"condition": "on_no_ipc", "op": op, "ns_per_call": round(_time_per_call_ns(body, batches), 1)})
    proc.join(10)
    emit({"events_sent": sent, "events_received": received, "dropped": dropped, "overflowed": overflowed,
          "send_failures": phases.send_failures})
    return 0


if __name__ == "__main__":
    sys.exit(main())
