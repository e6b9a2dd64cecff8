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
from pathlib import Path
from typing import Any, Iterator, Sequence

import h5py
import numpy as np
import numpy.typing as npt

from greentop.channel import Channel, CpuPowerModel, Lane, Quantity, Reader, ReaderKind
from greentop.listener import Event, build_phases
from greentop.loaded import ChannelData, Count, Mark, Phase, Trace as TraceData

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
        self._f = h5py.File(self.path, "w", libver="latest")
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
        for name in ("overruns", "read_errors", "reads"):
            h.create_dataset(name, shape=(0, len(self.channels)), maxshape=(None, len(self.channels)), dtype="i8",
                             chunks=(EVENT_CHUNK, max(len(self.channels), 1)))
        for name in ("lane_ticks", "lane_missed", "lane_late"):
            h.create_dataset(name, shape=(0, len(self.lanes)), maxshape=(None, len(self.lanes)), dtype="i8",
                             chunks=(EVENT_CHUNK, max(len(self.lanes), 1)))
        h.attrs["channels"] = json.dumps([c.name for c in self.channels])
        h.attrs["lanes"] = json.dumps(self.lanes)
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
                      lane_ticks: Sequence[int], lane_missed: Sequence[int], lane_late: Sequence[int], events_dropped: int) -> None:
        """A snapshot of the sampler's cumulative counters (per channel / per lane, in order)."""
        h = self._f["health"]
        n = h["t_ns"].shape[0]
        for name, row in (("overruns", overruns), ("read_errors", read_errors), ("reads", reads),
                          ("lane_ticks", lane_ticks), ("lane_missed", lane_missed), ("lane_late", lane_late)):
            d = h[name]
            d.resize((n + 1, d.shape[1]))
            d[n, :] = np.asarray(row, dtype=np.int64)
        for name, value in (("t_ns", t_ns), ("events_dropped", events_dropped)):
            d = h[name]
            d.resize((n + 1,))
            d[n] = value

    def flush(self, final: bool = False) -> None:
        """Write everything pending and make it durable (the SWMR flush point). Whole chunks go to
        the compressed datasets; the rest to the channel's tail (or, when ``final``, to the end of
        the compressed datasets)."""
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
        _write_rows(self._tail_len_ds, 0, np.asarray(self._tail_len, dtype=np.int64))
        if self._pending_events:
            self._write_events(self._pending_events)
            self._pending_events = []
        self._f.flush()

    def _write_events(self, events: Sequence[Event]) -> None:
        ev = self._f["events"]
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

    def abort(self) -> None:
        """Close without finalising (the file stays readable up to the last flush)."""
        try:
            self.flush()
        finally:
            self._f.close()


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
def open_trace(path: str | Path) -> h5py.File:
    """Open a trace for reading, with one clear error for each way it can be unusable."""
    p = Path(path)
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
        f = h5py.File(p, "r")
    except OSError as exc:
        if "already open for write" not in str(exc):
            raise TraceError(f"{p}: truncated or corrupt HDF5 file") from None
        # A recorder that died mid-run leaves its SWMR write flag set; SWMR read mode opens it.
        try:
            f = h5py.File(p, "r", swmr=True)
        except OSError:
            raise TraceError(f"{p}: truncated or corrupt HDF5 file") from None
    fmt = f.attrs.get("format")
    if isinstance(fmt, bytes):
        fmt = fmt.decode()
    if fmt != FORMAT_NAME:
        f.close()
        raise TraceError(f"{p}: an HDF5 file, but not a greentop trace")
    version = int(f.attrs.get("format_version", -1))
    if version != FORMAT_VERSION:
        f.close()
        raise TraceError(f"{p}: trace format version {version}; this greentop reads version {FORMAT_VERSION}")
    return f


def _strings(d: h5py.Dataset) -> list[str]:
    return [x.decode() if isinstance(x, bytes) else str(x) for x in d[()]]


