"""HDF5 traces: the writer that records a run as it goes, and the reader behind ``greentop.load``.

The schema is documented in ``docs/trace-format.md``. In short: raw readings with their read
timestamps per channel, an append-only log of workload and run events, periodic snapshots of the
sampler's health, and, once the run ends cleanly, derived tables of phases, marks and counts.

Crash safety: every dataset is created up front, then the file switches to SWMR (single writer,
multiple readers) mode, in which HDF5 keeps the file consistent at every flush. The recorder
flushes at least once a second, so a recorder killed with SIGKILL leaves a file that opens (in
SWMR read mode, which :func:`open_trace` falls back to) with everything up to the last flush.

Compressed chunks are written once, whole: in SWMR mode HDF5 never reuses file space, so
rewriting a growing compressed chunk at every flush bloated traces 16-fold and cost most of the
write time. Samples that do not yet fill a chunk sit in a fixed-size uncompressed ``tail`` that
each flush overwrites in place; a clean finish moves it into the main datasets.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import h5py
import numpy as np
import numpy.typing as npt

from greentop import trace_validate as tv
from greentop.attribution import RunSummary, summarise
from greentop.channel import Channel, CpuPowerModel, Lane, Quantity, Reader, ReaderKind
from greentop.domains import CPU_TOTAL_PACKAGES, plan_domains
from greentop.events import Event, build_phases
from greentop.loaded import ChannelData, Count, Mark, Phase, Trace
from greentop.tracedata import TraceData

FORMAT_NAME = "greentop-trace"
FORMAT_VERSION = 1
CHUNK_SAMPLES = 16384  # ~16 s of one channel at 1 kHz: big enough for compression to work
EVENT_CHUNK = 256
COMPRESSION: dict[str, Any] = {"compression": "gzip", "compression_opts": 1, "shuffle": True}

# Run events greentop itself logs in /events (kind "run"); the workload's are start/end/mark/count.
RUN_BASELINE_START = "baseline-start"
RUN_BASELINE_END = "baseline-end"
RUN_WORKLOAD_START = "workload-start"
RUN_WORKLOAD_EXIT = "workload-exit"  # value: exit code (negative: killed by that signal)
RUN_INTERRUPTED = "interrupted"  # the user pressed Ctrl-C

_STR = h5py.string_dtype()


# Set once a trace could not be written (a full disk): HDF5 then holds handles it can neither flush
# nor release, and its own shutdown at exit can crash; the greentop command leaves with os._exit.
WRITE_FAILED = threading.Event()
_FAILED_HANDLES: list[Any] = []  # see TraceWriter.close_after_failure

# The HDF5 user block (bytes HDF5 leaves to the application at the start of the file) holds one line
# of the recording's status, written in place with pwrite: the one mark a trace can still take once
# its disk is full (the block's bytes are on the disk from the start) and HDF5 can no longer write.
USERBLOCK_BYTES = 512
STATUS_PREFIX = b"greentop recording: "
STATUS_RECORDING = "recording"
STATUS_STOPPED_EARLY = "stopped early: "  # followed by why (a full disk)


class TraceError(Exception):
    """A trace that cannot be read; the message is one line meant for the user."""


def phases_from_log(events: Sequence[Event], end_ns: int, status: str,
                    stats: dict[str, int] | None = None) -> tuple[list[Phase], list[Mark], list[Count]]:
    """Phases, marks and counts from the event log. Phases still open are closed when the
    workload exited (or at ``end_ns`` if it never did) and marked with ``status``; ``stats``
    receives the pairing's anomalies (unmatched ends, duplicate starts, ...)."""
    exit_event = next((e for e in events if e.kind == "run" and e.name == RUN_WORKLOAD_EXIT), None)
    close_ns = exit_event.t_ns if exit_event is not None else end_ns
    return build_phases([e for e in events if e.kind != "run"], close_ns, status, stats=stats)


def _channel_attrs(c: Channel) -> dict[str, Any]:
    a: dict[str, Any] = {
        "name": c.name, "source": c.source, "domain": c.domain, "quantity": c.quantity.value, "unit": c.unit,
        "scale": c.scale, "wrap_raw": c.wrap_raw, "estimated": c.estimated, "lane": c.lane.value,
        "parent": c.parent, "note": c.note, "reader_kind": c.reader.kind.value, "reader_path": c.reader.path,
        "reader_register": c.reader.register, "reader_gpu_index": c.reader.gpu_index, "reader_field_id": c.reader.field_id,
        "metadata": json.dumps(c.metadata, default=str),
    }
    if c.model is not None:
        a.update(model_idle_w=c.model.idle_w, model_max_w=c.model.max_w, model_n_cpus=c.model.n_cpus)
    return a


def _channel_from_attrs(a: h5py.AttributeManager) -> Channel:
    def s(key: str, default: str = "") -> str:
        v = a.get(key, default)
        return v.decode() if isinstance(v, bytes) else str(v)

    model = None
    if "model_idle_w" in a:
        model = CpuPowerModel(float(a["model_idle_w"]), float(a["model_max_w"]), int(a["model_n_cpus"]))
    return Channel(
        name=s("name"), source=s("source"), domain=s("domain"), quantity=Quantity(s("quantity")), unit=s("unit"),
        scale=float(a["scale"]),
        reader=Reader(ReaderKind(s("reader_kind", "file_decimal")), path=s("reader_path"), register=int(a.get("reader_register", 0)),
                      gpu_index=int(a.get("reader_gpu_index", -1)), field_id=int(a.get("reader_field_id", 0))),
        wrap_raw=int(a.get("wrap_raw", 0)), estimated=bool(a.get("estimated", False)), lane=Lane(s("lane", "fast")),
        parent=s("parent"), note=s("note"), model=model, metadata=json.loads(s("metadata", "{}") or "{}"),
    )


