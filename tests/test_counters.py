"""Counters that do not behave (resets, glitches, stalls, gaps) are counted, flagged and never
zero the energy after them: summary of synthetic traces, every format."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from greentop.attribution import FLAG_GAP, FLAG_GLITCH, FLAG_RESET, FLAG_STALLED, KIND_PHASE, RunSummary, summarise
from greentop.channel import Channel, Quantity, Reader, ReaderKind
from greentop.summary_format import format_summary
from greentop.tracedata import ChannelData, Phase, TraceData

MS = 1_000_000
T0 = 10**12
N = 2001  # 2 s at 1 kHz, both ends

NVML_ENERGY = Channel("nvml:gpu0:energy", "nvml", "gpu-0", Quantity.ENERGY, "mJ", 1e-3,
                      Reader(ReaderKind.NVML_ENERGY, gpu_index=0))
HWMON = Channel("hwmon:amd_energy:Esocket0", "hwmon", "cpu-package-0", Quantity.ENERGY, "uJ", 1e-6,
                Reader(ReaderKind.FILE_DECIMAL, path="/x"))
GAUGE = Channel("nvml:gpu1:power", "nvml", "gpu-1", Quantity.POWER, "mW", 1e-3, Reader(ReaderKind.NVML_POWER, gpu_index=1))


def _trace(channels: list[ChannelData]) -> TraceData:
    phases = [Phase(0, "first", T0, T0 + 1000 * MS - MS // 2, 0, -1, 1, {}, "ok", "a"),
              Phase(1, "second", T0 + 1000 * MS + MS // 2, T0 + 2000 * MS, 0, -1, 1, {}, "ok", "b")]
    return TraceData(meta={}, channels=channels, phases=phases, marks=[], counts=[], run_start_ns=T0,
                     run_end_ns=T0 + 2000 * MS)


def _t() -> np.ndarray:
    return T0 + np.arange(N, dtype=np.int64) * MS


def _counter(w: float, unit_j: float) -> np.ndarray:
    return np.round(np.arange(N) * w * 1e-3 / unit_j).astype(np.int64) + 12345


def _phase(s: RunSummary, name: str):  # type: ignore[no-untyped-def]
    return next(r for r in s.rows if r.kind == KIND_PHASE and r.name == name)


def _flags_everywhere(s: RunSummary, flag: str, phase: str) -> None:
    assert flag in _phase(s, phase).total.flag
    assert flag not in _phase(s, "first" if phase == "second" else "second").total.flag
    assert flag in format_summary(s, "table") and flag in format_summary(s, "md")
    rows = list(csv.DictReader(io.StringIO(format_summary(s, "csv"))))
    assert any(flag in r["flag"] for r in rows if r["phase"] == phase)
    assert any(flag in r["flag"] for r in json.loads(format_summary(s, "json"))["rows"] for r in r["domains"])


def test_nvml_counter_reset_halfway_keeps_the_energy_after_it() -> None:
    raw = _counter(100.0, 1e-3)
    raw[1200:] -= raw[1200] - 5  # GPU reset: the counter restarts near 0
    s = summarise(_trace([ChannelData(NVML_ENERGY, _t(), raw)]), 0.0)
    assert s.row("run").total.energy_j == pytest.approx(200.0, abs=0.2)
    assert _phase(s, "second").total.energy_j == pytest.approx(100.0, abs=0.2)
    assert s.domains[0].resets == 1
    _flags_everywhere(s, FLAG_RESET, "second")


def test_upward_glitch_in_an_hwmon_counter_is_skipped_and_flagged() -> None:
    raw = _counter(100.0, 1e-6)
    raw[500:505] += 1_000_000_000  # 1000 J too high for 5 ms
    s = summarise(_trace([ChannelData(HWMON, _t(), raw)]), 0.0)
    assert s.row("run").total.energy_j == pytest.approx(200.0, rel=1e-4)
    assert s.domains[0].glitches == 1
    _flags_everywhere(s, FLAG_GLITCH, "first")


def test_frozen_counter_is_flagged_as_stalled_with_uncertainty() -> None:
    t = T0 + np.arange(6001, dtype=np.int64) * MS  # 6 s
    raw = np.arange(6001, dtype=np.int64) * 100  # 100 W in mJ, read every ms
    raw[3000:5500] = raw[3000]  # frozen 2.5 s while still read
    raw[5500:] -= raw[5500] - raw[3000]
    tr = _trace([ChannelData(NVML_ENERGY, t, raw)])
    tr.phases[1] = Phase(1, "second", T0 + 2500 * MS, T0 + 6000 * MS, 0, -1, 1, {}, "ok", "b")
    tr.run_end_ns = T0 + 6000 * MS
    s = summarise(tr, 0.0)
    assert len(s.domains[0].stalls_ns) == 1
    second = _phase(s, "second").total
    assert second.energy_uncertainty_j > 100.0  # about 2.5 s at the run's average power
    _flags_everywhere(s, FLAG_STALLED, "second")


def test_sensor_gap_is_recorded_with_start_end_and_widens_the_uncertainty() -> None:
    t = _t()
    keep = (t < T0 + 1200 * MS) | (t > T0 + 1800 * MS)  # reads failed for 0.6 s
    raw = np.full(N, 200_000, dtype=np.int64)  # 200 W gauge
    s = summarise(_trace([ChannelData(GAUGE, t[keep], raw[keep])]), 0.0)
    (a, b), = s.domains[0].gaps_ns
    assert (a - T0) / MS == pytest.approx(1199) and (b - T0) / MS == pytest.approx(1801)
    assert _phase(s, "second").total.energy_uncertainty_j >= 0.6 * 200 * 0.99
    assert _phase(s, "first").total.energy_uncertainty_j < 10
    _flags_everywhere(s, FLAG_GAP, "second")


def test_a_baseline_taken_on_a_busy_machine_is_warned_about() -> None:
    from greentop.channel import CpuPowerModel, Lane

    model = CpuPowerModel(idle_w=10.0, max_w=50.0, n_cpus=4)
    est = Channel("estimate:cpu", "cpu-estimate", "cpu", Quantity.CPU_BUSY, "jiffies", 0.01,
                  Reader(ReaderKind.PROC_STAT_BUSY), estimated=True, lane=Lane.SLOW, model=model)
    t = T0 + np.arange(0, 6001, 100, dtype=np.int64) * MS  # 10 Hz for 6 s
    # Fully busy during the 2 s baseline, 20 % busy afterwards.
    rate = np.where(np.arange(t.size) <= 20, 40, 8)  # jiffies per 100 ms on 4 CPUs
    busy = np.concatenate(([0], np.cumsum(rate[1:])))
    tr = TraceData(meta={}, channels=[ChannelData(est, t, busy)], phases=[], marks=[], counts=[], run_start_ns=T0,
                   run_end_ns=T0 + 6000 * MS, baseline=(T0, T0 + 2000 * MS))
    s = summarise(tr, 0.0)
    assert s.row("run").total.above_baseline_j < 0
    warning = [n for n in s.notes if n.startswith("warning: the idle baseline")]
    assert warning and "busy" in warning[0]
    table = format_summary(s, "table", detail=True)
    assert "does not look idle" in table and "± above" in table
    assert "does not look idle" in " ".join(format_summary(s, "table").split())  # the compact table warns too
    clean = TraceData(meta={}, channels=[ChannelData(est, t, np.arange(t.size, dtype=np.int64) * 8)], phases=[],
                      marks=[], counts=[], run_start_ns=T0, run_end_ns=T0 + 6000 * MS, baseline=(T0, T0 + 2000 * MS))
    assert not [n for n in summarise(clean, 0.0).notes if n.startswith("warning")]


def test_a_sensor_that_starts_failing_mid_run_leaves_a_recorded_gap(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """On the fake host, a RAPL file that answers garbage for 0.6 s mid-run: the sampler goes on
    (read errors counted, no samples), and the ledger records the gap with its start and end and
    flags the run; the counter kept counting, so the run's energy is still whole."""
    import time

    from greentop.ledger import account
    from greentop.sampler import Sampler
    from greentop.sources import rapl_sysfs
    from tests.fakes.host import FakeHost, PowerProfile

    host = FakeHost(tmp_path / "host")
    zone = host.add_rapl_zone("0", "package-0", PowerProfile.constant(50.0))
    monkeypatch.setenv("GREENTOP_SYSFS_ROOT", str(host.root))
    try:
        host.start(writer="none")
        (c,) = rapl_sysfs.discover().channels
        sampler = Sampler([c], rate_hz=1000, slow_rate_hz=10)
        first = time.monotonic_ns()
        host.update(first)
        with sampler:
            while (t := time.monotonic_ns()) < first + 1_800_000_000:
                if first + 600_000_000 <= t < first + 1_200_000_000:
                    zone._sink.write(b"gone\n")  # the driver answers nonsense: every read fails
                else:
                    host.update(t)
                time.sleep(0.002)
        got = sampler.drain()[c.name]
        errors = sampler.health().channels[c.name].errors
    finally:
        host.stop()
    assert errors > 100
    t, raw = got.t_ns, got.raw
    s = account([ChannelData(c, t, raw)], int(t[0]), int(t[-1]))
    (a, b), = s.domains[0].gaps_ns
    assert (a - first) * 1e-9 == pytest.approx(0.6, abs=0.05) and (b - first) * 1e-9 == pytest.approx(1.2, abs=0.05)
    assert FLAG_GAP in s.row("run").total.flag
    assert s.row("run").total.energy_j == pytest.approx(zone.energy_between_j(int(t[0]), int(t[-1])), rel=0.02)
