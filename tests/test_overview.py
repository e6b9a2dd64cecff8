"""The power overview: exact means, spikes that survive zooming out, energy conservation, the
window's level choice, and the /overview group of a trace (round trip, absent, stale, read-only)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import h5py
import numpy as np
import pytest

from greentop.channel import Channel, CpuPowerModel, Quantity, Reader, ReaderKind
from greentop.energy import converter_for
from greentop.overview import (
    FACTOR,
    OVERVIEW_VERSION,
    TRACE_FORMAT_DOC,
    Overview,
    OverviewError,
    build_overview,
    build_overviews,
    cache_dir,
    cache_path,
    ensure_overview,
    read_overview,
    write_overview,
)
from greentop.trace import TraceWriter

MS = 1_000_000
S = 1_000_000_000
T0 = 5_000 * S  # CLOCK_MONOTONIC of the first reading: far from 0, on a 10 ms edge

COUNTER = Channel("rapl:package-0", "rapl-sysfs", "cpu-package-0", Quantity.ENERGY, "uJ", 1e-6,
                  Reader(ReaderKind.FILE_DECIMAL, path="/sys/x"))
WRAPPING = Channel("rapl:dram-0", "rapl-sysfs", "dram-0", Quantity.ENERGY, "uJ", 1e-6,
                   Reader(ReaderKind.FILE_DECIMAL, path="/sys/y"), wrap_raw=10_000_000)  # wraps every 10 J
GAUGE = Channel("nvml:gpu0:power", "nvml", "gpu-0", Quantity.POWER, "mW", 1e-3, Reader(ReaderKind.NVML_POWER, gpu_index=0))
MODEL = CpuPowerModel(idle_w=10.0, max_w=50.0, n_cpus=4)
ESTIMATE = Channel("estimate:cpu", "cpu-estimate", "cpu", Quantity.CPU_BUSY, "jiffies", 0.01,
                   Reader(ReaderKind.PROC_STAT_BUSY, path="/proc/stat"), estimated=True, model=MODEL)


def counter_readings(power_w: np.ndarray, period_ns: int = MS, t0: int = T0, wrap: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A µJ counter read every ``period_ns``; ``power_w[i]`` is the power between reading i and i+1."""
    uj = np.concatenate(([0.0], np.cumsum(power_w * period_ns * 1e-3)))  # W * ns * 1e-3 = µJ
    raw = np.round(uj).astype(np.int64) + 1234
    if wrap:
        raw %= wrap
    return t0 + np.arange(raw.size, dtype=np.int64) * period_ns, raw


def total_energy_j(ov: Overview, level: int) -> float:
    return float(np.sum(ov.energy_per_bin_j(level)))


# -- level 0 against the analytic power -------------------------------------------------------

def test_constant_counter_gives_its_power_in_every_bin_at_every_level() -> None:
    t, raw = counter_readings(np.full(60_000, 50.0))  # one minute at 1 kHz
    ov = build_overview(t, raw, COUNTER)
    assert ov.bin_ns == 10 * MS and len(ov.levels[0]) == 6000
    for lv in ov.levels:
        np.testing.assert_allclose(lv.mean_w, 50.0, rtol=1e-9)
        np.testing.assert_allclose(lv.min_w, 50.0, rtol=1e-9)
        np.testing.assert_allclose(lv.max_w, 50.0, rtol=1e-9)
    assert len(ov.levels[-1]) == 1 and ov.levels[1].bin_ns == FACTOR * ov.levels[0].bin_ns
    assert ov.energy_j == pytest.approx(50.0 * 60, rel=1e-9)


def test_step_inside_a_bin_gives_the_energy_weighted_mean_there() -> None:
    p = np.full(20_000, 20.0)
    p[10_005:] = 80.0  # steps at T0 + 10.005 s, half way through a 10 ms bin
    t, raw = counter_readings(p)
    lv = build_overview(t, raw, COUNTER).levels[0]
    np.testing.assert_allclose(lv.mean_w[:1000], 20.0, rtol=1e-9)
    assert lv.mean_w[1000] == pytest.approx(50.0, rel=1e-9)
    np.testing.assert_allclose(lv.mean_w[1001:], 80.0, rtol=1e-9)
    assert lv.t_ns[1000] == T0 + 10 * S


