"""The results table: one row per point, built from greentop's summary and the result document."""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path
from typing import Any, Sequence

from greentop.formatters import J_PER_KWH
from workloads.results import (
    COUNT_NAMES,
    PER_UNIT_COLUMNS,
)
from workloads.sweep.spec import Cell, SweepError

# ----------------------------------------------------------------------------------- results table


def _f(x: Any) -> float | None:
    """A number from the summary JSON (None there is a NaN or a missing figure)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x)


def _total(row: dict[str, Any]) -> dict[str, Any]:
    for d in row.get("domains", []):
        if d.get("domain") == "total":
            return dict(d)
    return {}


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None else a - (b or 0.0)


def summary_columns(summary: dict[str, Any], primary_phase: str | None) -> dict[str, Cell]:
    """The energy columns of one results row from ``greentop summary --format json``."""
    rows: list[dict[str, Any]] = summary.get("rows", [])
    run = next((r for r in rows if r.get("kind") == "run"), None)
    if run is None:
        raise ValueError("summary has no run row")
    base = next((r for r in rows if r.get("kind") == "baseline"), None)
    rt, bt = _total(run), _total(base) if base else {}
    carbon = _f(summary.get("carbon_g_per_kwh"))
    # The run row covers the idle baseline too: the workload is the run without it.
    duration_s = _minus(_f(run.get("duration_s")), _f(base.get("duration_s")) if base else None)
    energy_j = _minus(_f(rt.get("energy_j")), _f(bt.get("energy_j")))
    above = _minus(_f(rt.get("above_baseline_j")), _f(bt.get("above_baseline_j")))
    cols: dict[str, Cell] = {
        "duration_s": duration_s,
        "energy_j": energy_j,
        "energy_above_idle_j": above,
        "avg_power_w": energy_j / duration_s if energy_j is not None and duration_s else None,
        # Peak of the whole run: the idle baseline inside it is the lowest stretch, so it never sets the peak.
        "peak_power_w": _f(rt.get("peak_w")),
        "idle_power_w": _f(bt.get("average_w")) if base else None,
        "gco2e": energy_j / J_PER_KWH * carbon if energy_j is not None and carbon is not None else None,
        "carbon_g_per_kwh": carbon,
        "estimated": bool(rt.get("estimated", False)),
    }
    base_domains = {d.get("domain"): d for d in (base or {}).get("domains", [])}
    for d in run.get("domains", []):
        name = d.get("domain")
        if name and name != "total":
            cols[f"domain.{name}.energy_j"] = _minus(_f(d.get("energy_j")), _f(base_domains.get(name, {}).get("energy_j")))

    phase_rows = [r for r in rows if r.get("kind") == "phase"]
    by_index = {r.get("index"): r for r in phase_rows}

    def nested_in_namesake(r: dict[str, Any]) -> bool:
        # A phase inside another of the same name is already in that one's inclusive figures.
        seen: set[Any] = set()
        p = r.get("parent", -1)
        while p in by_index and p not in seen:
            seen.add(p)
            if by_index[p].get("name") == r.get("name"):
                return True
            p = by_index[p].get("parent", -1)
        return False

    phase_sums: dict[str, dict[str, float]] = {}
    phase_domains: dict[str, dict[str, float]] = {}  # per phase, each measured or estimated domain apart
    phase_counts: dict[str, dict[str, float]] = {}
    for r in phase_rows:
        if nested_in_namesake(r):
            continue
        t = _total(r)
        s = phase_sums.setdefault(r["name"], {"energy_j": 0.0, "duration_s": 0.0, "exclusive_energy_j": 0.0})
        s["energy_j"] += _f(t.get("energy_j")) or 0.0
        s["duration_s"] += _f(r.get("duration_s")) or 0.0
        s["exclusive_energy_j"] += _f(t.get("exclusive_energy_j")) or 0.0
        pd_ = phase_domains.setdefault(r["name"], {})
        for d in r.get("domains", []):
            if d.get("domain") and d.get("domain") != "total":
                pd_[d["domain"]] = pd_.get(d["domain"], 0.0) + (_f(d.get("energy_j")) or 0.0)
        c = phase_counts.setdefault(r["name"], {})
        for n, v in (r.get("counts") or {}).items():
            c[n] = c.get(n, 0.0) + (_f(v) or 0.0)
    for name, s in phase_sums.items():
        for k, v in s.items():
            cols[f"phase.{name}.{k}"] = v
        for dom, v in phase_domains.get(name, {}).items():  # e.g. phase.decode.gpu-0.energy_j: GPU only
            cols[f"phase.{name}.{dom}.energy_j"] = v
    for n, v in sorted((run.get("counts") or {}).items()):
        cols[f"count.{n}"] = _count_cell(v)
    primary = phase_sums.get(primary_phase or "")
    for n, col in PER_UNIT_COLUMNS.items():
        count = phase_counts.get(primary_phase or "", {}).get(n)
        cols[col] = primary["energy_j"] / count if primary is not None and count else None
    return cols


def _count_cell(v: Any) -> Cell:
    x = _f(v)
    return int(x) if x is not None and x.is_integer() else x


def result_columns(doc: dict[str, Any]) -> dict[str, Cell]:
    cols: dict[str, Cell] = {}
    for prefix, key in (("metric", "metrics"), ("hw", "hardware")):
        for k, v in (doc.get(key) or {}).items():
            cols[f"{prefix}.{k}"] = v
    return cols


# Where each kind of column goes, in the contract's order (workloads.results).
HEAD_COLUMNS = ("schema_version", "sweep", "point", "status", "exit_code", "trace", "workload", "primary_phase")
TOTAL_COLUMNS = ("duration_s", "energy_j", "energy_above_idle_j", "avg_power_w", "peak_power_w", "idle_power_w", "gco2e",
                 "carbon_g_per_kwh", "estimated")
PER_UNIT = tuple(PER_UNIT_COLUMNS[n] for n in COUNT_NAMES)


def column_order(names: Sequence[str]) -> list[str]:
    """The header for rows holding these columns: fixed columns in the contract's order, then
    each prefix group in first-seen order; anything unknown (a newer version's column) last."""
    groups: dict[str, list[str]] = {g: [] for g in ("param", "metric", "hw", "domain", "phase", "count", "other")}
    for n in dict.fromkeys(names):
        if n in HEAD_COLUMNS or n in TOTAL_COLUMNS or n in PER_UNIT:
            continue
        prefix = n.split(".", 1)[0] if "." in n else "other"
        groups[prefix if prefix in groups else "other"].append(n)
    return [*HEAD_COLUMNS, *groups["param"], *groups["metric"], *groups["hw"], *TOTAL_COLUMNS, *groups["domain"],
            *groups["phase"], *groups["count"], *PER_UNIT, *groups["other"]]


def cell_text(v: Cell) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ""
    return str(v)


def read_results(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of an existing results.csv (none yet: empty)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return [], []
    except OSError as exc:
        raise SweepError(f"cannot read {path}: {exc}") from None
    reader = csv.DictReader(io.StringIO(text))
    header = list(reader.fieldnames or [])
    if header and "point" not in header:
        raise SweepError(f"{path} is not a sweep results table (no 'point' column); move it away or use another --out")
    # A row longer than the header puts its extra cells under None: drop them.
    return header, [{k: v for k, v in r.items() if k is not None} for r in reader]


def write_results(path: Path, rows: Sequence[dict[str, Cell]]) -> None:
    """Rewrite the table atomically: a crash or Ctrl-C never leaves half a file."""
    header = column_order([k for r in rows for k in r])
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for r in rows:
        w.writerow([cell_text(r.get(k)) for k in header])
    atomic_write(path, buf.getvalue())


def atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    tmp.replace(path)
