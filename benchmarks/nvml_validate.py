"""On a real NVIDIA GPU: does integrating NVML power agree with NVML's energy counter?

Samples every NVML channel (power on the fast lane, the energy counter on the slow lane) through
phases: idle, a steady bf16 matrix-multiply load, and a bursty load (on/off every 0.5 s). For
each phase it prints, as JSON lines, the energy each power channel integrates to and the energy
counter's delta over the same window, plus each channel's read cost, update period, the rates
achieved and the overruns.

    python benchmarks/nvml_validate.py [--idle 60] [--load 60] [--bursty 30] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import threading
import time
from datetime import datetime, timezone

import numpy as np

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))  # greentop from a checkout

from greentop.channel import Quantity  # noqa: E402
from greentop.energy import converter_for  # noqa: E402
from greentop.measure import ChannelRecord, summarise  # noqa: E402
from greentop.sampler import Sampler  # noqa: E402
from greentop.sources import nvml  # noqa: E402


def matmul_load(stop: threading.Event, duty_s: float | None) -> None:
    import torch

    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    while not stop.is_set():
        t_end = time.monotonic() + (duty_s or 0.2)
        while time.monotonic() < t_end and not stop.is_set():
            for _ in range(10):
                a @ b
            torch.cuda.synchronize()
        if duty_s:
            stop.wait(duty_s)


def energy_at(rec: ChannelRecord, t_ns: int) -> float:
    t, _raw, e = rec.arrays()
    return float(np.interp(float(t_ns), t.astype(np.float64), e))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--idle", type=float, default=60.0)
    ap.add_argument("--load", type=float, default=60.0)
    ap.add_argument("--bursty", type=float, default=30.0)
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--out")
    args = ap.parse_args()

    found = nvml.discover()
    if not found.channels:
        print(json.dumps({"error": "no NVML channel", "problems": [p.to_dict() for p in found.problems], "notes": found.notes}))
        return 1
    records = {c.name: ChannelRecord(c, converter_for(c)) for c in found.channels}
    sampler = Sampler(found.channels, rate_hz=args.rate, slow_rate_hz=10.0).start()
    stop_drain = threading.Event()

    def drainer() -> None:
        while not stop_drain.wait(0.05):
            for name, s in sampler.drain().items():
                records[name].add(s)

    dt = threading.Thread(target=drainer, daemon=True)
    dt.start()
    phases: list[tuple[str, int, int]] = []
    for name, seconds, duty in (("idle", args.idle, None), ("steady-matmul", args.load, None), ("bursty-matmul", args.bursty, 0.5)):
        if seconds <= 0:
            continue
        stop = threading.Event()
        worker = None
        if name != "idle":
            worker = threading.Thread(target=matmul_load, args=(stop, duty), daemon=True)
            worker.start()
            time.sleep(3.0)  # warm-up (allocation, clocks) outside the measured window
        t0 = time.monotonic_ns()
        time.sleep(seconds)
        t1 = time.monotonic_ns()
        stop.set()
        if worker:
            worker.join()
        phases.append((name, t0, t1))
        time.sleep(1.0)
    sampler.stop()
    stop_drain.set()
    dt.join()
    for name, s in sampler.drain().items():
        records[name].add(s)
    health = sampler.health()

    results: list[dict[str, object]] = []
    counters = [c for c in found.channels if c.quantity is Quantity.ENERGY]
    for phase, t0, t1 in phases:
        for counter in counters:
            gpu = counter.reader.gpu_index
            e_counter = energy_at(records[counter.name], t1) - energy_at(records[counter.name], t0)
            for c in found.channels:
                if c.reader.gpu_index != gpu or c.quantity is not Quantity.POWER:
                    continue
                e_power = energy_at(records[c.name], t1) - energy_at(records[c.name], t0)
                results.append({
                    "bench": "power_vs_counter", "phase": phase, "gpu": gpu, "power_channel": c.name,
                    "seconds": (t1 - t0) / 1e9, "counter_j": e_counter, "integrated_j": e_power,
                    "counter_avg_w": e_counter / ((t1 - t0) / 1e9), "error_pct": 100 * (e_power - e_counter) / e_counter,
                })
    for c in found.channels:
        s = summarise(records[c.name])
        h = health.channels[c.name]
        results.append({
            "bench": "channel", "channel": c.name, "lane": c.lane.value, "samples": s.samples, "rate_hz": s.rate_hz,
            "update_period_ms": s.update_period_s * 1e3 if s.update_period_s else None,
            "read_cost_us_mean": h.mean_cost_ns / 1e3, "read_cost_us_max": h.max_cost_ns / 1e3,
            "overruns": h.overruns, "errors": h.errors,
        })
    for lane, lh in health.lanes.items():
        results.append({"bench": "lane", "lane": lane, "asked_hz": lh.rate_hz, "achieved_hz": lh.ticks / lh.elapsed_s,
                        "missed": lh.missed, "late": lh.late, "lateness_max_us": lh.lateness_max_ns / 1e3,
                        "cpu_pct": 100 * lh.cpu_s / lh.elapsed_s})
    for r in results:
        print(json.dumps(r))
    if args.out:
        meta = {"date": datetime.now(timezone.utc).isoformat(), "host": platform.node(), "python": sys.version.split()[0],
                "devices": found.devices}
        with open(args.out, "w") as fh:
            json.dump({"meta": meta, "results": results}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
