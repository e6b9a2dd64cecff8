"""Benchmark the power overview: the first screen of a one-hour trace with and without it.

    python benchmarks/bench_overview.py [--trace /tmp/hour.h5] [--columns 120] [--repeat 5] [--out FILE.json]

Works on a copy of a one-hour, 1 kHz, 8-channel trace (made by ``benchmarks/bench_trace.py --keep
PATH`` when PATH is missing: about 15 s), because it adds ``/overview`` to the file. Measures:

- ``overview_build_write``: what ``ensure_overview`` does on a trace without one: read every
  sample (one channel at a time), build the pyramids, write them; the three parts timed apart,
  and the size it adds to the file.
- ``first_screen_overview``: ``read_overview`` + ``window()`` of all 8 channels over the whole
  run at ``--columns`` columns, in this process (median of ``--repeat`` runs, each from a new
  ``read_overview``, so no level is cached between runs; the OS page cache is warm).
- ``first_screen_overview_cold_process``: the same in a new Python process, interpreter start and
  imports included: what ``greentop replay`` would pay before drawing.
- ``first_screen_full_read``: the baseline: ``greentop.trace.load`` + the same windows computed from
  every sample (``build_overview`` in memory); checked equal to the overview's to float32 rounding.

Prints one JSON object per line; ``--out`` writes them with machine info to one JSON file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import h5py
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from greentop.overview import Overview, Window, build_overview, read_overview, write_overview  # noqa: E402
from greentop.trace import iter_channels, load, open_trace  # noqa: E402

BAR_FIRST_SCREEN_S = 1.0


def run_span(ovs: dict[str, Overview]) -> tuple[int, int]:
    return min(o.t_first_ns for o in ovs.values()), max(o.t_last_ns for o in ovs.values()) + 1


def screen(ovs: dict[str, Overview], columns: int) -> dict[str, Window]:
    t0, t1 = run_span(ovs)
    return {name: o.window(t0, t1, columns) for name, o in ovs.items()}


def bench_build_write(path: Path) -> dict[str, Any]:
    """What ``ensure_overview`` does on a trace without an overview, timed part by part."""
    size0 = os.path.getsize(path)
    read_s, build, samples = 0.0, [], 0
    ovs: dict[str, Overview] = {}
    t_start = time.perf_counter()
    with open_trace(path) as f:
        chans = iter_channels(f)  # one channel in memory at a time, as ensure_overview reads them
        while True:
            t0 = time.perf_counter()
            c = next(chans, None)
            read_s += time.perf_counter() - t0
            if c is None:
                break
            t0 = time.perf_counter()
            ovs[c.channel.name] = build_overview(c.t_ns, c.raw, c.channel)
            build.append(time.perf_counter() - t0)
            samples += c.t_ns.size
            del c
    t0 = time.perf_counter()
    write_overview(path, ovs)
    write_s = time.perf_counter() - t0
    total = time.perf_counter() - t_start
    size1 = os.path.getsize(path)
    assert read_overview(path) is not None
    with h5py.File(path, "r") as f:
        stored = sum(ds.id.get_storage_size() for ds in _datasets(f["overview"]))
    first = next(iter(ovs.values()))
    return {"bench": "overview_build_write", "channels": len(ovs), "samples": samples, "wall_s": round(total, 3),
            "read_samples_s": round(read_s, 3), "build_s": round(sum(build), 3),
            "build_s_per_channel_max": round(max(build), 3), "write_s": round(write_s, 3),
            "levels": len(first.levels), "level0_bins": len(first.levels[0]),
            "size_added_mb": round((size1 - size0) / 1e6, 2), "datasets_stored_mb": round(stored / 1e6, 2),
            "trace_mb": round(size0 / 1e6, 1), "size_added_pct": round(100 * (size1 - size0) / size0, 1)}


def _datasets(g: h5py.Group) -> list[h5py.Dataset]:
    out: list[h5py.Dataset] = []
    g.visititems(lambda _, obj: out.append(obj) if isinstance(obj, h5py.Dataset) else None)
    return out


def bench_first_screen(path: Path, columns: int, repeat: int) -> tuple[dict[str, Any], dict[str, Window]]:
    times, reads = [], []
    wins: dict[str, Window] = {}
    for _ in range(repeat):
        t0 = time.perf_counter()
        ovs = read_overview(path)
        t1 = time.perf_counter()
        assert ovs is not None
        wins = screen(ovs, columns)
        times.append(time.perf_counter() - t0)
        reads.append(t1 - t0)
    bins = [w.t_ns.size for w in wins.values()]
    return ({"bench": "first_screen_overview", "columns": columns, "channels": len(wins), "wall_s_median": round(float(np.median(times)), 4),
             "read_overview_s_median": round(float(np.median(reads)), 4), "runs": [round(x, 4) for x in times],
             "bins_per_channel": max(bins), "bar_s": BAR_FIRST_SCREEN_S}, wins)


COLD = """
import sys, time
t0 = time.perf_counter()
sys.path.insert(0, {repo!r})
from greentop.overview import read_overview
t1 = time.perf_counter()
ovs = read_overview({path!r})
a = min(o.t_first_ns for o in ovs.values()); b = max(o.t_last_ns for o in ovs.values()) + 1
wins = [o.window(a, b, {columns}) for o in ovs.values()]
t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
"""


def bench_cold_process(path: Path, columns: int, repeat: int) -> dict[str, Any]:
    walls, imports, work = [], [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-c", COLD.format(repo=str(REPO), path=str(path), columns=columns)],
                           capture_output=True, text=True, check=True)
        walls.append(time.perf_counter() - t0)
        i, w = (float(x) for x in r.stdout.split())
        imports.append(i)
        work.append(w)
    return {"bench": "first_screen_overview_cold_process", "columns": columns, "wall_s_median": round(float(np.median(walls)), 3),
            "imports_s_median": round(float(np.median(imports)), 3), "read_and_window_s_median": round(float(np.median(work)), 4),
            "note": "new interpreter each run: start + import greentop.overview (numpy, h5py) + read_overview + 8 windows",
            "bar_s": BAR_FIRST_SCREEN_S}


def bench_baseline(path: Path, columns: int, reference: dict[str, Window]) -> dict[str, Any]:
    t0 = time.perf_counter()
    tr = load(path)
    t1 = time.perf_counter()
    ovs = {c.channel.name: build_overview(c.t_ns, c.raw, c.channel) for c in tr.channels}
    wins = screen(ovs, columns)
    t2 = time.perf_counter()
    max_rel = 0.0
    for name, w in wins.items():
        ref = reference[name]
        assert np.array_equal(w.t_ns, ref.t_ns), name
        for a, b in ((w.min_w, ref.min_w), (w.max_w, ref.max_w), (w.mean_w, ref.mean_w)):
            max_rel = max(max_rel, float(np.max(np.abs(np.asarray(b, np.float64) - a) / np.maximum(np.abs(a), 1e-9))))
    return {"bench": "first_screen_full_read", "columns": columns, "wall_s": round(t2 - t0, 3), "load_s": round(t1 - t0, 3),
            "windows_from_samples_s": round(t2 - t1, 3), "samples": int(sum(c.t_ns.size for c in tr.channels)),
            "same_as_overview_max_rel_diff": max_rel, "bar_s": BAR_FIRST_SCREEN_S}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trace", default="/tmp/hour.h5", help="one-hour trace; made by bench_trace.py if missing")
    ap.add_argument("--columns", type=int, default=120)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out")
    args = ap.parse_args()
    src = Path(args.trace)
    if not src.exists():
        subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_trace.py"), "--keep", str(src)], check=True,
                       stdout=subprocess.DEVNULL)
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(dir=src.parent) as d:
        path = Path(d) / src.name
        shutil.copyfile(src, path)  # the overview goes into the copy
        results.append(bench_build_write(path))
        print(json.dumps(results[-1]), flush=True)
        first, wins = bench_first_screen(path, args.columns, args.repeat)
        results.append(first)
        print(json.dumps(first), flush=True)
        results.append(bench_cold_process(path, args.columns, args.repeat))
        print(json.dumps(results[-1]), flush=True)
        results.append(bench_baseline(path, args.columns, wins))
        print(json.dumps(results[-1]), flush=True)
    speedup = results[3]["wall_s"] / results[1]["wall_s_median"]
    results.append({"bench": "first_screen_speedup", "full_read_over_overview": round(speedup, 1)})
    print(json.dumps(results[-1]), flush=True)
    if args.out:
        meta = {"date": datetime.now(timezone.utc).isoformat(), "host": platform.node(), "nproc": os.cpu_count(),
                "python": sys.version.split()[0], "numpy": np.__version__, "h5py": h5py.__version__,
                "hdf5": h5py.version.hdf5_version, "trace": str(src)}
        Path(args.out).write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
