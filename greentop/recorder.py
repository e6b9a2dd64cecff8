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
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType
from typing import Any, Callable, Protocol, Sequence

from greentop import __version__, launch
from greentop.channel import Channel
from greentop.events import Event
from greentop.listener import EventListener
from greentop.run_as import RunAs
from greentop.run_as import run_metadata as user_metadata
from greentop.run_as import start_warning
from greentop.sampler import Sampler, SamplerHealth, Samples
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
    force: bool = False  # replace an existing output (see check_output)
    run_as: RunAs | None = None  # --user: the workload's user (greentop is root)


@dataclass
class Recording:
    """What a finished recording reports back to the CLI."""

    exit_code: int
    path: Path
    health: SamplerHealth | None = None
    interrupted: bool = False
    events_dropped: int = 0
    write_error: str = ""  # the trace could not be written to the end (a full disk): why, in one line


class SamplerLike(Protocol):
    def drain(self) -> dict[str, Samples]: ...
    def health(self) -> SamplerHealth: ...


class ListenerLike(Protocol):
    def drain(self) -> list[Event]: ...


class Follower(Protocol):
    """Something that follows a recording as it happens (the Prometheus exporter): ``attach`` is
    called once the sampler and listener run; what the recording thread drains reaches ``tap``."""

    def attach(self, sampler: Any, tap: "SampleTap", listener: Any) -> None: ...


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
        **user_metadata(opts.run_as, cmd),
    }


class SampleTap:
    """Hands what the recording thread drains to one other reader (the live view), thread-safely.

    ``put`` (recording thread) appends one batch: the sampler's drain and the events of that pass;
    ``take`` (the reader's thread) returns every batch since the last call, oldest first. At most
    ``max_batches`` wait (100 s at the 20 Hz drain rate); older ones are dropped and counted in
    ``dropped_batches``, so a stalled reader never grows memory without bound."""

    def __init__(self, max_batches: int = 2000) -> None:
        self.max_batches = max_batches
        self.dropped_batches = 0
        self._lock = threading.Lock()
        self._batches: list[tuple[dict[str, Samples], list[Event]]] = []

    def put(self, samples: dict[str, Samples], events: list[Event]) -> None:
        with self._lock:
            self._batches.append((samples, events))
            extra = len(self._batches) - self.max_batches
            if extra > 0:
                del self._batches[:extra]
                self.dropped_batches += extra

    def take(self) -> list[tuple[dict[str, Samples], list[Event]]]:
        with self._lock:
            out, self._batches = self._batches, []
        return out


