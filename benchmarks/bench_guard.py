"""What the launcher's guard (``greentop/guard.py``) costs, side by side with the launcher without it.

    python benchmarks/bench_guard.py [--repeats N]

Interleaved in one run:

- ``start_to_reaped_s``: ``launch.start(cmd)`` then ``wait()``, with the guard (today) and without
  it (``_start_guard`` returning None: the launcher before the guard), for a workload that does
  nothing (``true``: the guard's interpreter starts while the workload runs and ends) and one that
  sleeps 0.5 s (the guard has started and waits in ``read``; releasing it is a write and a close,
  and it is reaped aside). The difference is what the guard adds to the span a trace records.
- ``scan_s``: one pass of :func:`greentop.proctree.tree` over this machine's ``/proc`` (what the
  guard repeats every 0.1 s once greentop has died, until the tree is gone), with the number of
  processes it read.

One JSON object per line on stdout; medians over ``--repeats``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # greentop from a checkout

from _machine import machine_info  # noqa: E402

from greentop import launch, proctree  # noqa: E402


SETTLE_S = 0.1  # between runs: the last guard has exited (one workload per greentop run, in life)
WORKLOADS = {"true": ["true"], "sleep_0.5": ["sleep", "0.5"]}


def _lifetime_s(cmd: list[str], guarded: bool) -> float:
    real = launch._start_guard
    if not guarded:
        launch._start_guard = lambda: None  # type: ignore[assignment]
    try:
        t0 = time.perf_counter()
        workload = launch.start(cmd)
        workload.wait()
        return time.perf_counter() - t0
    finally:
        launch._start_guard = real  # type: ignore[assignment]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    for workload, cmd in WORKLOADS.items():
        times: dict[str, list[float]] = {"without_guard": [], "with_guard": []}
        for _ in range(args.repeats):
            for name, guarded in (("without_guard", False), ("with_guard", True)):
                times[name].append(_lifetime_s(cmd, guarded))
                time.sleep(SETTLE_S)
        base = statistics.median(times["without_guard"])
        for name, values in times.items():
            med = statistics.median(values)
            print(json.dumps({"bench": "guard", "measure": "start_to_reaped_s", "workload": workload, "variant": name,
                              "median": med, "added_s": med - base, "repeats": args.repeats}))
    scans = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        proctree.tree("no-such-mark", 0)
        scans.append(time.perf_counter() - t0)
    n_procs = sum(1 for e in os.scandir("/proc") if e.name.isdigit())
    print(json.dumps({"bench": "guard", "measure": "scan_s", "median": statistics.median(scans),
                      "processes": n_procs, "repeats": args.repeats}))
    print(json.dumps({"bench": "guard", "machine": machine_info()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