def _meta_value(v: Any) -> Any:
    """HDF5 attributes hold scalars and strings; anything else is stored as JSON text."""
    if isinstance(v, (bool, int, float, str, np.integer, np.floating)):
        return v
    return "json:" + json.dumps(v, default=str)


def _meta_read(v: Any) -> Any:
    if isinstance(v, bytes):
        v = v.decode()
    if isinstance(v, str) and v.startswith("json:"):
        return json.loads(v[5:])
    if isinstance(v, np.generic):
        return v.item()
    return v


class TraceWriter:
    """Appends a run to an HDF5 file as it happens. Call from one thread only."""

    def __init__(self, path: str | Path, channels: Sequence[Channel], meta: dict[str, Any], lanes: Sequence[str]) -> None:
        self.path = Path(path)
        self.channels = list(channels)
        self.lanes = list(lanes)
        self._index = {c.name: i for i, c in enumerate(self.channels)}
        self._pending: list[list[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]]] = [[] for _ in self.channels]
        self._pending_events: list[Event] = []
        self._tail_len = [0] * len(self.channels)
        # A new file, never one that is there (nor a symlink's target); owner-only when it will hold
        # readings other users may not make (trace_files explains why).
        from greentop.trace_files import create_new, private_readings

        create_new(self.path, private_readings(self.channels))
        # Truncates the file just made, keeping its mode.
        self._f = h5py.File(self.path, "w", libver="latest", userblock_size=USERBLOCK_BYTES)
        # A file object, not a bare fd: a writer dropped without finalize() or abort() (a test) lets it go.
        self._status: Any = os.fdopen(os.open(self.path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC), "wb", buffering=0)
        self._set_status(STATUS_RECORDING)  # written now: the block's bytes then exist on the disk
        f = self._f
        f.attrs["format"] = FORMAT_NAME
        f.attrs["format_version"] = FORMAT_VERSION
        m = f.create_group("meta")
        for k, v in meta.items():
            m.attrs[k] = _meta_value(v)
        chans = f.create_group("channels")
        for i, c in enumerate(self.channels):
            g = chans.create_group(f"{i:03d}")
            for k, v in _channel_attrs(c).items():
                g.attrs[k] = v
            for name in ("t_ns", "raw"):
                g.create_dataset(name, shape=(0,), maxshape=(None,), dtype="i8", chunks=(CHUNK_SAMPLES,), **COMPRESSION)
            # Rows of (t_ns, raw) not yet in a whole chunk; one uncompressed chunk, rewritten in place.
            g.create_dataset("tail", shape=(CHUNK_SAMPLES, 2), dtype="i8", chunks=(CHUNK_SAMPLES, 2), fillvalue=0)

        # How many samples of each channel's tail are valid (one write per flush for all channels).
        self._tail_len_ds = f.create_dataset("tail_len", shape=(len(self.channels),), dtype="i8", fillvalue=0)
        self._ds = [{name: chans[f"{i:03d}"][name] for name in ("t_ns", "raw", "tail")} for i in range(len(self.channels))]
        self._pending_n = [0] * len(self.channels)
        self._on_tail: list[list[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]]] = [[] for _ in self.channels]
        ev = f.create_group("events")
        for name, dtype in (("t_ns", "i8"), ("pid", "i8"), ("value", "f8")):
            ev.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(EVENT_CHUNK,))
        for name in ("kind", "name", "phase_id", "parent_id", "attrs"):
            ev.create_dataset(name, shape=(0,), maxshape=(None,), dtype=_STR, chunks=(EVENT_CHUNK,))
        h = f.create_group("health")
        h.create_dataset("t_ns", shape=(0,), maxshape=(None,), dtype="i8", chunks=(EVENT_CHUNK,))
        h.create_dataset("events_dropped", shape=(0,), maxshape=(None,), dtype="i8", chunks=(EVENT_CHUNK,))
        h.create_dataset("events_lost", shape=(0,), maxshape=(None,), dtype="i8", chunks=(EVENT_CHUNK,))
        for name in ("overruns", "read_errors", "reads"):
            h.create_dataset(name, shape=(0, len(self.channels)), maxshape=(None, len(self.channels)), dtype="i8",
                             chunks=(EVENT_CHUNK, max(len(self.channels), 1)))
        for name in ("lane_ticks", "lane_missed", "lane_late"):
            h.create_dataset(name, shape=(0, len(self.lanes)), maxshape=(None, len(self.lanes)), dtype="i8",
                             chunks=(EVENT_CHUNK, max(len(self.lanes), 1)))
        h.attrs["channels"] = json.dumps([c.name for c in self.channels])
        h.attrs["lanes"] = json.dumps(self.lanes)
        # Every dataset stays open for the whole recording: closing one makes HDF5 write its header,
        # and on a full disk those writes fail outside any flush (h5py prints each as an ignored
        # exception) and leave the log unreadable; open, they reach the disk only at flush().
        self._ev = {name: ev[name] for name in ev}
        self._h = {name: h[name] for name in h}
        f.swmr_mode = True

    # -- appending ------------------------------------------------------------------------------
    def append_samples(self, channel: str, t_ns: npt.NDArray[np.int64], raw: npt.NDArray[np.int64]) -> None:
        if t_ns.size:
            i = self._index[channel]
            self._pending[i].append((t_ns, raw))
            self._pending_n[i] += t_ns.size

    def append_events(self, events: Sequence[Event]) -> None:
        self._pending_events.extend(events)

    def append_health(self, t_ns: int, overruns: Sequence[int], read_errors: Sequence[int], reads: Sequence[int],
                      lane_ticks: Sequence[int], lane_missed: Sequence[int], lane_late: Sequence[int], events_dropped: int,
                      events_lost: int = 0) -> None:
        """A snapshot of the sampler's cumulative counters (per channel / per lane, in order)."""
        h = self._h
        n = h["t_ns"].shape[0]
        for name, row in (("overruns", overruns), ("read_errors", read_errors), ("reads", reads),
                          ("lane_ticks", lane_ticks), ("lane_missed", lane_missed), ("lane_late", lane_late)):
            d = h[name]
            d.resize((n + 1, d.shape[1]))
            d[n, :] = np.asarray(row, dtype=np.int64)
        for name, value in (("t_ns", t_ns), ("events_dropped", events_dropped), ("events_lost", events_lost)):
            d = h[name]
            d.resize((n + 1,))
            d[n] = value

    def flush(self, final: bool = False) -> None:
        """Write everything pending and make it durable (the SWMR flush point). Whole chunks go to
        the compressed datasets; the rest to the channel's tail (or, when ``final``, to the end of
        the compressed datasets)."""
        moved = False  # whether samples left a tail for the main datasets in this flush
        for i, new in enumerate(self._pending):
            on_tail = self._on_tail[i]
            if not new and not (final and on_tail):
                continue
            ds = self._ds[i]
            total = self._tail_len[i] + self._pending_n[i]
            whole = total if final else (total // CHUNK_SAMPLES) * CHUNK_SAMPLES
            if whole:
                parts = on_tail + new
                t = np.concatenate([p[0] for p in parts])
                raw = np.concatenate([p[1] for p in parts])
                n = ds["t_ns"].shape[0]
                for name, arr in (("t_ns", t[:whole]), ("raw", raw[:whole])):
                    ds[name].resize((n + whole,))
                    ds[name][n:] = arr
                on_tail.clear()
                new[:] = [(t[whole:], raw[whole:])] if total > whole else []
                self._tail_len[i] = 0
                moved = True
            if new:
                # Only what the tail does not hold yet is written: each flush costs what it adds.
                rows = np.empty((sum(p[0].size for p in new), 2), dtype=np.int64)
                k = 0
                for t_part, raw_part in new:
                    rows[k:k + t_part.size, 0] = t_part
                    rows[k:k + t_part.size, 1] = raw_part
                    k += t_part.size
                _write_rows(ds["tail"], self._tail_len[i], rows)
                self._tail_len[i] += rows.shape[0]
                on_tail.extend(new)
            new.clear()
            self._pending_n[i] = 0
        if moved:
            # Samples moved out of a tail must be on disk before the tail lengths say so: if this
            # write fails (a full disk), the old lengths still point at them in the tail.
            self._f.flush()
        _write_rows(self._tail_len_ds, 0, np.asarray(self._tail_len, dtype=np.int64))
        if self._pending_events:
            self._write_events(self._pending_events)
            self._pending_events = []
        self._f.flush()

    def logged_events(self) -> list[Event]:
        """Every event logged so far, read back from the trace (what is pending is written first):
        the recorder keeps none in memory."""
        if self._pending_events:
            self._write_events(self._pending_events)
            self._pending_events = []
        return read_events(self._f)

    def _write_events(self, events: Sequence[Event]) -> None:
        ev = self._ev
        n = ev["t_ns"].shape[0]
        k = len(events)
        columns: dict[str, Any] = {
            "t_ns": np.array([e.t_ns for e in events], dtype=np.int64),
            "pid": np.array([e.pid for e in events], dtype=np.int64),
            "value": np.array([e.value for e in events], dtype=np.float64),
            "kind": [e.kind for e in events],
            "name": [e.name for e in events],
            "phase_id": [e.phase_id for e in events],
            "parent_id": [e.parent_id for e in events],
            "attrs": [json.dumps(e.attrs) for e in events],
        }
        for name, values in columns.items():
            d = ev[name]
            d.resize((n + k,))
            d[n:] = values

    # -- the end --------------------------------------------------------------------------------
    def finalize(self, run: dict[str, Any], phases: Sequence[Phase], marks: Sequence[Mark], counts: Sequence[Count]) -> None:
        """Flush, leave SWMR mode and add the derived tables; the file is then complete."""
        self.flush(final=True)
        self._f.close()
        with h5py.File(self.path, "a", libver="latest") as f:
            r = f.create_group("run")
            for k, v in run.items():
                r.attrs[k] = _meta_value(v)
            _write_table(f, "phases", {
                "name": [p.name for p in phases], "start_ns": np.array([p.start_ns for p in phases], np.int64),
                "end_ns": np.array([p.end_ns for p in phases], np.int64), "depth": np.array([p.depth for p in phases], np.int64),
                "parent": np.array([p.parent for p in phases], np.int64), "pid": np.array([p.pid for p in phases], np.int64),
                "attrs": [json.dumps(p.attrs) for p in phases], "status": [p.status for p in phases],
                "phase_id": [p.phase_id for p in phases],
            })
            _write_table(f, "marks", {
                "t_ns": np.array([m.t_ns for m in marks], np.int64), "name": [m.name for m in marks],
                "pid": np.array([m.pid for m in marks], np.int64), "attrs": [json.dumps(m.attrs) for m in marks],
            })
            _write_table(f, "counts", {
                "t_ns": np.array([c.t_ns for c in counts], np.int64), "name": [c.name for c in counts],
                "value": np.array([c.value for c in counts], np.float64), "pid": np.array([c.pid for c in counts], np.int64),
                "phase": np.array([c.phase for c in counts], np.int64),
            })
        self._set_status("complete")  # only now: a failure above leaves "stopped early" here instead
        self._close_status()

    def _set_status(self, text: str) -> None:
        line = STATUS_PREFIX + text.encode("utf-8", "replace")[:USERBLOCK_BYTES - len(STATUS_PREFIX) - 1] + b"\n"
        os.pwrite(self._status.fileno(), line.ljust(USERBLOCK_BYTES, b"\0"), 0)

    def _close_status(self) -> None:
        self._status.close()  # idempotent

    def close_after_failure(self, error: BaseException | None = None) -> None:
        """Give up on the file after a write failed (a full disk). HDF5 cannot release a handle of
        it without writing, and each release that fails prints a traceback (h5py), so the file and
        the failed write's traceback (``error``: its frames hold handles too) are kept, open, for the
        rest of the process: the greentop command exits at once (``WRITE_FAILED``). The file keeps
        what reached the disk before. Idempotent."""
        f, self._f = self._f, None
        if f is None:
            return
        _FAILED_HANDLES.append((f, self._ds, self._tail_len_ds, self._ev, self._h, error))
        try:  # in place, in bytes already on the disk: this much fits on a full one
            self._set_status(STATUS_STOPPED_EARLY + _failure_reason(error))
        except OSError:
            pass
        self._close_status()
        WRITE_FAILED.set()

    def abort(self) -> None:
        """Close without finalising (the file stays readable up to the last flush)."""
        try:
            self.flush()
        finally:
            self._f.close()
            self._close_status()


def _failure_reason(error: BaseException | None) -> str:
    """A failed write's cause in a few words ("No space left on device")."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    import re

    m = re.search(r"error message = '([^']*)'", str(error))  # HDF5's long description of a failed write
    return m.group(1) if m else (type(error).__name__ if error is not None else "a write failed")


def recording_status(f: h5py.File) -> str:
    """The status line a trace's writer left in its user block ("complete", "recording": the
    writer died or still writes, "stopped early: No space left on device"); "" for a trace without one."""
    try:
        if f.userblock_size < USERBLOCK_BYTES:
            return ""
        with open(f.filename, "rb") as raw:
            block = raw.read(USERBLOCK_BYTES)
    except (OSError, ValueError):
        return ""
    if not block.startswith(STATUS_PREFIX):
        return ""
    return block[len(STATUS_PREFIX):].split(b"\n", 1)[0].decode("utf-8", "replace")


def _write_rows(ds: h5py.Dataset, start: int, rows: npt.NDArray[np.int64]) -> None:
    """Write ``rows`` into ``ds`` from row ``start`` through the low-level API: the high-level
    slice assignment costs ~10x more, and the recorder does this for every channel twice a second."""
    fspace = ds.id.get_space()
    fspace.select_hyperslab((start,) + (0,) * (rows.ndim - 1), rows.shape)
    ds.id.write(h5py.h5s.create_simple(rows.shape), fspace, np.ascontiguousarray(rows))


def _write_table(f: h5py.File, name: str, columns: dict[str, Any]) -> None:
    g = f.create_group(name)
    for col, values in columns.items():
        if isinstance(values, np.ndarray):
            g.create_dataset(col, data=values)
        else:
            g.create_dataset(col, data=np.array(values, dtype=object), dtype=_STR)


# -- reading ---------------------------------------------------------------------------------------
class TraceFile(h5py.File):
    """An open trace. Its close is skipped after a read timed out (``greentop.deadline``): the
    stuck read holds HDF5's lock, and closing would wait on it forever."""

    def close(self) -> None:
        from greentop.deadline import stuck

        if not stuck():
            super().close()

    def __exit__(self, *exc: Any) -> None:
        from greentop.deadline import stuck

        if not stuck():  # h5py's own __exit__ takes the lock before it closes
            super().__exit__(*exc)


