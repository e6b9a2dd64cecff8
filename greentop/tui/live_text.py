"""The live view's text: the phase table's per-unit cell, the Markdown export, the lines printed
after the view closes, and the workload's output folded to the pane. Figures go through
``greentop.formatters``."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Sequence

from greentop.attribution import summarise
from greentop.formatters import co2 as _co2
from greentop.formatters import duration_short as _duration
from greentop.formatters import energy_j_wh as _energy
from greentop.formatters import gco2e_g as _grams
from greentop.labels import singular
from greentop.summary_format import format_summary
from greentop.trace import load
from greentop.tui.live import LiveModel, PhaseRow


def per_unit(row: PhaseRow) -> str:
    """Energy per counted unit, the first count by name ("0.412 J/sample"); "" when nothing counted."""
    per = row.per_unit_j()
    if not per:
        return ""
    name = sorted(per)[0]
    return f"{per[name]:.3g} J/{singular(name)}"


def trace_summary_markdown(path: Path, carbon: tuple[float, str]) -> str:
    """``greentop summary --format md`` of a trace (one being written, or finished)."""
    return format_summary(summarise(load(path), carbon[0], carbon[1]), "md")


def live_summary_markdown(model: LiveModel, carbon: tuple[float, str], command: Sequence[str] = ()) -> str:
    """The live phase table as Markdown, with the run's totals and carbon."""
    g_per_kwh, source = carbon
    e = model.energy_j
    lines = ["# greentop live summary", ""]
    if command:
        lines.append(f"Command: `{' '.join(command)}`  ")
    lines += [f"Run: {_energy(e)}, {_co2(e, g_per_kwh)} in {_duration(model.duration_s)}"
              + (" (includes estimated channels)" if any(c.estimated for c in model.channels) else "") + "  ",
              f"Carbon intensity: {source}  ", model.machine_total, ""]
    rows, _ = model.phases()
    if not rows:
        lines.append("No phases were reported.")
        return "\n".join(lines) + "\n"
    lines += ["| phase | n | time | energy J | avg W | gCO2e | per unit |", "|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        name = r.path.replace("|", "\\|") + (" (open)" if r.open else "")
        per = ", ".join(f"{v:.3g} J/{singular(k)}" for k, v in sorted(r.per_unit_j().items()))
        lines.append(f"| {name} | {r.count} | {_duration(r.duration_s)} | {r.energy_j:.1f} | {r.avg_w:.1f} | "
                     f"{_grams(r.energy_j, g_per_kwh):.4f} | {per} |")
    return "\n".join(lines) + "\n"


def wrap_output(lines: Sequence[str], width: int) -> list[str]:
    """The workload's lines folded to the output pane's ``width``: a pane cuts what does not fit,
    and a workload's last line (its result) is often its longest. Continuations are indented."""
    if width < 20:  # not laid out yet (or absurdly narrow): leave the lines alone
        return list(lines)
    out: list[str] = []
    for line in lines:
        out.extend(textwrap.wrap(line, width, subsequent_indent="  ", drop_whitespace=False, replace_whitespace=False)
                   if len(line) > width else [line])
    return out


def summary_lines(model: LiveModel, carbon: tuple[float, str] | None = None) -> list[str]:
    co2 = f", {_co2(model.energy_j, carbon[0])}" if carbon is not None else ""
    lines = [f"total: {_energy(model.energy_j)}{co2} over {_duration(model.duration_s)}"
             + (" (includes estimates)" if any(c.estimated for c in model.channels) else ""), model.machine_total]
    rows, _ = model.phases()
    for r in rows:
        lines.append(f"  {'  ' * r.depth}{r.path.rsplit('/', 1)[-1]}: {r.count}x, {_duration(r.duration_s)}, "
                     f"{r.energy_j:.1f} J, {r.avg_w:.1f} W avg")
    return lines
