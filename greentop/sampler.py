"""The Python face of the compiled sampler: open channels, run lanes, drain ring buffers.

>>> with Sampler(channels, rate_hz=1000) as s:
...     time.sleep(1)
...     samples = s.drain()        # {channel name: Samples(t_ns, raw)}
...     health = s.health()
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Sequence

import numpy as np
import numpy.typing as npt

from greentop import _sampler
from greentop._paths import display_path, nvml_library_path
from greentop.channel import Channel, Lane, ReaderKind

DEFAULT_RATE_HZ = 1000.0
DEFAULT_SLOW_RATE_HZ = 10.0
MAX_RATE_HZ = 100_000.0
BUFFER_S = 4.0  # each ring holds this many seconds of samples between drains

_KIND_CODES = {
    ReaderKind.FILE_DECIMAL: _sampler.KIND_FILE_DECIMAL,
    ReaderKind.MSR: _sampler.KIND_MSR,
    ReaderKind.NVML_POWER: _sampler.KIND_NVML_POWER,
    ReaderKind.NVML_FIELD: _sampler.KIND_NVML_FIELD,
    ReaderKind.NVML_ENERGY: _sampler.KIND_NVML_ENERGY,
    ReaderKind.PROC_STAT_BUSY: _sampler.KIND_PROC_STAT_BUSY,
}
_NVML_KINDS = {ReaderKind.NVML_POWER, ReaderKind.NVML_FIELD, ReaderKind.NVML_ENERGY}


class SamplerError(RuntimeError):
    """The sampler could not start (a channel cannot be opened, NVML will not load)."""


@dataclass
class Samples:
    t_ns: npt.NDArray[np.int64]  # CLOCK_MONOTONIC ns, the middle of each read
    raw: npt.NDArray[np.int64]


@dataclass(frozen=True)
class ChannelHealth:
    reads: int
    errors: int
    last_error: str  # "" when none
    overruns: int  # samples dropped because the ring was full
    mean_cost_ns: float  # time one read takes
    max_cost_ns: int


@dataclass(frozen=True)
class LaneHealth:
    rate_hz: float
    ticks: int
    missed: int  # ticks skipped after a stall
    late: int  # wake-ups later than half a period
    lateness_max_ns: int
    cpu_s: float  # CPU time the lane's thread used (known once stopped)
    elapsed_s: float


@dataclass(frozen=True)
class SamplerHealth:
    lanes: dict[str, LaneHealth]
    channels: dict[str, ChannelHealth]

    @property
    def overruns(self) -> int:
        return sum(c.overruns for c in self.channels.values())

    @property
    def read_errors(self) -> int:
        return sum(c.errors for c in self.channels.values())


def lane_name(channel: Channel) -> str:
    """The sampler thread that reads ``channel``: ``"fast"`` / ``"slow"`` for file and MSR
    readers, ``"gpuN"`` / ``"gpuN-slow"`` for GPU N's NVML readers.

    Every GPU gets lanes of its own because an NVML call can block for milliseconds (7.4 ms has
    been seen for a power read): on a shared lane it would delay every RAPL read behind it, and
    the other GPUs' reads too. A stalled driver call now costs only that GPU's samples."""
    if channel.reader.kind in _NVML_KINDS:
        gpu = f"gpu{channel.reader.gpu_index}"
        return gpu if channel.lane is Lane.FAST else f"{gpu}-slow"
    return channel.lane.value


def lane_plan(channels: Sequence[Channel], rate_hz: float, slow_rate_hz: float) -> list[tuple[str, float, list[Channel]]]:
    """``(lane name, rate in Hz, channels)`` for each sampler thread, in start order: the fast
    lane, then each GPU's fast lane, the slow lane, then each GPU's slow lane."""
    plan: list[tuple[str, float, list[Channel]]] = []
    for lane, rate in ((Lane.FAST, rate_hz), (Lane.SLOW, slow_rate_hz)):
        groups: dict[str, list[Channel]] = {}
        for c in channels:
            if c.lane is lane:
                groups.setdefault(lane_name(c), []).append(c)
        # The file/MSR lane first, then the GPUs by index (gpu10 after gpu9).
        order = sorted(groups, key=lambda n: (n != lane.value, len(n), n))
        plan += [(name, rate, groups[name]) for name in order]
    return plan


def describe_error(code: int) -> str:
    if code == 0:
        return ""
    if code >= _sampler.NVML_ERR_BASE:
        return f"NVML error {code - _sampler.NVML_ERR_BASE}"
    if code == _sampler.ERR_PARSE:
        return "no number in the file"
    return os.strerror(code)


@dataclass
class Sampler:
    """Samples ``channels`` on lanes (one thread each, see ``lane_plan``): fast ones at ``rate_hz``,
    slow ones at ``slow_rate_hz``; each GPU's NVML channels on lanes of their own."""

    channels: Sequence[Channel]
    rate_hz: float = DEFAULT_RATE_HZ
    slow_rate_hz: float = DEFAULT_SLOW_RATE_HZ
    buffer_s: float = BUFFER_S
    _core: _sampler.Core | None = field(default=None, init=False, repr=False)
    _order: list[Channel] = field(default_factory=list, init=False, repr=False)
    _lanes: list[tuple[str, float]] = field(default_factory=list, init=False, repr=False)
    _fds: list[int] = field(default_factory=list, init=False, repr=False)
    _threads: list[threading.Thread] = field(default_factory=list, init=False, repr=False)
    _drain_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _nvml_open: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        for rate in (self.rate_hz, self.slow_rate_hz):
            if not 0 < rate <= MAX_RATE_HZ:
                raise ValueError(f"sampling rate must be in (0, {MAX_RATE_HZ:g}] Hz, got {rate:g}")
        names = [c.name for c in self.channels]
        if len(set(names)) != len(names):
            raise ValueError("channel names must be unique")

    def start(self) -> "Sampler":
        if self._core is not None:
            raise SamplerError("sampler already started")
        try:
            self._core = self._build_core()
        except BaseException:
            self._release()
            raise
        for i, (lane, _rate) in enumerate(self._lanes):
            t = threading.Thread(target=self._core.run_lane, args=(i,), name=f"greentop-{lane}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def _build_core(self) -> _sampler.Core:
        if any(c.reader.kind in _NVML_KINDS for c in self.channels):
            try:
                _sampler.nvml_open(nvml_library_path())
            except OSError as exc:
                raise SamplerError(f"NVML: {exc}") from exc
            self._nvml_open = True
        lanes = []
        for name, rate, members in lane_plan(self.channels, self.rate_hz, self.slow_rate_hz):
            capacity = max(int(rate * self.buffer_s), 64)
            lanes.append((int(round(1e9 / rate)), [self._spec(c, capacity) for c in members]))
            self._order += members
            self._lanes.append((name, rate))
        try:
            return _sampler.Core(lanes)
        except OSError as exc:
            raise SamplerError(str(exc)) from exc

    def _spec(self, c: Channel, capacity: int) -> tuple[int, int, int, int, int, int, int]:
        fd = -1
        if c.reader.path:
            try:
                fd = os.open(c.reader.path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as exc:
                raise SamplerError(f"{c.name}: cannot open {display_path_str(c.reader.path)}: {exc.strerror}") from exc
            self._fds.append(fd)
        r = c.reader
        return (_KIND_CODES[r.kind], fd, r.register, r.mask, r.gpu_index, r.field_id, capacity)

    def drain(self) -> dict[str, Samples]:
        """Everything sampled since the last drain, per channel name."""
        if self._core is None:
            raise SamplerError("sampler not started")
        with self._drain_lock:
            return {c.name: Samples(*self._core.drain(i)) for i, c in enumerate(self._order)}

    def health(self) -> SamplerHealth:
        if self._core is None:
            raise SamplerError("sampler not started")
        lanes: dict[str, LaneHealth] = {}
        now = _sampler.now_ns()
        for i, (name, rate) in enumerate(self._lanes):
            s = self._core.lane_stats(i)
            end = s["stopped_ns"] or now
            lanes[name] = LaneHealth(
                rate_hz=rate, ticks=s["ticks"], missed=s["missed"], late=s["late"],
                lateness_max_ns=s["lateness_max_ns"], cpu_s=s["cpu_ns"] * 1e-9,
                elapsed_s=max(end - s["started_ns"], 0) * 1e-9 if s["started_ns"] else 0.0,
            )
        channels: dict[str, ChannelHealth] = {}
        for i, c in enumerate(self._order):
            s = self._core.channel_stats(i)
            channels[c.name] = ChannelHealth(
                reads=s["reads"], errors=s["errors"], last_error=describe_error(s["last_error"]),
                overruns=s["overruns"], mean_cost_ns=s["cost_ns_sum"] / s["reads"] if s["reads"] else 0.0,
                max_cost_ns=s["cost_ns_max"],
            )
        return SamplerHealth(lanes, channels)

    def stop(self) -> None:
        """Stop every lane and wait for it; samples stay drainable until the sampler is dropped."""
        if self._core is not None:
            self._core.request_stop()
        for t in self._threads:
            t.join()
        self._threads.clear()
        self._release()

    def _release(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds.clear()
        if self._nvml_open:
            _sampler.nvml_close()
            self._nvml_open = False

    def __enter__(self) -> "Sampler":
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def display_path_str(path: str) -> str:
    return display_path(Path(path))


def now_ns() -> int:
    """CLOCK_MONOTONIC in ns: the sampler's clock."""
    return int(_sampler.now_ns())
