"""RAPL read intervals beside a slow NVML driver: one shared lane (before) against a lane per GPU (after).

    python benchmarks/bench_nvml_lane.py [--seconds 3] [--rounds 3] [--stall-us 7400] [--out FILE.json]

Four "fake sysfs" energy files (decimal µJ, kept open and re-read with ``pread``, as RAPL's
``energy_uj``) and two GPUs of the fake ``libnvidia-ml.so.1`` (tests/fakes/fake_nvml.c, built
here) are sampled at 1 kHz by ``greentop.sampler.Sampler``. GPU 0's driver sleeps ``--stall-us``
(default 7400 µs, the slowest NVML power read seen on a real machine) in every power read; GPU 1
answers at once. Two arrangements, measured in the same run, alternating round by round:

- ``shared``: the arrangement before issue 10: every fast channel, NVML included, on one lane
  (reproduced by making ``greentop.sampler.lane_name`` return the channel's fast/slow lane);
- ``per_gpu``: the current arrangement: files on the fast lane, each GPU on a lane of its own.

For each: the interval between consecutive reads of file channel 0 ("RAPL") and of GPU 1's power
(the GPU that is not slow), p50 / p90 / p99 / max in µs, and the achieved rate. One JSON object
per line on stdout, a table on stderr; ``--out`` writes all of it with machine info. Nothing is
asserted (tests/test_nvml.py holds the design promise).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # greentop and tests.fakes from a checkout

from _machine import file_channels, machine_info  # noqa: E402

import greentop.sampler as sampler_mod  # noqa: E402
from greentop.channel import Channel, Quantity, Reader, ReaderKind  # noqa: E402
from tests.fakes.nvml import CONFIG_ENV, FakeNvmlConfig, build_fake_nvml  # noqa: E402

RATE_HZ = 1000.0
N_FILES = 4
N_GPUS = 2
ARRANGEMENTS = ("shared", "per_gpu")


def gpu_channels(n: int) -> list[Channel]:
    return [Channel(f"nvml:gpu{i}:power", "nvml", f"gpu-{i}", Quantity.POWER, "mW", 1e-3,
                    Reader(ReaderKind.NVML_POWER, gpu_index=i)) for i in range(n)]


def intervals_us(t_ns: np.ndarray) -> dict[str, float]:
    dt_us = np.diff(t_ns) / 1e3
    if dt_us.size == 0:
        return {"n": 0}
    p50, p90, p99 = np.percentile(dt_us, [50, 90, 99])
    return {"n": int(dt_us.size), "p50_us": round(float(p50), 1), "p90_us": round(float(p90), 1),
            "p99_us": round(float(p99), 1), "max_us": round(float(dt_us.max()), 1),
            "rate_hz": round(float(dt_us.size / (dt_us.sum() / 1e6)), 1)}


def run_once(arrangement: str, channels: list[Channel], seconds: float) -> dict[str, Any]:
    shared = mock.patch.object(sampler_mod, "lane_name", lambda c: c.lane.value)
    with shared if arrangement == "shared" else mock.patch.object(sampler_mod, "lane_name", sampler_mod.lane_name):
        s = sampler_mod.Sampler(channels, rate_hz=RATE_HZ)
        with s:
            time.sleep(seconds)
        got = s.drain()
        lanes = list(s.health().lanes)
    return {"arrangement": arrangement, "lanes": lanes, "rapl": intervals_us(got["fake:0"].t_ns),
            "gpu_fast": intervals_us(got["nvml:gpu1:power"].t_ns),
            "gpu_slow": intervals_us(got["nvml:gpu0:power"].t_ns)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="sampling time per run (default 3)")
    ap.add_argument("--rounds", type=int, default=3, help="runs of each arrangement, alternating (default 3)")
    ap.add_argument("--stall-us", type=int, default=7400, help="sleep in each of GPU 0's power reads, µs (default 7400)")
    ap.add_argument("--out", type=Path, help="write every result, with machine info, to this JSON file")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="greentop-nvml-lane-") as tmp:
        folder = Path(tmp)
        lib = build_fake_nvml(folder / "lib")
        FakeNvmlConfig(devices=N_GPUS, fields=False, energy=False, power_stall_us={0: args.stall_us}).write(folder / "nvml.conf")
        os.environ["GREENTOP_NVML_LIB"] = str(lib)
        os.environ[CONFIG_ENV] = str(folder / "nvml.conf")
        channels = file_channels(folder, N_FILES) + gpu_channels(N_GPUS)
        results: list[dict[str, Any]] = []
        for r in range(args.rounds):
            for arrangement in ARRANGEMENTS:
                res = run_once(arrangement, channels, args.seconds) | {"round": r, "stall_us": args.stall_us}
                print(json.dumps(res), flush=True)
                results.append(res)

    summary: dict[str, dict[str, Any]] = {}
    print(f"{'arrangement':<10} {'series':<9} {'p50 us':>9} {'p90 us':>9} {'p99 us':>9} {'max us':>9} {'rate Hz':>8}", file=sys.stderr)
    for arrangement in ARRANGEMENTS:
        mine = [r for r in results if r["arrangement"] == arrangement]
        summary[arrangement] = {}
        for series in ("rapl", "gpu_fast", "gpu_slow"):
            # Median over rounds of each statistic: one noisy round does not decide.
            stats = {k: float(np.median([r[series][k] for r in mine])) for k in ("p50_us", "p90_us", "p99_us", "max_us", "rate_hz")}
            summary[arrangement][series] = stats
            print(f"{arrangement:<10} {series:<9} {stats['p50_us']:>9.1f} {stats['p90_us']:>9.1f} {stats['p99_us']:>9.1f} "
                  f"{stats['max_us']:>9.1f} {stats['rate_hz']:>8.1f}", file=sys.stderr)
    ratio = summary["shared"]["rapl"]["p50_us"] / summary["per_gpu"]["rapl"]["p50_us"]
    print(json.dumps({"summary": summary, "rapl_p50_ratio_shared_over_per_gpu": round(ratio, 2)}))
    if args.out:
        args.out.write_text(json.dumps({"machine": machine_info(), "args": {k: str(v) for k, v in vars(args).items()},
                                        "results": results, "summary": summary}, indent=1))


if __name__ == "__main__":
    main()