class _Pump:
    """The recording thread: sampler and listener -> trace writer (and the tap, when given).

    While it runs it is the only reader of the sampler's rings and of the listener."""

    def __init__(self, sampler: SamplerLike, listener: ListenerLike | None, writer: TraceWriter, channels: list[Channel],
                 tap: SampleTap | None = None) -> None:
        self.sampler, self.listener, self.writer, self.channels, self.tap = sampler, listener, writer, channels, tap
        # Events are not kept here: they go to the trace with every flush, and the derived tables are
        # built from the trace's log at the end (a run of 232 084 marks once held 280 MB here).
        self.n_events = 0
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

    def add_events(self, events: list[Event]) -> None:
        """Events read by the caller (after the thread stopped): logged, written and tapped."""
        if events:
            self.n_events += len(events)
            self.writer.append_events(events)
            if self.tap is not None:
                self.tap.put({}, events)

    def _pump_once(self) -> None:
        drained = self.sampler.drain()
        for name, s in drained.items():
            self.writer.append_samples(name, s.t_ns, s.raw)
        with self._lock:
            own, self._own = self._own, []
        new = own + (self.listener.drain() if self.listener is not None else [])
        if new:
            self.n_events += len(new)
            self.writer.append_events(new)
        if self.tap is not None:
            self.tap.put(drained, [e for e in new if e.kind != "run"])

    def _snapshot(self) -> None:
        h = self.sampler.health()
        chans = [h.channels[c.name] for c in self.channels]
        lanes = list(h.lanes.values())
        dropped = getattr(self.listener, "dropped", 0)
        self.writer.append_health(
            time.monotonic_ns(), [c.overruns for c in chans], [c.errors for c in chans], [c.reads for c in chans],
            [lane.ticks for lane in lanes], [lane.missed for lane in lanes], [lane.late for lane in lanes], dropped,
            events_lost=getattr(self.listener, "lost", 0),
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
            # Said at once, not at the end of a run that may go on for hours: the recording stops
            # here, the file is closed as it stands (what reached the disk before stays readable).
            print(f"greentop: writing {self.writer.path} failed ({_reason(exc)}): recording stopped; the trace keeps "
                  "what was written before; the workload runs on, and greentop will exit with its exit code",
                  file=sys.stderr, flush=True)
            self.writer.close_after_failure(exc)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        if self.error is not None:
            return  # the writer is closed: nothing more can go into the trace
        self._pump_once()
        self._snapshot()


def _reason(exc: BaseException) -> str:
    """The one-line cause of a failed write ("No space left on device", ...)."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc)
    m = re.search(r"error message = '([^']*)'", text)  # HDF5's long description of a failed write
    return m.group(1) if m else (" ".join(text.split())[:160] or type(exc).__name__)


def _run_event(name: str, value: float = 0.0) -> Event:
    return Event(kind="run", t_ns=time.monotonic_ns(), pid=os.getpid(), name=name, phase_id="", parent_id="", value=value, attrs={})


def check_command(cmd: Sequence[str], usage: str = "greentop record -o run.h5 -- CMD ARGS...") -> None:
    """Refuse, before anything starts, a command that is missing or cannot be found."""
    if not cmd:
        raise RecordError(f"no command to run (usage: {usage})")
    if shutil.which(cmd[0]) is None:
        if os.sep in cmd[0] and os.path.exists(cmd[0]):
            raise CommandNotRunnable(f"not executable: {cmd[0]}", EXIT_NOT_EXECUTABLE)
        raise CommandNotRunnable(f"command not found: {cmd[0]}", EXIT_NOT_FOUND)


EXIT_NOT_FOUND = 127  # what shells and launchers (env, xargs, timeout) return for these two
EXIT_NOT_EXECUTABLE = 126


class CommandNotRunnable(RecordError):
    """The workload cannot be started; ``exit_code`` is the shell's code for why."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def check_output(output: Path, force: bool = False) -> None:
    """Refuse, before anything starts, a trace path that could not be written, or one where
    something already is (a file, a symlink: never followed) unless ``force``."""
    out_dir = output.resolve().parent
    if not out_dir.is_dir():
        raise RecordError(f"output folder does not exist: {out_dir}")
    if not os.access(out_dir, os.W_OK):
        raise RecordError(f"output folder is not writable: {out_dir}")
    if output.is_dir():
        raise RecordError(f"output is a folder: {output}")
    if output.exists() and not output.is_file():
        raise RecordError(f"output is not a regular file: {output}")
    if os.path.lexists(output) and not force:
        what = "a symbolic link" if output.is_symlink() else "a file"
        raise RecordError(f"output {output} exists ({what}): choose another name, or pass --force to replace it")


def replace_output(output: Path) -> None:
    """``--force``: remove what is at the output path (a symlink itself, never its target), so the
    trace is created new."""
    if os.path.lexists(output) and not output.is_dir():
        output.unlink()


def check_inputs(cmd: Sequence[str], output: Path, force: bool = False) -> None:
    """Both checks of ``greentop record``: the command, then the output."""
    check_command(cmd)
    check_output(output, force)


def default_trace_path(folder: Path | None = None, now: float | None = None) -> Path:
    """``greentop-YYYYmmdd-HHMMSS.h5`` in ``folder`` (default: ``GREENTOP_OUTPUT_DIR``, else the
    cwd); ``-N`` added if taken."""
    from greentop.output_dir import output_dir

    folder = output_dir() if folder is None else folder
    stem = time.strftime("greentop-%Y%m%d-%H%M%S", time.localtime(now))
    path = folder / f"{stem}.h5"
    n = 1
    while path.exists():
        path = folder / f"{stem}-{n}.h5"
        n += 1
    return path


def _open_phase_starts(events: Sequence[Event], t_ns: int) -> list[Event]:
    """Start events of the phases still open (by phase id) in ``events``, moved to ``t_ns``: what a
    recording begun mid-run carries so that those phases appear in it from its start. The original
    start time is kept in ``attrs["started_before_recording_ns"]``."""
    ended = {e.phase_id for e in events if e.kind == "end" and e.phase_id}
    out = []
    for e in events:
        if e.kind == "start" and e.phase_id and e.phase_id not in ended:
            out.append(replace(e, t_ns=max(e.t_ns, t_ns), attrs={**e.attrs, "started_before_recording_ns": e.t_ns}))
    return out


class Recorder:
    """One recording into one trace, over a sampler and a listener the caller started and stops.

    ``start()`` opens the trace, starts the recording thread (from then on the only reader of the
    sampler's rings and of the listener; what it drains also goes to ``tap`` when given) and
    measures the idle baseline; ``log()`` adds greentop's own run events; ``stop()`` stops the
    thread (the sampler and listener stay usable); ``finish()`` writes the derived tables and
    closes the trace, which is then complete. Used by ``record()`` and by the live view."""

    def __init__(self, sampler: SamplerLike, listener: ListenerLike | None, channels: Sequence[Channel],
                 meta: dict[str, Any], output: Path, tap: SampleTap | None = None) -> None:
        self.sampler, self.listener, self.channels = sampler, listener, list(channels)
        self.meta, self.path, self.tap = dict(meta), Path(output), tap
        self._pump: _Pump | None = None
        self._stopped = False
        self.finished: Recording | None = None
        self.workload_left_running = 0  # processes of the workload's tree alive after it exited

    @property
    def events(self) -> list[Event]:
        return self._pump.writer.logged_events() if self._pump is not None else []

    def start(self, baseline_s: float = 0.0, interrupted: threading.Event | None = None,
              carried: Sequence[Event] = ()) -> None:
        """Open the trace and start recording; then, with ``baseline_s`` > 0, wait that long (or
        until ``interrupted`` is set) between the baseline's start and end events. ``carried``:
        events seen before this recording began (their open phases are carried into it)."""
        self.meta["start_wall_ns"], self.meta["start_mono_ns"] = time.time_ns(), time.monotonic_ns()
        lanes = list(self.sampler.health().lanes)  # the sampler's threads, as _snapshot stores them
        writer = TraceWriter(self.path, self.channels, self.meta, lanes)
        self._pump = _Pump(self.sampler, self.listener, writer, self.channels, self.tap)
        self._pump.log(_open_phase_starts(carried, self.meta["start_mono_ns"]))
        self._pump.start()
        if baseline_s > 0:
            self.log(RUN_BASELINE_START)
            (interrupted or threading.Event()).wait(baseline_s)
            self.log(RUN_BASELINE_END)

    def log(self, name: str, value: float = 0.0) -> None:
        """One of greentop's own run events (``trace.RUN_*``), timed now."""
        assert self._pump is not None, "Recorder not started"
        self._pump.log([_run_event(name, value)])

    def stop(self, stop_listener: bool = False) -> None:
        """Stop the recording thread after a last drain. ``stop_listener``: also stop the listener
        (the end of the run) and record what it still held."""
        if self._stopped or self._pump is None:
            return
        self._stopped = True
        self._pump.stop()
        if stop_listener and self.listener is not None:
            self.listener.stop()  # type: ignore[attr-defined]
            self._pump.add_events(self.listener.drain())

    def finish(self, exit_code: int | None, interrupted: bool = False) -> Recording:
        """Stop if not yet stopped, then finalise the trace. ``exit_code``: the workload's (as
        greentop reports it), or None when it still runs (a recording stopped from the live view:
        stored as -1 with ``workload_running``); its open phases are then "unclosed"."""
        assert self._pump is not None, "Recorder not started"
        self.stop()
        pump = self._pump
        if pump.error is not None:
            return self._failed(exit_code, interrupted, f"writing {self.path} failed ({_reason(pump.error)})")
        end_ns = time.monotonic_ns()
        status = "ok" if exit_code in (0, None) else "crashed"
        stats: dict[str, int] = {}
        phases, marks, counts = phases_from_log(pump.writer.logged_events(), end_ns, status, stats)
        dropped = getattr(self.listener, "dropped", 0)
        run: dict[str, Any] = {"exit_code": -1 if exit_code is None else exit_code, "interrupted": interrupted, "end_mono_ns": end_ns,
                               "events_dropped": dropped, "events_overflowed": getattr(self.listener, "overflowed", 0),
                               "events_oversized": getattr(self.listener, "oversized", 0),
                               "events_lost_by_clients": getattr(self.listener, "client_lost", 0),
                               "events_lost": getattr(self.listener, "lost", 0), **stats}
        if exit_code is None:
            run["workload_running"] = True
        if self.workload_left_running:
            run["workload_left_running"] = self.workload_left_running
        try:
            pump.writer.finalize(run, phases, marks, counts)
        except Exception as exc:  # noqa: BLE001 -- a full disk, a vanished file system: give the file up, say so
            pump.writer.close_after_failure(exc)
            return self._failed(exit_code, interrupted, f"writing {self.path} failed at the end of the run ({_reason(exc)})")
        self._store_overview()
        self.finished = Recording(-1 if exit_code is None else exit_code, self.path, self.sampler.health(), interrupted, dropped)
        return self.finished

    def _failed(self, exit_code: int | None, interrupted: bool, why: str) -> Recording:
        """The end of a recording whose trace could not be written (a full disk): the workload's
        exit code is reported as usual (a scheduler must see the job's own result), with ``why``."""
        self.finished = Recording(-1 if exit_code is None else exit_code, self.path, self.sampler.health(), interrupted,
                                  getattr(self.listener, "dropped", 0), write_error=why)
        return self.finished

    def _store_overview(self) -> None:
        """Write the replay view's power overview into the finished trace now, while its samples
        are still in the page cache: the first ``greentop replay`` then opens at once instead of
        reading every sample (3.4 s for an hour at 1 kHz). The recorder is the only writer of a
        trace: readers never add to it. Best effort: a trace without one still replays, building
        it on first open (into the user's cache, not the trace)."""
        from greentop.overview import build_overviews, write_overview

        try:
            write_overview(self.path, build_overviews(self.path))
        except Exception as exc:  # noqa: BLE001 -- the trace is complete; this is only a cache
            print(f"greentop: {self.path}: overview not stored ({exc}); replay builds it on first open", file=sys.stderr)


def record(cmd: Sequence[str], channels: list[Channel], found: SourceResult, opts: RecordOptions,
           on_start: Callable[[], None] | None = None, follower: Follower | None = None) -> Recording:
    check_inputs(cmd, opts.output, opts.force)
    if opts.force:
        replace_output(opts.output)

    sampler = Sampler(channels, rate_hz=opts.rate_hz, slow_rate_hz=opts.slow_rate_hz)
    run_as = opts.run_as
    listener = EventListener(owner=(run_as.uid, run_as.gid) if run_as is not None else None)
    warning = start_warning(run_as, cmd)
    if warning:
        print(warning, file=sys.stderr)
    interrupted = threading.Event()
    previous: dict[int, Any] = {}

    received: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)
        interrupted.set()

    sampler.start()
    listener.start()
    tap = SampleTap() if follower is not None else None
    recorder = Recorder(sampler, listener, channels, run_metadata(found, cmd, opts), opts.output, tap=tap)
    if follower is not None and tap is not None:
        follower.attach(sampler, tap, listener)
    exit_code = 0
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, on_signal)
        recorder.start(opts.baseline_s, interrupted)
        if on_start:
            on_start()
        if not interrupted.is_set():
            recorder.log(RUN_WORKLOAD_START)
            # The one launcher and its stop protocol (greentop.launch); the workload keeps the terminal.
            workload = launch.start(cmd, listener.env(), run_as=run_as)
            exit_code = workload.wait(interrupted.is_set, lambda: received[0] if received else signal.SIGINT)
            recorder.log(RUN_WORKLOAD_EXIT, float(workload.process.returncode))
            left = workload.left_running()  # after the exit is logged: the scan is not the workload's time
            if left:
                print(launch.left_running_line(left), file=sys.stderr)
                recorder.workload_left_running = len(left)
        else:
            exit_code = 130
        if received and received[0] == signal.SIGTERM:
            exit_code = 128 + signal.SIGTERM  # the shell's convention for "terminated": 143
        if interrupted.is_set():
            recorder.log(RUN_INTERRUPTED)
        time.sleep(DRAIN_S)  # datagrams sent just before the exit are still in the socket
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        sampler.stop()
        recorder.stop(stop_listener=True)
    return recorder.finish(exit_code, interrupted.is_set())
