"""A recorded run in memory: what ``trace.load`` returns and what summaries are computed from.

Plain data, no I/O: the HDF5 layout lives in ``trace.py``, the energy arithmetic in
``attribution.py``, and ``loaded.Trace`` (what ``trace.load`` returns) adds ``summary()`` on top.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np
import numpy.typing as npt

from greentop.channel import Channel

if TYPE_CHECKING:
    import pandas as pd

AttrValue = str | int | float | bool


@dataclass
class ChannelData:
    channel: Channel
    t_ns: npt.NDArray[np.int64]  # CLOCK_MONOTONIC ns of each read
    raw: npt.NDArray[np.int64]  # the raw readings (see channel.unit / channel.scale)


@dataclass(frozen=True)
class Phase:
    """One tagged interval. ``parent`` is the index of the enclosing phase in ``TraceData.phases``
    (-1 at top level); ``depth`` is 0 at top level."""

    index: int
    name: str
    start_ns: int
    end_ns: int
    depth: int
    parent: int
    pid: int
    attrs: dict[str, AttrValue] = field(default_factory=dict)
    status: str = "ok"  # "ok"; "crashed": closed by greentop when the workload died; "unclosed": still open at the end of the recording
    phase_id: str = ""  # the id the workload gave it

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) * 1e-9


@dataclass(frozen=True)
class Mark:
    t_ns: int
    name: str
    pid: int
    attrs: dict[str, AttrValue] = field(default_factory=dict)


@dataclass(frozen=True)
class Count:
    """Work the workload reported (``greentop.count(samples=256)``), inside ``phase`` (index, -1 none)."""

    t_ns: int
    name: str  # "samples", "tokens", "requests", ...
    value: float
    pid: int
    phase: int = -1


@dataclass
class TraceData:
    meta: dict[str, Any]  # run metadata (host, models, command, rate_hz, carbon intensity, ...)
    channels: list[ChannelData]
    phases: list[Phase]
    marks: list[Mark]
    counts: list[Count]
    run_start_ns: int  # first sample of the recording
    run_end_ns: int  # last sample (or last flush, for a recorder that died)
    baseline: tuple[int, int] | None = None  # the idle window before the workload started
    health: dict[str, Any] = field(default_factory=dict)  # overruns, missed ticks, read errors, dropped events
    complete: bool = True  # False when the recorder died before finalising the file

    @property
    def status(self) -> str:
        """How the recorded run ended (``run_status`` of ``meta["run"]``)."""
        return run_status(self.meta.get("run") or {}, self.complete)

    def channel(self, name: str) -> ChannelData:
        for c in self.channels:
            if c.channel.name == name:
                return c
        raise KeyError(name)

    # -- pandas views (pandas is imported only when asked for) ------------------------------
    def phases_frame(self) -> "pd.DataFrame":
        """One row per phase: name, start_ns, end_ns, duration_s, depth, parent, pid, status, attrs."""
        import pandas as pd

        return pd.DataFrame(
            [{"name": p.name, "start_ns": p.start_ns, "end_ns": p.end_ns, "duration_s": p.duration_s, "depth": p.depth,
              "parent": p.parent, "pid": p.pid, "status": p.status, "attrs": p.attrs} for p in self.phases],
            columns=["name", "start_ns", "end_ns", "duration_s", "depth", "parent", "pid", "status", "attrs"],
        )

    def channel_frame(self, name: str) -> "pd.DataFrame":
        """A channel's readings: t_ns, raw, and energy_j (cumulative since its first reading)."""
        import pandas as pd

        from greentop.energy import converter_for

        c = self.channel(name)
        return pd.DataFrame({"t_ns": c.t_ns, "raw": c.raw, "energy_j": converter_for(c.channel).feed(c.t_ns, c.raw).energy_j})


def left_running_note(run: Mapping[str, Any]) -> str | None:
    """The summary's note on processes the workload left running when it exited (``/run``
    ``workload_left_running``, see :mod:`greentop.launch`), None when it left none."""
    n = int(run.get("workload_left_running", 0))
    if n <= 0:
        return None
    return (f"{n} process{'' if n == 1 else 'es'} of the workload {'was' if n == 1 else 'were'} still running after it "
            "exited; their energy after that is not attributed")


def run_status(run: Mapping[str, Any], complete: bool = True) -> str:
    """How a recorded run ended, from the trace's ``/run`` attributes: ``"ok"``; ``"interrupted"``
    (Ctrl-C); ``"killed (SIGTERM)"`` (the workload died of a signal: exit code 128 + N);
    ``"failed (exit N)"`` (any other non-zero exit code); ``"incomplete"`` (the recorder died
    before finalising the trace). A recording stopped from the live view while the workload went
    on (``workload_running``) is ``"ok"``: the recording ended as asked."""
    if not complete:
        return "incomplete"
    if bool(run.get("interrupted", False)):
        return "interrupted"
    code = int(run.get("exit_code", 0))
    if code == 0 or bool(run.get("workload_running", False)):
        return "ok"
    if 128 < code <= 128 + 64:
        try:
            return f"killed ({signal.Signals(code - 128).name})"
        except ValueError:
            return f"killed (signal {code - 128})"
    return f"failed (exit {code})"
