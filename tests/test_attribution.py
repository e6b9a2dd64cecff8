"""Per-phase attribution against synthetic runs whose energy is known exactly.

The synthetic run (``build_trace``): a RAPL-like package energy counter (µJ, wrapping every
~1 J, updated every 1 ms), a GPU power gauge (mW, a new value every 100 ms), a CPU sub-zone and a
CPU estimate that must not be counted (the package covers them), nested phases, two overlapping
children from two processes, a crashed and an unclosed phase, a 30 ms phase, work counts and an idle
baseline. Power is piecewise constant with steps on the sensors' own update grids, so the exact
energy of any interval is a sum of power x time (``true_energy_j``), independent of the code tested.
"""

from __future__ import annotations

import math
import time
import weakref
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

from greentop import channel_series
from greentop.attribution import (
    FLAG_ESTIMATED,
    FLAG_INCLUDES_ESTIMATE,
    FLAG_OVERLAP,
    FLAG_SHORT,
    KIND_PHASE,
    TOTAL,
    PhaseSummary,
    RunSummary,
    summarise,
)
from greentop.carbon import REGIONS, SOURCE, intensity_for
from greentop.channel import Channel, CpuPowerModel, Lane, Quantity, Reader, ReaderKind
from greentop.energy import primary_channels
from greentop.events import Event
from greentop.summary_format import format_summary
from greentop.trace import RUN_BASELINE_END, RUN_BASELINE_START, TraceError, TraceWriter, iter_channels, load, open_trace
from greentop.tracedata import ChannelData, Count, Phase, TraceData

T0_NS = 10**12  # CLOCK_MONOTONIC of the first sample
MS = 1_000_000
RUN_MS = 10_000
WRAP_UJ = 2**20  # ~1.05 J: the package counter wraps every ~21 ms at 50 W
CARBON = 400.0

Steps = list[tuple[float, float]]  # (from ms, power W), piecewise constant, sorted

PKG_STEPS: Steps = [(0, 20), (1000, 50), (6000, 20), (6500, 40), (8000, 20), (8500, 70), (9000, 20)]
GPU_BASE: Steps = [(0, 100), (1000, 300), (6000, 100), (6500, 200), (8000, 100), (8500, 400), (9000, 100),
                   (9200, 500), (9300, 100)]