def test_counter_that_wraps_every_tenth_of_a_second_gives_its_power() -> None:
    t, raw = counter_readings(np.full(30_000, 100.0), wrap=WRAPPING.wrap_raw)
    assert np.sum(np.diff(raw) < 0) >= 290
    ov = build_overview(t, raw, WRAPPING)
    for lv in ov.levels:
        np.testing.assert_allclose(lv.mean_w, 100.0, rtol=1e-9)
        np.testing.assert_allclose(lv.max_w, 100.0, rtol=1e-9)
    assert ov.energy_j == pytest.approx(3000.0, rel=1e-9)


def test_gauge_holds_each_reading_until_the_next() -> None:
    # An NVML-like gauge: read every 1 ms, new value every 100 ms.
    values_w = np.array([120.0, 690.0, 300.0, 450.0, 122.0] * 4)
    raw = np.repeat(np.round(values_w * 1e3), 100).astype(np.int64)
    t = T0 + np.arange(raw.size, dtype=np.int64) * MS
    ov = build_overview(t, raw, GAUGE)
    lv0 = ov.levels[0]
    np.testing.assert_allclose(lv0.mean_w[:-1], np.repeat(values_w, 10)[:-1], rtol=1e-12)
    assert ov.levels[-1].max_w[0] == pytest.approx(690.0) and ov.levels[-1].min_w[0] == pytest.approx(120.0)


def test_cpu_estimate_goes_through_the_power_model() -> None:
    # /proc/stat read every 10 ms; 4 CPUs half busy = 2 jiffies per read -> 10 + 0.5 * 40 = 30 W, then fully busy = 50 W.
    busy = np.concatenate((np.full(500, 2), np.full(500, 4)))
    raw = np.concatenate(([1000], 1000 + np.cumsum(busy))).astype(np.int64)
    t = T0 + np.arange(raw.size, dtype=np.int64) * 10 * MS
    ov = build_overview(t, raw, ESTIMATE)
    lv0 = ov.levels[0]
    np.testing.assert_allclose(lv0.mean_w[:500], 30.0, rtol=1e-9)
    np.testing.assert_allclose(lv0.mean_w[500:], 50.0, rtol=1e-9)
    assert ov.channel.estimated


# -- zooming out ------------------------------------------------------------------------------

def spike_readings() -> tuple[np.ndarray, np.ndarray]:
    """Ten minutes at 50 W with one 1 ms spike to 1050 W at 07:13.004 (inside a 10 ms bin)."""
    p = np.full(600_000, 50.0)
    p[433_004] = 1050.0
    return counter_readings(p)


def test_one_ms_spike_in_ten_minutes_survives_to_the_top_level() -> None:
    t, raw = spike_readings()
    ov = build_overview(t, raw, COUNTER)
    spike_bin = 50.0 + 1000.0 * 0.1  # its 1 J extra spread over the 10 ms bin it falls in
    assert ov.levels[0].mean_w.max() == pytest.approx(spike_bin, rel=1e-9)
    for lv in ov.levels:
        assert lv.max_w.max() == pytest.approx(spike_bin, rel=1e-9)
        assert lv.min_w.min() == pytest.approx(50.0, rel=1e-9)
    top = ov.levels[-1]
    assert len(top) == 1 and top.mean_w[0] == pytest.approx(50.0 + 1.0 / 600, rel=1e-9)
    # The whole-run screen shows it too.
    w = ov.window(ov.t_first_ns, ov.t_last_ns, 120)
    assert w.max_w.max() == pytest.approx(spike_bin, rel=1e-9)


def test_one_ms_bins_keep_the_spike_at_its_full_height() -> None:
    t, raw = spike_readings()
    ov = build_overview(t, raw, COUNTER, bin_ns=MS)
    assert ov.levels[-1].max_w[0] == pytest.approx(1050.0, rel=1e-9)


