"""Counters, gauges and the CPU model turn into the energy the readings imply."""

from __future__ import annotations

import numpy as np
import pytest

from greentop.channel import Channel, CpuPowerModel, Quantity, Reader, ReaderKind
from greentop.energy import CounterUnwrapper, CpuEstimator, PowerIntegrator, power_series_w, primary_channels

MS = 1_000_000


def _t(n: int, step_ns: int = MS, start: int = 10**12) -> np.ndarray:
    return start + np.arange(n, dtype=np.int64) * step_ns


def test_counter_energy_is_scaled_delta_since_first_sample() -> None:
    u = CounterUnwrapper(scale=1e-6, wrap_raw=0)
    chunk = u.feed(_t(4), np.array([1000, 3000, 6000, 10000], dtype=np.int64))
    assert chunk.energy_j.tolist() == pytest.approx([0.0, 0.002, 0.005, 0.009])


def test_counter_unwraps_many_wraps_across_chunks() -> None:
    wrap = 1000
    true_uj = np.arange(0, 10_000, 300, dtype=np.int64)  # 300 uJ per ms = 300 W... scaled below
    raw = true_uj % wrap
    u = CounterUnwrapper(scale=1e-6, wrap_raw=wrap)
    t = _t(raw.size)
    parts = [u.feed(t[a:b], raw[a:b]).energy_j for a, b in ((0, 5), (5, 6), (6, raw.size))]
    energy = np.concatenate(parts)
    assert energy[-1] == pytest.approx((true_uj[-1] - true_uj[0]) * 1e-6)
    assert u.wraps == int(true_uj[-1] // wrap)
    assert u.backwards == 0


def test_backwards_step_that_no_wrap_explains_is_a_reset_counted_from_the_new_value() -> None:
    # 32-bit-like range: a wrap would mean 4e9 units in 1 ms, far above any plausible power.
    u = CounterUnwrapper(scale=1e-6, wrap_raw=2**32)
    raw = np.array([5000, 6000, 500, 1500, 2500], dtype=np.int64)
    e = u.feed(_t(5), raw).energy_j
    assert u.resets == 1 and u.wraps == 0 and u.reset_t_ns == [int(_t(5)[2])]
    assert e.tolist() == pytest.approx([0, 0.001, 0.001, 0.002, 0.003])  # only the reset's interval is lost


def test_reset_across_chunks_restarts_from_the_new_value() -> None:
    u = CounterUnwrapper(scale=1.0, wrap_raw=0)
    u.feed(_t(3), np.array([10, 20, 5], dtype=np.int64))
    e = u.feed(_t(2, start=10**12 + 3 * MS), np.array([15, 25], dtype=np.int64)).energy_j
    assert e.tolist() == pytest.approx([20.0, 30.0])
    assert u.resets == 1


def _steady(n: int, w: float, dt_s: float = 1e-3) -> np.ndarray:
    """A uJ counter at ``w`` watts sampled every ``dt_s``."""
    return np.round(np.arange(n) * w * dt_s * 1e6).astype(np.int64) + 1_000_000


@pytest.mark.parametrize("wrap", [2**32, 0])  # a RAPL-like counter, an hwmon counter (never wraps)
def test_nvml_like_reset_halfway_loses_one_interval_not_the_rest(wrap: int) -> None:
    # 100 W for 2 s at 1 kHz; the counter restarts near 0 halfway (driver reload, GPU reset).
    raw = _steady(2001, 100.0)
    raw[1000:] -= raw[1000] - 777
    u = CounterUnwrapper(scale=1e-6, wrap_raw=wrap, glitch_power_w=3000.0)
    e = np.concatenate([u.feed(_t(2001)[a:b], raw[a:b]).energy_j for a, b in ((0, 700), (700, 1500), (1500, 2001))])
    assert e[-1] == pytest.approx(200.0 - 0.1, rel=1e-6)
    assert e[2000] - e[1001] == pytest.approx(99.9, rel=1e-6)
    assert u.resets == 1 and u.glitches == 0


@pytest.mark.parametrize("wrap", [2**32, 0])
def test_upward_glitch_is_skipped_counted_and_the_rest_kept(wrap: int) -> None:
    # One reading 1000 J too high for 5 ms in a 100 W counter: neither the 1000 J nor a later zero.
    raw = _steady(2001, 100.0)
    raw[1000:1005] += 1_000_000_000
    u = CounterUnwrapper(scale=1e-6, wrap_raw=wrap, glitch_power_w=3000.0)
    e = u.feed(_t(2001), raw).energy_j
    assert e[-1] == pytest.approx(200.0, rel=1e-6)
    assert u.glitches == 1 and u.resets == 0


def test_a_one_reading_dip_is_a_glitch_not_a_reset() -> None:
    raw = _steady(101, 100.0)
    raw[50] = 3
    u = CounterUnwrapper(scale=1e-6, wrap_raw=0, glitch_power_w=3000.0)
    e = u.feed(_t(101), raw).energy_j
    assert e[-1] == pytest.approx(10.0, rel=1e-6)
    assert u.glitches == 1 and u.resets == 0


def test_a_counter_that_jumps_up_and_stays_loses_only_the_jump() -> None:
    raw = _steady(101, 100.0)
    raw[50:] += 10**12
    u = CounterUnwrapper(scale=1e-6, wrap_raw=0, glitch_power_w=3000.0)
    e = np.concatenate([u.feed(_t(101)[a:b], raw[a:b]).energy_j for a, b in ((0, 51), (51, 101))])
    assert e[-1] == pytest.approx(10.0 - 0.1, rel=1e-6)
    assert u.glitches == 1 and u.resets == 0


def test_a_slow_counter_sampled_fast_is_not_a_glitch() -> None:
    # An NVML-like mJ counter at 700 W that moves every 100 ms, read at 1 kHz: 70 J steps in 1 ms.
    t = _t(3001)
    raw = (np.floor(np.arange(3001) / 100) * 70_000).astype(np.int64)
    u = CounterUnwrapper(scale=1e-3, wrap_raw=0, glitch_power_w=3000.0)
    e = u.feed(t, raw).energy_j
    assert u.glitches == 0 and e[-1] == pytest.approx(2100.0)


def test_plain_chunks_take_the_short_path_and_give_what_the_full_judging_gives(monkeypatch: pytest.MonkeyPatch) -> None:
    """A chunk whose steps are all forward and under the shortest window's glitch limit skips the
    per-step plausibility windows (the live view feeds every channel 20 times a second): energy and
    state match an unwrapper that judges every step, over chunks with wraps, resets, glitches,
    slow counters, repeated and backwards times."""
    rng = np.random.default_rng(21)
    short = [0]
    real = CounterUnwrapper._plainly_energy

    def counted(self: CounterUnwrapper, *args: object) -> bool:
        plain = real(self, *args)  # type: ignore[arg-type]
        short[0] += plain
        return plain

    monkeypatch.setattr(CounterUnwrapper, "_plainly_energy", counted)
    chunks = 0
    for trial in range(300):
        kw = {"scale": float(rng.choice([1e-6, 1e-3, 15.3e-6])), "wrap_raw": int(rng.choice([0, 2**32])),
              "glitch_power_w": float(rng.choice([20_000.0, 500.0, 5.0]))}
        fast, judged = CounterUnwrapper(**kw), CounterUnwrapper(**kw)
        judged._plainly_energy = lambda *a: False  # type: ignore[method-assign]  # every step judged
        t, r = 10**12, int(rng.integers(0, 2**31))
        for _ in range(8):
            n = int(rng.integers(1, 60))
            dt = rng.choice([MS, 0, 100_000, 50 * MS], size=n, p=[0.8, 0.05, 0.1, 0.05]).astype(np.int64)
            if rng.random() < 0.05:
                dt[int(rng.integers(0, n))] = -2 * MS  # time going back
            tt = (t + np.cumsum(dt)).astype(np.int64)
            rr = r + np.cumsum(rng.choice([0, 1, 1000, 40_000, 65_000, 10**6], size=n, p=[0.3, 0.2, 0.2, 0.05, 0.2, 0.05]))
            if rng.random() < 0.1:
                rr[int(rng.integers(0, n)):] -= int(rng.integers(1, 10**6))  # a reset
            if rng.random() < 0.1:
                rr[int(rng.integers(0, n))] += 10**12  # a spike
            if kw["wrap_raw"] and rng.random() < 0.2:
                rr = rr % kw["wrap_raw"]
            rr = rr.astype(np.int64)
            a, b = fast.feed(tt, rr).energy_j, judged.feed(tt, rr).energy_j
            assert np.array_equal(a, b), trial
            for name in ("wraps", "resets", "glitches", "reset_t_ns", "glitch_t_ns", "_last_raw", "_last_t_ns",
                         "_anchor_t_ns", "_energy_raw"):
                assert getattr(fast, name) == getattr(judged, name), (trial, name)
            chunks += 1
            t, r = int(tt[-1]), int(rr[-1])
    assert 0.2 * chunks < short[0] < 0.9 * chunks  # both paths were taken, often


def test_power_gauge_integrates_sample_and_hold() -> None:
    p = PowerIntegrator(scale=1e-3)  # mW
    t = _t(4, step_ns=100 * MS)
    e = p.feed(t, np.array([100_000, 200_000, 200_000, 50_000], dtype=np.int64)).energy_j
    # 100 W for 0.1 s, then 200 W for 0.2 s; the last reading has no interval yet.
    assert e.tolist() == pytest.approx([0.0, 10.0, 30.0, 50.0])
    e2 = p.feed(_t(1, start=t[-1] + 100 * MS), np.array([0], dtype=np.int64)).energy_j
    assert e2.tolist() == pytest.approx([55.0])


def test_cpu_estimate_follows_linear_model() -> None:
    model = CpuPowerModel(idle_w=10.0, max_w=50.0, n_cpus=4)
    est = CpuEstimator(scale=0.01, model=model)  # jiffies at USER_HZ=100
    t = _t(3, step_ns=1000 * MS)
    # 2 busy CPU-seconds per second on 4 CPUs = 50 % utilisation -> 30 W; then 100 % -> 50 W.
    busy = np.array([0, 200, 600], dtype=np.int64)
    e = est.feed(t, busy).energy_j
    assert e.tolist() == pytest.approx([0.0, 30.0, 80.0])


def test_power_series_is_energy_slope() -> None:
    u = CounterUnwrapper(scale=1e-6, wrap_raw=0)
    chunk = u.feed(_t(3), np.array([0, 5000, 15000], dtype=np.int64))
    p = power_series_w(chunk)
    assert np.isnan(p[0]) and p[1:].tolist() == pytest.approx([5.0, 10.0])


def _ch(name: str, domain: str, quantity: Quantity = Quantity.ENERGY, parent: str = "") -> Channel:
    return Channel(name, "test", domain, quantity, "uJ", 1e-6, Reader(ReaderKind.FILE_DECIMAL, path="/x"), parent=parent)


def test_primary_channels_never_double_count() -> None:
    chans = [
        _ch("rapl:package-0", "cpu-package-0"),
        _ch("rapl:package-0:core", "cpu-core-0", parent="rapl:package-0"),
        _ch("rapl:psys", "psys"),
        _ch("nvml:gpu0:power", "gpu-0", Quantity.POWER),
        _ch("nvml:gpu0:energy", "gpu-0"),
        _ch("estimate:cpu", "cpu", Quantity.CPU_BUSY),
    ]
    assert sorted(c.name for c in primary_channels(chans)) == ["nvml:gpu0:energy", "rapl:package-0"]
    only_psys = [c for c in chans if c.domain in ("psys", "gpu-0")]
    assert "rapl:psys" in {c.name for c in primary_channels(only_psys)}


def test_cpu_estimate_gives_the_same_watts_at_any_sampling_rate(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The fake host's /proc/stat (whole jiffies, 2 CPUs at 30 %) read at 10 Hz, 1 kHz and 5 kHz:
    the estimate is 10 + 0.3 x 40 = 22 W at every rate (it was 6.3 W at 10 Hz and 2.2 W at 5 kHz
    on a real machine while each interval's utilisation was clipped)."""
    from tests.fakes.host import FakeHost, PowerProfile

    host = FakeHost(tmp_path / "host")
    stat = host.set_proc_stat(PowerProfile.constant(0.3), n_cpus=2)
    host.start(writer="none")
    try:
        model = CpuPowerModel(idle_w=10.0, max_w=50.0, n_cpus=2)
        t_start = int(host.epoch_ns or 0) + 10**9
        watts = []
        for rate in (10, 1000, 5000):
            t = t_start + np.arange(int(4 * rate) + 1, dtype=np.int64) * (10**9 // rate)
            busy = np.array([stat.jiffies_at(int(x))[0] for x in t], dtype=np.int64)
            est = CpuEstimator(scale=0.01, model=model)
            e = np.concatenate([est.feed(t[a:a + 997], busy[a:a + 997]).energy_j for a in range(0, t.size, 997)])
            watts.append(e[-1] / ((t[-1] - t[0]) * 1e-9))
    finally:
        host.stop()
    assert watts == pytest.approx([22.0] * 3, abs=0.05)
