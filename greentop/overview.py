"""A multi-resolution min/max/mean summary of each channel's power, so a long trace opens fast.

Level 0 cuts a channel's power (W) into fixed bins of ``bin_ns`` (10 ms by default); level k
groups ``FACTOR`` (4) bins of level k-1, so its bins are ``bin_ns * 4**k`` wide. Every bin holds:

- ``mean_w``: energy-exact, the bin's energy (J) over the part of the bin the channel covers (s).
  Energy is the channel's own cumulative energy (``energy.converter_for``), linear between
  samples, so ``sum(mean_w * covered_s)`` at any level is the channel's energy.
- ``min_w`` / ``max_w``: the lowest and highest level-0 mean under the bin. A level-0 bin is the
  finest value kept, so there ``min_w == max_w == mean_w``; zooming out keeps the extremes, so a
  spike survives to the top level (as its level-0 bin's mean: a 1 ms spike shows at 1/10 of its
  height over the 10 ms bin it falls in; build with ``bin_ns=1_000_000`` to keep 1 ms peaks).

Power between two samples is the energy between them over their interval: Δenergy/Δt for
counters, the held reading for gauges (sample and hold), the model's estimate for ``cpu_busy``.

Bins sit on a grid of absolute multiples of their width (CLOCK_MONOTONIC ns), so the channels of
a trace share bin edges at every level and their bins add up to a total.

Why a factor of 4: the pyramid costs 1/3 more than level 0 (a factor of 2 doubles it), it has
half as many levels, and a screen of C columns gets between C and 4C bins (plus the two that
the window cuts), a few thousand at most, which a chart reduces per column in microseconds.

The recorder stores the summary in the trace it has just finished, in ``/overview`` (see
``TRACE_FORMAT_DOC``), so that opening a trace reads a few hundred kB instead of every sample.
Reading never writes a trace (it is evidence): a trace without a current ``/overview`` gets one
built from its samples and kept in the user's cache (``cache_dir()``), keyed by the file's
identity, so that only the first open pays for the build.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, Iterable, Mapping, NamedTuple

import h5py
import numpy as np
import numpy.typing as npt

from greentop.channel import Channel
from greentop.energy import converter_for

log = logging.getLogger(__name__)

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]

OVERVIEW_VERSION = 1
GROUP = "overview"
DEFAULT_BIN_NS = 10_000_000  # 10 ms: ~10 readings at 1 kHz, ~10 RAPL updates, 1/10 of an NVML one
FACTOR = 4
DISK_DTYPE = np.float32  # min/max/mean on disk: 7 significant digits, 1 mW at 100 W
_CHUNK = 65536  # bins per compressed chunk
_COMPRESSION: dict[str, object] = {"compression": "gzip", "compression_opts": 4, "shuffle": True}
_MIN_COMPRESS = 1024  # smaller datasets are stored plain
CACHE_MAX_FILES = 64  # overviews kept in the cache; the least recently written go first
CACHE_ENV = "XDG_CACHE_HOME"


class OverviewError(Exception):
    """An overview that cannot be written or read; the message is one line meant for the user."""


class Level:
    """One resolution of an overview. Bin ``i`` covers ``[(first_bin + i) * bin_ns, (first_bin + i + 1) * bin_ns)``
    ns (CLOCK_MONOTONIC); its values are in W, in read-only arrays. A level read from a trace loads
    its arrays on first use (``loaded`` says whether it has)."""

    __slots__ = ("bin_ns", "first_bin", "n_bins", "_arrays", "_loader")

    def __init__(self, bin_ns: int, first_bin: int, n_bins: int, arrays: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
                 loader: Callable[[], tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None) -> None:
        if arrays is None and loader is None:
            raise ValueError("a level needs its arrays or a loader")
        self.bin_ns = int(bin_ns)
        self.first_bin = int(first_bin)  # absolute index of the first bin on the grid of multiples of bin_ns
        self.n_bins = int(n_bins)
        self._arrays = arrays
        self._loader = loader

    def _get(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._arrays is None:
            assert self._loader is not None
            arrays = self._loader()
            if any(a.size != self.n_bins for a in arrays):
                raise OverviewError(f"overview level of {self.bin_ns} ns bins changed on disk")
            self._arrays = arrays
        return self._arrays

    @property
    def loaded(self) -> bool:
        return self._arrays is not None

    @property
    def min_w(self) -> npt.NDArray[np.floating]:
        """Lowest level-0 mean under each bin, W."""
        return self._get()[0]

    @property
    def max_w(self) -> npt.NDArray[np.floating]:
        """Highest level-0 mean under each bin, W."""
        return self._get()[1]

    @property
    def mean_w(self) -> npt.NDArray[np.floating]:
        """Energy-exact average power of each bin (over the part the channel covers), W."""
        return self._get()[2]

    def __len__(self) -> int:
        return self.n_bins

    @property
    def t_ns(self) -> I64:
        """Start of each bin, ns (CLOCK_MONOTONIC)."""
        return (self.first_bin + np.arange(self.n_bins, dtype=np.int64)) * self.bin_ns

    def __repr__(self) -> str:
        return f"Level(bin_ns={self.bin_ns}, first_bin={self.first_bin}, n_bins={self.n_bins}, loaded={self.loaded})"


class Window(NamedTuple):
    """The bins of one level under a time window: start of each bin (ns) and its power (W)."""

    t_ns: I64
    min_w: npt.NDArray[np.floating]
    max_w: npt.NDArray[np.floating]
    mean_w: npt.NDArray[np.floating]


@dataclass
class Overview:
    """The pyramid of one channel: ``levels[0]`` is the finest (``bin_ns``), each next one ``factor`` times wider."""

    channel: Channel
    t_first_ns: int  # first sample of the channel
    t_last_ns: int  # last sample; bins cover [t_first_ns, t_last_ns]
    n_samples: int  # samples it was built from (a stored overview is current while the trace has as many)
    energy_j: float  # the channel's energy over [t_first_ns, t_last_ns], J
    levels: list[Level] = field(default_factory=list)
    factor: int = FACTOR

    @property
    def bin_ns(self) -> int:
        """Width of a level-0 bin, ns."""
        return self.levels[0].bin_ns if self.levels else 0

    def covered_ns(self, level: int) -> I64:
        """How much of each bin of ``level`` the channel covers, ns (the full width but at the two ends)."""
        lv = self.levels[level]
        start = lv.t_ns
        return np.minimum(start + lv.bin_ns, self.t_last_ns) - np.maximum(start, self.t_first_ns)

    def energy_per_bin_j(self, level: int) -> F64:
        """Energy of each bin of ``level``, J (mean_w times covered time)."""
        return np.asarray(self.levels[level].mean_w, dtype=np.float64) * self.covered_ns(level) * 1e-9

    def level_for(self, t0_ns: int, t1_ns: int, columns: int) -> int:
        """The coarsest level with at least ``columns`` bins in ``[t0_ns, t1_ns)``: bins no wider than a
        column. Level 0 when even its bins are wider (a window shorter than ``columns * bin_ns``)."""
        if columns < 1:
            raise ValueError(f"columns must be at least 1, got {columns}")
        span = int(t1_ns) - int(t0_ns)
        if span <= 0:
            raise ValueError(f"empty time window [{t0_ns}, {t1_ns})")
        best = 0
        for k, lv in enumerate(self.levels):
            if lv.bin_ns * columns <= span:
                best = k
        return best

    def window(self, t0_ns: int, t1_ns: int, columns: int) -> Window:
        """The bins of the coarsest level with at least ``columns`` bins in ``[t0_ns, t1_ns)`` that
        overlap it (the first and last may stick out): ``(t_ns, min_w, max_w, mean_w)``, bin starts in
        ns and power in W. At most ``factor * columns + 2`` bins, unless the window is shorter
        than ``columns`` level-0 bins; empty arrays outside the channel's time span."""
        if not self.levels:
            e = np.zeros(0)
            return Window(np.zeros(0, np.int64), e, e, e)
        lv = self.levels[self.level_for(t0_ns, t1_ns, columns)]
        lo = max(int(t0_ns) // lv.bin_ns - lv.first_bin, 0)
        hi = min(-(-int(t1_ns) // lv.bin_ns) - lv.first_bin, len(lv))
        hi = max(hi, lo)
        t = (lv.first_bin + np.arange(lo, hi, dtype=np.int64)) * lv.bin_ns
        return Window(t, lv.min_w[lo:hi], lv.max_w[lo:hi], lv.mean_w[lo:hi])


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def _groups(a: np.ndarray, front: int, back: int, factor: int, fill: float) -> np.ndarray:
    """``a`` padded with ``fill`` (front and back) and cut into rows of ``factor``."""
    return np.concatenate((np.full(front, fill), a, np.full(back, fill))).reshape(-1, factor)


def build_overview(t_ns: npt.ArrayLike, raw: npt.ArrayLike, channel: Channel, bin_ns: int = DEFAULT_BIN_NS,
                   factor: int = FACTOR) -> Overview:
    """The pyramid of one channel from all its readings (``t_ns`` rising, ``raw`` as recorded).

    Vectorised: about 0.1 s for an hour at 1 kHz (3.6 M readings) on a 2-core VM. Fewer than two readings give an
    overview with no levels."""
    if bin_ns < 1 or factor < 2:
        raise ValueError("bin_ns must be at least 1 and factor at least 2")
    t = np.ascontiguousarray(t_ns, dtype=np.int64)
    r = np.ascontiguousarray(raw, dtype=np.int64)
    if t.size != r.size:
        raise ValueError(f"{channel.name}: {t.size} timestamps but {r.size} readings")
    if t.size < 2 or t[-1] <= t[0]:
        first = int(t[0]) if t.size else 0
        return Overview(channel, first, first, int(t.size), 0.0, [], factor)
    energy = converter_for(channel).feed(t, r).energy_j  # J, cumulative since t[0]
    t_first, t_last = int(t[0]), int(t[-1])
    first_bin = t_first // bin_ns
    last_bin = -(-t_last // bin_ns) - 1  # the bin that holds t_last (t_last on an edge ends the one before)
    edges = np.arange(first_bin, last_bin + 2, dtype=np.int64) * bin_ns
    edges[0], edges[-1] = t_first, t_last
    # Cumulative energy at each bin edge, linear between readings (exact: power is constant between
    # them). Searching the int64 timestamps keeps every temporary the size of the edges, not the samples.
    i = np.clip(np.searchsorted(t, edges, side="right") - 1, 0, t.size - 2)
    t_a, t_b = t[i], t[i + 1]
    e_a = energy[i]
    with np.errstate(divide="ignore", invalid="ignore"):  # 0/0 only for a repeated last timestamp, replaced below
        e_edges = e_a + (energy[i + 1] - e_a) * ((edges - t_a) / (t_b - t_a))
    e_edges[-1] = energy[-1]
    e_bin = np.diff(e_edges)
    dt_ns = np.diff(edges)
    mean0 = e_bin / (dt_ns * 1e-9)
    _readonly(mean0)
    levels = [Level(bin_ns, int(first_bin), mean0.size, (mean0, mean0, mean0))]
    lo_w, hi_w = mean0, mean0
    width, first = bin_ns, int(first_bin)
    while e_bin.size > 1:
        # Pad to whole groups aligned on the next grid; padding has no energy, no time, no extremes.
        front = first % factor
        back = -(front + e_bin.size) % factor
        e_bin = _groups(e_bin, front, back, factor, 0.0).sum(axis=1)
        dt_ns = _groups(dt_ns.astype(np.float64), front, back, factor, 0.0).sum(axis=1)
        lo_w = _groups(lo_w, front, back, factor, np.inf).min(axis=1)
        hi_w = _groups(hi_w, front, back, factor, -np.inf).max(axis=1)
        width, first = width * factor, first // factor
        mean = e_bin / (dt_ns * 1e-9)
        levels.append(Level(width, first, mean.size, (_readonly(lo_w), _readonly(hi_w), _readonly(mean))))
    return Overview(channel, t_first, t_last, int(t.size), float(energy[-1]), levels, factor)


# -- the file ----------------------------------------------------------------------------------

def _channel_keys(f: h5py.File) -> dict[str, str]:
    """Channel name -> its group key under /channels."""
    from greentop.trace import _channel_from_attrs

    return {_channel_from_attrs(g.attrs).name: key for key, g in f["channels"].items()}


def _dataset(g: h5py.Group, name: str, data: np.ndarray) -> None:
    data = np.asarray(data, dtype=DISK_DTYPE)
    if data.size >= _MIN_COMPRESS:
        g.create_dataset(name, data=data, chunks=(min(data.size, _CHUNK),), **_COMPRESSION)
    else:
        g.create_dataset(name, data=data)


def write_overview(path: str | Path, overviews: Mapping[str, Overview] | Iterable[Overview]) -> None:
    """Store the overviews of every channel of a finished trace in its ``/overview`` (replacing any there).

    The trace must be complete (the recorder finalised it) and not open for writing elsewhere.
    ``overview_version`` is written last: a write cut short leaves a group that readers ignore.
    Raises OverviewError for a file that is not a finished trace, OSError when it cannot be written."""
    p = Path(path)
    items = list(overviews.values()) if isinstance(overviews, Mapping) else list(overviews)
    if not p.is_file():
        raise OverviewError(f"{p}: no such trace")
    with h5py.File(p, "r+", libver="latest") as f:  # r+: never creates a file
        fmt = f.attrs.get("format")
        if (fmt.decode() if isinstance(fmt, bytes) else fmt) != "greentop-trace":
            raise OverviewError(f"{p}: not a greentop trace")
        if "run" not in f or ("tail_len" in f and np.any(f["tail_len"][()] != 0)):
            raise OverviewError(f"{p}: the recording did not finish; its overview is kept in memory only")
        keys = _channel_keys(f)
        unknown = [o.channel.name for o in items if o.channel.name not in keys]
        if unknown:
            raise OverviewError(f"{p}: no channel named {', '.join(unknown)}")
        missing = sorted(set(keys) - {o.channel.name for o in items})
        if missing:  # a reader takes an overview as current only when it covers every channel
            raise OverviewError(f"{p}: an overview needs every channel; missing {', '.join(missing)}")
        if GROUP in f:
            del f[GROUP]
        _write_group(f, keys, items)
        f.flush()


def _write_group(f: h5py.File, keys: Mapping[str, str], items: list[Overview]) -> None:
    """``/overview`` in ``f`` (a trace, or a cache file): one group per channel under its trace key."""
    top = f.create_group(GROUP)
    factors = {o.factor for o in items if o.levels}
    bins = {o.bin_ns for o in items if o.levels}
    top.attrs["factor"] = factors.pop() if len(factors) == 1 else FACTOR
    top.attrs["bin_ns"] = bins.pop() if len(bins) == 1 else 0
    top.attrs["power_unit"] = "W"
    for o in items:
        key = keys[o.channel.name]
        g = top.create_group(key)
        g.attrs.update({"channel": o.channel.name, "source": f"/channels/{key}", "quantity": o.channel.quantity.value,
                        "estimated": o.channel.estimated, "t_first_ns": o.t_first_ns, "t_last_ns": o.t_last_ns,
                        "n_samples": o.n_samples, "energy_j": o.energy_j, "bin_ns": o.bin_ns, "factor": o.factor,
                        "levels": len(o.levels),
                        # Every level's shape in three attributes: a reader learns them without opening the levels.
                        "level_bin_ns": np.array([lv.bin_ns for lv in o.levels], np.int64),
                        "level_first_bin": np.array([lv.first_bin for lv in o.levels], np.int64),
                        "level_n_bins": np.array([len(lv) for lv in o.levels], np.int64)})
        for k, lv in enumerate(o.levels):
            lg = g.create_group(f"L{k:02d}")
            lg.attrs.update({"bin_ns": lv.bin_ns, "first_bin": lv.first_bin, "t_start_ns": lv.first_bin * lv.bin_ns,
                             "n_bins": len(lv)})
            _dataset(lg, "mean_w", lv.mean_w)
            if k:
                _dataset(lg, "min_w", lv.min_w)
                _dataset(lg, "max_w", lv.max_w)
    top.attrs["overview_version"] = OVERVIEW_VERSION


def _load_level(path: Path, key: str, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    try:
        with h5py.File(path, "r") as f:
            lg = f[f"{GROUP}/{key}/L{k:02d}"]
            mean = _readonly(lg["mean_w"][()])
            if k == 0:
                return mean, mean, mean
            return _readonly(lg["min_w"][()]), _readonly(lg["max_w"][()]), mean
    except (KeyError, OSError, ValueError, RuntimeError) as exc:
        raise OverviewError(f"{path}: cannot read the overview of /channels/{key} ({type(exc).__name__}: {exc})") from None


def _read_group(f: h5py.File, path: Path, top: h5py.Group | None = None) -> dict[str, Overview] | None:
    """The overviews of trace ``f`` in ``top`` (default: its own ``/overview``; else a cache file's,
    ``path`` being that file: levels are loaded from ``path``), or None when not current."""
    from greentop.trace import _channel_from_attrs

    top = f.get(GROUP) if top is None else top
    if top is None or int(top.attrs.get("overview_version", -1)) != OVERVIEW_VERSION:
        return None
    chans = f["channels"]
    if set(top) != set(chans):
        return None  # a channel without an overview (or the other way round): not this trace's
    out: dict[str, Overview] = {}
    for key, g in top.items():
        src = chans[key]
        channel = _channel_from_attrs(src.attrs)
        a = dict(g.attrs)
        # Shapes come from the dataset headers: no sample is read.
        if channel.name != _str(a["channel"]) or min(src["t_ns"].shape[0], src["raw"].shape[0]) != int(a["n_samples"]):
            return None
        if not _plausible(g, a):
            log.info("%s: overview of /channels/%s out of range: rebuilt", path, key)
            return None
        levels = [Level(int(w), int(first), int(n), loader=partial(_load_level, path, key, k))
                  for k, (w, first, n) in enumerate(zip(a["level_bin_ns"], a["level_first_bin"], a["level_n_bins"]))]
        out[channel.name] = Overview(channel, int(a["t_first_ns"]), int(a["t_last_ns"]), int(a["n_samples"]),
                                     float(a["energy_j"]), levels, int(a["factor"]))
    return out


def _plausible(g: h5py.Group, a: dict[str, object]) -> bool:
    """Whether a stored channel overview's attributes and level shapes are in range (a damaged one
    is rebuilt, never drawn): finite energy, a grid that covers the channel's span, and datasets of
    the length their level says. Reads attributes and dataset headers only."""
    try:
        t_first, t_last = int(a["t_first_ns"]), int(a["t_last_ns"])  # type: ignore[call-overload]
        factor, energy = int(a["factor"]), float(a["energy_j"])  # type: ignore[call-overload, arg-type]
        widths, firsts, counts = (np.asarray(a[k]) for k in ("level_bin_ns", "level_first_bin", "level_n_bins"))
    except (KeyError, TypeError, ValueError, OverflowError):
        return False
    if not (np.isfinite(energy) and factor >= 2 and t_first <= t_last and widths.ndim == firsts.ndim == counts.ndim == 1):
        return False
    if not (widths.size == firsts.size == counts.size) or widths.dtype.kind not in "iu" or firsts.dtype.kind not in "iu" \
            or counts.dtype.kind not in "iu":
        return False
    for k, (w, first, n) in enumerate(zip(widths.tolist(), firsts.tolist(), counts.tolist())):
        # The level's bins must start at or before the first reading and not run far past the last.
        if w < 1 or n < 1 or first * w > t_first or (first + n - 1) * w > t_last:
            return False
        lg = g.get(f"L{k:02d}")
        if not isinstance(lg, h5py.Group):
            return False
        for name in ("mean_w",) + (("min_w", "max_w") if k else ()):
            d = lg.get(name)
            if not isinstance(d, h5py.Dataset) or d.shape != (n,) or d.dtype.kind != "f":
                return False
    return True


def _str(v: object) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def read_overview(path: str | Path) -> dict[str, Overview] | None:
    """The overviews stored in a trace, by channel name, or None when it has none that are current
    (none written, another ``overview_version``, or channels that no longer match).

    Reads the attributes of ``/overview`` and of the channels, never their samples; each level's
    arrays (float32, W) are read from the file when first used, so the first screen of a long
    trace reads a few coarse levels only. Raises ``TraceError`` for a file that is not a trace."""
    from greentop.trace import open_trace

    p = Path(path).resolve()  # levels are read later, maybe from another working directory
    with open_trace(p) as f:
        try:
            return _read_group(f, p)
        except (KeyError, OSError, ValueError, TypeError, RuntimeError, OverflowError) as exc:
            log.info("%s: unreadable overview ignored (%s: %s)", path, type(exc).__name__, exc)
            return None


def build_overviews(path: str | Path, bin_ns: int = DEFAULT_BIN_NS) -> dict[str, Overview]:
    """Every channel's overview, built from the trace's samples (one channel in memory at a time).
    Reads only. Raises ``TraceError`` for a file that is not a trace."""
    from greentop.trace import iter_channels, open_trace

    with open_trace(Path(path)) as f:
        return {c.channel.name: build_overview(c.t_ns, c.raw, c.channel, bin_ns) for c in iter_channels(f)}


def cache_dir() -> Path:
    """Where overviews of traces that lack one are kept: ``$XDG_CACHE_HOME/greentop/overview``
    (``~/.cache/greentop/overview`` by default)."""
    base = os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "greentop" / "overview"


def _identity(path: Path, bin_ns: int) -> str:
    """The trace file as it is now (where it lives, which file, its size and last change) and what
    the overview is built with; any change gives another key, so a cached overview is never stale."""
    st = path.stat()
    ident = f"{path}\0{st.st_dev}\0{st.st_ino}\0{st.st_size}\0{st.st_mtime_ns}\0{bin_ns}\0{OVERVIEW_VERSION}"
    return hashlib.sha256(ident.encode()).hexdigest()


def cache_path(path: str | Path, bin_ns: int = DEFAULT_BIN_NS) -> Path:
    """The cache file of trace ``path``'s overview (which need not exist)."""
    p = Path(path).resolve()
    return cache_dir() / f"{_identity(p, bin_ns)[:40]}.h5"


def _read_cache(f: h5py.File, trace_path: Path, bin_ns: int) -> dict[str, Overview] | None:
    try:
        cached = cache_path(trace_path, bin_ns)
        if not cached.is_file():
            return None
        with h5py.File(cached, "r") as c:
            if _str(c.attrs.get("identity", "")) != _identity(trace_path, bin_ns):
                return None
            return _read_group(f, cached, c.get(GROUP))
    except (KeyError, OSError, ValueError) as exc:
        log.info("%s: cached overview ignored (%s: %s)", trace_path, type(exc).__name__, exc)
        return None


def _write_cache(trace_path: Path, keys: Mapping[str, str], overviews: Mapping[str, Overview], bin_ns: int) -> None:
    """Write the cache file whole under a temporary name, then rename it: a reader never sees half of one."""
    target = cache_path(trace_path, bin_ns)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".overview-", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        with h5py.File(tmp, "w", libver="latest") as c:
            c.attrs["identity"] = _identity(trace_path, bin_ns)
            c.attrs["trace"] = str(trace_path)
            _write_group(c, keys, list(overviews.values()))
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    _prune_cache(target.parent)


def _prune_cache(folder: Path) -> None:
    files = sorted(folder.glob("*.h5"), key=lambda q: q.stat().st_mtime_ns)
    for old in files[:-CACHE_MAX_FILES]:
        old.unlink(missing_ok=True)


def ensure_overview(path: str | Path, bin_ns: int = DEFAULT_BIN_NS) -> dict[str, Overview]:
    """The trace's overviews; the trace itself is only read, never written. In order: the one the
    recorder stored in ``/overview`` when current; else the one kept in the user's cache
    (``cache_path``) for this very file; else built from the samples and, for a finished trace,
    kept in the cache for next time (best effort: an unwritable cache keeps it in memory only)."""
    from greentop.trace import iter_channels, open_trace

    p = Path(path).resolve()
    with open_trace(p) as f:
        try:
            stored = _read_group(f, p)
        except (KeyError, OSError, ValueError, TypeError, RuntimeError, OverflowError):
            stored = None
        if stored is not None:
            return stored
        complete = "run" in f and "phases" in f  # an unfinished trace may still grow: nothing cached
        cached = _read_cache(f, p, bin_ns) if complete else None
        if cached is not None:
            return cached
        keys = _channel_keys(f)
        # One channel in memory at a time.
        built = {c.channel.name: build_overview(c.t_ns, c.raw, c.channel, bin_ns) for c in iter_channels(f)}
    if complete:
        try:
            _write_cache(p, keys, built, bin_ns)
        except (OSError, OverviewError, KeyError, RuntimeError, ValueError) as exc:
            log.info("%s: overview kept in memory (%s)", p, exc)
    return built


TRACE_FORMAT_DOC = """\
## `/overview`: a multi-resolution summary of each channel's power (optional)

Written by the recorder when it finishes a trace, so that `greentop replay` draws the whole run
without reading every sample. It is derived data: a trace without it is complete. Reading a
trace never writes it: for a trace without a current `/overview` (an older trace, one whose
recorder died, or one whose overview was deleted) the replay builds one from `/channels` and
keeps it in the user's cache (`$XDG_CACHE_HOME/greentop/overview/`, by default
`~/.cache/greentop/overview/`), in a file of the same `/overview` layout named after the trace's
identity (path, device, inode, size, modification time): a changed trace never meets a stale
overview. The cache keeps the 64 most recently written; deleting it costs only a rebuild. A
trace whose recorder died gets its overview in memory only.

Attributes of `/overview`: `overview_version` (`1`; written last, so a group without it is an
unfinished write; a reader ignores a group of another version), `bin_ns` (width of a level-0 bin,
ns; 10 ms by default), `factor` (`4`: each level's bins are this many times wider than the level
below), `power_unit` (`"W"`).

`/overview/NNN` summarises `/channels/NNN` (same key). Attributes: `channel` (its name), `source`
(`"/channels/NNN"`), `quantity`, `estimated`, `t_first_ns` and `t_last_ns` (its first and last
reading: the span the bins cover), `n_samples` (readings it was built from; an overview whose
channel now has another count is stale), `energy_j` (the channel's energy over that span, J),
`bin_ns`, `factor`, `levels` (how many), and, one value per level (int64 arrays, so a reader
learns every level's shape from one group): `level_bin_ns`, `level_first_bin`, `level_n_bins`.

`/overview/NNN/LKK` (`L00`, `L01`, ...) is level K, with bins `bin_ns · factor^K` wide, on a grid
of whole multiples of that width in CLOCK_MONOTONIC ns, the same for every channel. Attributes:
`bin_ns` (this level's width), `first_bin`, `t_start_ns` (= `first_bin · bin_ns`, the start of
its first bin), `n_bins`. Bin `i` covers `[t_start_ns + i · bin_ns, t_start_ns + (i+1) · bin_ns)`.
The last level has one bin.

| dataset | dtype | meaning |
| --- | --- | --- |
| `mean_w` | float32 (n_bins) | average power over the bin, W: the bin's energy over the time the channel covers in it (the whole bin except at the ends of `[t_first_ns, t_last_ns]`) |
| `min_w` | float32 (n_bins) | lowest level-0 `mean_w` in the bin, W (not in `L00`) |
| `max_w` | float32 (n_bins) | highest level-0 `mean_w` in the bin, W (not in `L00`) |

In `L00` the mean is the finest value kept: its min and max are the mean itself. Power between
two readings is the energy between them over their interval (see "How to turn `raw` into SI
units"); energy is linear between readings, so the energy of a bin is exact and
`Σ mean_w · covered time` is the channel's energy at every level (to float32 rounding). Datasets
of 1024 bins or more are chunked (65536 bins) and compressed (shuffle + gzip level 4).
"""
