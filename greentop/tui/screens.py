"""The live view's overlays: the quit question, the help text, the devices list."""

from __future__ import annotations

from typing import Sequence

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.widgets import Static

from greentop.channel import Channel
from greentop.sources import SourceResult


class ConfirmQuit(ModalScreen[bool]):
    """Asked when ``q`` is pressed while the workload still runs."""

    DEFAULT_CSS = """
    ConfirmQuit { align: center middle; }
    ConfirmQuit > Static { width: 60; padding: 1 2; border: thick $warning; background: $surface; }
    """
    BINDINGS = [Binding("y", "answer(True)", "yes"), Binding("n,escape", "answer(False)", "no")]

    def compose(self) -> ComposeResult:
        yield Static("The workload is still running.\nQuit and stop it? [b]y[/b] / [b]n[/b]", id="confirm")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


HELP_TEXT = """[b]greentop live view[/b]

  q      quit (asks while the workload runs)
  p      pause / resume the display (sampling goes on)
  + / -  zoom in / out: halve / double the time window
  r      start / stop recording a trace, greentop-DATE-TIME.h5
  e      export the per-phase summary, greentop-summary-*.md
         (both in $GREENTOP_OUTPUT_DIR, else the current folder)
  d      the devices: each channel, its source, lane and state
  tab    next pane: phase table, output (shift+tab: back)
  ?      this help

Power is each primary domain's energy differenced on a 10 ms
grid; "now" is the last 0.5 s, "avg" the whole run, "peak" the
highest 100 ms. Channels marked (estimated) are modelled, not
measured; "total" shows when there is more than one domain.
"sampler fast 998/1000, slow 10/10 Hz": reads per second each
lane got / asked for (slow: NVML energy, the CPU estimate).
"finished, press q": the workload has exited.
Press any key to close."""


def devices_text(channels: Sequence[Channel], found: SourceResult | None, machine_total: str = "") -> str:
    """The devices overlay: what ``greentop devices`` listed before the view hid it (without the
    measured update periods and read costs: those need a watch of their own), and the
    ``machine_total`` line (what the total adds up, ``--cpu-total``)."""
    lines = ["[b]devices[/b]", ""]
    for c in channels:
        lines.append(f"  {escape(c.name)}  [dim]{escape(c.source)}, {escape(c.domain)}, {c.lane.value} lane[/dim]"
                     + ("  [i]estimated[/i]" if c.estimated else ""))
        if c.note and (c.estimated or "MIG" in c.note):
            lines.append(f"      {escape(c.note)}")
    for p in found.problems if found is not None else []:
        lines += [escape(f"  ! {p.source}: {p.what}: {p.reason}"), escape(f"      fix: {p.fix}")]
    for n in found.notes if found is not None else []:
        lines.append(escape(f"  - {n}"))
    if machine_total:
        lines += ["", escape(machine_total)]
    lines += ["", "Update periods and read costs: greentop devices.", "Press any key to close."]
    return "\n".join(lines)


class DevicesScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    DevicesScreen { align: center middle; }
    DevicesScreen > Static { width: 90%; max-height: 90%; padding: 1 2; border: thick $primary; background: $surface; }
    """

    def __init__(self, text: str) -> None:
        super().__init__()
        self._text = text

    def compose(self) -> ComposeResult:
        yield Static(self._text, id="devices", markup=True)

    def on_key(self) -> None:
        self.dismiss(None)


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Static { width: 72; padding: 1 2; border: thick $primary; background: $surface; }
    """

    def compose(self) -> ComposeResult:
        yield Static(HELP_TEXT, id="help")

    def on_key(self) -> None:
        self.dismiss(None)