def read_events(f: h5py.File) -> list[Event]:
    ev = f["events"]
    n = ev["t_ns"].shape[0]
    if n == 0:
        return []
    cols = {name: _strings(ev[name]) for name in ("kind", "name", "phase_id", "parent_id", "attrs")}
    t, pid, value = ev["t_ns"][()], ev["pid"][()], ev["value"][()]
    n = min(n, *(len(v) for v in cols.values()), t.size, pid.size, value.size)
    return [
        Event(kind=cols["kind"][i], t_ns=int(t[i]), pid=int(pid[i]), name=cols["name"][i], phase_id=cols["phase_id"][i],
              parent_id=cols["parent_id"][i], value=float(value[i]), attrs=json.loads(cols["attrs"][i] or "{}"))
        for i in range(n)
    ]


def _run_window(f: h5py.File, channels: list[ChannelData]) -> tuple[int, int]:
    starts = [int(c.t_ns[0]) for c in channels if c.t_ns.size]
    ends = [int(c.t_ns[-1]) for c in channels if c.t_ns.size]
    if not starts:
        raise TraceError(f"{f.filename}: the trace holds no samples")
    return min(starts), max(ends)


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
    tail_len = f["tail_len"][()] if "tail_len" in f else np.zeros(0, np.int64)
    groups = f["channels"]
    found: dict[str, tuple[int, str, Channel]] = {}  # name -> (index, group key, description)
    for index, key in enumerate(sorted(groups)):
        c = _channel_from_attrs(groups[key].attrs)
        found[c.name] = (index, key, c)
    if channels is not None:
        missing = [name for name in channels if name not in found]
        if missing:
            raise TraceError(f"{f.filename}: no channel named {', '.join(missing)}")

    def read(index: int, key: str, channel: Channel) -> ChannelData:
        try:
            g = groups[key]
            if ends_only:
                n = min(g["t_ns"].shape[0], g["raw"].shape[0])
                rows = [0, n - 1] if n > 1 else slice(0, n)
                t, raw = g["t_ns"][rows], g["raw"][rows]
            else:
                t, raw = g["t_ns"][()], g["raw"][()]
                n = min(t.size, raw.size)  # SWMR: a reader may see one dataset extended before the other
                t, raw = t[:n], raw[:n]
            k = int(tail_len[index]) if index < tail_len.size else 0
            if k:
                # A recorder that died: samples short of a whole chunk are in the tail. Timestamps
                # rise strictly, so a tail that overlaps what reached the main datasets is trimmed.
                tail = g["tail"][:k]
                keep = tail[:, 0] > t[-1] if t.size else np.ones(k, dtype=bool)
                t, raw = np.concatenate([t, tail[keep, 0]]), np.concatenate([raw, tail[keep, 1]])
        except (KeyError, OSError, ValueError) as exc:
            raise TraceError(f"{f.filename}: damaged trace ({type(exc).__name__}: {exc})") from None
        return ChannelData(channel, np.asarray(t, dtype=np.int64), np.asarray(raw, dtype=np.int64))

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