def _timed_out(name: Any) -> Callable[[float], TraceError]:
    return lambda limit: TraceError(f"{name}: reading the trace took more than {limit:g} s: a damaged file? "
                                    f"(GREENTOP_READ_TIMEOUT_S sets the limit)")


def open_trace(path: str | Path) -> h5py.File:
    """Open a trace for reading, with one clear error for each way it can be unusable; the open
    is bounded in time (``greentop.deadline``)."""
    from greentop.deadline import bounded

    return bounded(lambda: _open_trace(Path(path)), _timed_out(path))


def _open_trace(p: Path) -> h5py.File:
    if not p.exists():
        raise TraceError(f"{p}: no such file")
    if p.is_dir():
        raise TraceError(f"{p}: is a directory, not a trace")
    try:
        if not h5py.is_hdf5(p):
            raise TraceError(f"{p}: not an HDF5 file (is this a greentop trace?)")
    except OSError as exc:
        raise TraceError(f"{p}: cannot read: {exc.strerror or exc}") from None
    try:
        f = TraceFile(p, "r")
    except OSError as exc:
        if "already open for write" not in str(exc):
            raise TraceError(f"{p}: truncated or corrupt HDF5 file") from None
        # A recorder that died mid-run leaves its SWMR write flag set; SWMR read mode opens it,
        # with a bounded number of read attempts (see h5bounds).
        try:
            f = swmr_open(p)
        except (OSError, RuntimeError, KeyError, ValueError):
            raise TraceError(f"{p}: truncated or corrupt HDF5 file") from None
    except (RuntimeError, KeyError, ValueError):
        raise TraceError(f"{p}: truncated or corrupt HDF5 file") from None
    try:
        fmt = f.attrs.get("format")
        if isinstance(fmt, bytes):
            fmt = fmt.decode()
        version = f.attrs.get("format_version", -1)
    except Exception:  # noqa: BLE001 -- damaged root attributes: any error of h5py's is the same news
        f.close()
        raise TraceError(f"{p}: truncated or corrupt HDF5 file") from None
    if fmt != FORMAT_NAME:
        f.close()
        raise TraceError(f"{p}: an HDF5 file, but not a greentop trace")
    if not isinstance(version, (int, np.integer)) or version != FORMAT_VERSION:
        f.close()
        shown = int(version) if isinstance(version, (int, np.integer)) else repr(version)
        raise TraceError(f"{p}: trace format version {shown}; this greentop reads version {FORMAT_VERSION}")
    return f


