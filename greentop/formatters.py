"""Numbers, durations, power, energy and carbon as text: the one place every view formats them.

Pure functions, no greentop imports: the summary formats, the live and replay views, the report
and the in-process API all call these, so a figure reads the same wherever it is shown. The
variants differ on purpose (a summary cell, a live status line and a progress ETA need different
precision); each says where it is used.
"""

from __future__ import annotations

import math

J_PER_KWH = 3.6e6
J_PER_WH = 3600.0


def num(x: float | None) -> str:
    """A figure rounded for reading: about four significant digits, no exponent from 1e-3 to the
    tens of MJ a long run reaches; anything below 1e-9 (interpolation rounding) reads as 0."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    a = abs(x)
    if a < 1e-9:
        return "0"
    if a >= 1000:
        return f"{x:.0f}"
    if a >= 100:
        return f"{x:.1f}"
    if a >= 10:
        return f"{x:.2f}"
    if a >= 1:
        return f"{x:.3f}"
    if a >= 1e-3:
        return f"{x:.4f}".rstrip("0")
    return f"{x:.1e}"


def count(v: float) -> str:
    """A work count: no decimals when whole ("256"), else the shortest form ("2.5")."""
    return f"{v:.0f}" if float(v).is_integer() else f"{v:g}"


def sig(x: float | None, digits: int = 3, missing: str = "–") -> str:
    """``digits`` significant digits (the report's tables); ``missing`` for None or a non-finite x."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return missing
    return f"{x:.{digits}g}"


def spec(value: float | None, fmt: str, unit: str = "") -> str:
    """``value`` in format ``fmt`` followed by ``unit``; "-" for None or NaN (``greentop measure``)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:{fmt}}{unit}"


def duration(s: float) -> str:
    """A phase's length in a summary: "12.345 s", "85.3 ms", "2m05.0s", "1h02m05.0s"."""
    if s >= 3600:
        return f"{int(s // 3600)}h{int(s % 3600 // 60):02d}m{s % 60:04.1f}s"
    if s >= 60:
        return f"{int(s // 60)}m{s % 60:04.1f}s"
    if s >= 1:
        return f"{s:.3f} s"
    return f"{s * 1e3:.1f} ms"


def duration_short(seconds: float) -> str:
    """Elapsed time in the live view: "12.3s", "2m05s", "1h02m"."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    m, s = divmod(int(seconds), 60)
    return f"{m}m{s:02d}s" if m < 60 else f"{m // 60}h{m % 60:02d}m"


def eta(s: float) -> str:
    """A time left or spent in a progress line (no fractions past ten seconds): "8.2s", "42s", "3m07s", "1h05m"."""
    s = max(s, 0.0)
    if s >= 3600:
        return f"{int(s // 3600)}h{int(s % 3600 // 60):02d}m"
    if s >= 60:
        return f"{int(s // 60)}m{int(s % 60):02d}s"
    return f"{s:.0f}s" if s >= 10 else f"{s:.1f}s"


def time_offset(t_s: float) -> str:
    """A time on the replay's axis: "12.34 s" (never "-0.00 s"), "12m05.0s" from ten minutes on."""
    t_s = 0.0 if abs(t_s) < 0.005 else t_s
    return f"{t_s:.2f} s" if abs(t_s) < 600 else f"{int(t_s // 60)}m{t_s % 60:04.1f}s"


def power(power_w: float) -> str:
    """Power in the live view: "312.4 W", "1.25 kW", "- W" when unknown."""
    if math.isnan(power_w):
        return "- W"
    if abs(power_w) >= 1000:
        return f"{power_w / 1000:.2f} kW"
    return f"{power_w:.1f} W"


def energy_j_wh(energy_j: float) -> str:
    """Energy in joules and watt-hours: "1234.5 J (0.3429 Wh)"."""
    return f"{energy_j:.1f} J ({energy_j / J_PER_WH:.4f} Wh)"


def joules(energy_j: float) -> str:
    """Energy in joules to a tenth, "-" when not finite (the replay's table)."""
    return "-" if not math.isfinite(energy_j) else f"{energy_j:.1f}"


def gco2e_g(energy_j: float, g_per_kwh: float) -> float:
    """Grams of CO2-equivalent for ``energy_j`` at ``g_per_kwh``."""
    return energy_j / J_PER_KWH * g_per_kwh


def co2(energy_j: float, g_per_kwh: float) -> str:
    """Carbon as text: "0.0123 gCO2e" below ten grams, "12.3 gCO2e" from there."""
    g = gco2e_g(energy_j, g_per_kwh)
    return f"{g:.4f} gCO2e" if g < 10 else f"{g:.1f} gCO2e"


def text_table(header: list[str], rows: list[list[str]]) -> str:
    """Left-aligned columns two spaces apart, each as wide as its widest cell; no trailing blanks."""
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(header, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)
