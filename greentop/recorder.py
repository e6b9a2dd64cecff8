"""``greentop record``: run a command, sample every source while it runs, write the trace.

One recording thread owns the HDF5 file: it drains the sampler's rings and the phase listener
every 50 ms and flushes twice a second, so a crash of anything loses at most the last flush
interval. The command runs as a child with the phase channel in its environment; its exit code
becomes greentop's.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Callable, Sequence

from greentop import __version__
from greentop.channel import Channel
from greentop.listener import Event, EventListener
from greentop.sampler import Sampler, SamplerHealth
from greentop.sources import SourceResult
from greentop.trace import (
    RUN_BASELINE_END,
    RUN_BASELINE_START,
    RUN_INTERRUPTED,
    RUN_WORKLOAD_EXIT,
    RUN_WORKLOAD_START,
    TraceWriter,
    phases_from_log,
)

DRAIN_S = 0.05
FLUSH_S = 0.5  # the bar is "at least once a second"
GRACE_S = 5.0  # after Ctrl-C: time the workload gets before SIGTERM, then again before SIGKILL


class RecordError(Exception):
    """Bad input for a recording (command not found, output not writable); one line."""


@dataclass
class RecordOptions:
    output: Path
    rate_hz: float = 1000.0
    slow_rate_hz: float = 10.0
    baseline_s: float = 3.0  # 0: no idle baseline
    carbon_g_per_kwh: float = 0.0
    carbon_source: str = ""


@dataclass
class Recording:
    """What a finished recording reports back to the CLI."""

    exit_code: int
    path: Path
    health: SamplerHealth | None = None
    interrupted: bool = False
    events_dropped: int = 0


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor()
    m = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    return m.group(1).strip() if m else platform.processor()


def run_metadata(found: SourceResult, cmd: Sequence[str], opts: RecordOptions) -> dict[str, Any]:
    gpus = [d for d in found.devices if "gpu" in d]
    return {
        "host": platform.node(), "kernel": platform.release(), "os": platform.platform(), "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count() or 0, "gpus": gpus, "nvidia_driver": gpus[0]["driver"] if gpus else "",
        "greentop_version": __version__, "python": sys.version.split()[0], "command": list(cmd), "cwd": os.getcwd(),
        "rate_hz": opts.rate_hz, "slow_rate_hz": opts.slow_rate_hz, "baseline_s": opts.baseline_s,
        "carbon_g_per_kwh": opts.carbon_g_per_kwh, "carbon_source": opts.carbon_source,
        "problems": [p.to_dict() for p in found.problems], "notes": found.notes,
    }


class _Pump:
    """The recording thread: sampler and listener -> trace writer."""

    def __init__(self, sampler: Sampler, listener: EventListener, writer: TraceWriter, channels: list[Channel]) -> None:
        self.sampler, self.listener, self.writer, self.channels = sampler, listener, writer, channels
        self.events: list[Event] = []  # everything logged, kept for the derived tables
        self._lock = threading.Lock()
        self._own: list[Event] = []  # greentop's own run events, waiting for the recording thread
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="greentop-recorder", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> None:
        self._thread.start()

    def log(self, events: Sequence[Event]) -> None:
        """Events from greentop itself; written with the next flush, from the recording thread."""
        with self._lock:
            self._own.extend(events)

    def _pump_once(self) -> None:
        for name, s in self.sampler.drain().items():
            self.writer.append_samples(name, s.t_ns, s.raw)
        with self._lock:
            own, self._own = self._own, []
        new = own + self.listener.drain()
        if new:
            self.events.extend(new)
            self.writer.append_events(new)

    def _snapshot(self) -> None:
        h = self.sampler.health()
        chans = [h.channels[c.name] for c in self.channels]
        lanes = list(h.lanes.values())
        self.writer.append_health(
            time.monotonic_ns(), [c.overruns for c in chans], [c.errors for c in chans], [c.reads for c in chans],
            [lane.ticks for lane in lanes], [lane.missed for lane in lanes], [lane.late for lane in lanes], self.listener.dropped,
        )

    def _run(self) -> None:
        try:
            next_flush = time.monotonic() + FLUSH_S
            while not self._stop.wait(DRAIN_S):
                self._pump_once()
                if time.monotonic() >= next_flush:
                    self._snapshot()
                    self.writer.flush()
                    next_flush += FLUSH_S
        except BaseException as exc:  # surfaced by stop(): a dead writer must not pass silently
            self.error = exc

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._pump_once()
        self._snapshot()


def _run_event(name: str, value: float = 0.0) -> Event:
    return Event(kind="run", t_ns=time.monotonic_ns(), pid=os.getpid(), name=name, phase_id="", parent_id="", value=value, attrs={})


def _wait_child(child: subprocess.Popen[bytes], interrupted: Callable[[], bool]) -> int:
    """Wait for the workload; after Ctrl-C give it GRACE_S to stop, then SIGTERM, then SIGKILL."""
    deadline: float | None = None
    stage = 0
    while True:
        try:
            return child.wait(timeout=0.1)
        except subprocess.TimeoutExpired:
            pass
        if interrupted():
            now = time.monotonic()
            if deadline is None:
                deadline = now + 1.0  # a terminal's Ctrl-C reached the child too; give it a moment
            elif now >= deadline:
                sig = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)[min(stage, 2)]
                try:
                    child.send_signal(sig)
                except ProcessLookupError:
                    pass
                stage += 1
                deadline = now + GRACE_S


def check_inputs(cmd: Sequence[str], output: Path) -> None:
    """Refuse, before anything starts, what would only fail later."""
    if not cmd:
        raise RecordError("no command to run (usage: greentop record -o run.h5 -- CMD ARGS...)")
    if shutil.which(cmd[0]) is None:
        raise RecordError(f"command not found: {cmd[0]}")
    out_dir = output.resolve().parent
    if not out_dir.is_dir():
        raise RecordError(f"output folder does not exist: {out_dir}")
    if not os.access(out_dir, os.W_OK):
        raise RecordError(f"output folder is not writable: {out_dir}")
    if output.is_dir():
        raise RecordError(f"output is a folder: {output}")


def record(cmd: Sequence[str], channels: list[Channel], found: SourceResult, opts: RecordOptions,
           on_start: Callable[[], None] | None = None) -> Recording:
    check_inputs(cmd, opts.output)

    meta = run_metadata(found, cmd, opts)
    meta["start_wall_ns"], meta["start_mono_ns"] = time.time_ns(), time.monotonic_ns()
    sampler = Sampler(channels, rate_hz=opts.rate_hz, slow_rate_hz=opts.slow_rate_hz)
    lanes = sorted({c.lane.value for c in channels}, key=lambda lane: 0 if lane == "fast" else 1)
    writer = TraceWriter(opts.output, channels, meta, lanes)
    listener = EventListener()
    interrupted = threading.Event()
    previous: dict[int, Any] = {}

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        interrupted.set()

    sampler.start()
    listener.start()
    pump = _Pump(sampler, listener, writer, channels)
    pump.start()
    exit_code = 0
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, on_signal)
        if opts.baseline_s > 0:
            pump.log([_run_event(RUN_BASELINE_START)])
            interrupted.wait(opts.baseline_s)
            pump.log([_run_event(RUN_BASELINE_END)])
        if on_start:
            on_start()
        if not interrupted.is_set():
            pump.log([_run_event(RUN_WORKLOAD_START)])
            child = subprocess.Popen(list(cmd), env=os.environ | listener.env())
            rc = _wait_child(child, interrupted.is_set)
            pump.log([_run_event(RUN_WORKLOAD_EXIT, float(rc))])
            exit_code = rc if rc >= 0 else 128 - rc
        else:
            exit_code = 130
        if interrupted.is_set():
            pump.log([_run_event(RUN_INTERRUPTED)])
        time.sleep(DRAIN_S)  # datagrams sent just before the exit are still in the socket
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        sampler.stop()
        pump.stop()
        listener.stop()
        late = listener.drain()  # stop() reads what was still queued
        pump.events += late
        writer.append_events(late)
    if pump.error is not None:
        raise RecordError(f"writing {opts.output} failed: {pump.error}")
    end_ns = time.monotonic_ns()
    status = "ok" if exit_code == 0 else "crashed"
    stats: dict[str, int] = {}
    phases, marks, counts = phases_from_log(pump.events, end_ns, status, stats)
    writer.finalize({"exit_code": exit_code, "interrupted": interrupted.is_set(), "end_mono_ns": end_ns,
                     "events_dropped": listener.dropped, "events_overflowed": listener.overflowed, **stats},
                    phases, marks, counts)
    return Recording(exit_code, opts.output, sampler.health(), interrupted.is_set(), listener.dropped)
