"""Text both summary tables share: the sampler-health lines and what the machine total adds up.

Below ``summary_format`` (the full table, CSV, JSON, Markdown) and ``summary_compact`` (the
default folded table), so neither imports the other's private helpers.
"""

from __future__ import annotations

from typing import Any

from greentop.attribution import RunSummary


def health_lines(health: dict[str, Any]) -> list[str]:
    """Sampler health, short: totals, each lane, and only the channels that had a problem."""
    lines: list[str] = []
    scalars = {k: v for k, v in health.items() if not isinstance(v, dict)}
    if scalars:
        lines.append("  " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in scalars.items()))
    for key, sub in health.items():
        if not isinstance(sub, dict):
            continue
        for name, vals in sub.items():
            if isinstance(vals, dict):
                problems = {k: v for k, v in vals.items() if k not in ("reads", "ticks") and v}
                if key == "channels" and not problems:
                    continue
                lines.append(f"  {key[:-1] if key.endswith('s') else key} {name}: "
                             + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in vals.items()))
            else:
                lines.append(f"  {key} {name}: {vals}")
    return lines


def machine_total_text(s: RunSummary) -> str:
    """What the machine total adds up, stated in every format (the --cpu-total choice)."""
    return s.machine_total or f"machine total: --cpu-total {s.cpu_total}"