@pytest.mark.parametrize("make", ["constant", "spike", "wraps", "gauge", "estimate", "jitter"])
def test_energy_is_conserved_at_every_level(make: str) -> None:
    rng = np.random.default_rng(1)
    channel = COUNTER
    if make == "constant":
        t, raw = counter_readings(np.full(10_000, 42.0), t0=T0 + 3 * MS + 123)  # starts and ends mid-bin
    elif make == "spike":
        t, raw = spike_readings()
    elif make == "wraps":
        t, raw = counter_readings(rng.uniform(20, 180, 20_000), wrap=WRAPPING.wrap_raw)
        channel = WRAPPING
    elif make == "gauge":
        t = T0 + np.cumsum(rng.integers(500_000, 1_500_000, 20_000)).astype(np.int64)
        raw = np.repeat(rng.integers(100_000, 700_000, 200), 100).astype(np.int64)
        channel = GAUGE
    elif make == "estimate":
        t = T0 + np.arange(3001, dtype=np.int64) * 10 * MS + 7 * MS
        raw = np.concatenate(([0], np.cumsum(rng.integers(0, 5, 3000)))).astype(np.int64)
        channel = ESTIMATE
    else:  # irregular reads of a wandering power
        t = T0 + np.cumsum(rng.integers(200_000, 3_000_000, 50_000)).astype(np.int64)
        raw = np.cumsum(rng.integers(0, 200_000, t.size)).astype(np.int64)
    expected = float(converter_for(channel).feed(t, raw).energy_j[-1])
    ov = build_overview(t, raw, channel)
    assert ov.energy_j == pytest.approx(expected, rel=1e-12)
    assert ov.t_first_ns == t[0] and ov.t_last_ns == t[-1]
    for k, lv in enumerate(ov.levels):
        assert total_energy_j(ov, k) == pytest.approx(expected, rel=1e-9), f"level {k}"
        assert np.all(lv.min_w <= lv.mean_w * (1 + 1e-9) + 1e-9) and np.all(lv.mean_w <= lv.max_w * (1 + 1e-9) + 1e-9)
        covered = ov.covered_ns(k)
        assert covered.sum() == t[-1] - t[0] and np.all(covered > 0) and np.all(covered <= lv.bin_ns)


def test_bins_sit_on_a_grid_shared_by_all_channels() -> None:
    a = build_overview(*counter_readings(np.full(30_000, 10.0), t0=T0 + 1234567), COUNTER)
    b = build_overview(*counter_readings(np.full(25_000, 10.0), t0=T0 + 4 * S + 7654321), COUNTER)
    for la, lb in zip(a.levels, b.levels):
        assert la.bin_ns == lb.bin_ns
        assert np.all(la.t_ns % la.bin_ns == 0) and np.all(lb.t_ns % lb.bin_ns == 0)
        assert la.t_ns[0] <= a.t_first_ns < la.t_ns[0] + la.bin_ns


def test_too_few_readings_give_an_empty_overview() -> None:
    for n in (0, 1):
        ov = build_overview(np.arange(n, dtype=np.int64), np.arange(n, dtype=np.int64), COUNTER)
        assert ov.levels == [] and ov.energy_j == 0.0
        w = ov.window(0, S, 100)
        assert w.t_ns.size == 0 and w.mean_w.size == 0


def test_level_arrays_are_read_only() -> None:
    ov = build_overview(*counter_readings(np.full(1000, 10.0)), COUNTER)
    with pytest.raises(ValueError):
        ov.levels[1].max_w[0] = 1e6
    with pytest.raises(ValueError):
        ov.window(ov.t_first_ns, ov.t_last_ns, 10).mean_w[0] = 0.0


# -- window() ---------------------------------------------------------------------------------

def test_whole_run_at_120_columns_picks_the_coarsest_level_with_120_bins() -> None:
    t, raw = spike_readings()  # 600 s: bins of 10 ms * 4^k; 600 s / 120 = 5 s per column -> 2.56 s bins (level 4)
    ov = build_overview(t, raw, COUNTER)
    assert ov.level_for(ov.t_first_ns, ov.t_last_ns, 120) == 4
    w = ov.window(ov.t_first_ns, ov.t_last_ns, 120)
    assert ov.levels[4].bin_ns == 2_560 * MS and 120 <= w.t_ns.size <= FACTOR * 120 + 2
    assert ov.levels[5].bin_ns * 120 > ov.t_last_ns - ov.t_first_ns  # the next coarser one would have too few
    np.testing.assert_array_equal(np.diff(w.t_ns), ov.levels[4].bin_ns)


