"""Per-phase GPU energy from a trace against NVML counter deltas the workload read itself.

    python benchmarks/gpu_phase_compare.py run.h5 edges.json

For every phase of ``gpu_phase_workload.py``: the delta of ``nvmlDeviceGetTotalEnergyConsumption``
the workload read itself around the phase (after an idle gap on each side), against the GPU energy
greentop's trace gives for the same window (between the two reads), from its energy-counter
channel and, independently, from the instantaneous power field integrated. Also the phase's own
energy as ``greentop summary`` attributes it (phase boundaries only, no gaps). JSON lines out.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from greentop.attribution import summarise  # noqa: E402
from greentop.energy import converter_for  # noqa: E402
from greentop.trace import load  # noqa: E402


def main() -> int:
    trace_path, edges_path = sys.argv[1], sys.argv[2]
    trace = load(trace_path)
    edges = json.loads(Path(edges_path).read_text())
    summary = summarise(trace, 0.0)
    rows = summary.phase_rows()
    cum: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for c in trace.channels:
        if c.channel.name in ("nvml:gpu0:energy", "nvml:gpu0:power_instant"):
            cum[c.channel.name] = (c.t_ns.astype(np.float64), converter_for(c.channel).feed(c.t_ns, c.raw).energy_j)

    def window_j(channel: str, a_ns: int, b_ns: int) -> float:
        t, e = cum[channel]
        return float(np.interp(b_ns, t, e) - np.interp(a_ns, t, e))

    for edge in edges:
        candidates = [r for r in rows if r.name == edge["name"] and r.attrs == edge["attrs"]]
        if not candidates:
            print(json.dumps({"phase": edge["name"], "error": "not in trace"}))
            continue
        row = min(candidates, key=lambda r: abs(r.start_ns - edge["t0_ns"]))
        gpu = row.domain("gpu-0")
        counter_j = edge["counter_mj"] / 1e3
        a, b = edge["read0_ns"], edge["read1_ns"]
        out: dict[str, object] = {
            "phase": edge["name"], "attrs": edge["attrs"], "phase_s": round(row.duration_s, 3), "window_s": round((b - a) / 1e9, 3),
            "workload_counter_delta_j": round(counter_j, 2),
            "phase_energy_j": round(gpu.energy_j, 2), "phase_uncertainty_j": round(gpu.energy_uncertainty_j, 2),
            "phase_average_w": round(gpu.average_w, 1),
        }
        for channel, key in (("nvml:gpu0:energy", "trace_counter"), ("nvml:gpu0:power_instant", "trace_power_instant")):
            if channel in cum:
                e = window_j(channel, a, b)
                out[f"{key}_j"] = round(e, 2)
                out[f"{key}_error_pct"] = round(100 * (e - counter_j) / counter_j, 3) if counter_j else None
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
