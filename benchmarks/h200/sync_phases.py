"""What ``greentop.phase(..., sync="torch")`` changes for short GPU phases, on a real GPU.

    python benchmarks/h200/sync_phases.py all OUTDIR [--reps 20] [--lengths-ms 20,50,100,200]

``all`` records the same workload twice under ``greentop record`` (``--no-baseline``), once with
``sync=None`` ("off") and once with ``sync="torch"`` ("on"), then compares them. The workload
repeats, for each length L: a ``gpu`` phase that queues L ms of bf16 8192x8192 matrix products
(calibrated at start) and returns, then a ``host`` phase of L ms of host-side waiting (the GPU
drains its queue then, or idles). Without sync the ``gpu`` phase ends once the products are
queued (a millisecond or two) and their energy lands in the ``host`` phase after it; with sync it
ends when they have run.

For each phase of each run the workload also times its products with CUDA events, so the
comparison knows when the GPU really worked: ``inside_pct`` is the share of a ``gpu`` phase's
kernel time that fell inside the phase's tagged interval. From the trace: each phase's duration
and GPU energy as ``greentop summary`` attributes it (``greentop.attribution.summarise``).

Subcommands: ``workload --sync off|on --events FILE.json`` (what runs under ``greentop record``),
``compare OFF.h5 OFF.json ON.h5 ON.json`` (JSON lines per (mode, length, phase) and a summary
line) and ``all``. Needs torch with CUDA and the compiled sampler built in the checkout.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

MATMUL_N = 8192


def workload(args: argparse.Namespace) -> int:
    import torch

    import greentop

    sync = "torch" if args.sync == "on" else None
    lengths_ms = [int(x) for x in args.lengths_ms.split(",")]
    a = torch.randn(MATMUL_N, MATMUL_N, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(MATMUL_N, MATMUL_N, device="cuda", dtype=torch.bfloat16)
    out = torch.empty_like(a)
    for _ in range(10):  # warm-up: clocks up, cuBLAS picks its kernel
        torch.mm(a, b, out=out)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(50):
        torch.mm(a, b, out=out)
    torch.cuda.synchronize()
    per_mm_ms = (time.perf_counter() - t0) * 1e3 / 50

    # One CUDA event at a known CLOCK_MONOTONIC time: kernel times become monotonic ns.
    ref = torch.cuda.Event(enable_timing=True)
    ref.record()
    torch.cuda.synchronize()
    ref_ns = time.monotonic_ns()
    records: list[dict[str, Any]] = []
    pending: list[tuple[dict[str, Any], Any, Any]] = []
    time.sleep(0.5)
    for length in lengths_ms:
        n_mm = max(1, round(length / per_mm_ms))
        for rep in range(args.reps):
            e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            p0 = time.monotonic_ns()
            with greentop.phase("gpu", length_ms=length, rep=rep, sync=sync):
                e0.record()
                for _ in range(n_mm):
                    torch.mm(a, b, out=out)
                e1.record()
            p1 = time.monotonic_ns()
            with greentop.phase("host", length_ms=length, rep=rep, sync=sync):
                time.sleep(length / 1e3)
            rec = {"length_ms": length, "rep": rep, "n_mm": n_mm, "block0_ns": p0, "block1_ns": p1}
            records.append(rec)
            pending.append((rec, e0, e1))
        time.sleep(0.5)  # a gap between lengths: the GPU idles, its power settles
    torch.cuda.synchronize()
    for rec, e0, e1 in pending:
        rec["kernel0_ns"] = ref_ns + int(ref.elapsed_time(e0) * 1e6)
        rec["kernel1_ns"] = ref_ns + int(ref.elapsed_time(e1) * 1e6)
    Path(args.events).write_text(json.dumps({"sync": args.sync, "per_mm_ms": per_mm_ms, "records": records,
                                             "device": torch.cuda.get_device_name(0)}))
    return 0


def _median(xs: list[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def _analyse(trace_path: str, events_path: str, domain: str = "gpu-0") -> list[dict[str, Any]]:
    from greentop.attribution import summarise
    from greentop.trace import load

    side = json.loads(Path(events_path).read_text())
    rows = summarise(load(trace_path), 0.0).phase_rows()
    by_key = {(r.name, int(r.attrs.get("length_ms", -1)), int(r.attrs.get("rep", -1))): r for r in rows}
    out: list[dict[str, Any]] = []
    for length in sorted({rec["length_ms"] for rec in side["records"]}):
        recs = [rec for rec in side["records"] if rec["length_ms"] == length]
        for name in ("gpu", "host"):
            rs = [by_key[(name, length, rec["rep"])] for rec in recs if (name, length, rec["rep"]) in by_key]
            gpu = [r.domain(domain) for r in rs]
            row: dict[str, Any] = {
                "mode": side["sync"], "length_ms": length, "phase": name, "n": len(rs),
                "duration_ms_median": round(_median([r.duration_s * 1e3 for r in rs]), 2),
                "gpu_energy_j_median": round(_median([g.energy_j for g in gpu]), 2),
                "gpu_energy_j_sum": round(sum(g.energy_j for g in gpu), 1),
                "gpu_uncertainty_j_sum": round(sum(g.energy_uncertainty_j for g in gpu), 1),
                "gpu_average_w_median": round(_median([g.average_w for g in gpu]), 1),
            }
            if name == "gpu":
                inside = []
                for rec in recs:
                    r = by_key.get(("gpu", length, rec["rep"]))
                    if r is None:
                        continue
                    k0, k1 = rec["kernel0_ns"], rec["kernel1_ns"]
                    overlap = max(0, min(k1, r.end_ns) - max(k0, r.start_ns))
                    inside.append(100.0 * overlap / max(k1 - k0, 1))
                row["kernel_ms_median"] = round(_median([(rec["kernel1_ns"] - rec["kernel0_ns"]) / 1e6 for rec in recs]), 2)
                row["inside_pct_median"] = round(_median(inside), 1)
            out.append(row)
    return out


def compare(args: argparse.Namespace) -> int:
    rows = _analyse(args.off_trace, args.off_events, args.domain) + _analyse(args.on_trace, args.on_events, args.domain)
    for row in rows:
        print(json.dumps(row))
    table = {(r["mode"], r["length_ms"], r["phase"]): r for r in rows}
    summary = []
    for length in sorted({r["length_ms"] for r in rows}):
        off_g, on_g = table.get(("off", length, "gpu")), table.get(("on", length, "gpu"))
        off_h, on_h = table.get(("off", length, "host")), table.get(("on", length, "host"))
        if not (off_g and on_g and off_h and on_h):
            continue
        pair_off = off_g["gpu_energy_j_sum"] + off_h["gpu_energy_j_sum"]
        pair_on = on_g["gpu_energy_j_sum"] + on_h["gpu_energy_j_sum"]
        summary.append({
            "length_ms": length,
            "gpu_phase_share_pct_off": round(100 * off_g["gpu_energy_j_sum"] / pair_off, 1) if pair_off else None,
            "gpu_phase_share_pct_on": round(100 * on_g["gpu_energy_j_sum"] / pair_on, 1) if pair_on else None,
            "gpu_phase_j_median_off": off_g["gpu_energy_j_median"], "gpu_phase_j_median_on": on_g["gpu_energy_j_median"],
            "gpu_phase_ms_off": off_g["duration_ms_median"], "gpu_phase_ms_on": on_g["duration_ms_median"],
            "inside_pct_off": off_g["inside_pct_median"], "inside_pct_on": on_g["inside_pct_median"],
        })
    print(json.dumps({"summary": summary}))
    return 0


def run_all(args: argparse.Namespace) -> int:
    outdir = Path(args.outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    env = os.environ | {"PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "PYTHONUNBUFFERED": "1"}
    for mode in ("off", "on"):
        cmd = [sys.executable, "-m", "greentop", "record", "-o", str(outdir / f"sync_{mode}.h5"), "--no-baseline", "--",
               sys.executable, __file__, "workload", "--sync", mode, "--events", str(outdir / f"sync_{mode}.json"),
               "--reps", str(args.reps), "--lengths-ms", args.lengths_ms]
        t0 = time.monotonic()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        print(json.dumps({"mode": mode, "rc": proc.returncode, "wall_s": round(time.monotonic() - t0, 1),
                          "stderr_tail": proc.stderr[-1500:]}), flush=True)
        if proc.returncode != 0:
            return proc.returncode
    ns = argparse.Namespace(off_trace=str(outdir / "sync_off.h5"), off_events=str(outdir / "sync_off.json"),
                            on_trace=str(outdir / "sync_on.h5"), on_events=str(outdir / "sync_on.json"), domain=args.domain)
    return compare(ns)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("workload", "all"):
        p = sub.add_parser(name)
        p.add_argument("--reps", type=int, default=20, help="phases of each length (default 20)")
        p.add_argument("--lengths-ms", default="20,50,100,200", help="GPU work per phase, ms (default 20,50,100,200)")
        if name == "workload":
            p.add_argument("--sync", choices=("off", "on"), required=True)
            p.add_argument("--events", required=True, help="where to write the phases' kernel times (JSON)")
        else:
            p.add_argument("outdir")
            p.add_argument("--domain", default="gpu-0", help="the domain compared (default gpu-0)")
    c = sub.add_parser("compare")
    for name in ("off_trace", "off_events", "on_trace", "on_events"):
        c.add_argument(name)
    c.add_argument("--domain", default="gpu-0", help="the domain compared (default gpu-0)")
    args = ap.parse_args()
    return {"workload": workload, "compare": compare, "all": run_all}[args.cmd](args)


if __name__ == "__main__":
    raise SystemExit(main())
