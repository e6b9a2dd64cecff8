"""Baseline for the sampler benchmark: a plain-Python sampling thread, the way Python tools sample.

One ``threading.Thread`` loops: for each channel ``os.pread(fd, 32, 0)`` and ``int()`` the bytes,
append ``(time.monotonic_ns(), value)`` to Python lists, then sleep to the next absolute deadline
with ``time.sleep(max(0, deadline - now))``. A tick that ends one whole period or more behind its
deadline skips the lost ticks and counts them as missed, exactly like the compiled lane loop.

Same shape as ``greentop.sampler.Sampler``: ``start()``, ``stop()``, ``drain()`` -> ``{name:
Samples(t_ns, raw)}``, ``health()``. Only FILE_DECIMAL channels (sysfs ``energy_uj`` style).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from greentop.channel import Channel, ReaderKind
from greentop.sampler import Samples


@dataclass(frozen=True)
class PyLaneHealth:
    rate_hz: float
    ticks: int
    missed: int  # whole periods skipped because a tick ended past the next deadline
    late: int  # wake-ups later than half a period
    lateness_max_ns: int
    cpu_s: float  # time.thread_time() of the sampling thread, start to end (known once stopped)
    elapsed_s: float  # time.monotonic_ns() from the loop's start to its end (or to now)


class PySampler:
    """Samples FILE_DECIMAL ``channels`` at ``rate_hz`` from one Python thread."""

    def __init__(self, channels: Sequence[Channel], rate_hz: float = 1000.0) -> None:
        for c in channels:
            if c.reader.kind is not ReaderKind.FILE_DECIMAL:
                raise ValueError(f"{c.name}: the Python baseline reads FILE_DECIMAL channels only")
        self.channels = list(channels)
        self.rate_hz = rate_hz
        self.period_ns = int(round(1e9 / rate_hz))
        self._fds: list[int] = []
        self._t: list[list[int]] = [[] for _ in self.channels]
        self._v: list[list[int]] = [[] for _ in self.channels]
        self._lock = threading.Lock()
        self._stop = False
        self._thread: threading.Thread | None = None
        self.ticks = 0
        self.missed = 0
        self.late = 0
        self.lateness_max_ns = 0
        self.cpu_s = 0.0
        self.started_ns = 0
        self.stopped_ns = 0

    def start(self) -> "PySampler":
        self._fds = [os.open(c.reader.path, os.O_RDONLY | os.O_CLOEXEC) for c in self.channels]
        self._thread = threading.Thread(target=self._run, name="py-sampler", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        pread = os.pread
        mono = time.monotonic_ns
        sleep = time.sleep
        fds = self._fds
        ts, vs = self._t, self._v
        lock = self._lock
        period = self.period_ns
        n = len(fds)
        cpu0 = time.thread_time()
        deadline = mono()
        self.started_ns = deadline
        while not self._stop:
            with lock:
                for i in range(n):
                    value = int(pread(fds[i], 32, 0))
                    ts[i].append(mono())
                    vs[i].append(value)
            self.ticks += 1
            deadline += period
            now = mono()
            behind = now - deadline
            if behind >= period:
                self.missed += behind // period
                deadline += (behind // period) * period
            if now < deadline:
                sleep(max(0, deadline - now) * 1e-9)
                lateness = mono() - deadline
                if lateness > self.lateness_max_ns:
                    self.lateness_max_ns = lateness
                if lateness * 2 > period:
                    self.late += 1
        self.stopped_ns = mono()
        self.cpu_s = time.thread_time() - cpu0

    def stop(self) -> None:
        self._stop = True
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        for fd in self._fds:
            os.close(fd)
        self._fds = []

    def drain(self) -> dict[str, Samples]:
        """Everything sampled since the last drain, per channel name (int64 numpy arrays)."""
        with self._lock:
            ts, vs = self._t, self._v
            # Swap in fresh lists in place, so the thread's references stay valid.
            out_t = [lst[:] for lst in ts]
            out_v = [lst[:] for lst in vs]
            for lst in ts:
                lst.clear()
            for lst in vs:
                lst.clear()
        return {
            c.name: Samples(np.array(out_t[i], dtype=np.int64), np.array(out_v[i], dtype=np.int64))
            for i, c in enumerate(self.channels)
        }

    def health(self) -> PyLaneHealth:
        end = self.stopped_ns or time.monotonic_ns()
        return PyLaneHealth(
            rate_hz=self.rate_hz, ticks=self.ticks, missed=self.missed, late=self.late,
            lateness_max_ns=self.lateness_max_ns, cpu_s=self.cpu_s,
            elapsed_s=max(end - self.started_ns, 0) * 1e-9 if self.started_ns else 0.0,
        )

    def __enter__(self) -> "PySampler":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