@pytest.mark.parametrize("columns", [1, 7, 80, 120, 400, 2000])
@pytest.mark.parametrize("span_s", [0.003, 0.5, 1.2, 9.0, 77.7, 598.0])
def test_window_bounds_and_size(columns: int, span_s: float) -> None:
    t, raw = spike_readings()
    ov = build_overview(t, raw, COUNTER)
    t0 = int(T0 + 1.2345 * S)
    t1 = t0 + int(span_s * S)  # inside the data (T0 to T0 + 600 s)
    k = ov.level_for(t0, t1, columns)
    lv = ov.levels[k]
    w = ov.window(t0, t1, columns)
    assert w.t_ns.size == w.min_w.size == w.max_w.size == w.mean_w.size
    # The bins cover the window, no more than one bin sticking out on either side.
    assert w.t_ns[0] <= t0 < w.t_ns[0] + lv.bin_ns
    assert w.t_ns[-1] < t1 <= w.t_ns[-1] + lv.bin_ns
    if k > 0:
        assert w.t_ns.size >= columns  # enough bins for one per column
    if k + 1 < len(ov.levels):
        assert ov.levels[k + 1].bin_ns * columns > t1 - t0  # and the next level would not have had enough
    assert w.t_ns.size <= FACTOR * columns + 2 or k == 0


def test_window_is_clipped_to_the_data_and_empty_outside_it() -> None:
    t, raw = counter_readings(np.full(10_000, 30.0))  # 10 s
    ov = build_overview(t, raw, COUNTER)
    w = ov.window(T0 - 100 * S, T0 + 100 * S, 50)
    assert w.t_ns[0] <= T0 and w.t_ns[-1] <= ov.t_last_ns
    np.testing.assert_allclose(w.mean_w, 30.0, rtol=1e-9)
    assert ov.window(T0 + 20 * S, T0 + 30 * S, 50).t_ns.size == 0
    assert ov.window(T0 - 30 * S, T0 - 20 * S, 50).t_ns.size == 0
    with pytest.raises(ValueError):
        ov.window(T0 + S, T0 + S, 50)
    with pytest.raises(ValueError):
        ov.window(T0, T0 + S, 0)


# -- the /overview group of a trace -----------------------------------------------------------

TRACE_CHANNELS = [COUNTER, GAUGE, ESTIMATE]


