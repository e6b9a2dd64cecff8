"""A :class:`~greentop.attribution.RunSummary` as text: table, CSV, JSON or Markdown.

``format_summary(summary, fmt)``: "table" (terminal, 80-120 columns: one block per row, indented by
phase depth, one line per domain), "csv" (one row per phase x domain, units in column names), "json"
(everything, with the schema version and the carbon intensity's source), "md" (a Markdown table for
a report). Figures are never rounded in CSV and JSON; the table and Markdown round for reading.
"""

from __future__ import annotations

import csv
import io
import json
import math
import textwrap
from typing import Any

from greentop.attribution import KIND_PHASE, TOTAL, DomainSummary, PhaseSummary, RunSummary
from greentop.formatters import count as _count
from greentop.formatters import duration as _dur
from greentop.formatters import num as _num
from greentop.labels import attrs_text, per_unit_label, phase_label, singular
from greentop.summary_compact import compact_table
from greentop.summary_parts import health_lines as _health_lines
from greentop.summary_parts import machine_total_text
from greentop.update_period import update_period_text

FORMATS = ("table", "csv", "json", "md")
JSON_FORMAT_NAME = "greentop-summary"


def format_summary(summary: RunSummary, fmt: str = "table", detail: bool = False) -> str:
    """``detail``: the table gives every phase and domain; by default, repeated phases fold into
    one row each (:mod:`greentop.summary_compact`)."""
    if fmt == "table":
        if not detail:
            return compact_table(summary)
        return _table(summary)
    if fmt == "csv":
        return _csv(summary)
    if fmt == "json":
        return _json(summary)
    if fmt == "md":
        return _markdown(summary)
    raise ValueError(f"unknown summary format {fmt!r}; known: {', '.join(FORMATS)}")


def _per_unit(d: DomainSummary) -> str:
    return ", ".join(f"{_num(v)} {per_unit_label(n)}" for n, v in sorted(d.per_unit_j.items()))


def _singular(name: str) -> str:
    return singular(name)


def _row_title(r: PhaseSummary) -> str:
    bits = [r.name]
    if r.kind == KIND_PHASE and r.attrs:
        bits.append(attrs_text(r.attrs))
    if r.pid >= 0:
        bits.append(f"pid {r.pid}")
    if r.status != "ok":
        bits.append(f"[{r.status}]")
    return "  ".join(bits)


# -------------------------------------------------------------------------------------- table


_TABLE_COLS = (  # (header, width)
    ("energy J", 10), ("± J", 8), ("excl J", 9), ("Wh", 8), ("avg W", 8), ("peak W", 8), ("above J", 9),
    ("± above", 8), ("gCO2e", 8),
)
_MAX_INDENT_DEPTH = 6
_WRAP = 118


