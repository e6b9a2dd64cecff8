"""The ranges a trace's values must lie in, checked as they are read.

A trace is evidence, but a file can be damaged (a bad disk, a copy cut short, a hand edit): every
value a summary depends on is checked against the ranges of ``docs/trace-format.md`` ("Valid
ranges"), and a value outside them is an error naming the field, never a number in a summary.
Pure checks on values already read; ``greentop.trace`` turns ``InvalidValue`` into its one-line
``TraceError`` with the file's name.
"""

from __future__ import annotations

import json
import math
from typing import Any, Sequence

import numpy as np
import numpy.typing as npt

from greentop.channel import Channel, Quantity

# A trace spans at most this long: a timestamp further from the others is damage (the wall clock
# written as a monotonic time, INT64_MAX), and would make a summary allocate a grid over it.
MAX_SPAN_NS = 366 * 24 * 3600 * 10**9
# Samples lie within the recording, give or take what the sampler held before the trace opened.
SAMPLE_MARGIN_NS = 60 * 10**9
# Workload events and phases lie within the samples' span, give or take this.
EVENT_MARGIN_NS = 3600 * 10**9
MAX_SCALE = 1e3  # raw * scale: J, W or s per unit; the coarsest unit in use is 1/100 s (jiffies)
MAX_POWER_W = 1e6  # one channel's power gauge: a megawatt is no single device
MAX_CARBON_G_PER_KWH = 5000.0  # the dirtiest grids are near 1000
EVENT_KINDS = frozenset({"start", "end", "mark", "count", "run"})
PHASE_STATUSES = frozenset({"ok", "crashed", "unclosed"})


class InvalidValue(ValueError):
    """A value of a trace outside its valid range; ``field`` names where it is."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


def finite(field: str, value: Any, lo: float = -math.inf, hi: float = math.inf) -> float:
    """``value`` as a float in ``[lo, hi]``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InvalidValue(field, f"not a number ({value!r})") from None
    if not math.isfinite(v) or not lo <= v <= hi:
        raise InvalidValue(field, f"{value!r} is outside [{lo:g}, {hi:g}]")
    return v


def integer(field: str, value: Any, lo: int = -(2**63), hi: int = 2**63 - 1) -> int:
    """``value`` as an int in ``[lo, hi]`` (a float that is not whole is refused)."""
    if isinstance(value, (bytes, str, bool, np.bool_)):
        raise InvalidValue(field, f"not an integer ({value!r})")
    try:
        v = int(value)
        whole = v == value
    except (TypeError, ValueError, OverflowError):
        raise InvalidValue(field, f"not an integer ({value!r})") from None
    if not whole or not lo <= v <= hi:
        raise InvalidValue(field, f"{value!r} is outside [{lo}, {hi}]")
    return v


def int_column(field: str, a: npt.NDArray[Any], ndim: int = 1) -> npt.NDArray[np.int64]:
    """An integer column (or table) of ``ndim`` dimensions, as int64."""
    if a.ndim != ndim:
        raise InvalidValue(field, f"{a.ndim}-dimensional, expected {ndim}")
    if a.dtype.kind not in "iu":
        raise InvalidValue(field, f"of type {a.dtype}, expected integers")
    return np.asarray(a, dtype=np.int64)


