"""Small tables of a measurement and a Monitor, as plain text and as HTML (Jupyter).

Measurements are ``attribution.PhaseSummary`` rows, the ledger's own type; these functions render
them without changing that type: IPython is told how to display it (``register_formatters``), so a
notebook cell ending in ``mon.measurement("train")`` shows the table. No Textual here.
"""

from __future__ import annotations

import html
import sys
from typing import Any, Protocol, Sequence

from greentop.attribution import PhaseSummary, RunSummary
from greentop.channel import Channel
from greentop.formatters import duration as _dur
from greentop.formatters import num as _num
from greentop.formatters import text_table


class MonitorView(Protocol):
    """What these tables read of a ``greentop.Monitor`` (which passes itself in)."""

    @property
    def running(self) -> bool: ...
    @property
    def rate_hz(self) -> float: ...
    @property
    def channels(self) -> Sequence[Channel]: ...

    def summary(self) -> RunSummary: ...

HEADER = ["domain", "energy (J)", "± (J)", "avg (W)", "peak (W)", "flag"]


def _domain_cells(m: PhaseSummary) -> list[list[str]]:
    out = []
    for d in m.domains:
        name = d.domain + (" (est.)" if d.estimated and "estimated" not in d.domain else "")
        out.append([name, _num(d.energy_j), _num(d.energy_uncertainty_j), _num(d.average_w), _num(d.peak_w), d.flag])
    return out


def _title(m: PhaseSummary) -> str:
    status = "" if m.status == "ok" else f", {m.status}"
    return f"{m.name}: {_dur(m.duration_s)}{status}"


def _text_table(rows: list[list[str]]) -> str:
    return text_table(HEADER, rows)


def measurement_text(m: PhaseSummary) -> str:
    """``name: duration`` and one line per domain (J, ± J, average and peak W, flags)."""
    return f"{_title(m)}\n{_text_table(_domain_cells(m))}"


def _html_table(caption: str, rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in HEADER)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return (f"<table><caption style='text-align:left'>{html.escape(caption)}</caption>"
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def measurement_html(m: PhaseSummary) -> str:
    return _html_table(_title(m), _domain_cells(m))


def _monitor_state(mon: MonitorView) -> str:
    state = "running" if mon.running else "stopped"
    return f"greentop.Monitor({state}, {mon.rate_hz:g} Hz, {len(mon.channels)} channels: {', '.join(c.name for c in mon.channels)})"


def _rows(mon: MonitorView) -> list[PhaseSummary]:
    """The whole sampling time, then every window and phase, in tree order."""
    try:
        s = mon.summary()
    except Exception:  # noqa: BLE001 -- a repr must not raise (no samples yet)
        return []
    return [r for r in s.rows if r.kind in ("run", "phase")]


def monitor_text(mon: MonitorView) -> str:
    parts = [_monitor_state(mon)]
    parts += [measurement_text(r) for r in _rows(mon)]
    return "\n".join(parts)


def monitor_html(mon: MonitorView) -> str:
    tables = "".join(_html_table(_title(r), _domain_cells(r)) for r in _rows(mon))
    return f"<div><p><code>{html.escape(_monitor_state(mon))}</code></p>{tables}</div>"


def _ipython() -> Any:
    """The running IPython shell, or None (IPython is never imported here: only looked up)."""
    mod = sys.modules.get("IPython")
    get = getattr(mod, "get_ipython", None) if mod is not None else None
    return get() if get is not None else None


def register_formatters(ip: Any) -> None:
    """Teach ``ip`` (an IPython shell) to show a measurement as a table."""
    formatters = ip.display_formatter.formatters
    formatters["text/plain"].for_type(PhaseSummary, lambda m, p, cycle: p.text(measurement_text(m)))
    formatters["text/html"].for_type(PhaseSummary, measurement_html)


def register_if_ipython() -> None:
    """Register the measurement tables with IPython when this runs inside it (no ``%load_ext``)."""
    ip = _ipython()
    if ip is not None and hasattr(ip, "display_formatter"):
        register_formatters(ip)


def show_in_notebook(mon: MonitorView) -> None:
    """At the end of ``with greentop.Monitor() as mon:`` in a notebook, show its table."""
    ip = _ipython()
    if ip is None or not hasattr(ip, "kernel"):  # a terminal IPython prints the repr on demand
        return
    from IPython.display import display

    display(mon)
