"""What a machine total contains: DRAM counted, psys beside it, one reading per physical domain."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from greentop.attribution import TOTAL, summarise
from greentop.channel import Channel, Quantity, Reader, ReaderKind
from greentop.domains import plan_domains
from greentop.energy import primary_channels
from greentop.summary_format import format_summary
from greentop.tracedata import ChannelData, TraceData

MS = 1_000_000
T0 = 10**12


def _ch(name: str, domain: str, source: str = "rapl-sysfs", quantity: Quantity = Quantity.ENERGY,
        parent: str = "") -> Channel:
    return Channel(name, source, domain, quantity, "uJ", 1e-6, Reader(ReaderKind.FILE_DECIMAL, path="/x"),
                   parent=parent)


PKG0 = _ch("rapl:package-0", "cpu-package-0")
# Recorded by an older greentop: DRAM with the package as parent (the sysfs nesting).
DRAM0 = _ch("rapl:package-0:dram", "dram-0", parent="rapl:package-0")
CORE0 = _ch("rapl:package-0:core", "cpu-core-0", parent="rapl:package-0")
PSYS = _ch("rapl:psys", "psys")
GPU0 = _ch("nvml:gpu0:energy", "gpu-0", source="nvml")


def test_dram_is_its_own_domain_in_the_machine_total() -> None:
    names = [c.name for c in primary_channels([PKG0, DRAM0, CORE0, GPU0])]
    assert names == ["rapl:package-0", "rapl:package-0:dram", "nvml:gpu0:energy"]


def test_psys_is_shown_but_never_added_to_the_packages() -> None:
    plan = plan_domains([PKG0, DRAM0, PSYS, GPU0])
    assert [c.name for c in plan.shown] == ["rapl:package-0", "rapl:package-0:dram", "rapl:psys", "nvml:gpu0:energy"]
    assert plan.in_total == [True, True, False, True]
    psys = plan_domains([PKG0, DRAM0, PSYS, GPU0], "psys")
    assert [c.name for c in psys.total] == ["rapl:psys", "nvml:gpu0:energy"]
    assert "psys" in psys.describe() and "packages" in plan.describe()
    with pytest.raises(ValueError, match="no psys"):
        plan_domains([PKG0, GPU0], "psys")


def test_one_reading_per_physical_domain_and_the_source_taken_is_named() -> None:
    msr = _ch("msr:package-0", "cpu-package-0", source="rapl-msr")
    hw = _ch("hwmon:amd_energy:Esocket0", "cpu-package-0", source="hwmon")
    plan = plan_domains([hw, msr, PKG0, GPU0])
    assert [c.name for c in plan.total] == ["rapl:package-0", "nvml:gpu0:energy"]
    assert sorted(plan.alternatives["rapl:package-0"]) == ["hwmon:amd_energy:Esocket0", "msr:package-0"]


def _trace(channels: list[tuple[Channel, float]]) -> TraceData:
    """Each channel a steady counter at the given watts, 1 kHz for 2 s."""
    t = T0 + np.arange(2001, dtype=np.int64) * MS
    data = [ChannelData(c, t, np.round(np.arange(2001) * w * 1e3).astype(np.int64) + 5) for c, w in channels]
    return TraceData(meta={}, channels=data, phases=[], marks=[], counts=[], run_start_ns=T0, run_end_ns=T0 + 2000 * MS)


def test_summary_total_counts_dram_not_psys_and_says_so() -> None:
    trace = _trace([(PKG0, 50.0), (DRAM0, 10.0), (PSYS, 90.0), (GPU0, 300.0)])
    s = summarise(trace, 0.0)
    run = s.row("run")
    assert [d.domain for d in run.domains] == ["cpu-package-0", "dram-0", "psys", "gpu-0", TOTAL]
    assert run.total.energy_j == pytest.approx((50 + 10 + 300) * 2.0, rel=1e-6)
    assert run.domain("psys").energy_j == pytest.approx(180.0, rel=1e-6)
    assert [d.in_total for d in s.domains] == [True, True, False, True]
    p = summarise(trace, 0.0, cpu_total="psys")
    assert p.row("run").total.energy_j == pytest.approx((90 + 300) * 2.0, rel=1e-6)
    for fmt in ("table", "json", "md"):
        assert "--cpu-total psys" in format_summary(p, fmt), fmt
        assert "--cpu-total packages" in format_summary(s, fmt), fmt
    rows = list(csv.DictReader(io.StringIO(format_summary(p, "csv"))))
    assert {r["cpu_total"] for r in rows} == {"psys"}
    assert {r["domain"]: r["in_total"] for r in rows if r["kind"] == "run"} == {
        "cpu-package-0": "0", "dram-0": "0", "psys": "1", "gpu-0": "1", TOTAL: "1"}
