"""Per-phase GPU energy from a trace against NVML counter deltas the workload read itself.

    python benchmarks/gpu_phase_compare.py run.h5 edges.json

For every phase of ``gpu_phase_workload.py``: the GPU energy greentop attributes to it (from the
trace's energy counter, interpolated at the phase's boundaries, as ``greentop summary`` does),
the energy of the instantaneous power field integrated over the same boundaries, and the delta
of ``nvmlDeviceGetTotalEnergyConsumption`` the workload read around the phase. JSON lines out.
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
    instant = next((c for c in trace.channels if c.channel.name == "nvml:gpu0:power_instant"), None)
    inst_t = inst_e = None
    if instant is not None:
        inst_t = instant.t_ns.astype(np.float64)
        inst_e = converter_for(instant.channel).feed(instant.t_ns, instant.raw).energy_j
    for edge in edges:
        candidates = [r for r in rows if r.name == edge["name"] and r.attrs == edge["attrs"]]
        if not candidates:
            print(json.dumps({"phase": edge["name"], "error": "not in trace"}))
            continue
        row = min(candidates, key=lambda r: abs(r.start_ns - edge["t0_ns"]))
        gpu = row.domain("gpu-0")
        counter_j = edge["counter_mj"] / 1e3
        out = {
            "phase": edge["name"], "attrs": edge["attrs"], "duration_s": round(row.duration_s, 3),
            "nvml_counter_delta_j": round(counter_j, 2), "greentop_j": round(gpu.energy_j, 2),
            "greentop_uncertainty_j": round(gpu.energy_uncertainty_j, 2),
            "error_pct": round(100 * (gpu.energy_j - counter_j) / counter_j, 3) if counter_j else None,
            "average_w": round(gpu.average_w, 1),
        }
        if inst_t is not None and inst_e is not None:
            e = float(np.interp(row.end_ns, inst_t, inst_e) - np.interp(row.start_ns, inst_t, inst_e))
            out["power_instant_j"] = round(e, 2)
            out["power_instant_error_pct"] = round(100 * (e - counter_j) / counter_j, 3) if counter_j else None
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