def swmr_open(path: Path) -> h5py.File:
    """A file whose writer is gone (or still writing), opened in SWMR read mode with at most
    ``h5bounds.SWMR_READ_ATTEMPTS`` attempts per metadata read."""
    from greentop.h5bounds import swmr_read_fapl

    fapl = swmr_read_fapl()
    if fapl is None:
        return TraceFile(path, "r", swmr=True)
    fid = h5py.h5f.open(os.fsencode(path), h5py.h5f.ACC_RDONLY | h5py.h5f.ACC_SWMR_READ, fapl=fapl)
    return TraceFile(fid)


def _strings(d: h5py.Dataset) -> list[str]:
    return [x.decode() if isinstance(x, bytes) else str(x) for x in d[()]]


def _written_strings(d: h5py.Dataset) -> list[str]:
    """A string column of a trace whose writer never finished: whole, or its longest readable
    start. A write that failed (a full disk) can leave rows whose strings point past the end of
    what reached the disk; HDF5 refuses to read them, and every row after them is as unwritten."""
    try:
        return _strings(d)
    except OSError:
        pass
    lo, hi = 0, d.shape[0]  # rows [0, lo) read; [0, hi) do not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        try:
            d[:mid]
            lo = mid
        except OSError:
            hi = mid
    return [x.decode() if isinstance(x, bytes) else str(x) for x in d[:lo]] if lo else []


