"""Benchmark the trace: recorder write rate, size of a one-hour trace, and summary time.

    python benchmarks/bench_trace.py [--minutes 60] [--out FILE.json]

Writes a synthetic one-hour, 1 kHz, 8-channel trace through ``TraceWriter`` the way the recorder
does (appends every 50 ms, flushes every 0.5 s of trace time, SWMR, shuffle + gzip level 1), and
times it. The data are shaped like real sensors: timestamps repeat the intervals of a real 10 s
run of the compiled sampler on this machine (so their jitter is the sampler's own); 4 channels are
RAPL-like µJ counters of a power that wanders between 20 and 120 W, updated every ms; 4 are
NVML-like mW gauges that change every 100 ms. Then it times ``greentop summary`` (load +
attribution + table) on that file with 200 phases, and a plain-h5py full read as the baseline.
Prints one JSON object per line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from greentop.channel import Channel, Lane, Quantity, Reader, ReaderKind  # noqa: E402
from greentop.events import Event  # noqa: E402
from greentop.sampler import Sampler  # noqa: E402
from greentop.trace import TraceWriter, phases_from_log  # noqa: E402

RATE_HZ = 1000
APPEND_S = 0.05
FLUSH_S = 0.5


def real_intervals_ns(seconds: float = 10.0) -> np.ndarray:
    """Sample intervals of the compiled sampler at 1 kHz on this machine, from a real run."""
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "energy_uj"
        p.write_text("123456789\n")
        ch = Channel("c", "bench", "d", Quantity.ENERGY, "uJ", 1e-6, Reader(ReaderKind.FILE_DECIMAL, path=str(p)))
        s = Sampler([ch], rate_hz=RATE_HZ)
        with s:
            time.sleep(seconds)
        return np.diff(s.drain()["c"].t_ns)


def channels() -> list[Channel]:
    out = []
    for i in range(4):
        out.append(Channel(f"rapl:package-{i}", "rapl-sysfs", f"cpu-package-{i}", Quantity.ENERGY, "uJ", 1e-6,
                           Reader(ReaderKind.FILE_DECIMAL, path="/x"), wrap_raw=262143328851))
    for i in range(4):
        out.append(Channel(f"nvml:gpu{i}:power", "nvml", f"gpu-{i}", Quantity.POWER, "mW", 1e-3,
                           Reader(ReaderKind.NVML_POWER, gpu_index=i), lane=Lane.FAST))
    return out


def synth(n: int, intervals: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, list[np.ndarray]]:
    t = np.cumsum(np.resize(intervals, n)).astype(np.int64) + 10**12
    raws = []
    for _ in range(4):  # power wanders 20-120 W: µJ per 1 ms step
        p_w = np.clip(70 + np.cumsum(rng.normal(0, 0.5, n)), 20, 120)
        raws.append(np.cumsum(np.round(p_w * 1e3)).astype(np.int64) % 262143328851)
    for _ in range(4):  # gauge refreshed every 100 ms
        steps = np.clip(300 + np.cumsum(rng.normal(0, 20, n // 100 + 1)), 80, 700)
        raws.append(np.repeat(np.round(steps * 1e3), 100)[:n].astype(np.int64))
    return t, raws


def bench_write(path: Path, minutes: float) -> dict[str, Any]:
    n = int(minutes * 60 * RATE_HZ)
    intervals = real_intervals_ns()
    rng = np.random.default_rng(0)
    t, raws = synth(n, intervals, rng)
    chans = channels()
    path.unlink(missing_ok=True)  # TraceWriter creates a new file, never reuses one (--keep may name an old one)
    w = TraceWriter(path, chans, {"host": platform.node(), "rate_hz": float(RATE_HZ)}, ["fast"])
    step = int(APPEND_S * RATE_HZ)
    flush_every = int(FLUSH_S / APPEND_S)
    events: list[Event] = []
    phase_len = n // 200
    for k in range(200):  # 200 phases, each with a nested step and a count
        a, b = int(t[k * phase_len]), int(t[(k + 1) * phase_len - 1])
        events += [Event("start", a, 1, "epoch", f"1:{2 * k}", "", 0.0, {"epoch": k}),
                   Event("start", a + 1000, 1, "step", f"1:{2 * k + 1}", f"1:{2 * k}", 0.0, {}),
                   Event("count", b - 2000, 1, "samples", f"1:{2 * k + 1}", "", 256.0, {}),
                   Event("end", b - 1000, 1, "step", f"1:{2 * k + 1}", "", 0.0, {}),
                   Event("end", b, 1, "epoch", f"1:{2 * k}", "", 0.0, {})]
    t0 = time.perf_counter()
    for j, i in enumerate(range(0, n, step)):
        for c, raw in zip(chans, raws):
            w.append_samples(c.name, t[i:i + step], raw[i:i + step])
        if (j + 1) % flush_every == 0:
            w.flush()
    phases, marks, counts = phases_from_log(events, int(t[-1]), "ok")
    w.append_events(events)
    w.finalize({"exit_code": 0}, phases, marks, counts)
    wall_s = time.perf_counter() - t0
    samples = n * len(chans)
    return {"bench": "trace_write", "minutes": minutes, "channels": len(chans), "samples": samples, "wall_s": round(wall_s, 2),
            "samples_per_s": round(samples / wall_s), "bar_samples_per_s": 2_000_000, "size_mb": round(os.path.getsize(path) / 1e6, 1),
            "bytes_per_sample": round(os.path.getsize(path) / samples, 2), "bar_size_mb_per_hour": 100}


def bench_read(path: Path) -> list[dict[str, Any]]:
    out = []
    t0 = time.perf_counter()
    with h5py.File(path, "r") as f:
        for g in f["channels"].values():
            g["t_ns"][()], g["raw"][()]
    out.append({"bench": "plain_h5py_full_read", "wall_s": round(time.perf_counter() - t0, 2)})
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "greentop", "summary", str(path)], capture_output=True, text=True,
                           cwd=Path(__file__).resolve().parent.parent)
        times.append(time.perf_counter() - t0)
        if r.returncode != 0:
            out.append({"bench": "summary", "error": r.stderr.strip()[-500:]})
            return out
    out.append({"bench": "summary_cli", "wall_s_median": round(float(np.median(times)), 2), "runs": [round(x, 2) for x in times],
                "bar_s": 2.0, "note": "whole command: interpreter start, imports, load, attribution, table"})
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--keep", help="keep the trace at this path")
    ap.add_argument("--out")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        path = Path(args.keep) if args.keep else Path(d) / "hour.h5"
        results = [bench_write(path, args.minutes)] + bench_read(path)
    meta = {"date": datetime.now(timezone.utc).isoformat(), "host": platform.node(), "nproc": os.cpu_count(),
            "python": sys.version.split()[0], "h5py": h5py.__version__, "hdf5": h5py.version.hdf5_version}
    for r in results:
        print(json.dumps(r))
    if args.out:
        Path(args.out).write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
