"""The summary a person reads first: one line per kind of phase.

Phases with the same name path ("train/epoch") fold into one row: ``n`` of them, their mean
duration, energy and gCO2e, and the spread of their energy (the sample standard deviation, J).
One energy column per domain, and the total only when there is more than one domain (with one,
it is the same number twice). ``greentop summary --detail`` (:mod:`greentop.summary_format`'s
table) gives every phase and every domain with its uncertainty; this view drops the ± bounds.
"""

from __future__ import annotations

import statistics
import textwrap
from dataclasses import dataclass, field

from greentop.attribution import FLAG_ESTIMATED, FLAG_INCLUDES_ESTIMATE, KIND_PHASE, TOTAL, PhaseSummary, RunSummary
from greentop.labels import per_unit_label, phase_label
from greentop.formatters import duration as _dur
from greentop.formatters import num as _num
from greentop.summary_parts import health_lines as _health_lines
from greentop.summary_parts import machine_total_text
from greentop.update_period import update_period_text

_WRAP = 118
_MAX_INDENT_DEPTH = 6
_MAX_TITLE = 32  # characters of a phase name and its attributes


@dataclass
class PhaseGroup:
    """The phases of one name path (or one run/baseline/untagged row), in order of first start."""

    path: str
    depth: int
    rows: list[PhaseSummary] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.rows)

    def energy_j(self, domain: str) -> list[float]:
        return [r.domain(domain).energy_j for r in self.rows]

    def counts(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for r in self.rows:
            for k, v in r.counts.items():
                out[k] = out.get(k, 0.0) + v
        return out


def group_rows(s: RunSummary) -> list[PhaseGroup]:
    """Rows folded by name path: "train/epoch" collects every epoch under every "train"."""
    paths: dict[int, str] = {}
    groups: dict[str, PhaseGroup] = {}
    for r in s.rows:
        if r.kind == KIND_PHASE:
            parent = paths.get(r.parent, "")
            path = f"{parent}/{r.name}" if parent else r.name
            paths[r.index] = path
            key = "phase:" + path
        else:
            key = r.kind + ":" + r.name
        g = groups.get(key)
        if g is None:
            g = groups[key] = PhaseGroup(path=r.name if r.kind != KIND_PHASE else path, depth=r.depth)
        g.rows.append(r)
    return list(groups.values())


def _title(g: PhaseGroup) -> str:
    first = g.rows[0]
    name = first.name
    if g.n == 1 and first.kind == KIND_PHASE and first.attrs:  # the rest of them: --detail
        name = textwrap.shorten(phase_label(first.name, first.attrs), _MAX_TITLE, placeholder=" ...")
    bad = [r.status for r in g.rows if r.status != "ok"]
    if bad:
        name += f" [{bad[0]}]" if g.n == 1 else f" [{len(bad)} {bad[0]}]"
    return "  " * min(g.depth, _MAX_INDENT_DEPTH) + name


def _per_unit(g: PhaseGroup, total_j: float) -> str:
    return ", ".join(f"{_num(total_j / v)} {per_unit_label(k)}" for k, v in sorted(g.counts().items()) if v > 0)


def _flags(r: PhaseSummary) -> set[str]:
    """A row's flags, each once; "estimated" is left out: the domain's name already says it."""
    found = {f for text in [r.flag, *(d.flag for d in r.domains)] for f in text.split("; ") if f}
    return found - {FLAG_ESTIMATED, FLAG_INCLUDES_ESTIMATE}


def compact_table(s: RunSummary) -> str:
    out: list[str] = []
    run_s = max(s.run_end_ns - s.run_start_ns, 0) * 1e-9
    out.append(f"greentop summary: run {_dur(run_s)}, {len(s.phase_rows())} phases, "
               f"carbon intensity {s.carbon_g_per_kwh:g} gCO2e/kWh")
    if s.meta.get("command"):
        v = s.meta["command"]
        text = " ".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)
        out.append("  command: " + textwrap.shorten(text, _WRAP - 11, placeholder=" ..."))
    for info in s.domains:
        beside = "" if info.in_total else ", not in the total"
        out.append(f"  {info.domain}: {info.channel}, "
                   f"{update_period_text(info.update_period_s, info.sample_interval_s, info.estimated)}{beside}")
    out.extend(textwrap.wrap(machine_total_text(s), _WRAP, initial_indent="  ", subsequent_indent="    "))
    domains = [d.domain for d in s.rows[0].domains if d.domain != TOTAL] if s.rows else []
    energy_cols = domains + ([TOTAL] if len(domains) > 1 else [])
    one = len(energy_cols) == 1
    head = ["phase", "n", "time"] + (["energy J"] if one else [f"{d} J" for d in energy_cols])
    head += ["sd J", "avg W", "peak W", "gCO2e", "per unit"]
    table: list[list[str]] = []
    flags: list[str] = []
    groups = group_rows(s)
    for g in groups:
        total = g.energy_j(TOTAL)
        sum_total_j = sum(total)
        sum_s = sum(r.duration_s for r in g.rows)
        cells = [_title(g), str(g.n), _dur(sum_s / g.n)]
        cells += [_num(statistics.fmean(g.energy_j(d))) for d in energy_cols]
        cells.append(_num(statistics.stdev(total)) if g.n > 1 else "")
        cells.append(_num(sum_total_j / sum_s) if sum_s > 0 else "-")
        cells.append(_num(max(r.total.peak_w for r in g.rows)))
        cells.append(_num(statistics.fmean(r.total.gco2e_g for r in g.rows)))
        cells.append(_per_unit(g, sum_total_j))
        table.append(cells)
        why_by_row = [_flags(r) for r in g.rows]
        flagged = [w for w in why_by_row if w]
        if flagged:
            why = sorted(set().union(*flagged))
            which = g.path if g.n == 1 else f"{g.path} ({len(flagged)} of {g.n})"
            flags.append(f"{which}: {'; '.join(why)}")
    widths = [max(len(row[i]) for row in [head] + table) for i in range(len(head))]
    out.append("")

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = "".join("  " + c.rjust(w) for c, w in zip(cells[1:-1], widths[1:-1]))
        return ("  " + first + rest + "  " + cells[-1]).rstrip()

    out.append(line(head))
    out.extend(line(c) for c in table)
    out.append("")
    out.append("n > 1: time, energy and gCO2e are the mean of one phase, sd J the spread of its energy.")
    for f in flags:
        out.extend(textwrap.wrap(f, _WRAP, initial_indent="! ", subsequent_indent="  "))
    if s.health:
        out.append("")
        out.append("sampler health:")
        out.extend(_health_lines(s.health))
    for n in s.notes:
        out.extend(textwrap.wrap(n, _WRAP, initial_indent="note: ", subsequent_indent="      "))
    out.append("Every phase, each domain's ± bound: greentop summary --detail.")
    return "\n".join(out) + "\n"