def read_events(f: h5py.File, span: tuple[int, int] | None = None, cut: dict[str, int] | None = None) -> list[Event]:
    """The event log, each value checked (``trace_validate``); ``span``: the samples' time span,
    which event times must lie near. ``cut`` receives ``events_unwritten``: rows of a trace whose
    writer never finished that were sized but never written (a full disk), left out."""
    ev = f["events"]
    if ev["t_ns"].shape[0] == 0:
        return []
    read = _written_strings if f.swmr_mode else _strings
    cols = {name: read(ev[name]) for name in ("kind", "name", "phase_id", "parent_id", "attrs")}
    t = tv.int_column("events/t_ns", ev["t_ns"][()])
    pid = tv.int_column("events/pid", ev["pid"][()])
    value = tv.float_column("events/value", ev["value"][()])
    lengths = {"t_ns": t.size, "pid": pid.size, "value": value.size} | {k: len(v) for k, v in cols.items()}
    if f.swmr_mode:
        n = min(lengths.values())  # a live writer extends the columns one after another
        zero = np.flatnonzero(t[:n] == 0)  # rows sized but never written (a full disk): the log ends there
        n = int(zero[0]) if zero.size else n
        if cut is not None and n < max(lengths.values()):
            cut["events_unwritten"] = max(lengths.values()) - n
    else:
        n = tv.same_lengths("events", lengths)
    tv.in_range("events/pid", pid[:n], 0, 2**62)
    if span is not None:
        tv.check_times("events/t_ns", t[:n], span)
    for i, kind in enumerate(cols["kind"][:n]):
        if kind not in tv.EVENT_KINDS:
            raise tv.InvalidValue("events/kind", f"row {i} is {kind!r}, not one of {', '.join(sorted(tv.EVENT_KINDS))}")
    return [
        Event(kind=cols["kind"][i], t_ns=int(t[i]), pid=int(pid[i]), name=cols["name"][i], phase_id=cols["phase_id"][i],
              parent_id=cols["parent_id"][i], value=float(value[i]), attrs=tv.json_object(f"events/attrs row {i}", cols["attrs"][i]))
        for i in range(n)
    ]


def _sample_window(f: h5py.File) -> tuple[int, int] | None:
    """Where a channel's timestamps may lie (``trace_validate.sample_window``)."""
    meta = {k: _meta_read(v) for k, v in f["meta"].attrs.items()} if "meta" in f else {}
    run = {k: _meta_read(v) for k, v in f["run"].attrs.items()} if "run" in f else {}
    health_t = None
    if "health" in f and "t_ns" in f["health"]:
        health_t = tv.int_column("health/t_ns", f["health"]["t_ns"][()])
    return tv.sample_window(meta, run, health_t)


def _damaged(name: Any, exc: BaseException) -> TraceError:
    """The one line for a trace that cannot be read as it stands."""
    if isinstance(exc, tv.InvalidValue):
        return TraceError(f"{name}: damaged trace: {exc}")
    text = " ".join(str(exc).split())[:200]
    return TraceError(f"{name}: damaged trace ({type(exc).__name__}: {text})")


def _run_window(f: h5py.File, channels: list[ChannelData]) -> tuple[int, int]:
    starts = [int(c.t_ns[0]) for c in channels if c.t_ns.size]
    ends = [int(c.t_ns[-1]) for c in channels if c.t_ns.size]
    if not starts:
        raise TraceError(f"{f.filename}: the trace holds no samples")
    return min(starts), max(ends)


