"""Benchmark ``greentop replay``: time to the first screen of a one-hour, 1 kHz, 8-channel trace.

    python benchmarks/bench_replay.py [--trace /tmp/hour.h5] [--repeat 3] [--size 160x50]

Works on a copy of the trace (made by ``benchmarks/bench_trace.py --keep PATH`` when PATH is
missing: about 15 s), whose ``/overview`` it deletes first. Measures, each in this
process and timed from before ``ReplayModel(path)`` to the app mounted with every chart given
data and painted once (``App.run_test``, headless):

- ``cold``: the copy has no overview yet: ``ensure_overview`` reads every sample and writes it
  to the user's cache (never into the trace).
- ``warm``: the overview is in the cache: the screen is drawn from a few coarse levels (median of
  ``--repeat`` runs, each from a new model, so no level is cached in memory between runs).

The per-phase summary is computed in a worker thread after the first screen and is not part of
these times; ``summary_s`` reports how long it took to arrive on the warm runs.

Prints one JSON object per line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from greentop.tui.chart import PowerChart  # noqa: E402
from greentop.tui.replay import ReplayApp, ReplayModel  # noqa: E402


def first_screen(path: Path, size: tuple[int, int], wait_summary: bool) -> dict[str, float]:
    out: dict[str, float] = {}

    async def go() -> None:
        t0 = time.perf_counter()
        model = ReplayModel(path)
        t_open = time.perf_counter()
        app = ReplayApp(model)
        async with app.run_test(size=size) as pilot:
            charts = list(app.query(PowerChart))
            while app.charts_drawn < 1:  # every chart given its bins (on_mount)
                await pilot.pause()
            await pilot.pause()  # and the screen painted
            t_screen = time.perf_counter()
            out["open_s"] = t_open - t0
            out["first_screen_s"] = t_screen - t0
            out["charts"] = len(charts)
            if wait_summary:
                while not app.summary_ready:
                    await pilot.pause(0.05)
                out["summary_s"] = time.perf_counter() - t_screen

    asyncio.run(go())
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trace", type=Path, default=Path("/tmp/hour.h5"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--size", default="160x50", help="terminal size, COLSxROWS")
    ap.add_argument("--summary", action="store_true", help="also time the background summary (warm runs)")
    args = ap.parse_args()
    size = tuple(int(x) for x in args.size.split("x"))
    if not args.trace.exists():
        subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_trace.py"), "--keep", str(args.trace)], check=True)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["XDG_CACHE_HOME"] = tmp  # the overview cache of this run only
        copy = Path(tmp) / "replay.h5"
        shutil.copy(args.trace, copy)
        import h5py

        with h5py.File(copy, "a") as f:  # a trace from elsewhere may carry one already: start cold
            if "overview" in f:
                del f["overview"]
        cold = first_screen(copy, size, False)
        print(json.dumps({"bench": "replay_first_screen", "case": "cold", "trace": str(args.trace),
                          "size": args.size, **cold}), flush=True)
        warm = [first_screen(copy, size, args.summary) for _ in range(args.repeat)]
        rec = {"bench": "replay_first_screen", "case": "warm", "trace": str(args.trace), "size": args.size,
               "repeat": args.repeat, "first_screen_s": statistics.median(w["first_screen_s"] for w in warm),
               "first_screen_max_s": max(w["first_screen_s"] for w in warm),
               "open_s": statistics.median(w["open_s"] for w in warm), "charts": warm[0]["charts"], "bar_s": 1.0}
        if args.summary:
            rec["summary_s"] = statistics.median(w["summary_s"] for w in warm)
        print(json.dumps(rec), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