def _table(s: RunSummary) -> str:
    out: list[str] = []
    run_s = max(s.run_end_ns - s.run_start_ns, 0) * 1e-9
    out.append(f"greentop summary: run {_dur(run_s)}, {len(s.phase_rows())} phases, "
               f"carbon intensity {s.carbon_g_per_kwh:g} gCO2e/kWh")
    out.extend(textwrap.wrap(s.carbon_source, _WRAP, initial_indent="  carbon source: ", subsequent_indent="    "))
    for key in ("command", "host"):
        if s.meta.get(key):
            v = s.meta[key]
            text = " ".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)
            out.append(f"  {key}: " + textwrap.shorten(text, _WRAP - len(key) - 4, placeholder=" ..."))
    for info in s.domains:
        upd = update_period_text(info.update_period_s, info.sample_interval_s, info.estimated)
        beside = "" if info.in_total else ", not in the total"
        out.append(f"  {info.domain}: {info.channel} ({info.source} {info.quantity}, {info.samples} samples, {upd}{beside})")
    out.extend(textwrap.wrap(machine_total_text(s), _WRAP, initial_indent="  ", subsequent_indent="    "))
    has_baseline = any(r.total.baseline_w is not None for r in s.rows)
    cols = [c for c in _TABLE_COLS if has_baseline or c[0] not in ("above J", "± above")]
    max_depth = min(max((r.depth for r in s.rows), default=0), _MAX_INDENT_DEPTH)
    # The name column absorbs the indentation, so numbers line up at every depth.
    name_w = 2 * max_depth + max([len(d.domain) for d in s.domains] + [len("= total"), 14]) + 2
    out.append("")
    out.append("  " + "domain".ljust(name_w) + "".join(h.rjust(w + 1) for h, w in cols) + "  J per unit")
    for r in s.rows:
        ind = "  " * min(r.depth, _MAX_INDENT_DEPTH)
        counts = ", ".join(f"{n} {_count(v)}" for n, v in sorted(r.counts.items()))
        excl = r.exclusive_duration_s != r.duration_s
        xtext = f", exclusive {_dur(r.exclusive_duration_s)}" if excl else ""
        out.append(f"{ind}{_row_title(r)}  ({_dur(r.duration_s)}{xtext}{'; ' + counts if counts else ''})")
        for d in r.domains:
            vals = {
                "energy J": _num(d.energy_j), "± J": "±" + _num(d.energy_uncertainty_j),
                "excl J": _num(d.exclusive_energy_j) if excl else "", "Wh": _num(d.energy_wh),
                "avg W": _num(d.average_w), "peak W": _num(d.peak_w), "above J": _num(d.above_baseline_j),
                "± above": "±" + _num(d.above_baseline_uncertainty_j) if d.above_baseline_j is not None else "",
                "gCO2e": _num(d.gco2e_g),
            }
            name = d.domain if d.domain != TOTAL else "= total"
            line = "  " + (ind + name).ljust(name_w) + "".join(vals[h].rjust(w + 1) for h, w in cols)
            pu = _per_unit(d)
            # One figure rides on the row when it fits the terminal width; otherwise it gets its own line.
            inline = len(d.per_unit_j) == 1 and len(line) + 2 + len(pu) <= _WRAP + 2
            out.append(line + ("  " + pu if pu and inline else ""))
            if pu and not inline:
                out.append(f"{ind}      J per unit: {pu}")
            if d.flag:
                out.append(f"{ind}      ! {d.flag}")
    if s.health:
        out.append("")
        out.append("sampler health:")
        out.extend(_health_lines(s.health))
    if s.notes:
        out.append("")
        for n in s.notes:
            out.extend(textwrap.wrap(n, _WRAP, initial_indent="note: ", subsequent_indent="      "))
    out.append("")
    out.append("± is a worst-case bound from sensor update periods and resolution; "
               f"peak W is the highest {s.peak_window_s * 1e3:g} ms average.")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------- csv


def _csv_value(x: Any) -> Any:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    if isinstance(x, bool):
        return int(x)
    if isinstance(x, float):
        return repr(x)  # shortest round-trip representation: no precision lost
    return x


def _count_names(s: RunSummary) -> list[str]:
    return sorted({n for r in s.rows for n in r.counts})