def _channel_index(f: h5py.File) -> tuple[h5py.Group, Any, tuple[int, int] | None, dict[str, tuple[int, str, Channel]]]:
    """The channel groups, the tail lengths, the samples' time window and each channel's
    (index, group key, description) by name, every attribute checked."""
    groups = f["channels"]
    tail_len = tv.int_column("tail_len", f["tail_len"][()]) if "tail_len" in f else np.zeros(0, np.int64)
    if "tail_len" in f and tail_len.size != len(groups):
        raise tv.InvalidValue("tail_len", f"{tail_len.size} values for {len(groups)} channels")
    tv.in_range("tail_len", tail_len, 0, CHUNK_SAMPLES)
    window = _sample_window(f)
    found: dict[str, tuple[int, str, Channel]] = {}  # name -> (index, group key, description)
    for index, key in enumerate(sorted(groups)):
        try:
            c = _channel_from_attrs(groups[key].attrs)
        except (KeyError, ValueError, TypeError) as exc:
            raise tv.InvalidValue(f"channels/{key}", f"bad attributes ({type(exc).__name__}: {exc})") from None
        tv.check_channel(f"channels/{key}", c)
        if c.name in found:
            raise tv.InvalidValue(f"channels/{key} name", f"{c.name!r} is also channel {found[c.name][1]}")
        found[c.name] = (index, key, c)
    return groups, tail_len, window, found, _reads_recorded(f, len(groups))


def _reads_recorded(f: h5py.File, n_channels: int) -> Any:
    """Per channel, how many readings the sampler took, from the last health row of a finished
    trace (None: not known). A channel with none stored though it was read has lost its samples."""
    try:
        if "run" not in f or "health" not in f or "reads" not in f["health"]:
            return None
        d = f["health"]["reads"]
        if d.ndim != 2 or d.shape[0] == 0 or d.shape[1] != n_channels or d.dtype.kind not in "iu":
            return None
        return np.asarray(d[-1], dtype=np.int64)
    except (KeyError, OSError, RuntimeError, ValueError):
        return None


def summarise_open(f: h5py.File, trace: TraceData, carbon_g_per_kwh: float, carbon_source: str,
                   cpu_total: str = CPU_TOTAL_PACKAGES) -> RunSummary:
    """``attribution.summarise`` of an open trace whose ``trace`` was loaded without samples
    (``load(f, channels=())``): the shown channels' samples are read one channel at a time, each let
    go once summarised, so an hour at 1 kHz never has all its samples in memory (the same figures as
    summarising ``load(f)``)."""
    every = [cd.channel for cd in iter_channels(f, ends_only=True)]
    streamed = iter_channels(f, [c.name for c in plan_domains(every, cpu_total).shown], read_ahead=True)
    return summarise(trace, carbon_g_per_kwh, carbon_source, channels=streamed, cpu_total=cpu_total, every_channel=every)


def iter_channels(f: h5py.File, channels: Sequence[str] | None = None, *, ends_only: bool = False,
                  read_ahead: bool = False) -> Iterator[ChannelData]:
    """The channels of an open trace with their samples, one channel at a time.

    ``channels``: the names of the channels wanted, in the order wanted (None: every channel, in
    file order). A channel's samples are read only when the iterator reaches it, and the iterator
    keeps nothing of them, so a consumer that lets each channel go before asking for the next holds
    one channel's samples at a time (two with ``read_ahead``, which reads the next channel in a
    background thread while the consumer works on this one). ``ends_only``: only each channel's
    first and last samples (what a run window needs), for a chunk or two per channel."""
    if channels is not None and len(channels) == 0:
        return
    from greentop.deadline import bounded

    try:
        groups, tail_len, window, found, reads = bounded(lambda: _channel_index(f), _timed_out(f.filename))
    except TraceError:
        raise
    except Exception as exc:  # noqa: BLE001 -- whatever a damaged file makes h5py or numpy raise
        raise _damaged(f.filename, exc) from None
    if channels is not None:
        missing = [name for name in channels if name not in found]
        if missing:
            raise TraceError(f"{f.filename}: no channel named {', '.join(missing)}")

    def read(index: int, key: str, channel: Channel) -> ChannelData:
        from greentop.deadline import bounded

        return bounded(lambda: read_now(index, key, channel), _timed_out(f.filename))

    def read_now(index: int, key: str, channel: Channel) -> ChannelData:
        try:
            g = groups[key]
            field = f"channels/{key}"
            for name in ("t_ns", "raw"):
                d = g[name]
                if d.ndim != 1 or d.dtype.kind not in "iu":
                    raise tv.InvalidValue(f"{field}/{name}", f"{d.dtype} of shape {d.shape}, expected one column of integers")
            n_t, n_raw = g["t_ns"].shape[0], g["raw"].shape[0]
            if n_t != n_raw and not f.swmr_mode:  # SWMR: a reader may see one dataset extended before the other
                raise tv.InvalidValue(field, f"{n_t} timestamps but {n_raw} readings")
            n = min(n_t, n_raw)
            if ends_only:
                rows = [0, n - 1] if n > 1 else slice(0, n)
                t, raw = g["t_ns"][rows], g["raw"][rows]
            else:
                t, raw = g["t_ns"][:n], g["raw"][:n]
            t, raw = np.asarray(t, dtype=np.int64), np.asarray(raw, dtype=np.int64)
            if t.size and t[-1] == 0:
                # Rows the file has room for but whose data never reached the disk (a write that
                # failed: a full disk) read as HDF5's fill value, 0: the trace ends before them.
                t_all = np.asarray(g["t_ns"][:n], dtype=np.int64)
                n = int(np.argmax(t_all == 0)) if (t_all == 0).any() else n
                t, raw = (t_all[[0, n - 1]], np.asarray(g["raw"][[0, n - 1]], dtype=np.int64)) if ends_only and n > 1 \
                    else (t_all[:n], np.asarray(g["raw"][:n], dtype=np.int64))
            k = int(tail_len[index]) if index < tail_len.size else 0
            if k:
                # A recorder that died: samples short of a whole chunk are in the tail. Timestamps
                # rise strictly, so a tail that overlaps what reached the main datasets is trimmed.
                tail = tv.int_column(f"{field}/tail", g["tail"][:k], ndim=2)
                if tail.shape != (k, 2):
                    raise tv.InvalidValue(f"{field}/tail", f"shape {tail.shape}, expected ({k}, 2)")
                keep = tail[:, 0] > (t[-1] if t.size else 0)  # 0: a row never written (see above)
                t, raw = np.concatenate([t, tail[keep, 0]]), np.concatenate([raw, tail[keep, 1]])
            if ends_only:
                # Only the ends are read here: their order and range; the rest when read whole.
                t, raw = (t[[0, -1]], raw[[0, -1]]) if t.size > 1 else (t, raw)
            if t.size == 0 and reads is not None and index < reads.size and reads[index] > 0:
                raise tv.InvalidValue(f"{field}/t_ns", f"no samples, though the sampler read the channel {int(reads[index])} times")
            tv.check_samples(field, channel, t, raw, window)
        except TraceError:
            raise
        except Exception as exc:  # noqa: BLE001 -- whatever a damaged file makes h5py or numpy raise
            raise _damaged(f.filename, exc) from None
        return ChannelData(channel, t, raw)

    names = list(found) if channels is None else list(channels)
    if not read_ahead:
        for name in names:
            yield read(*found[name])  # nothing of it stays here: the consumer decides how long it lives
        return
    # Decompressing is most of a read and HDF5 does it without the GIL: the next channel's read
    # runs on another core while the consumer works on this one (two channels in memory, not one).
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1, thread_name_prefix="greentop-read") as pool:
        reads = (pool.submit(read, *found[name]) for name in names)  # submitted one ahead
        current = next(reads, None)
        while current is not None:
            following = next(reads, None)
            yield current.result()
            current = following  # the channel just yielded is the consumer's alone now