def write_trace(path: Path, seconds: float = 40.0, finalize: bool = True) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A small trace recorded the way the recorder does it: 1 kHz counter and gauge, 100 Hz estimate."""
    rng = np.random.default_rng(7)
    n = int(seconds * 1000)
    t = T0 + np.arange(n, dtype=np.int64) * MS + rng.integers(0, 50_000, n)
    _, counter_raw = counter_readings(rng.uniform(20, 120, n - 1))
    gauge_raw = np.repeat(rng.integers(100_000, 700_000, n // 100 + 1), 100)[:n].astype(np.int64)
    t_est = t[::10]
    est_raw = np.cumsum(rng.integers(0, 5, t_est.size)).astype(np.int64)
    data = {COUNTER.name: (t, counter_raw), GAUGE.name: (t, gauge_raw), ESTIMATE.name: (t_est, est_raw)}
    w = TraceWriter(path, TRACE_CHANNELS, {"host": "box", "rate_hz": 1000.0}, ["fast"])
    for i in range(0, n, 500):  # drained every 0.5 s
        for name, (tt, rr) in data.items():
            sel = (tt >= t[i]) & (tt < t[min(i + 500, n - 1)]) if i + 500 < n else tt >= t[i]
            w.append_samples(name, tt[sel], rr[sel])
        w.flush()
    if finalize:
        w.finalize({"exit_code": 0}, [], [], [])
    else:
        w.abort()
    return data


def assert_same(a: dict[str, Overview], b: dict[str, Overview]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        x, y = a[name], b[name]
        assert (x.channel, x.t_first_ns, x.t_last_ns, x.n_samples, x.factor) == (y.channel, y.t_first_ns, y.t_last_ns, y.n_samples, y.factor)
        assert x.energy_j == pytest.approx(y.energy_j, rel=1e-12)
        assert len(x.levels) == len(y.levels)
        for lx, ly in zip(x.levels, y.levels):
            assert (lx.bin_ns, lx.first_bin, len(lx)) == (ly.bin_ns, ly.first_bin, len(ly))
            for field in ("min_w", "max_w", "mean_w"):
                np.testing.assert_allclose(getattr(lx, field), getattr(ly, field), rtol=1e-6)  # float32 on disk


def test_write_and_read_round_trip_on_a_recorded_trace(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    data = write_trace(path)
    built = {name: build_overview(t, raw, c) for c, (name, (t, raw)) in zip(TRACE_CHANNELS, data.items())}
    write_overview(path, built)
    back = read_overview(path)
    assert back is not None
    assert_same(built, back)
    for name, ov in back.items():
        assert total_energy_j(ov, 0) == pytest.approx(built[name].energy_j, rel=1e-6)
    # The file is readable without greentop, as TRACE_FORMAT_DOC says.
    with h5py.File(path, "r") as f:
        top = f["overview"]
        assert top.attrs["overview_version"] == OVERVIEW_VERSION and top.attrs["bin_ns"] == 10 * MS and top.attrs["factor"] == 4
        g = top["001"]
        assert g.attrs["channel"] == GAUGE.name and g.attrs["source"] == "/channels/001"
        assert f["channels/001"].attrs["name"] == GAUGE.name
        l1 = g["L01"]
        assert l1.attrs["bin_ns"] == 40 * MS and l1.attrs["t_start_ns"] == l1.attrs["first_bin"] * 40 * MS
        assert set(l1) == {"min_w", "max_w", "mean_w"} and set(g["L00"]) == {"mean_w"}
        assert l1["mean_w"].dtype == np.float32 and l1["mean_w"].shape == (l1.attrs["n_bins"],)
        assert list(g.attrs["level_n_bins"]) == [len(lv) for lv in built[GAUGE.name].levels]
    for heading in ("## `/overview`", "overview_version", "mean_w", "min_w", "max_w", "t_start_ns", "n_samples"):
        assert heading in TRACE_FORMAT_DOC


def test_reading_the_overview_never_reads_samples_and_loads_levels_on_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "run.h5"
    write_trace(path)
    write_overview(path, build_overviews(path))  # as the recorder stores it
    read: list[str] = []
    original = h5py.Dataset.__getitem__

    def spy(self: h5py.Dataset, key: object) -> object:
        read.append(self.name)
        return original(self, key)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    ovs = read_overview(path)
    assert ovs is not None and read == []  # attributes and shapes only
    ov = ovs[COUNTER.name]
    assert not any(lv.loaded for lv in ov.levels)
    k = ov.level_for(ov.t_first_ns, ov.t_last_ns, 120)
    w = ov.window(ov.t_first_ns, ov.t_last_ns, 120)
    assert w.t_ns.size >= 120
    assert [lv.loaded for lv in ov.levels] == [i == k for i in range(len(ov.levels))]
    assert read and all(name.startswith("/overview/") for name in read)


def test_read_overview_is_none_for_a_trace_without_one(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    write_trace(path, seconds=5)
    assert read_overview(path) is None


def test_ensure_overview_builds_once_into_the_cache_and_never_writes_the_trace(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    data = write_trace(path)
    before = path.read_bytes()
    first = ensure_overview(path)
    assert all(lv.loaded for ov in first.values() for lv in ov.levels)  # built in memory
    assert path.read_bytes() == before and read_overview(path) is None  # the trace is evidence
    assert cache_path(path).is_file() and cache_path(path).parent == cache_dir()
    again = ensure_overview(path)
    assert not any(lv.loaded for ov in again.values() for lv in ov.levels)  # read back from the cache, lazily
    assert_same(first, again)
    t, raw = data[COUNTER.name]
    assert again[COUNTER.name].energy_j == pytest.approx(float(converter_for(COUNTER).feed(t, raw).energy_j[-1]), rel=1e-12)
    assert path.read_bytes() == before


def test_a_changed_trace_never_meets_its_old_cached_overview(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    write_trace(path, seconds=5)
    ensure_overview(path)
    old_cache = cache_path(path)
    other = tmp_path / "other.h5"
    write_trace(other, seconds=2)
    os.replace(other, path)  # another recording under the same name
    assert cache_path(path) != old_cache
    ovs = ensure_overview(path)
    assert all(lv.loaded for ov in ovs.values() for lv in ov.levels)  # rebuilt, not the 5 s one
    assert ovs[COUNTER.name].t_last_ns - ovs[COUNTER.name].t_first_ns < 3_000 * MS


def test_an_unwritable_cache_keeps_the_overview_in_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "run.h5"
    write_trace(path, seconds=2)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))  # the cache cannot be created under a file
    before = path.read_bytes()
    ovs = ensure_overview(path)
    assert set(ovs) == {c.name for c in TRACE_CHANNELS} and path.read_bytes() == before


def test_an_overview_of_another_version_or_another_recording_is_not_current(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    write_trace(path, seconds=5)
    write_overview(path, build_overviews(path))
    with h5py.File(path, "r+") as f:
        f["overview"].attrs["overview_version"] = OVERVIEW_VERSION + 1
    assert read_overview(path) is None
    assert ensure_overview(path)  # rebuilt (into the cache: the trace is left as it is)
    assert read_overview(path) is None
    write_overview(path, build_overviews(path))
    assert read_overview(path) is not None
    with h5py.File(path, "r+") as f:
        f["overview/000"].attrs["n_samples"] = 12
    assert read_overview(path) is None
    with h5py.File(path, "r+") as f:  # a write cut short: no version attribute yet
        del f["overview"].attrs["overview_version"]
    assert read_overview(path) is None
    assert read_overview(path) is None and ensure_overview(path) and read_overview(path) is None


def test_a_read_only_trace_is_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    write_trace(path, seconds=5)
    before = path.read_bytes()
    os.chmod(path, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    try:
        ovs = ensure_overview(path)  # even as root: a trace made read-only stays as it is
        assert set(ovs) == {c.name for c in TRACE_CHANNELS} and ovs[GAUGE.name].levels
        assert path.read_bytes() == before
        assert read_overview(path) is None
    finally:
        os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)


def test_an_unfinished_trace_gets_an_overview_in_memory_only(tmp_path: Path) -> None:
    path = tmp_path / "died.h5"
    write_trace(path, seconds=5, finalize=False)  # the recorder died: SWMR flag still set
    before = path.read_bytes()
    ovs = ensure_overview(path)
    assert ovs[COUNTER.name].levels and ovs[COUNTER.name].t_last_ns > ovs[COUNTER.name].t_first_ns
    assert path.read_bytes() == before
    with pytest.raises((OverviewError, OSError)):
        write_overview(path, ovs)


def test_write_overview_refuses_a_missing_file_unknown_channels_and_missing_ones(tmp_path: Path) -> None:
    with pytest.raises(OverviewError):
        write_overview(tmp_path / "nope.h5", [])
    assert not (tmp_path / "nope.h5").exists()
    path = tmp_path / "run.h5"
    write_trace(path, seconds=2)
    other = Channel("nvml:gpu9:power", "nvml", "gpu-9", Quantity.POWER, "mW", 1e-3, Reader(ReaderKind.NVML_POWER, gpu_index=9))
    with pytest.raises(OverviewError):
        write_overview(path, [build_overview(np.arange(10, dtype=np.int64) * MS, np.ones(10, np.int64), other)])
    some = {name: ov for name, ov in build_overviews(path).items() if name != GAUGE.name}
    with pytest.raises(OverviewError, match="every channel"):
        write_overview(path, some)
    assert read_overview(path) is None


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("fixture", ["tests/data/h200_resnet50.h5", "docs/results/cnn-h200/points/resnet50-bs512-bf16-3b05646d.h5"])
def test_replay_and_summary_never_change_a_byte_of_the_trace(tmp_path: Path, fixture: str) -> None:
    import shutil
    import subprocess
    import sys

    from greentop.tui.replay import ReplayModel

    repo = Path(__file__).resolve().parent.parent
    path = tmp_path / "run.h5"
    shutil.copy(repo / fixture, path)
    before, stat_before = _sha256(path), path.stat()
    for _ in range(2):  # the first open builds the overview, the second finds it (in the cache)
        ReplayModel(path).summarise()
    for fmt in ("table", "json"):
        out = subprocess.run([sys.executable, "-m", "greentop", "summary", str(path), "--format", fmt],
                             capture_output=True, text=True, cwd=repo, timeout=120)
        assert out.returncode == 0, out.stderr
    assert _sha256(path) == before
    assert path.stat().st_mtime_ns == stat_before.st_mtime_ns and path.stat().st_size == stat_before.st_size