def load(path: str | Path | h5py.File, channels: Sequence[str] | None = None) -> TraceData:
    """Read a whole trace: channels, phases, marks, counts, health. See ``docs/trace-format.md``.

    ``path`` may also be a trace already open (``open_trace``); it stays open. ``channels``: read the
    samples of only these channels (names, as in ``iter_channels``); ``TraceData.channels`` then holds
    just them, in that order, while ``run_start_ns`` and ``run_end_ns`` still span every channel.
    ``channels=()`` reads everything but samples, for a summary that streams them one channel at a
    time (``attribution.summarise``)."""
    from contextlib import nullcontext

    name = path.filename if isinstance(path, h5py.File) else path
    with nullcontext(path) if isinstance(path, h5py.File) else open_trace(path) as f:
        try:
            meta = {k: _meta_read(v) for k, v in f["meta"].attrs.items()}
            channels_data = list(iter_channels(f, channels))
            ends = channels_data if channels is None else list(iter_channels(f, ends_only=True))
            run_start, run_end = _run_window(f, ends)
            events = read_events(f)
            complete = "run" in f and "phases" in f
            run = {k: _meta_read(v) for k, v in f["run"].attrs.items()} if "run" in f else {}
            if complete:
                phases, marks, counts = _read_tables(f)
            else:
                exit_event = next((e for e in events if e.kind == "run" and e.name == RUN_WORKLOAD_EXIT), None)
                # No exit logged: greentop itself died mid-run, and open phases end with the data.
                status = "ok" if exit_event is not None and exit_event.value == 0 else "crashed"
                phases, marks, counts = phases_from_log(events, run_end, status)
            health = _read_health(f)
        except TraceError:
            raise
        except (KeyError, OSError, ValueError) as exc:
            raise TraceError(f"{name}: damaged trace ({type(exc).__name__}: {exc})") from None
    baseline = _window(events, RUN_BASELINE_START, RUN_BASELINE_END)
    meta = meta | {"run": run}
    return TraceData(meta=meta, channels=channels_data, phases=phases, marks=marks, counts=counts, run_start_ns=run_start,
                     run_end_ns=run_end, baseline=baseline, health=health, complete=complete)


def _window(events: list[Event], start: str, end: str) -> tuple[int, int] | None:
    a = next((e.t_ns for e in events if e.kind == "run" and e.name == start), None)
    b = next((e.t_ns for e in events if e.kind == "run" and e.name == end), None)
    return (a, b) if a is not None and b is not None and b > a else None


def _read_tables(f: h5py.File) -> tuple[list[Phase], list[Mark], list[Count]]:
    p = f["phases"]
    names, attrs, status, ids = _strings(p["name"]), _strings(p["attrs"]), _strings(p["status"]), _strings(p["phase_id"])
    start, end, depth, parent, pid = (p[c][()] for c in ("start_ns", "end_ns", "depth", "parent", "pid"))
    phases = [Phase(i, names[i], int(start[i]), int(end[i]), int(depth[i]), int(parent[i]), int(pid[i]),
                    json.loads(attrs[i] or "{}"), status[i], ids[i]) for i in range(len(names))]
    m = f["marks"]
    mn, ma = _strings(m["name"]), _strings(m["attrs"])
    marks = [Mark(int(t), mn[i], int(pd), json.loads(ma[i] or "{}")) for i, (t, pd) in enumerate(zip(m["t_ns"][()], m["pid"][()]))]
    c = f["counts"]
    cn = _strings(c["name"])
    counts = [Count(int(t), cn[i], float(v), int(pd), int(ph))
              for i, (t, v, pd, ph) in enumerate(zip(c["t_ns"][()], c["value"][()], c["pid"][()], c["phase"][()]))]
    return phases, marks, counts


def _read_health(f: h5py.File) -> dict[str, Any]:
    h = f["health"]
    if h["t_ns"].shape[0] == 0:
        return {}
    names, lanes = json.loads(h.attrs["channels"]), json.loads(h.attrs["lanes"])
    last = {k: h[k][-1] for k in ("overruns", "read_errors", "reads", "lane_ticks", "lane_missed", "lane_late")}
    return {
        "channels": {n: {"overruns": int(last["overruns"][i]), "read_errors": int(last["read_errors"][i]),
                         "reads": int(last["reads"][i])} for i, n in enumerate(names)},
        "lanes": {n: {"ticks": int(last["lane_ticks"][i]), "missed": int(last["lane_missed"][i]),
                      "late": int(last["lane_late"][i])} for i, n in enumerate(lanes)},
        "events_dropped": int(h["events_dropped"][-1]),
        "overruns": int(np.sum(last["overruns"])),
        "read_errors": int(np.sum(last["read_errors"])),
    }


def wall_time_s(meta: dict[str, Any], t_ns: int) -> float:
    """Unix time (s) of a CLOCK_MONOTONIC timestamp of this trace, from the stored offset."""
    offset = int(meta.get("start_wall_ns", 0)) - int(meta.get("start_mono_ns", 0))
    return (t_ns + offset) / 1e9