def _csv(s: RunSummary) -> str:
    names = _count_names(s)
    head = ["kind", "phase", "index", "parent", "depth", "pid", "status", "phase_id", "start_ns", "end_ns",
            "duration_s", "exclusive_duration_s", "domain", "estimated", "energy_j", "energy_uncertainty_j",
            "energy_wh", "average_w", "peak_w", "exclusive_energy_j", "exclusive_energy_uncertainty_j",
            "baseline_w", "above_baseline_j", "above_baseline_uncertainty_j", "gco2e_g", "carbon_g_per_kwh"]
    head += [f"count_{n}" for n in names] + [f"j_per_{_singular(n)}" for n in names]
    head += [f"above_baseline_j_per_{_singular(n)}" for n in names] + ["flag", "in_total", "cpu_total"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(head)
    in_total = {i.domain: i.in_total for i in s.domains}
    for r in s.rows:
        for d in r.domains:
            row: list[Any] = [r.kind, r.name, r.index, r.parent, r.depth, r.pid, r.status, r.phase_id, r.start_ns,
                              r.end_ns, r.duration_s, r.exclusive_duration_s, d.domain, d.estimated, d.energy_j,
                              d.energy_uncertainty_j, d.energy_wh, d.average_w, d.peak_w, d.exclusive_energy_j,
                              d.exclusive_energy_uncertainty_j, d.baseline_w, d.above_baseline_j,
                              d.above_baseline_uncertainty_j, d.gco2e_g, s.carbon_g_per_kwh]
            row += [r.counts.get(n) for n in names] + [d.per_unit_j.get(n) for n in names]
            row += [d.per_unit_above_baseline_j.get(n) for n in names] + [d.flag, in_total.get(d.domain, True),
                                                                          s.cpu_total]
            w.writerow([_csv_value(v) for v in row])
    return buf.getvalue()


# --------------------------------------------------------------------------------------- json


def _jsonable(x: Any) -> Any:
    if isinstance(x, float):
        return None if math.isnan(x) or math.isinf(x) else x
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (str, int, bool)) or x is None:
        return x
    if hasattr(x, "tolist"):  # numpy scalars and arrays in trace metadata
        return _jsonable(x.tolist())
    return str(x)


def _json(s: RunSummary) -> str:
    d = s.to_dict()
    doc = {"format": JSON_FORMAT_NAME, "schema_version": d.pop("schema_version"),
           "units": {"energy": "J", "power": "W", "time": "s (ns for *_ns)", "carbon": "gCO2e",
                     "carbon_intensity": "gCO2e/kWh"}} | d
    return json.dumps(_jsonable(doc), indent=2, allow_nan=False) + "\n"


# ----------------------------------------------------------------------------------- markdown


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def _markdown(s: RunSummary) -> str:
    out: list[str] = []
    run_s = max(s.run_end_ns - s.run_start_ns, 0) * 1e-9
    out.append(f"**Energy by phase** (run {_dur(run_s)}; carbon intensity {s.carbon_g_per_kwh:g} gCO2e/kWh, "
               f"{_md_escape(s.carbon_source)})")
    out.append("")
    out.append(_md_escape(machine_total_text(s)))
    out.append("")
    has_baseline = any(r.total.baseline_w is not None for r in s.rows)
    head = ["Phase", "Status", "Duration", "Domain", "Energy (J)", "± (J)", "Exclusive (J)", "Wh", "Avg W",
            "Peak W"]
    head += ["Above idle (J)"] if has_baseline else []
    head += ["J per unit", "gCO2e", "Flags"]
    out.append("| " + " | ".join(head) + " |")
    out.append("|" + "|".join("---" if i < 4 or h == "Flags" else "--:" for i, h in enumerate(head)) + "|")
    for r in s.rows:
        title = "· " * r.depth + _md_escape(phase_label(r.name, r.attrs if r.kind == KIND_PHASE else {}))
        for k, d in enumerate(r.domains):
            cells = [title if k == 0 else "", r.status if k == 0 else "", _dur(r.duration_s) if k == 0 else "",
                     f"**{d.domain}**" if d.domain == TOTAL else _md_escape(d.domain), _num(d.energy_j),
                     "±" + _num(d.energy_uncertainty_j),
                     _num(d.exclusive_energy_j) if r.exclusive_duration_s != r.duration_s else "",
                     _num(d.energy_wh), _num(d.average_w), _num(d.peak_w)]
            cells += [_num(d.above_baseline_j) + (" ±" + _num(d.above_baseline_uncertainty_j)
                                                  if d.above_baseline_j is not None else "")] if has_baseline else []
            cells += [_md_escape(_per_unit(d)), _num(d.gco2e_g), _md_escape(d.flag)]
            out.append("| " + " | ".join(cells) + " |")
    if s.notes:
        out.append("")
        out.extend(f"- {_md_escape(n)}" for n in s.notes)
    out.append("")
    out.append(f"± is a worst-case bound from sensor update periods and resolution; peak W is the highest "
               f"{s.peak_window_s * 1e3:g} ms average; exclusive energy excludes time under child phases.")
    return "\n".join(out) + "\n"