def load(path: str | Path | h5py.File, channels: Sequence[str] | None = None) -> Trace:
    """Read a whole trace: channels, phases, marks, counts, health. See ``docs/trace-format.md``.

    ``path`` may also be a trace already open (``open_trace``); it stays open. ``channels``: read the
    samples of only these channels (names, as in ``iter_channels``); ``Trace.channels`` then holds
    just them, in that order, while ``run_start_ns`` and ``run_end_ns`` still span every channel.
    ``channels=()`` reads everything but samples, for a summary that streams them one channel at a
    time (``attribution.summarise``)."""
    from contextlib import nullcontext

    from greentop.deadline import bounded

    name = path.filename if isinstance(path, h5py.File) else path
    with nullcontext(path) if isinstance(path, h5py.File) else open_trace(path) as f:
        try:
            meta = bounded(lambda: {k: _meta_read(v) for k, v in f["meta"].attrs.items()}, _timed_out(name))
            tv.check_meta(meta)
            channels_data = list(iter_channels(f, channels))  # each channel's read bounded in time on its own
            ends = channels_data if channels is None else list(iter_channels(f, ends_only=True))
            run_start, run_end = _run_window(f, ends)
            events, complete, run, (phases, marks, counts), health = bounded(
                lambda: _read_log(f, run_start, run_end), _timed_out(name))
            status = "" if complete else recording_status(f)
        except TraceError:
            raise
        except Exception as exc:  # noqa: BLE001 -- whatever a damaged file makes h5py, numpy or json raise
            raise _damaged(name, exc) from None
    baseline = _window(events, RUN_BASELINE_START, RUN_BASELINE_END)
    meta = meta | {"run": run}
    if status.startswith(STATUS_STOPPED_EARLY):  # a full disk: the trace says so itself
        meta["recording_stopped_early"] = status[len(STATUS_STOPPED_EARLY):]
    return Trace(meta=meta, channels=channels_data, phases=phases, marks=marks, counts=counts, run_start_ns=run_start,
                     run_end_ns=run_end, baseline=baseline, health=health, complete=complete)


def _read_log(f: h5py.File, run_start: int, run_end: int) -> tuple[list[Event], bool, dict[str, Any],
                                                                   tuple[list[Phase], list[Mark], list[Count]], dict[str, Any]]:
    """Events, completeness, /run, the phase tables (read, or rebuilt from the log) and health."""
    cut: dict[str, int] = {}
    events = read_events(f, (run_start, run_end), cut)
    complete = "run" in f and "phases" in f
    run = {k: _meta_read(v) for k, v in f["run"].attrs.items()} if "run" in f else {}
    tv.check_run(run)
    if complete:
        tables = _read_tables(f, (run_start, run_end))
    else:
        exit_event = next((e for e in events if e.kind == "run" and e.name == RUN_WORKLOAD_EXIT), None)
        # No exit logged: greentop itself died mid-run, and open phases end with the data.
        status = "ok" if exit_event is not None and exit_event.value == 0 else "crashed"
        tables = phases_from_log(events, run_end, status)
    return events, complete, run, tables, _read_health(f) | cut  # rows left out are said, as a health counter


def _window(events: list[Event], start: str, end: str) -> tuple[int, int] | None:
    a = next((e.t_ns for e in events if e.kind == "run" and e.name == start), None)
    b = next((e.t_ns for e in events if e.kind == "run" and e.name == end), None)
    return (a, b) if a is not None and b is not None and b > a else None


