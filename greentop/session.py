"""A live session, free of any GUI: the sampler, the workload and its recording, started and ended.

``greentop run`` shows one (``greentop.tui.app``); the view only reads it and asks for a new
recording (the ``r`` key). The workload starts through the one launcher (``greentop.launch``), in a
session of its own since the terminal belongs to the view, with its output captured line by line.
"""

from __future__ import annotations

import queue
import sys
from pathlib import Path
from typing import Sequence

from greentop import launch
from greentop.channel import Channel
from greentop.events import Event
from greentop.listener import EventListener
from greentop.recorder import Recorder, RecordOptions, SampleTap, default_trace_path, run_metadata
from greentop.run_as import RunAs
from greentop.sampler import Sampler
from greentop.sources import SourceResult
from greentop.trace import RUN_INTERRUPTED, RUN_WORKLOAD_EXIT, RUN_WORKLOAD_START


class LiveSession:
    """The sampler over ``channels`` and, when ``cmd`` is given, the workload under a phase listener.

    ``carbon``: (gCO2e/kWh, source) stored in the traces; ``record_dir``: where ``new_recording``
    puts a trace nobody named (``greentop-YYYYmmdd-HHMMSS.h5``); ``run_as``: the workload's user
    (``--user``), whose processes alone (with root's) the listener admits."""

    def __init__(self, cmd: Sequence[str], channels: Sequence[Channel], rate_hz: float, slow_rate_hz: float, *,
                 found: SourceResult | None = None, carbon: tuple[float, str] | None = None,
                 record_dir: Path | None = None, run_as: RunAs | None = None) -> None:
        self.cmd = list(cmd)
        self.channels = list(channels)
        self.found = found if found is not None else SourceResult(channels=self.channels)
        self.rate_hz, self.slow_rate_hz = rate_hz, slow_rate_hz
        self.carbon = carbon
        self.record_dir = record_dir
        self.sampler = Sampler(self.channels, rate_hz=rate_hz, slow_rate_hz=slow_rate_hz)
        self.run_as = run_as
        owner = (run_as.uid, run_as.gid) if run_as is not None else None
        self.listener = EventListener(owner=owner) if self.cmd else None
        self.workload: launch.Workload | None = None
        self.output: queue.SimpleQueue[str] | None = None  # the workload's lines, once launched
        self.recording: Recorder | None = None  # the recording started with the session (-o)
        self.left_running = 0  # processes of the workload's tree alive after it ended (close())
        self._closed = False

    def make_recorder(self, path: Path, baseline_s: float) -> Recorder:
        carbon_g, carbon_source = self.carbon if self.carbon else (0.0, "")
        opts = RecordOptions(output=path, rate_hz=self.rate_hz, slow_rate_hz=self.slow_rate_hz, baseline_s=baseline_s,
                             carbon_g_per_kwh=carbon_g, carbon_source=carbon_source, run_as=self.run_as)
        return Recorder(self.sampler, self.listener, self.channels, run_metadata(self.found, self.cmd, opts), path,
                        tap=SampleTap())

    def new_recording(self, seen: list[Event]) -> Recorder:
        """A recording started now (the view's ``r``), carrying the phases already open."""
        rec = self.make_recorder(default_trace_path(self.record_dir), 0.0)
        rec.start(carried=seen)
        return rec

    def start(self, output: Path | None = None, baseline_s: float = 0.0) -> bool:
        """Start sampling and listening; with ``output``, record from now on after an idle baseline
        of ``baseline_s``. False when Ctrl-C came during the baseline: that trace is then finished
        as interrupted and the session is over."""
        self.sampler.start()
        if self.listener is not None:
            self.listener.start()
        if output is None:
            return True
        self.recording = self.make_recorder(output, baseline_s)
        if baseline_s > 0:
            print(f"greentop: measuring the idle baseline for {baseline_s:g} s (--no-baseline to skip)", file=sys.stderr)
        try:
            self.recording.start(baseline_s)
        except KeyboardInterrupt:
            self.recording.log(RUN_INTERRUPTED)
            self.sampler.stop()
            self.recording.stop(stop_listener=True)
            self.recording.finish(130, interrupted=True)
            self._closed = True
            return False
        return True

    def launch(self) -> None:
        """Start the workload (if the session has one) by the one launcher, its output captured."""
        if self.listener is None:
            return
        self.output = queue.SimpleQueue()
        if self.recording is not None:
            self.recording.log(RUN_WORKLOAD_START)
        self.workload = launch.start(self.cmd, self.listener.env(), own_group=True, capture_output=True, run_as=self.run_as)
        assert self.workload.output is not None
        launch.pump_lines(self.workload.output, self.output.put)

    def count_left_running(self) -> int:
        """How many processes of the workload's tree are alive besides its own (0 without a
        workload): after it exited, what it left running."""
        return len(self.workload.left_running()) if self.workload is not None else 0

    def close(self, recording: Recorder | None, exit_logged: bool) -> tuple[int, bool]:
        """Stop the workload by the stop protocol (if it still runs), the sampler and the listener;
        log the workload's end into ``recording`` (the one in progress, if any) unless the view
        already did (``exit_logged``) and stop it. (exit code, whether the workload was still
        running). The caller finishes the recording (``Recorder.finish``) once the view has read
        its tap."""
        if self._closed:
            return 130, False
        self._closed = True
        workload = self.workload
        running = workload is not None and workload.running()
        exit_code = workload.stop() if workload is not None else 0
        left = workload.left_running() if workload is not None else []
        if left:  # the view has closed: stderr is the terminal's again
            print(launch.left_running_line(left), file=sys.stderr)
        self.left_running = len(left)
        self.sampler.stop()
        if recording is not None:
            recording.workload_left_running = self.left_running
            if workload is not None and not exit_logged:
                recording.log(RUN_WORKLOAD_EXIT, float(workload.process.returncode))
            if running:
                recording.log(RUN_INTERRUPTED)
            recording.stop(stop_listener=True)
        elif self.listener is not None:
            self.listener.stop()
        return exit_code, running