def _gpu_steps() -> Steps:
    """GPU power on the gauge's 100 ms update grid; a 1 mW dither makes every update a change, as a
    real sensor's noise does (so the measured update period is 100 ms)."""
    return [(k * 100.0, _power_at(GPU_BASE, k * 100.0) + (0.001 if k % 2 else 0.0)) for k in range(RUN_MS // 100)]


def _power_at(steps: Steps, t_ms: float) -> float:
    p = steps[0][1]
    for t, w in steps:
        if t <= t_ms:
            p = w
    return p


def true_energy_j(steps: Steps, a_ms: float, b_ms: float) -> float:
    total = 0.0
    ends = [t for t, _ in steps[1:]] + [math.inf]
    for (t0, w), t1 in zip(steps, ends):
        lo, hi = max(a_ms, t0), min(b_ms, t1)
        if hi > lo:
            total += w * (hi - lo) * 1e-3
    return total


def _reader() -> Reader:
    return Reader(ReaderKind.FILE_DECIMAL, path="/dev/null")


PKG = Channel("rapl:package-0", "rapl-sysfs", "cpu-package-0", Quantity.ENERGY, "uJ", 1e-6, _reader(), wrap_raw=WRAP_UJ)
CORE = Channel("rapl:package-0:core", "rapl-sysfs", "cpu-core-0", Quantity.ENERGY, "uJ", 1e-6, _reader(),
               wrap_raw=WRAP_UJ, parent="rapl:package-0")
GPU = Channel("nvml:gpu0:power", "nvml", "gpu-0", Quantity.POWER, "mW", 1e-3,
              Reader(ReaderKind.NVML_POWER, gpu_index=0))
MODEL = CpuPowerModel(idle_w=10.0, max_w=50.0, n_cpus=4)
CPU_EST = Channel("estimate:cpu", "cpu-estimate", "cpu", Quantity.CPU_BUSY, "jiffies", 0.01,
                  Reader(ReaderKind.PROC_STAT_BUSY), estimated=True, lane=Lane.SLOW, model=MODEL)


def _counter_raw(steps: Steps, t_ms: np.ndarray, offset_uj: int) -> np.ndarray:
    uj = np.array([round(true_energy_j(steps, 0, t) * 1e6) for t in t_ms], dtype=np.int64)
    return (uj + offset_uj) % WRAP_UJ


def _t_ns(t_ms: np.ndarray) -> np.ndarray:
    return T0_NS + np.round(t_ms * MS).astype(np.int64)


def _phase(i: int, name: str, a_ms: float, b_ms: float, parent: int, pid: int = 100, status: str = "ok",
           **attrs: int) -> Phase:
    return Phase(i, name, T0_NS + round(a_ms * MS), T0_NS + round(b_ms * MS), 0 if parent < 0 else 1, parent, pid,
                 dict(attrs), status, f"id{i}")


# (name, start ms, end ms) of the rows whose truth the tests check, by phase index
PHASES = [
    _phase(0, "training", 1000, 6000, -1),
    _phase(1, "epoch", 1000, 3000, 0, epoch=1),
    _phase(2, "epoch", 3500, 6000, 0, epoch=2),
    _phase(3, "eval", 6500, 8000, -1),
    _phase(4, "worker", 6600, 7500, 3, pid=201),  # two processes: their children overlap
    _phase(5, "worker", 7000, 7900, 3, pid=202),
    _phase(6, "crash", 8500, 9000, -1, status="crashed"),
    _phase(7, "blip", 9210.5, 9240.5, -1),  # 30 ms, inside one 100 ms GPU update
    _phase(8, "tail", 9500, RUN_MS, -1, status="unclosed"),
]
TOP_LEVEL = [0, 3, 6, 7, 8]


def build_trace() -> TraceData:
    t_ms = np.arange(RUN_MS + 1, dtype=np.float64)  # 1 kHz, both ends included
    t_ns = _t_ns(t_ms)
    gpu = _gpu_steps()
    gpu_raw = np.array([round(_power_at(gpu, t) * 1e3) for t in t_ms], dtype=np.int64)
    core_raw = _counter_raw([(0, 5.0)], t_ms, 777)
    # The CPU estimate: slow lane, 10 Hz, 50 % busy on 4 CPUs (20 jiffies per 100 ms).
    t_est = np.arange(0, RUN_MS + 1, 100, dtype=np.float64)
    busy = np.arange(t_est.size, dtype=np.int64) * 20
    counts = [Count(T0_NS + (1100 + 400 * k) * MS, "samples", 250.0, 100, 1) for k in range(4)]
    counts += [Count(T0_NS + (3600 + 500 * k) * MS, "samples", 250.0, 100, 2) for k in range(4)]
    counts += [Count(T0_NS + 6700 * MS, "tokens", 300.0, 201, 4), Count(T0_NS + 7100 * MS, "tokens", 500.0, 202, 5),
               Count(T0_NS + 6550 * MS, "tokens", 100.0, 100, 3), Count(T0_NS + 200 * MS, "requests", 5.0, 100, -1)]
    return TraceData(
        meta={"command": ["python", "train.py"], "host": "testhost"},
        channels=[
            ChannelData(PKG, t_ns, _counter_raw(PKG_STEPS, t_ms, 123_456)),
            ChannelData(CORE, t_ns, core_raw),
            ChannelData(GPU, t_ns, gpu_raw),
            ChannelData(CPU_EST, _t_ns(t_est), busy),
        ],
        phases=list(PHASES),
        marks=[],
        counts=counts,
        run_start_ns=T0_NS,
        run_end_ns=T0_NS + RUN_MS * MS,
        baseline=(T0_NS, T0_NS + 1000 * MS),
        health={"overruns": 0, "read_errors": 0, "events_dropped": 0,
                "lanes": {"fast": {"ticks": 10001, "missed": 0, "late": 2}},
                "channels": {"rapl:package-0": {"overruns": 0, "read_errors": 0, "reads": 10001}}},
    )


def _truth(intervals_ms: list[tuple[float, float]]) -> dict[str, float]:
    gpu = _gpu_steps()
    pkg = sum(true_energy_j(PKG_STEPS, a, b) for a, b in intervals_ms)
    g = sum(true_energy_j(gpu, a, b) for a, b in intervals_ms)
    return {"cpu-package-0": pkg, "gpu-0": g, TOTAL: pkg + g}


def _ms(p: Phase) -> tuple[float, float]:
    return (p.start_ns - T0_NS) / MS, (p.end_ns - T0_NS) / MS


def _phase_row(s: RunSummary, index: int) -> PhaseSummary:
    return next(r for r in s.rows if r.kind == KIND_PHASE and r.index == index)


@pytest.fixture(scope="module")
def summary() -> RunSummary:
    return summarise(build_trace(), CARBON, carbon_source="test intensity")


def _approx(x: float) -> object:
    return pytest.approx(x, rel=1e-9, abs=1e-9)


def test_primary_domains_only_no_double_counting(summary: RunSummary) -> None:
    # The core sub-zone is inside the package and the estimate is superseded by it.
    assert [d.domain for d in summary.domains] == ["cpu-package-0", "gpu-0"]
    assert [d.domain for d in summary.rows[0].domains] == ["cpu-package-0", "gpu-0", TOTAL]
    assert summary.domains[0].wraps > 5  # the synthetic counter really wrapped
    assert summary.domains[1].update_period_s == pytest.approx(0.1)
    assert summary.domains[0].update_period_s == pytest.approx(0.001)


@pytest.mark.parametrize("index", range(len(PHASES)))
def test_phase_energy_equals_analytic_truth(summary: RunSummary, index: int) -> None:
    row = _phase_row(summary, index)
    truth = _truth([_ms(PHASES[index])])
    for d in row.domains:
        assert d.energy_j == _approx(truth[d.domain]), d.domain
        assert d.energy_wh == _approx(truth[d.domain] / 3600)
        assert d.average_w == _approx(truth[d.domain] / row.duration_s)


def test_run_baseline_and_untagged_rows_equal_truth(summary: RunSummary) -> None:
    run, base, untagged = summary.row("run"), summary.row("idle baseline"), summary.row("(untagged)")
    gaps: list[tuple[float, float]] = [(0, 1000), (6000, 6500), (8000, 8500), (9000, 9210.5), (9240.5, 9500)]
    cases: list[tuple[PhaseSummary, list[tuple[float, float]]]] = [(run, [(0, RUN_MS)]), (base, [(0, 1000)]),
                                                                   (untagged, gaps)]
    for row, iv in cases:
        truth = _truth(iv)
        for d in row.domains:
            assert d.energy_j == _approx(truth[d.domain]), (row.name, d.domain)
    assert untagged.duration_s == pytest.approx(sum(b - a for a, b in gaps) / 1000)
    assert summary.rows[0].name == "run" and summary.rows[-1].name == "(untagged)"


def test_top_level_phases_plus_untagged_add_up_to_run(summary: RunSummary) -> None:
    run, untagged = summary.row("run"), summary.row("(untagged)")
    for k, d in enumerate(run.domains):
        parts = sum(_phase_row(summary, i).domains[k].energy_j for i in TOP_LEVEL) + untagged.domains[k].energy_j
        assert parts == _approx(d.energy_j), d.domain
    # The run's exclusive part is exactly the untagged time.
    assert run.total.exclusive_energy_j == _approx(untagged.total.energy_j)


def test_exclusive_is_inclusive_minus_children(summary: RunSummary) -> None:
    training, e1, e2 = (_phase_row(summary, i) for i in (0, 1, 2))
    truth_gap = _truth([(3000, 3500)])
    for k, d in enumerate(training.domains):
        assert d.exclusive_energy_j == _approx(d.energy_j - e1.domains[k].energy_j - e2.domains[k].energy_j)
        assert d.exclusive_energy_j == _approx(truth_gap[d.domain])
    assert training.exclusive_duration_s == pytest.approx(0.5)
    assert FLAG_OVERLAP not in training.flag
    leaf = _phase_row(summary, 1)
    assert leaf.total.exclusive_energy_j == _approx(leaf.total.energy_j)


def test_overlapping_children_from_two_processes_are_flagged_not_double_subtracted(summary: RunSummary) -> None:
    ev, w1, w2 = (_phase_row(summary, i) for i in (3, 4, 5))
    assert (w1.pid, w2.pid) == (201, 202)
    assert FLAG_OVERLAP in ev.flag and FLAG_OVERLAP in ev.total.flag
    truth = _truth([(6500, 6600), (7900, 8000)])  # eval minus the union of its workers
    assert ev.total.exclusive_energy_j == _approx(truth[TOTAL])
    assert ev.exclusive_duration_s == pytest.approx(0.2)
    # The children's inclusive sum is larger than the time they cover: a naive subtraction goes negative.
    assert w1.total.energy_j + w2.total.energy_j > ev.total.energy_j - ev.total.exclusive_energy_j
    assert ev.total.exclusive_energy_j >= 0


def test_crashed_and_unclosed_phases_keep_their_status(summary: RunSummary) -> None:
    assert _phase_row(summary, 6).status == "crashed"
    assert _phase_row(summary, 8).status == "unclosed"
    assert _phase_row(summary, 0).status == "ok"


def test_counts_are_inclusive_and_give_energy_per_unit(summary: RunSummary) -> None:
    training, e1, ev = _phase_row(summary, 0), _phase_row(summary, 1), _phase_row(summary, 3)
    assert training.counts == {"samples": 2000.0}
    assert e1.counts == {"samples": 1000.0}
    assert ev.counts == {"tokens": 900.0}
    assert training.total.per_unit_j["samples"] == _approx(training.total.energy_j / 2000)
    assert e1.domain("gpu-0").per_unit_j["samples"] == _approx(e1.domain("gpu-0").energy_j / 1000)
    assert ev.total.per_unit_j["tokens"] == _approx(ev.total.energy_j / 900)
    assert summary.row("(untagged)").counts == {"requests": 5.0}
    assert summary.row("run").counts == {"samples": 2000.0, "tokens": 900.0, "requests": 5.0}
    assert _phase_row(summary, 6).total.per_unit_j == {}


def test_above_baseline_uses_idle_power_per_domain(summary: RunSummary) -> None:
    base = _truth([(0, 1000)])
    training = _phase_row(summary, 0)
    truth = _truth([(1000, 6000)])
    for d in training.domains:
        assert d.baseline_w == _approx(base[d.domain] / 1.0)
        assert d.above_baseline_j == _approx(truth[d.domain] - base[d.domain] * 5.0)
    assert training.total.above_baseline_j == pytest.approx((50 - 20) * 5 + (300 - 100) * 5, rel=1e-5)
    per = training.total.per_unit_above_baseline_j["samples"]
    assert training.total.above_baseline_j is not None
    assert per == _approx(training.total.above_baseline_j / 2000)


def test_gco2e_is_kwh_times_intensity(summary: RunSummary) -> None:
    for r in summary.rows:
        for d in r.domains:
            assert d.gco2e_g == _approx(d.energy_j / 3.6e6 * CARBON)
    assert summary.carbon_g_per_kwh == CARBON and summary.carbon_source == "test intensity"


def test_peak_is_highest_100ms_average(summary: RunSummary) -> None:
    assert _phase_row(summary, 0).total.peak_w == pytest.approx(350.001, abs=1e-6)
    assert _phase_row(summary, 6).domain("cpu-package-0").peak_w == pytest.approx(70.0)
    assert summary.row("run").total.peak_w == pytest.approx(520.0, abs=1e-2)  # the 100 ms GPU burst
    blip = _phase_row(summary, 7)
    assert blip.total.peak_w == _approx(blip.total.average_w)  # shorter than a window


def test_short_phase_on_slow_sensor_is_flagged_with_honest_uncertainty(summary: RunSummary) -> None:
    blip = _phase_row(summary, 7)
    gpu, pkg = blip.domain("gpu-0"), blip.domain("cpu-package-0")
    assert gpu.energy_j == _approx(_truth([_ms(PHASES[7])])["gpu-0"]) and gpu.energy_j == pytest.approx(15.0)
    assert FLAG_SHORT in gpu.flag and FLAG_SHORT in blip.total.flag
    assert FLAG_SHORT not in pkg.flag  # the package counter updates every 1 ms
    # Each boundary is uncertain by about one 100 ms update's energy: more than the phase itself.
    assert gpu.energy_uncertainty_j > gpu.energy_j
    assert pkg.energy_uncertainty_j < 0.1 * pkg.energy_j


def test_long_phase_uncertainty_is_small_but_not_zero(summary: RunSummary) -> None:
    training = _phase_row(summary, 0)
    for d in training.domains:
        assert 0 < d.energy_uncertainty_j < 0.05 * d.energy_j, d.domain
    assert training.total.energy_uncertainty_j == _approx(sum(d.energy_uncertainty_j for d in training.domains[:-1]))
    assert not training.total.flag


def test_tree_order_and_depth(summary: RunSummary) -> None:
    names = [(r.name, r.depth) for r in summary.rows]
    assert names == [("run", 0), ("idle baseline", 0), ("training", 0), ("epoch", 1), ("epoch", 1), ("eval", 0),
                     ("worker", 1), ("worker", 1), ("crash", 0), ("blip", 0), ("tail", 0), ("(untagged)", 0)]


def test_cpu_estimate_domain_is_labelled_estimated() -> None:
    # No package sensor: the CPU estimate becomes the CPU domain.
    t_ms = np.arange(0, 4001, 100, dtype=np.float64)
    inc = np.where(t_ms[1:] <= 2000, 20, 40)  # 50 % then 100 % busy on 4 CPUs
    busy = np.concatenate(([0], np.cumsum(inc))).astype(np.int64)
    trace = TraceData(meta={}, channels=[ChannelData(CPU_EST, _t_ns(t_ms), busy)],
                      phases=[_phase(0, "p", 500, 3500, -1)], marks=[], counts=[], run_start_ns=T0_NS,
                      run_end_ns=T0_NS + 4000 * MS)
    s = summarise(trace, CARBON)
    assert [d.domain for d in s.domains] == ["cpu (estimated)"] and s.domains[0].estimated
    p = s.row("p")
    cpu = p.domain("cpu (estimated)")
    assert cpu.energy_j == _approx(30.0 * 1.5 + 50.0 * 1.5)  # idle 10 W .. max 50 W
    assert FLAG_ESTIMATED in cpu.flag and cpu.estimated
    assert FLAG_INCLUDES_ESTIMATE in p.total.flag and p.total.estimated
    assert s.baseline is None and p.total.above_baseline_j is None and p.total.baseline_w is None


def test_counter_slower_than_sampling_is_interpolated_between_its_updates() -> None:
    # An NVML-like energy counter (mJ) read at 1 kHz that updates every 100 ms, at a steady 200 W:
    # interpolating between update instants is exact where the stale staircase would be 13 % short.
    t_ms = np.arange(0, 3001, dtype=np.float64)
    mj = (np.floor(t_ms / 100) * 100 * 200).astype(np.int64)  # 200 W = 200 mJ per ms, in 100 ms steps
    ch = Channel("nvml:gpu0:energy", "nvml", "gpu-0", Quantity.ENERGY, "mJ", 1e-3,
                 Reader(ReaderKind.NVML_ENERGY, gpu_index=0), lane=Lane.SLOW)
    phases = [_phase(0, "p", 1050, 1280, -1), _phase(1, "short", 1510, 1540, -1)]
    trace = TraceData(meta={}, channels=[ChannelData(ch, _t_ns(t_ms), mj)], phases=phases, marks=[], counts=[],
                      run_start_ns=T0_NS, run_end_ns=T0_NS + 3000 * MS)
    s = summarise(trace, CARBON)
    assert s.domains[0].update_period_s == pytest.approx(0.1)
    p, short = s.row("p").domain("gpu-0"), s.row("short").domain("gpu-0")
    assert p.energy_j == pytest.approx(200.0 * 0.230) and FLAG_SHORT not in p.flag
    assert short.energy_j == pytest.approx(200.0 * 0.030) and FLAG_SHORT in short.flag
    assert short.energy_uncertainty_j == pytest.approx(2 * 200.0 * 0.1 + 2 * 1e-3)  # one update + 1 mJ per boundary


def test_chunked_conversion_gives_the_same_energies(summary: RunSummary, monkeypatch: pytest.MonkeyPatch) -> None:
    # Long channels are converted in chunks; chunk edges (here every 997 samples, wraps included)
    # must not change a figure.
    monkeypatch.setattr(channel_series, "_FEED_CHUNK", 997)
    chunked = summarise(build_trace(), CARBON, carbon_source="test intensity")
    for a, b in zip(summary.rows, chunked.rows):
        for da, db in zip(a.domains, b.domains):
            assert db.energy_j == _approx(da.energy_j) and db.peak_w == _approx(da.peak_w)


def test_trace_without_channels_or_phases_still_summarises() -> None:
    trace = TraceData(meta={}, channels=[], phases=[], marks=[], counts=[], run_start_ns=T0_NS,
                      run_end_ns=T0_NS + MS)
    s = summarise(trace, CARBON)
    assert [r.name for r in s.rows] == ["run", "(untagged)"]
    assert s.rows[0].total.energy_j == 0.0 and s.notes


def test_carbon_explicit_value_wins_over_region() -> None:
    assert intensity_for("FR", 123.0)[0] == 123.0
    assert "explicit" in intensity_for("FR", 123.0)[1]


def test_carbon_region_lookup_names_its_source() -> None:
    value, source = intensity_for("fr", None)
    assert value == REGIONS["FR"].g_per_kwh
    assert "Our World in Data" in source and "2024" in source and SOURCE in source
    assert intensity_for(None, None) == (REGIONS["WORLD"].g_per_kwh, intensity_for("WORLD", None)[1])
    assert intensity_for("uk", None)[0] == REGIONS["GB"].g_per_kwh
    required = {"FR", "DE", "US", "GB", "CN", "IN", "SE", "NO", "PL", "CA", "JP", "AU", "BR", "ES", "IT", "NL",
                "WORLD", "EU"}
    assert required <= set(REGIONS)


def test_carbon_unknown_region_is_one_line_error_listing_codes() -> None:
    with pytest.raises(ValueError) as exc:
        intensity_for("XX", None)
    msg = str(exc.value)
    assert "\n" not in msg and "XX" in msg and "FR" in msg and "WORLD" in msg
    with pytest.raises(ValueError):
        intensity_for(None, -1.0)


# ------------------------------------------------------------------------------- vectorisation


def build_hour_trace(rate_hz: int = 1000, duration_s: int = 3600) -> tuple[TraceData, float]:
    """8 channels at 1 kHz for an hour (2 packages, 2 DRAM counters, 4 GPU gauges), 60 epochs of
    60 one-second steps. Returns the trace and its exact total energy (J)."""
    n = duration_s * rate_hz + 1
    dt_ns = 1_000_000_000 // rate_hz
    t_ns = T0_NS + np.arange(n, dtype=np.int64) * dt_ns  # shared by every channel, as the reader may do
    rng = np.random.default_rng(0)
    chans: list[ChannelData] = []
    total_j = 0.0
    for k, (dom, lo, hi) in enumerate((("cpu-package-0", 40, 200), ("cpu-package-1", 40, 200), ("dram-0", 5, 30),
                                       ("dram-1", 5, 30))):
        per_s_w = rng.integers(lo, hi, duration_s)  # whole W per second -> whole µJ per sample
        inc_uj = np.repeat(per_s_w * (1_000_000 // rate_hz), rate_hz)
        uj = np.concatenate(([0], np.cumsum(inc_uj)))
        total_j += uj[-1] * 1e-6
        c = Channel(f"rapl:{dom}", "rapl-sysfs", dom, Quantity.ENERGY, "uJ", 1e-6, _reader(), wrap_raw=2**32)
        chans.append(ChannelData(c, t_ns, (uj + 1000 * k) % 2**32))
    per_update = rate_hz // 10  # a new GPU power value every 100 ms
    for g in range(4):
        mw = rng.integers(100_000, 700_000, n // per_update + 1)
        raw = np.repeat(mw, per_update)[:n].astype(np.int64)
        total_j += float(np.sum(raw[:-1])) * 1e-3 / rate_hz
        c = Channel(f"nvml:gpu{g}:power", "nvml", f"gpu-{g}", Quantity.POWER, "mW", 1e-3,
                    Reader(ReaderKind.NVML_POWER, gpu_index=g))
        chans.append(ChannelData(c, t_ns, raw))
    phases: list[Phase] = []
    counts: list[Count] = []
    for e in range(duration_s // 60):
        ei = len(phases)
        phases.append(Phase(ei, "epoch", T0_NS + e * 60 * 10**9, T0_NS + (e + 1) * 60 * 10**9, 0, -1, 1, {"epoch": e}))
        for s in range(60):
            si = len(phases)
            a = T0_NS + (e * 60 + s) * 10**9
            phases.append(Phase(si, "step", a + 1000, a + 10**9 - 1000, 1, ei, 1))
            counts.append(Count(a + 5 * 10**8, "samples", 256.0, 1, si))
    trace = TraceData(meta={}, channels=chans, phases=phases, marks=[], counts=counts, run_start_ns=T0_NS,
                      run_end_ns=int(t_ns[-1]), baseline=(T0_NS, T0_NS + 10**9))
    return trace, total_j


def test_one_hour_1khz_8_channel_trace_summarises_vectorised() -> None:
    trace, total_j = build_hour_trace()
    t = time.perf_counter()
    s = summarise(trace, CARBON)
    elapsed = time.perf_counter() - t
    print(f"\nsummarised 1 h x 1 kHz x 8 channels ({len(trace.phases)} phases, "
          f"{sum(cd.t_ns.size for cd in trace.channels):,} samples) in {elapsed:.3f} s")
    assert s.row("run").total.energy_j == pytest.approx(total_j, rel=1e-9)
    assert len(s.rows) == len(trace.phases) + 3
    assert s.row("epoch").counts == {"samples": 60 * 256.0}


# ------------------------------------------------------------------ knots kept, streamed channels


def _same(a: Any, b: Any, where: str = "") -> None:
    """Bit for bit, NaN equal to NaN."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for k, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{where}[{k}]")
    elif isinstance(a, float) and math.isnan(a):
        assert isinstance(b, float) and math.isnan(b), where
    else:
        assert a == b, (where, a, b)


def _all_knots(monkeypatch: pytest.MonkeyPatch) -> None:
    """Interpolate on every sample, as summaries did before they kept only the knots they touch."""
    monkeypatch.setattr(channel_series, "_needed_knots", lambda t_ns, *_: np.arange(t_ns.size))


def test_last_at_or_before_is_searchsorted_on_the_seconds() -> None:
    rng = np.random.default_rng(3)
    origin = T0_NS - 777
    t_ns = T0_NS + np.cumsum(rng.integers(1, 3_000_000, 5000))
    t_ns[100:104] = t_ns[100]  # equal timestamps too
    t_ns = np.sort(t_ns)
    t_s = channel_series._seconds(t_ns, origin)
    q = np.concatenate((t_s[::7], np.nextafter(t_s[::5], -np.inf), np.nextafter(t_s[::5], np.inf),
                        rng.uniform(t_s[0] - 1, t_s[-1] + 1, 5000), [t_s[0], t_s[-1], -1e9, 1e9]))
    assert np.array_equal(channel_series._last_at_or_before(t_ns, origin, q), np.searchsorted(t_s, q, "right") - 1)


def test_knots_kept_give_the_figures_every_sample_gives(summary: RunSummary, monkeypatch: pytest.MonkeyPatch) -> None:
    kept: list[int] = []
    needed = channel_series._needed_knots

    def counted(*args: Any) -> Any:
        knots = needed(*args)
        kept.append(knots.size)
        return knots

    monkeypatch.setattr(channel_series, "_needed_knots", counted)
    summarise(build_trace(), CARBON)
    assert 0 < max(kept) < RUN_MS / 4  # a small part of the 10001 samples
    _all_knots(monkeypatch)
    _same(summarise(build_trace(), CARBON, carbon_source="test intensity").to_dict(), summary.to_dict())


def test_knots_kept_on_jittered_samples_and_odd_phases(monkeypatch: pytest.MonkeyPatch) -> None:
    # Jittered timestamps with a gap, a package counter that starts and ends 3 samples inside the
    # run, and phases that start on a sample, end a ns after one, last 0 s or a few ns, lie partly
    # or wholly outside the data, or end within a sample of a channel's first or last one.
    rng = np.random.default_rng(7)
    base = build_trace()
    n = base.channels[0].raw.size
    t_ns = T0_NS + np.cumsum(rng.integers(500_000, 1_500_000, n + 1000))
    t_ns = np.concatenate((t_ns[:4000], t_ns[5000:]))
    chans = [cd if cd.channel is CPU_EST else
             ChannelData(PKG, t_ns[3:n - 3], cd.raw[3:n - 3]) if cd.channel is PKG else
             ChannelData(cd.channel, t_ns[:n], cd.raw) for cd in base.channels]
    starts = np.concatenate((rng.choice(t_ns[:n], 40), rng.integers(T0_NS - 10**9, int(t_ns[n - 1]) + 10**9, 40)))
    phases = []
    for k, a in enumerate(starts.tolist()):
        b = a + int(rng.choice([0, 1, 7, 1_000_000, 123_456_789, 2_000_000_000]))
        phases.append(Phase(k, f"p{k}", a, b, 0, k - 1 if k % 3 == 1 else -1, 1))
    t = t_ns.tolist()
    edges = [(t[0], t[1]), (t[n - 2], t[n - 1])]  # on the first and last samples of the gauge
    for lo, hi in ((0, n - 1), (3, n - 4)):  # less than a sample outside the gauge's ends, the package's
        edges += [(t[lo] - 300_000, t[lo] + 1_550_000_000), (t[hi] - 1_550_000_000, t[hi] + 300_000)]
    phases += [Phase(len(phases) + k, "edge", a, b, 0, -1, 1) for k, (a, b) in enumerate(edges)]
    trace = TraceData(meta={}, channels=chans, phases=phases, marks=[], counts=[], run_start_ns=t[0],
                      run_end_ns=t[n - 1], baseline=(t[10], t[900] + 3))
    kept = summarise(trace, CARBON).to_dict()
    _all_knots(monkeypatch)
    _same(kept, summarise(trace, CARBON).to_dict())


def test_chunked_thinned_counter_gives_the_same_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    t_ms = np.arange(0, 3001, dtype=np.float64)
    mj = (np.floor(t_ms / 100) * 100 * 200).astype(np.int64)
    ch = Channel("nvml:gpu0:energy", "nvml", "gpu-0", Quantity.ENERGY, "mJ", 1e-3,
                 Reader(ReaderKind.NVML_ENERGY, gpu_index=0), lane=Lane.SLOW)
    trace = TraceData(meta={}, channels=[ChannelData(ch, _t_ns(t_ms), mj)], phases=[_phase(0, "p", 1050, 1280, -1)],
                      marks=[], counts=[], run_start_ns=T0_NS, run_end_ns=T0_NS + 3000 * MS)
    whole = summarise(trace, CARBON).to_dict()
    for chunk in (100, 97, 1):  # chunk edges on an update, next to one, everywhere
        monkeypatch.setattr(channel_series, "_FEED_CHUNK", chunk)
        _same(summarise(trace, CARBON).to_dict(), whole)


def _write(path: Path, trace: TraceData, finalize: bool = True) -> None:
    """The synthetic run as the recorder writes it (a trace cut short keeps everything in the tail)."""
    meta = {"carbon_g_per_kwh": CARBON, "carbon_source": "test intensity"}
    w = TraceWriter(path, [cd.channel for cd in trace.channels], meta, ["fast", "slow"])
    for cd in trace.channels:
        w.append_samples(cd.channel.name, cd.t_ns, cd.raw)
    assert trace.baseline is not None
    w.append_events([Event("run", trace.baseline[0], 1, RUN_BASELINE_START, "", "", 0.0, {}),
                     Event("run", trace.baseline[1], 1, RUN_BASELINE_END, "", "", 0.0, {})])
    if finalize:
        w.finalize({"exit_code": 0}, trace.phases, trace.marks, trace.counts)
    else:
        w.abort()


def _streamed(path: Path) -> RunSummary:
    """The way ``greentop summary`` reads a trace: no samples up front, then one channel at a time."""
    with open_trace(path) as f:
        trace = load(f, channels=())
        assert trace.channels == []
        names = [c.name for c in primary_channels([cd.channel for cd in iter_channels(f, ends_only=True)])]
        return summarise(trace, CARBON, "test intensity", channels=iter_channels(f, names, read_ahead=True))


@pytest.mark.parametrize("finalize", [True, False])
@pytest.mark.parametrize("estimate_only", [False, True])
def test_streamed_and_selected_summaries_equal_the_full_one(tmp_path: Path, finalize: bool, estimate_only: bool) -> None:
    # Counter wraps, a gauge, a sub-zone and an estimate that do not count, or (no package sensor)
    # an estimate that does; the estimate starts 50 ms before the rest, so the run window comes
    # from a channel the summary does not read. A trace cut short keeps its samples in the tail.
    base = build_trace()
    chans = [ChannelData(cd.channel, cd.t_ns - (50 * MS if cd.channel is CPU_EST else 0), cd.raw)
             for cd in base.channels if not (estimate_only and cd.channel in (PKG, CORE))]
    trace = TraceData(meta={}, channels=chans, phases=base.phases, marks=[], counts=base.counts,
                      run_start_ns=T0_NS - 50 * MS, run_end_ns=base.run_end_ns, baseline=base.baseline)
    path = tmp_path / "run.h5"
    _write(path, trace, finalize)
    full = load(path)
    assert full.run_start_ns == T0_NS - 50 * MS and full.complete == finalize
    expected = summarise(full, CARBON, "test intensity")
    domains = [d.domain for d in expected.domains]
    assert domains == (["gpu-0", "cpu (estimated)"] if estimate_only else ["cpu-package-0", "gpu-0"])
    if not estimate_only:
        assert expected.domains[0].wraps > 5
    _same(_streamed(path).to_dict(), expected.to_dict())
    names = [c.name for c in primary_channels([cd.channel for cd in full.channels])]
    selected = load(path, channels=names)
    assert [cd.channel.name for cd in selected.channels] == names
    assert (selected.run_start_ns, selected.run_end_ns) == (full.run_start_ns, full.run_end_ns)
    _same(summarise(selected, CARBON, "test intensity").to_dict(), expected.to_dict())


@pytest.mark.parametrize("read_ahead", [False, True])
def test_a_streamed_channel_is_let_go_before_the_next_is_taken(tmp_path: Path, read_ahead: bool) -> None:
    path = tmp_path / "run.h5"
    _write(path, build_trace())
    given: list[weakref.ref[np.ndarray]] = []

    def watched(channels: Iterator[ChannelData]) -> Iterator[ChannelData]:
        for cd in channels:
            assert all(r() is None for r in given), "an earlier channel's samples are still held"
            given.extend((weakref.ref(cd.t_ns), weakref.ref(cd.raw)))
            yield cd
            del cd

    with open_trace(path) as f:
        trace = load(f, channels=())
        summarise(trace, CARBON, channels=watched(iter_channels(f, [PKG.name, GPU.name], read_ahead=read_ahead)))
    assert len(given) == 4 and all(r() is None for r in given)


def test_greentop_summary_prints_what_the_full_summary_gives(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from greentop.cli import main

    path = tmp_path / "run.h5"
    _write(path, build_trace())
    expected = summarise(load(path), CARBON, "test intensity")
    for fmt in ("json", "table"):
        assert main(["summary", str(path), "--format", fmt]) == 0
        out = capsys.readouterr().out
        assert out == format_summary(expected, fmt) + ("" if fmt == "json" else "\n")


def test_streamed_channels_must_be_primary(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    _write(path, build_trace())
    with open_trace(path) as f:
        trace = load(f, channels=())
        with pytest.raises(ValueError, match="primary"):
            summarise(trace, CARBON, channels=iter_channels(f, [PKG.name, CORE.name]))
        with pytest.raises(TraceError, match="no channel named nope"):
            list(iter_channels(f, [PKG.name, "nope"]))