def _read_tables(f: h5py.File, span: tuple[int, int]) -> tuple[list[Phase], list[Mark], list[Count]]:
    """The derived tables of a finished trace, each value checked (``trace_validate``)."""
    p = f["phases"]
    names, attrs, status, ids = _strings(p["name"]), _strings(p["attrs"]), _strings(p["status"]), _strings(p["phase_id"])
    start, end, depth, parent, pid = (tv.int_column(f"phases/{c}", p[c][()]) for c in ("start_ns", "end_ns", "depth", "parent", "pid"))
    n = tv.same_lengths("phases", {"name": len(names), "attrs": len(attrs), "status": len(status), "phase_id": len(ids),
                                   "start_ns": start.size, "end_ns": end.size, "depth": depth.size, "parent": parent.size,
                                   "pid": pid.size})
    tv.check_times("phases/start_ns", start, span)
    tv.check_times("phases/end_ns", end, span)
    tv.check_phase_rows(start, end, depth, parent, status)
    phases = [Phase(i, names[i], int(start[i]), int(end[i]), int(depth[i]), int(parent[i]), int(pid[i]),
                    tv.json_object(f"phases/attrs row {i}", attrs[i]), status[i], ids[i]) for i in range(n)]
    m = f["marks"]
    mn, ma = _strings(m["name"]), _strings(m["attrs"])
    mt, mp = tv.int_column("marks/t_ns", m["t_ns"][()]), tv.int_column("marks/pid", m["pid"][()])
    tv.same_lengths("marks", {"name": len(mn), "attrs": len(ma), "t_ns": mt.size, "pid": mp.size})
    tv.check_times("marks/t_ns", mt, span)
    marks = [Mark(int(t), mn[i], int(pd), tv.json_object(f"marks/attrs row {i}", ma[i])) for i, (t, pd) in enumerate(zip(mt, mp))]
    c = f["counts"]
    cn = _strings(c["name"])
    ct, cv = tv.int_column("counts/t_ns", c["t_ns"][()]), tv.float_column("counts/value", c["value"][()])
    cp, cph = tv.int_column("counts/pid", c["pid"][()]), tv.int_column("counts/phase", c["phase"][()])
    tv.same_lengths("counts", {"name": len(cn), "t_ns": ct.size, "value": cv.size, "pid": cp.size, "phase": cph.size})
    tv.check_times("counts/t_ns", ct, span)
    tv.in_range("counts/phase", cph, -1, n - 1, f"-1 .. {n - 1} (the phases)")
    counts = [Count(int(t), cn[i], float(v), int(pd), int(ph)) for i, (t, v, pd, ph) in enumerate(zip(ct, cv, cp, cph))]
    return phases, marks, counts


def _read_health(f: h5py.File) -> dict[str, Any]:
    h = f["health"]
    run_lost = tv.integer("run events_lost", f["run"].attrs.get("events_lost", 0), 0) if "run" in f else 0
    if h["t_ns"].shape[0] == 0:
        return {}
    names, lanes = _name_list("health channels", h.attrs["channels"]), _name_list("health lanes", h.attrs["lanes"])
    rows = h["t_ns"].shape[0]
    if names != [_channel_from_attrs(f["channels"][k].attrs).name for k in sorted(f["channels"])]:
        raise tv.InvalidValue("health channels", "names that are not the trace's channels")
    last = {}
    for k, width in (("overruns", len(names)), ("read_errors", len(names)), ("reads", len(names)),
                     ("lane_ticks", len(lanes)), ("lane_missed", len(lanes)), ("lane_late", len(lanes))):
        d = h[k]
        if d.ndim != 2 or d.shape[1] != width or d.shape[0] < rows and not f.swmr_mode:
            raise tv.InvalidValue(f"health/{k}", f"shape {d.shape}, expected ({rows}, {width})")
        last[k] = tv.int_column(f"health/{k}", d[-1:], ndim=2)[0] if d.shape[0] else np.zeros(width, np.int64)
        tv.in_range(f"health/{k}", last[k], 0, 2**62)
    dropped = tv.int_column("health/events_dropped", h["events_dropped"][()])
    tv.in_range("health/events_dropped", dropped, 0, 2**62)
    lost = None
    if "events_lost" in h:  # traces since issue #11: events that clients could not send or the recorder not keep
        lost = tv.int_column("health/events_lost", h["events_lost"][()])
        tv.in_range("health/events_lost", lost, 0, 2**62)
    return {
        "channels": {n: {"overruns": int(last["overruns"][i]), "read_errors": int(last["read_errors"][i]),
                         "reads": int(last["reads"][i])} for i, n in enumerate(names)},
        "lanes": {n: {"ticks": int(last["lane_ticks"][i]), "missed": int(last["lane_missed"][i]),
                      "late": int(last["lane_late"][i])} for i, n in enumerate(lanes)},
        "events_dropped": int(dropped[-1]) if dropped.size else 0,
        **({"events_lost": max(int(lost[-1]) if lost.size else 0, int(run_lost))} if lost is not None else {}),
        "overruns": int(np.sum(last["overruns"])),
        "read_errors": int(np.sum(last["read_errors"])),
    }


def _name_list(field: str, text: Any) -> list[str]:
    """A JSON list of names (the health table's column names)."""
    if isinstance(text, bytes):
        text = text.decode()
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        raise tv.InvalidValue(field, f"not JSON ({str(text)[:40]!r})") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise tv.InvalidValue(field, "not a list of names")
    return value


def wall_time_s(meta: dict[str, Any], t_ns: int) -> float:
    """Unix time (s) of a CLOCK_MONOTONIC timestamp of this trace, from the stored offset."""
    offset = int(meta.get("start_wall_ns", 0)) - int(meta.get("start_mono_ns", 0))
    return (t_ns + offset) / 1e9
