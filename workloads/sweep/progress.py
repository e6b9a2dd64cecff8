"""The progress line on stderr: points done, the current one, an ETA from finished points."""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass, field
from typing import TextIO

from greentop.formatters import eta as _dur
from workloads.sweep.spec import Point

# ------------------------------------------------------------------------------------------ progress


@dataclass
class Progress:
    """Points done of total on stderr: one line redrawn in place on a terminal, plain lines otherwise.
    The ETA is the mean time of the points run so far times the points left."""

    total: int
    done: int = 0
    out: TextIO = field(default_factory=lambda: sys.stderr)
    tty: bool = False
    durations_s: list[float] = field(default_factory=list)
    current: str = ""
    started: float = 0.0
    _drawn: bool = False

    def __post_init__(self) -> None:
        self.tty = bool(getattr(self.out, "isatty", lambda: False)())

    def eta_s(self, remaining: int, current_elapsed_s: float = 0.0) -> float | None:
        if not self.durations_s:
            return None
        mean = sum(self.durations_s) / len(self.durations_s)
        return max(mean * remaining - current_elapsed_s, 0.0)

    def _eta_text(self, remaining: int, elapsed: float = 0.0) -> str:
        eta = self.eta_s(remaining, elapsed)
        return f"ETA {_dur(eta)}" if eta is not None else "ETA -"

    def start(self, point: Point) -> None:
        self.current, self.started = point.id, time.monotonic()
        if self.tty:
            self.tick()
        else:
            self._line(f"[{self.done + 1}/{self.total}] run {point.id}")

    def tick(self) -> None:
        if not self.tty or not self.current:
            return
        elapsed = time.monotonic() - self.started
        remaining = self.total - self.done
        text = f"{self.done}/{self.total} done, running {self.current} ({_dur(elapsed)}); {self._eta_text(remaining, elapsed)}"
        width = shutil.get_terminal_size((100, 24)).columns - 1
        self.out.write("\r\x1b[K" + text[:width])
        self.out.flush()
        self._drawn = True

    def finish(self, point: Point, status: str, elapsed_s: float, energy_j: float | None) -> None:
        self.done += 1
        self.durations_s.append(elapsed_s)
        energy = f", {energy_j:.4g} J" if energy_j is not None else ""
        self._line(f"[{self.done}/{self.total}] {status} {point.id} in {_dur(elapsed_s)}{energy}; "
                   f"{self._eta_text(self.total - self.done)}", keep=not self.tty or status != "ok")
        self.current = ""

    def note(self, text: str) -> None:
        self._line(text)

    def _line(self, text: str, keep: bool = True) -> None:
        """A line that stays (failures, notes, everything off a terminal); on a terminal an ok
        point's line is only drawn, to be overwritten by the next."""
        if self.tty:
            self.out.write("\r\x1b[K" + text + ("\n" if keep else ""))
            self._drawn = not keep
        else:
            self.out.write(text + "\n")
        self.out.flush()

    def close(self) -> None:
        if self.tty and self._drawn:
            self.out.write("\n")
            self.out.flush()
            self._drawn = False
