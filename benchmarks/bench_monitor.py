"""Benchmark a Monitor in the calling process against Zeus-style window reads and a Python thread.

    python benchmarks/bench_monitor.py [--quick] [--out FILE.json]

Eight "fake sysfs" channels (files of decimal µJ re-read with pread, as ``energy_uj`` is read).
A fixed ~0.3 s pure-Python function (the "busy loop") runs, round-robin with the order rotated
every round, under four conditions:

- ``none``: nothing measures.
- ``window_reads``: the counters are read only at the window's two edges (what Zeus's
  ``begin_window``/``end_window`` does): 8 preads and parses before and after, no thread.
- ``monitor``: a ``greentop.Monitor`` at 1 kHz on the 8 channels, the loop inside ``mon.window``.
- ``python_thread``: a plain Python sampling thread at 1 kHz (``benchmarks/_pysampler.py``).

Per condition: median wall time of the loop, its ratio to ``none``, the per-round paired ratio,
and the fastest run's ratio (on a shared machine other load only ever adds time);
for the two samplers also how many of their 1 kHz ticks they delivered during the loop and the
largest gap between samples. Then the Monitor's own costs: start (channels given; and with
discovery on this machine), stop, one ``window`` enter+exit, one ``begin``/``end`` pair, one
``greentop.phase`` enter+exit (routed to the Monitor in-process), and a
``measurement()`` after 10 s of data (5 s with --quick).

One JSON object per line on stdout, a table on stderr, everything in ``--out``. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for _machine, _pysampler
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # greentop from a checkout

from _busy import calibrate_work, py_work  # noqa: E402
from _machine import file_channels, machine_info  # noqa: E402
from _pysampler import PySampler  # noqa: E402

import greentop  # noqa: E402
from greentop.api import Monitor  # noqa: E402
from greentop.channel import Channel  # noqa: E402

N_CHANNELS = 8
RATE_HZ = 1000.0
CONDITIONS = ("none", "window_reads", "monitor", "python_thread")
RESULTS: list[dict[str, Any]] = []


def emit(rec: dict[str, Any]) -> None:
    RESULTS.append(rec)
    print(json.dumps(rec), flush=True)


def read_counters(fds: list[int]) -> list[int]:
    """One Zeus-style window edge: read every counter once."""
    return [int(os.pread(fd, 32, 0)) for fd in fds]


def delivery(t_ns: np.ndarray, t0: int, t1: int) -> tuple[float, float]:
    """(fraction of the 1 kHz ticks due in [t0, t1] that were delivered, largest gap in ms)."""
    inside = t_ns[(t_ns >= t0) & (t_ns <= t1)]
    edges = np.concatenate(([t0], inside, [t1]))
    return inside.size / ((t1 - t0) * 1e-9 * RATE_HZ), float(np.diff(edges).max()) * 1e-6


def one_round(cond: str, channels: list[Channel], n: int) -> tuple[float, float | None, float | None]:
    """Time the busy loop once under ``cond``: (seconds, delivered fraction, largest gap ms)."""
    if cond == "none":
        t0 = time.perf_counter()
        py_work(n)
        return time.perf_counter() - t0, None, None
    if cond == "window_reads":
        fds = [os.open(c.reader.path, os.O_RDONLY) for c in channels]
        try:
            t0 = time.perf_counter()
            read_counters(fds)
            py_work(n)
            read_counters(fds)
            return time.perf_counter() - t0, None, None
        finally:
            for fd in fds:
                os.close(fd)
    if cond == "monitor":
        mon = Monitor(rate=RATE_HZ, channels=channels)
        time.sleep(0.02)
        try:
            m0 = time.monotonic_ns()
            t0 = time.perf_counter()
            with mon.window("work"):
                py_work(n)
            el = time.perf_counter() - t0
            m1 = time.monotonic_ns()
        finally:
            mon.stop()
        return (el, *delivery(mon.samples(channels[0].name).t_ns, m0, m1))
    py = PySampler(channels, rate_hz=RATE_HZ).start()
    time.sleep(0.02)
    try:
        m0 = time.monotonic_ns()
        t0 = time.perf_counter()
        py_work(n)
        el = time.perf_counter() - t0
        m1 = time.monotonic_ns()
    finally:
        py.stop()
    return (el, *delivery(py.drain()[channels[0].name].t_ns, m0, m1))


def bench_overhead(channels: list[Channel], repeats: int) -> None:
    n = calibrate_work(0.3)
    py_work(n)
    times: dict[str, list[float]] = {c: [] for c in CONDITIONS}
    delivered: dict[str, list[float]] = {c: [] for c in CONDITIONS}
    gaps: dict[str, list[float]] = {c: [] for c in CONDITIONS}
    for rep in range(repeats):
        k = rep % len(CONDITIONS)
        for cond in CONDITIONS[k:] + CONDITIONS[:k]:
            gc.collect()
            el, frac, gap = one_round(cond, channels, n)
            times[cond].append(el)
            if frac is not None and gap is not None:
                delivered[cond].append(frac)
                gaps[cond].append(gap)
    base = statistics.median(times["none"])
    for cond in CONDITIONS:
        med = statistics.median(times[cond])
        rec: dict[str, Any] = {
            "bench": "busy_loop_overhead", "condition": cond, "repeats": repeats, "work_iters": n,
            "median_s": round(med, 5), "ratio_to_none": round(med / base, 4),
            "paired_ratio_median": round(statistics.median(a / b for a, b in zip(times[cond], times["none"])), 4),
            # The fastest runs: on a shared machine other processes only ever add time.
            "min_s": round(min(times[cond]), 5), "ratio_min_to_none": round(min(times[cond]) / min(times["none"]), 4),
            "times_s": [round(x, 5) for x in times[cond]],
        }
        if delivered[cond]:
            rec.update(ticks_delivered_median=round(statistics.median(delivered[cond]), 4),
                       largest_gap_ms_median=round(statistics.median(gaps[cond]), 2),
                       largest_gap_ms_max=round(max(gaps[cond]), 2))
        emit(rec)


def _median_us(fn: Callable[[], object], repeats: int) -> float:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out) * 1e6


def bench_costs(channels: list[Channel], repeats: int, data_s: float) -> None:
    starts, stops = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        mon = Monitor(rate=RATE_HZ, channels=channels)
        t1 = time.perf_counter()
        time.sleep(0.02)
        t2 = time.perf_counter()
        mon.stop()
        t3 = time.perf_counter()
        starts.append(t1 - t0)
        stops.append(t3 - t2)
    discovered = []
    for _ in range(max(repeats // 4, 3)):
        t0 = time.perf_counter()
        mon = Monitor(rate=RATE_HZ)  # discovery of this machine's own sources included
        discovered.append(time.perf_counter() - t0)
        mon.stop()
    emit({"bench": "monitor_start_stop", "channels": len(channels), "repeats": repeats,
          "start_ms_median": round(statistics.median(starts) * 1e3, 3), "stop_ms_median": round(statistics.median(stops) * 1e3, 3),
          "start_with_discovery_ms_median": round(statistics.median(discovered) * 1e3, 3),
          "discovered_channels": [c.name for c in mon.channels]})

    mon = Monitor(rate=RATE_HZ, channels=channels)
    try:
        def window_pair() -> None:
            with mon.window("w"):
                pass

        def begin_end() -> None:
            mon.begin("b")
            mon.end("b")

        def tagged_phase() -> None:
            with greentop.phase("p"):
                pass

        window_us = _median_us(window_pair, 2000)
        begin_end_us = _median_us(begin_end, 2000)
        phase_us = _median_us(tagged_phase, 2000)  # routed in-process to the Monitor
        time.sleep(data_s)
        with mon.window("last"):
            time.sleep(0.05)
        measurement_ms = _median_us(lambda: mon.measurement("last"), 3) / 1e3
        samples = int(mon.samples(channels[0].name).t_ns.size)
    finally:
        mon.stop()
    emit({"bench": "monitor_call_costs", "window_enter_exit_us_median": round(window_us, 2),
          "begin_end_us_median": round(begin_end_us, 2), "phase_with_monitor_us_median": round(phase_us, 2),
          "windows_logged": 6001,
          "measurement_ms_median": round(measurement_ms, 1), "samples_per_channel": samples, "channels": len(channels)})


def report() -> None:
    rows = [r for r in RESULTS if r["bench"] == "busy_loop_overhead"]
    print(f"\n{'condition':<14} {'median s':>9} {'ratio':>7} {'paired':>7} {'min':>7} {'ticks':>7} {'gap ms':>7}", file=sys.stderr)
    for r in rows:
        ticks = f"{r['ticks_delivered_median']:.1%}" if "ticks_delivered_median" in r else "-"
        gap = f"{r['largest_gap_ms_median']:.1f}" if "largest_gap_ms_median" in r else "-"
        print(f"{r['condition']:<14} {r['median_s']:>9.4f} {r['ratio_to_none']:>7.3f} {r['paired_ratio_median']:>7.3f} "
              f"{r['ratio_min_to_none']:>7.3f} {ticks:>7} {gap:>7}", file=sys.stderr)
    for r in RESULTS:
        if r["bench"] != "busy_loop_overhead":
            print(json.dumps(r), file=sys.stderr)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    ap.add_argument("--out", type=Path, help="write every result, with machine info, to this JSON file")
    ap.add_argument("--costs-only", action="store_true", help="only the Monitor's start/stop/call costs")
    args = ap.parse_args()
    info = machine_info()
    with tempfile.TemporaryDirectory() as tmp:
        channels = file_channels(Path(tmp), N_CHANNELS, width=12)
        if not args.costs_only:
            bench_overhead(channels, 5 if args.quick else 21)
        bench_costs(channels, 8 if args.quick else 30, 5.0 if args.quick else 10.0)
    report()
    if args.out:
        args.out.write_text(json.dumps({"machine": info, "results": RESULTS}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
