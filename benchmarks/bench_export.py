"""What serving Prometheus metrics costs a recording: ``greentop record`` with and without
``--export``, side by side, over the test suite's fake host.

    python benchmarks/bench_export.py [--runs 3] [--seconds 8] [--rate 1000] [--scrape 1]

Each run records a workload that sleeps ``--seconds`` (so greentop's own CPU time is all there is
to measure), alternating plain and ``--export`` runs; an exporter run is scraped every ``--scrape``
seconds by this script, which also times each scrape. greentop's CPU time comes from
``os.wait4`` on its process (user + system, its children excluded: the workload sleeps). Prints
one JSON object: per mode the median CPU seconds per second of recording, the ratio, and the
scrape latency median and worst.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks._machine import machine_info  # noqa: E402
from tests.fakes.host import FakeHost  # noqa: E402
from tests.fakes.profile import PowerProfile  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def one_run(env: dict[str, str], folder: Path, seconds: float, rate: float, export: bool, scrape_s: float) -> dict[str, float]:
    port = free_port()
    cmd = [sys.executable, "-m", "greentop", "record", "-o", str(folder / f"run-{time.monotonic_ns()}.h5"), "--no-baseline",
           "--rate", str(rate)]
    if export:
        cmd += ["--export", f"127.0.0.1:{port}"]
    cmd += ["--", sys.executable, "-c", f"import time; time.sleep({seconds})"]
    latencies: list[float] = []
    start = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stop = threading.Event()

    def scraper() -> None:
        while not stop.wait(scrape_s):
            a = time.perf_counter()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    r.read()
            except OSError:
                continue
            latencies.append(time.perf_counter() - a)

    t = threading.Thread(target=scraper, daemon=True)
    if export:
        t.start()
    _, status, usage = os.wait4(proc.pid, 0)
    stop.set()
    wall = time.monotonic() - start
    if status != 0:
        raise SystemExit(f"greentop record failed ({status})")
    return {"cpu_s_per_s": (usage.ru_utime + usage.ru_stime) / wall, "wall_s": wall, "scrapes": len(latencies),
            "scrape_ms_median": 1e3 * statistics.median(latencies) if latencies else float("nan"),
            "scrape_ms_max": 1e3 * max(latencies) if latencies else float("nan")}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--scrape", type=float, default=1.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="greentop-bench-export-") as tmp:
        folder = Path(tmp)
        host = FakeHost(folder / "host")
        host.add_cpus(2)
        host.add_rapl_zone("0", "package-0", PowerProfile(((0.1, 30.0), (0.1, 60.0))))
        host.add_rapl_zone("0:0", "dram", PowerProfile.constant(5.0))
        host.set_proc_stat(PowerProfile.constant(0.3), n_cpus=2)
        env = os.environ | host.environ | {"GREENTOP_NVML_LIB": str(folder / "no-nvml.so"),
                                           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
        results: dict[str, list[dict[str, float]]] = {"plain": [], "export": []}
        with host:
            for _ in range(args.runs):
                for mode in ("plain", "export"):
                    results[mode].append(one_run(env, folder, args.seconds, args.rate, mode == "export", args.scrape))
    med = {m: statistics.median(r["cpu_s_per_s"] for r in rs) for m, rs in results.items()}
    print(json.dumps({
        "bench": "export", "machine": machine_info(), "runs": args.runs, "seconds": args.seconds, "rate_hz": args.rate,
        "scrape_s": args.scrape, "cpu_s_per_s_median": med, "export_over_plain": med["export"] / med["plain"],
        "scrape_ms_median": statistics.median(r["scrape_ms_median"] for r in results["export"]),
        "scrape_ms_max": max(r["scrape_ms_max"] for r in results["export"]), "raw": results,
    }, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
