"""Per GPU and per phase: greentop's energy against the NVML energy counter each rank read itself.

    python benchmarks/multigpu/compare.py run.h5 edges/ [--without edges-no-greentop/] [--json]

``edges/`` holds the ``rank<R>.json`` files ``ddp_train.py`` wrote. For every rank's phase:

- ``nvml_j``: the delta of ``nvmlDeviceGetTotalEnergyConsumption`` the rank read around the phase
  (after an idle gap on each side);
- ``window_j``: the energy greentop's trace gives for that GPU over exactly the same window (between
  the two reads), from the GPU's primary channel (its energy counter where it has one);
  ``diff_pct`` is ``window_j`` against ``nvml_j``, and ``ok`` says whether it is within 2 % (the bar
  applies to phases of 2 s or more);
- ``phase_j``: the phase's energy on that GPU as ``greentop summary --by rank`` attributes it
  (phase boundaries only), with images/s and J per image.

``--without DIR``: the same run's edges without ``greentop record``: images/s with and without,
the recording's cost in throughput. A table, or JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

from greentop.energy import converter_for, primary_channels  # noqa: E402
from greentop.groups import GPU_DOMAIN, rank_gpu  # noqa: E402
from greentop.trace import load  # noqa: E402

BAR_PCT = 2.0
MIN_PHASE_S = 2.0


def _ranks(folder: Path) -> list[dict[str, Any]]:
    docs = [json.loads(p.read_text()) for p in sorted(folder.glob("rank*.json"))]
    if not docs:
        raise SystemExit(f"compare: no rank*.json in {folder}")
    return sorted(docs, key=lambda d: d["rank"])


def compare(trace_path: Path, edges_dir: Path, without: Path | None = None) -> list[dict[str, Any]]:
    trace = load(trace_path)
    summary = trace.summary(0.0)
    gpus = {int(m.group(1)): c for c in primary_channels([cd.channel for cd in trace.channels])
            if (m := GPU_DOMAIN.match(c.domain))}
    cum = {}
    for idx, c in gpus.items():
        cd = trace.channel(c.name)
        cum[idx] = (cd.t_ns.astype(np.float64), converter_for(c).feed(cd.t_ns, cd.raw).energy_j)
    base = {(d["rank"], e["name"], json.dumps(e["attrs"], sort_keys=True)): e for d in _ranks(without)
            for e in d["phases"]} if without else {}
    rows = []
    for doc in _ranks(edges_dir):
        for e in doc["phases"]:
            cands = [r for r in summary.phase_rows() if r.name == e["name"] and r.attrs.get("rank") == doc["rank"]
                     and all(r.attrs.get(k) == v for k, v in e["attrs"].items())]
            row = min(cands, key=lambda r: abs(r.start_ns - e["t0_ns"])) if cands else None
            domain = rank_gpu(row.attrs, {i: c.domain for i, c in gpus.items()}) if row is not None else None
            idx = int(GPU_DOMAIN.match(domain).group(1)) if domain else None  # type: ignore[union-attr]
            out: dict[str, Any] = {"rank": doc["rank"], "gpu": idx, "phase": e["name"], **e["attrs"], "phase_s": e["seconds"],
                                   "images": e["images"], "images_per_s": e["images"] / e["seconds"] if e["seconds"] else None}
            if row is not None and domain is not None:
                phase_j = row.domain(domain).energy_j
                out |= {"phase_j": phase_j, "phase_uncertainty_j": row.domain(domain).energy_uncertainty_j,
                        "j_per_image": phase_j / e["images"] if e["images"] else None}
            if idx in cum and e["counter_mj"] is not None:
                t, en = cum[idx]
                window_j = float(np.interp(e["read1_ns"], t, en) - np.interp(e["read0_ns"], t, en))
                nvml_j = e["counter_mj"] / 1e3
                diff = 100.0 * (window_j - nvml_j) / nvml_j if nvml_j else None
                out |= {"window_s": (e["read1_ns"] - e["read0_ns"]) / 1e9, "window_j": window_j, "nvml_j": nvml_j, "diff_pct": diff,
                        "ok": None if e["seconds"] < MIN_PHASE_S or diff is None else abs(diff) <= BAR_PCT}
            b = base.get((doc["rank"], e["name"], json.dumps(e["attrs"], sort_keys=True)))
            if b is not None and b["seconds"]:
                out["images_per_s_without"] = b["images"] / b["seconds"]
                out["throughput_cost_pct"] = 100.0 * (1 - out["images_per_s"] / out["images_per_s_without"])
            rows.append(out)
    return rows


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
    return str(v)


def main() -> int:
    ap = argparse.ArgumentParser(description="per-GPU per-phase energy: greentop against the ranks' own NVML counter reads")
    ap.add_argument("trace", type=Path)
    ap.add_argument("edges", type=Path, help="folder of rank<R>.json from ddp_train.py")
    ap.add_argument("--without", type=Path, help="edges of the same run without greentop (throughput cost)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = compare(args.trace, args.edges, args.without)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    cols = ["rank", "gpu", "phase", "epoch", "phase_s", "images_per_s", "phase_j", "j_per_image", "window_j", "nvml_j", "diff_pct", "ok"]
    if any("throughput_cost_pct" in r for r in rows):
        cols += ["images_per_s_without", "throughput_cost_pct"]
    cells = [[_cell(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(x) for x in [c] + [row[i] for row in cells]) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths)))
    for row in cells:
        print("  ".join(x.ljust(w) for x, w in zip(row, widths)))
    print(f"\nok: greentop's GPU energy over the rank's own read window within {BAR_PCT:g} % of the NVML counter delta "
          f"(phases of {MIN_PHASE_S:g} s or more; '-' for shorter ones)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
