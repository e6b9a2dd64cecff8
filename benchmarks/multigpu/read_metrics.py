"""Read greentop's Prometheus endpoint directly, for a machine with no Prometheus server (issue #15).

    greentop record -o run.h5 --export 127.0.0.1:9464 -- torchrun ... &
    python benchmarks/multigpu/read_metrics.py http://127.0.0.1:9464/metrics --out metrics.jsonl --trace run.h5

Polls the endpoint every ``--every`` seconds (from its first answer until it goes away, or for
``--duration``), keeping the wall time of each read, every ``greentop_energy_joules_total`` series and the time its
value holds (``greentop_energy_timestamp_seconds``). With ``--trace``, once the recording has finished: per domain, the counter's increase
between the first and the last read against the trace's energy over the same wall-clock window
(``diff_pct``), one JSON object per domain on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))


def read_once(url: str) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    a = time.time()
    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read().decode()
    out = {"_t_wall": (a + time.time()) / 2}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == "greentop_energy_joules_total":
                out[s.labels["domain"]] = s.value
            elif s.name == "greentop_energy_timestamp_seconds":  # when each counter's value holds
                out["_t:" + s.labels["domain"]] = s.value
    return out


def poll(url: str, every_s: float, duration_s: float | None, wait_s: float = 60.0) -> list[dict[str, float]]:
    reads: list[dict[str, float]] = []
    start = time.monotonic()
    while True:
        try:
            reads.append(read_once(url))
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if reads or time.monotonic() - start > wait_s:
                break  # the recording ended (or never came)
        if duration_s is not None and time.monotonic() - start >= duration_s:
            break
        time.sleep(every_s)
    return reads


def compare(reads: list[dict[str, float]], trace_path: Path) -> list[dict[str, Any]]:
    from greentop.energy import converter_for, primary_channels
    from greentop.trace import load

    trace = load(trace_path)
    offset_ns = int(trace.meta["start_wall_ns"]) - int(trace.meta["start_mono_ns"])
    by_domain = {c.domain: c for c in primary_channels([cd.channel for cd in trace.channels])}
    first, last = reads[0], reads[-1]
    rows = []
    for domain in sorted(k for k in set(first) & set(last) if not k.startswith("_")):
        c = by_domain.get(domain)
        if c is None:
            continue
        cd = trace.channel(c.name)
        e = converter_for(c).feed(cd.t_ns, cd.raw).energy_j
        t = cd.t_ns.astype(np.float64)
        # The window is when the counters' values hold (their newest samples), not when they were read.
        t0, t1 = first.get("_t:" + domain, first["_t_wall"]), last.get("_t:" + domain, last["_t_wall"])
        lo, hi = t0 * 1e9 - offset_ns, t1 * 1e9 - offset_ns
        trace_j = float(np.interp(hi, t, e) - np.interp(lo, t, e))
        metric_j = last[domain] - first[domain]
        rows.append({"domain": domain, "window_s": t1 - t0, "metrics_j": metric_j, "trace_j": trace_j,
                     "diff_pct": 100.0 * (metric_j - trace_j) / trace_j if trace_j else None})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description="poll greentop's /metrics; compare its energy counters with the trace")
    ap.add_argument("url")
    ap.add_argument("--every", type=float, default=1.0, help="seconds between reads (default 1)")
    ap.add_argument("--duration", type=float, help="stop after this long (default: when the endpoint goes away)")
    ap.add_argument("--out", type=Path, help="write every read as JSON lines")
    ap.add_argument("--trace", type=Path, help="the recording's trace: compare once it is complete")
    args = ap.parse_args()
    reads = poll(args.url, args.every, args.duration)
    if args.out:
        args.out.write_text("".join(json.dumps(r) + "\n" for r in reads))
    if len(reads) < 2:
        print(f"read_metrics: {len(reads)} read(s) of {args.url}: nothing to compare", file=sys.stderr)
        return 1
    if args.trace:
        for _ in range(120):  # the recorder finalises the trace a moment after the endpoint closes
            try:
                rows = compare(reads, args.trace)
                break
            except Exception:  # noqa: BLE001 -- not complete yet
                time.sleep(0.5)
        else:
            rows = compare(reads, args.trace)
        for row in rows:
            print(json.dumps(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