def float_column(field: str, a: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    if a.ndim != 1 or a.dtype.kind not in "iuf":
        raise InvalidValue(field, f"of type {a.dtype} and {a.ndim} dimensions, expected one column of numbers")
    v = np.asarray(a, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(v))
    if bad.size:
        raise InvalidValue(field, f"row {bad[0]} is {v[bad[0]]}")
    return v


def in_range(field: str, a: npt.NDArray[np.int64], lo: int, hi: int, what: str = "") -> None:
    """Every value of ``a`` in ``[lo, hi]``; the first one outside is named."""
    if a.size == 0:
        return
    bad = np.flatnonzero((a < lo) | (a > hi))
    if bad.size:
        raise InvalidValue(field, f"row {bad[0]} is {int(a[bad[0]])}, outside {what or f'[{lo}, {hi}]'}")


def json_object(field: str, text: str) -> dict[str, Any]:
    """An attribute column's cell: a JSON object (empty text: {})."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        raise InvalidValue(field, f"not JSON ({text[:40]!r})") from None
    if not isinstance(value, dict):
        raise InvalidValue(field, f"not a JSON object ({text[:40]!r})")
    return value


def same_lengths(group: str, lengths: dict[str, int]) -> int:
    """The common length of a table's columns."""
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{k} {v}" for k, v in lengths.items())
        raise InvalidValue(group, f"columns of different lengths ({detail})")
    return next(iter(lengths.values()), 0)


def check_channel(field: str, c: Channel) -> None:
    """A channel's description: a usable scale, wrap, model."""
    finite(f"{field} scale", c.scale, 0.0, MAX_SCALE)
    if c.scale <= 0:
        raise InvalidValue(f"{field} scale", f"{c.scale!r} is not positive")
    integer(f"{field} wrap_raw", c.wrap_raw, 0)
    if c.model is not None:
        idle = finite(f"{field} model_idle_w", c.model.idle_w, 0.0, MAX_POWER_W)
        finite(f"{field} model_max_w", c.model.max_w, idle, MAX_POWER_W)
        integer(f"{field} model_n_cpus", c.model.n_cpus, 1, 1 << 20)


def check_samples(field: str, c: Channel, t: npt.NDArray[np.int64], raw: npt.NDArray[np.int64],
                  window: tuple[int, int] | None) -> None:
    """A channel's readings: timestamps rising inside the recording's window, readings in range.

    ``window``: the earliest and latest timestamps the recording can hold (None: unknown)."""
    if t.size == 0:
        return
    steps = np.diff(t)
    back = np.flatnonzero(steps <= 0)
    if back.size:
        i = int(back[0]) + 1
        raise InvalidValue(f"{field}/t_ns", f"sample {i} ({int(t[i])}) is not after sample {i - 1} ({int(t[i - 1])})")
    if window is not None:
        in_range(f"{field}/t_ns", t, window[0], window[1], "the recording's time span (meta start_mono_ns .. end)")
    if int(t[-1]) - int(t[0]) > MAX_SPAN_NS:
        raise InvalidValue(f"{field}/t_ns", f"spans {(int(t[-1]) - int(t[0])) / 8.64e13:.0f} days")
    lo = int(raw.min())
    if lo < 0:
        raise InvalidValue(f"{field}/raw", f"reading {int(np.argmin(raw))} is negative ({lo})")
    hi = int(raw.max())
    if c.wrap_raw and hi > c.wrap_raw:
        raise InvalidValue(f"{field} wrap_raw", f"{c.wrap_raw} is below reading {int(np.argmax(raw))} ({hi})")
    if c.quantity is Quantity.POWER and hi * c.scale > MAX_POWER_W:
        raise InvalidValue(f"{field}/raw", f"reading {int(np.argmax(raw))} is {hi * c.scale:.3g} W")


def sample_window(meta: dict[str, Any], run: dict[str, Any], health_t_ns: npt.NDArray[np.int64] | None) -> tuple[int, int] | None:
    """The span samples may lie in: from the recording's start to its end (a clean finish) or its
    last flush (a recorder that died), with a margin; None when the trace does not say."""
    if "start_mono_ns" not in meta:
        return None
    start = integer("meta start_mono_ns", meta["start_mono_ns"], 0)
    end: int | None = None
    if "end_mono_ns" in run:
        end = integer("run end_mono_ns", run["end_mono_ns"], start)
    elif health_t_ns is not None and health_t_ns.size:
        end = int(health_t_ns.max())
    lo = start - SAMPLE_MARGIN_NS
    hi = start + MAX_SPAN_NS if end is None else end + SAMPLE_MARGIN_NS
    return lo, hi


def check_meta(meta: dict[str, Any]) -> None:
    """Run metadata a summary uses."""
    if "carbon_g_per_kwh" in meta:
        finite("meta carbon_g_per_kwh", meta["carbon_g_per_kwh"], 0.0, MAX_CARBON_G_PER_KWH)
    for key in ("start_mono_ns", "start_wall_ns"):
        if key in meta:
            integer(f"meta {key}", meta[key], 0)
    for key in ("rate_hz", "slow_rate_hz", "baseline_s"):
        if key in meta:
            finite(f"meta {key}", meta[key], 0.0, 1e9)


def check_run(run: dict[str, Any]) -> None:
    for key in ("exit_code", "end_mono_ns", "events_dropped", "events_overflowed", "events_oversized", "events_lost_by_clients",
                "events_lost", "workload_left_running"):
        if key in run:
            integer(f"run {key}", run[key], -(2**31) if key == "exit_code" else 0)


def check_times(field: str, t: Sequence[int] | npt.NDArray[np.int64], span: tuple[int, int]) -> None:
    """Event or phase times inside the samples' span, with ``EVENT_MARGIN_NS`` either side."""
    a = np.asarray(t, dtype=np.int64)
    in_range(field, a, span[0] - EVENT_MARGIN_NS, span[1] + EVENT_MARGIN_NS, "the run's time span (± 1 h)")


def check_phase_rows(start: npt.NDArray[np.int64], end: npt.NDArray[np.int64], depth: npt.NDArray[np.int64],
                     parent: npt.NDArray[np.int64], status: Sequence[str]) -> None:
    """The phase table's structure: ends after starts, parents before children, known statuses."""
    bad = np.flatnonzero(end < start)
    if bad.size:
        raise InvalidValue("phases/end_ns", f"row {bad[0]} ends before it starts")
    n = start.size
    rows = np.arange(n)
    bad = np.flatnonzero((parent < -1) | (parent >= rows))
    if bad.size:
        raise InvalidValue("phases/parent", f"row {bad[0]} has parent {int(parent[bad[0]])}")
    expected = np.where(parent >= 0, depth[np.clip(parent, 0, max(n - 1, 0))] + 1, 0) if n else depth
    bad = np.flatnonzero(depth != expected)
    if bad.size:
        raise InvalidValue("phases/depth", f"row {bad[0]} has depth {int(depth[bad[0]])}, its parent says {int(expected[bad[0]])}")
    for i, s in enumerate(status):
        if s not in PHASE_STATUSES:
            raise InvalidValue("phases/status", f"row {i} is {s!r}")
