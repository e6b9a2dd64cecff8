"""What an hwmon meter measures decides whether the machine total adds it: a whole-system meter
(ACPI power_meter) and meters of unknown scope are shown beside the total, never added; discrete
GPU drivers' meters are GPUs, added."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from greentop.api import devices
from greentop.attribution import TOTAL, summarise
from greentop.channel import Channel, Quantity, Reader, ReaderKind
from greentop.domains import describe_total, plan_domains
from greentop.sources import DiscoveryOptions, hwmon, rapl_sysfs
from greentop.summary_format import format_summary
from greentop.sampler import Samples
from greentop.tracedata import ChannelData, TraceData
from greentop.tui.live import LiveModel
from tests.fakes.host import FakeHost
from tests.fakes.profile import PowerProfile

REPO = Path(__file__).resolve().parent.parent
PACKAGE_W, DRAM_W, METER_W = 50.0, 5.0, 200.0
MS = 1_000_000
T0 = 10**12


def greentop(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("GREENTOP_")}
    return subprocess.run([sys.executable, "-m", "greentop", *args], env=base | env, capture_output=True, text=True,
                          cwd=REPO, timeout=60)


@pytest.fixture
def metered(tmp_path: Path) -> Iterator[tuple[FakeHost, dict[str, str]]]:
    """A RAPL package (50 W) and DRAM (5 W), and an ACPI power meter reading the whole machine (200 W)."""
    host = FakeHost(tmp_path / "host")
    host.add_cpus(2)
    host.add_rapl_zone("0", "package-0", PowerProfile.constant(PACKAGE_W))
    host.add_rapl_zone("0:0", "dram", PowerProfile.constant(DRAM_W))
    host.add_hwmon("power_meter", power=[(None, PowerProfile.constant(METER_W))], power_file="average")
    host.set_proc_stat(PowerProfile.constant(0.3), n_cpus=2)
    env = {"GREENTOP_SYSFS_ROOT": str(host.root), "GREENTOP_NVML_LIB": str(tmp_path / "no-nvml.so")}
    with host:
        yield host, env


@pytest.fixture
def sysfs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHost]:
    root = tmp_path / "host"
    root.mkdir()
    monkeypatch.setenv("GREENTOP_SYSFS_ROOT", str(root))
    h = FakeHost(root)
    yield h
    h.close()


def test_sample_does_not_add_an_acpi_power_meter_to_the_packages(metered: tuple[FakeHost, dict[str, str]]) -> None:
    _host, env = metered
    out = greentop("sample", "-d", "0.6", "--json", env=env)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    by = {c["name"]: c for c in doc["channels"]}
    # The machine total is the packages + DRAM alone: the meter already contains them...
    assert doc["total"]["channels"] == ["rapl:package-0", "rapl:package-0:dram"]
    assert doc["total"]["energy_j"] == pytest.approx(by["rapl:package-0"]["energy_j"] + by["rapl:package-0:dram"]["energy_j"])
    # ...and the meter is its own row, read in full.
    meter = by["hwmon:power_meter:power1"]
    assert meter["domain"] == "system-0" and meter["average_w"] == pytest.approx(METER_W, rel=0.01)
    assert not meter["in_total"]
    assert "system-0 (whole-system meter" in doc["total"]["machine_total"]
    assert "shown, not added" in doc["total"]["machine_total"]


def test_cpu_total_system_makes_the_meter_the_whole_total(metered: tuple[FakeHost, dict[str, str]]) -> None:
    _host, env = metered
    out = greentop("sample", "-d", "0.6", "--json", "--cpu-total", "system", env=env)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    by = {c["name"]: c for c in doc["channels"]}
    assert doc["total"]["channels"] == ["hwmon:power_meter:power1"]
    assert doc["total"]["energy_j"] == pytest.approx(by["hwmon:power_meter:power1"]["energy_j"])
    assert not by["rapl:package-0"]["in_total"] and by["rapl:package-0"]["energy_j"] > 0
    assert doc["total"]["cpu_total"] == "system" and "--cpu-total system" in doc["total"]["machine_total"]


def test_cpu_total_system_without_a_meter_is_one_clear_line(tmp_path: Path) -> None:
    host = FakeHost(tmp_path / "host")
    host.add_cpus(2)
    host.add_rapl_zone("0", "package-0", PowerProfile.constant(PACKAGE_W))
    host.set_proc_stat(PowerProfile.constant(0.3), n_cpus=2)
    with host:
        out = greentop("sample", "-d", "0.2", "--cpu-total", "system",
                       env={"GREENTOP_SYSFS_ROOT": str(host.root), "GREENTOP_NVML_LIB": str(tmp_path / "none.so")})
    assert out.returncode != 0
    assert "no whole-system meter" in out.stderr and "Traceback" not in out.stderr


def test_devices_say_the_meter_is_not_added(metered: tuple[FakeHost, dict[str, str]], monkeypatch: pytest.MonkeyPatch) -> None:
    host, env = metered
    monkeypatch.setenv("GREENTOP_SYSFS_ROOT", env["GREENTOP_SYSFS_ROOT"])
    found = {d.name: d for d in devices(0, options=DiscoveryOptions(gpus=False))}
    meter = found["hwmon:power_meter:power1"]
    assert meter.kind == "system" and not meter.in_total and "whole-system" in meter.note
    assert found["rapl:package-0"].in_total and found["rapl:package-0"].kind == "package"
    out = greentop("devices", "--watch", "0.2", env=env)
    assert out.returncode == 0, out.stderr
    assert "IN TOTAL" in out.stdout and "whole-system meter" in out.stdout


def test_gpu_drivers_meters_are_gpus_named_apart_from_nvml(sysfs: FakeHost) -> None:
    steps = PowerProfile.constant(100.0)
    sysfs.add_hwmon("amdgpu", power=[("PPT", steps)], power_file="both")
    sysfs.add_hwmon("amdgpu", power=[("PPT", steps)], power_file="average")
    sysfs.add_hwmon("i915", energy=[(None, steps)])
    sysfs.add_hwmon("xe", energy=[("card", steps), ("pkg", steps)])
    sysfs.add_hwmon("amdgpu", power=[("slowPPT", steps), ("fastPPT", steps)])  # an APU: the SoC, CPU included
    ch = {c.name: c for c in hwmon.discover().channels}
    domains = {n: c.domain for n, c in ch.items()}
    assert domains == {
        "hwmon:amdgpu:PPT": "gpu-amdgpu-0", "hwmon:hwmon1:PPT": "gpu-amdgpu-1", "hwmon:i915:energy1": "gpu-i915-0",
        "hwmon:xe:card": "gpu-xe-0", "hwmon:xe:pkg": "gpu-xe-0:pkg",
        "hwmon:amdgpu:slowPPT": "amdgpu:slowPPT", "hwmon:amdgpu:fastPPT": "amdgpu:fastPPT",
    }
    assert ch["hwmon:xe:pkg"].parent == "hwmon:xe:card"  # xe's package lies inside its card
    nvml = Channel("nvml:gpu0:energy", "nvml", "gpu-0", Quantity.ENERGY, "mJ", 1e-3, Reader(ReaderKind.NVML_ENERGY))
    plan = plan_domains([nvml, *ch.values()])
    assert [c.name for c in plan.total] == ["nvml:gpu0:energy", "hwmon:amdgpu:PPT", "hwmon:hwmon1:PPT",
                                            "hwmon:i915:energy1", "hwmon:xe:card"]
    shown = {c.name: t for c, t in zip(plan.shown, plan.in_total)}
    assert shown["hwmon:amdgpu:slowPPT"] is False and shown["hwmon:amdgpu:fastPPT"] is False
    assert "hwmon:xe:pkg" not in shown


def test_rail_monitors_of_unknown_scope_are_shown_not_added_and_named(sysfs: FakeHost) -> None:
    # A Jetson's ina3221: the input rail and a sub-rail of it.
    sysfs.add_hwmon("ina3221", power=[("VDD_IN", PowerProfile.constant(30.0)), ("VDD_CPU_GPU_CV", PowerProfile.constant(12.0))])
    sysfs.add_rapl_zone("0", "package-0", PowerProfile.constant(PACKAGE_W))
    channels = rapl_sysfs.discover().channels + hwmon.discover().channels
    plan = plan_domains(channels)
    assert [c.name for c in plan.total] == ["rapl:package-0"]
    assert [c.domain for c, t in zip(plan.shown, plan.in_total) if not t] == ["ina3221:VDD_IN", "ina3221:VDD_CPU_GPU_CV"]
    line = plan.describe()
    assert "ina3221:VDD_IN (scope unknown)" in line and "ina3221:VDD_CPU_GPU_CV (scope unknown)" in line
    assert "shown, not added" in line


def _ch(name: str, domain: str, source: str = "rapl-sysfs", parent: str = "") -> Channel:
    return Channel(name, source, domain, Quantity.ENERGY, "uJ", 1e-6, Reader(ReaderKind.FILE_DECIMAL, path="/x"), parent=parent)


PKG0 = _ch("rapl:package-0", "cpu-package-0")
DRAM0 = _ch("rapl:package-0:dram", "dram-0")
PSYS = _ch("rapl:psys", "psys")
GPU0 = _ch("nvml:gpu0:energy", "gpu-0", source="nvml")
METER = _ch("hwmon:power_meter:power1", "system-0", source="hwmon")
RAIL = _ch("hwmon:ina226:VBUS", "ina226:VBUS", source="hwmon")


def test_plan_never_adds_the_system_meter_nor_unknown_meters_whatever_the_cpu_side() -> None:
    for cpu_total, added in (("packages", ["rapl:package-0", "rapl:package-0:dram", "nvml:gpu0:energy"]),
                             ("psys", ["rapl:psys", "nvml:gpu0:energy"]),
                             ("system", ["hwmon:power_meter:power1"])):
        plan = plan_domains([PKG0, DRAM0, PSYS, GPU0, METER, RAIL], cpu_total)
        assert [c.name for c in plan.total] == added, cpu_total
        assert {c.name for c in plan.shown} >= {"hwmon:power_meter:power1", "hwmon:ina226:VBUS", "rapl:package-0", "nvml:gpu0:energy"}
    with pytest.raises(ValueError, match="no whole-system meter"):
        plan_domains([PKG0, GPU0], "system")


def test_the_total_line_names_what_is_shown_and_not_added() -> None:
    line = plan_domains([PKG0, GPU0, METER, RAIL]).describe()
    assert line.startswith("machine total = CPU packages + DRAM + GPUs (--cpu-total packages): cpu-package-0, gpu-0")
    assert "system-0 (whole-system meter: contains the rest; --cpu-total system to use it)" in line
    assert "ina226:VBUS (scope unknown)" in line
    assert "not added" not in plan_domains([PKG0, GPU0]).describe()
    system = plan_domains([PKG0, GPU0, METER], "system").describe()
    assert "whole-system meter alone" in system and system.endswith("(--cpu-total system): system-0")
    # psys and sub-zones beside the total are explained by the CPU side's wording, not flagged
    assert describe_total("packages", ["cpu-package-0"], ["psys", "cpu-core-0"]).endswith(": cpu-package-0")


def _trace(channels: list[tuple[Channel, float]]) -> TraceData:
    """Each channel a steady counter at the given watts, 1 kHz for 2 s."""
    t = T0 + np.arange(2001, dtype=np.int64) * MS
    data = [ChannelData(c, t, np.round(np.arange(2001) * w * 1e3).astype(np.int64) + 5) for c, w in channels]
    return TraceData(meta={}, channels=data, phases=[], marks=[], counts=[], run_start_ns=T0, run_end_ns=T0 + 2000 * MS)


def test_summary_shows_the_meter_row_in_every_format_and_adds_it_only_when_asked() -> None:
    trace = _trace([(PKG0, 50.0), (DRAM0, 10.0), (GPU0, 300.0), (METER, 450.0)])
    s = summarise(trace, 0.0)
    run = s.row("run")
    assert [d.domain for d in run.domains] == ["cpu-package-0", "dram-0", "gpu-0", "system-0", TOTAL]
    assert run.total.energy_j == pytest.approx((50 + 10 + 300) * 2.0, rel=1e-6)
    assert run.domain("system-0").energy_j == pytest.approx(900.0, rel=1e-6)
    for fmt in ("table", "json", "md"):
        text = format_summary(s, fmt)
        assert "system-0" in text and "whole-system meter" in text, fmt
    rows = list(csv.DictReader(io.StringIO(format_summary(s, "csv"))))
    assert {r["domain"]: r["in_total"] for r in rows if r["kind"] == "run"} == {
        "cpu-package-0": "1", "dram-0": "1", "gpu-0": "1", "system-0": "0", TOTAL: "1"}
    whole = summarise(trace, 0.0, cpu_total="system").row("run")
    assert whole.total.energy_j == pytest.approx(900.0, rel=1e-6)


def _feed_two_seconds(model: LiveModel) -> None:
    """Four drains of 0.5 s: the package at 50 W, the GPU at 300 W, the meter at 450 W (uJ counters)."""
    t = T0 + np.arange(1, 2001, dtype=np.int64) * MS
    for k in range(4):
        part = t[k * 500:(k + 1) * 500]
        e = (part - T0) * 1e-9
        model.feed({"rapl:package-0": Samples(part, np.round(e * 50e6).astype(np.int64)),
                    "nvml:gpu0:energy": Samples(part, np.round(e * 300e6).astype(np.int64)),
                    "hwmon:power_meter:power1": Samples(part, np.round(e * 450e6).astype(np.int64))})
    model.end_run()


def test_live_view_shows_the_meter_beside_the_total() -> None:
    model = LiveModel([PKG0, GPU0, METER])
    assert [c.name for c in model.channels] == ["rapl:package-0", "nvml:gpu0:energy", "hwmon:power_meter:power1"]
    assert model.in_total == [True, True, False]
    _feed_two_seconds(model)
    figures = model.run_figures()
    assert figures[2][0] == pytest.approx(450.0, rel=0.02)  # the meter's own row
    assert figures[3][0] == pytest.approx(350.0, rel=0.02)  # the total: package + GPU, not the meter
    assert model.energy_j == pytest.approx(350.0 * model.duration_s, rel=0.02)


def test_live_view_titles_the_meter_not_in_total_and_leaves_it_out_of_the_total_chart() -> None:
    import asyncio

    from greentop.tui.app import LiveApp
    from tests.test_tui_live import ScriptedSampler, counter, step, titles

    chans = [counter("rapl:package-0", "cpu-package-0"), counter("hwmon:power_meter:power1", "system-0")]
    app = LiveApp(ScriptedSampler(chans, {"rapl:package-0": 50.0, "hwmon:power_meter:power1": 200.0}), chans,
                  timers=False)  # type: ignore[arg-type]

    async def go() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            step(app, 20)
            await pilot.pause()
            got = titles(app)
            assert got[0].startswith("cpu-package-0   50.0 W now")
            assert got[1].startswith("system-0 (not in total)   200.0 W now")
            assert got[2].startswith("total   50.0 W now")

    asyncio.run(go())


def test_live_view_keeps_psys_out_as_before_and_shows_unknown_meters() -> None:
    model = LiveModel([PKG0, PSYS, GPU0, RAIL])
    assert [c.name for c in model.channels] == ["rapl:package-0", "nvml:gpu0:energy", "hwmon:ina226:VBUS"]
    assert model.in_total == [True, True, False]


def test_live_view_with_cpu_total_system_totals_the_meter_alone() -> None:
    model = LiveModel([PKG0, GPU0, METER], cpu_total="system")
    assert model.in_total == [False, False, True]  # package and GPU shown beside the meter, not added
    _feed_two_seconds(model)
    assert model.run_figures()[3][0] == pytest.approx(450.0, rel=0.02)
    assert model.energy_j == pytest.approx(450.0 * model.duration_s, rel=0.02)
    assert "(--cpu-total system)" in model.machine_total
    with pytest.raises(ValueError):
        LiveModel([PKG0, GPU0], cpu_total="system")


def _metered_trace(metered: tuple[FakeHost, dict[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A 1.5 s recording of the metered fake host, and the replay's cache kept inside tmp_path."""
    _host, env = metered
    trace = tmp_path / "run.h5"
    rec = greentop("record", "-o", str(trace), "--no-baseline", "--", sys.executable, "-c", "import time; time.sleep(1.5)",
                   env=env)
    assert rec.returncode == 0, rec.stderr
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return trace


def test_replay_charts_the_meter_beside_the_total_and_summarises_as_the_summary_does(
        metered: tuple[FakeHost, dict[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from greentop.tui.replay import TOTAL as REPLAY_TOTAL
    from greentop.tui.replay import ReplayModel

    trace = _metered_trace(metered, tmp_path, monkeypatch)
    env = metered[1]
    model = ReplayModel(trace)
    charted = {model.domain_name(c): t for c, t in zip(model.primary, model.in_total)}
    assert charted["system-0"] is False and charted["cpu-package-0"] is True
    bins = model.bins(model.start_ns, model.end_ns, 40)
    meter = next(c.name for c in model.primary if c.domain == "system-0")
    total_w = float(np.nanmean(bins[REPLAY_TOTAL].mean_w))
    assert float(np.nanmean(bins[meter].mean_w)) == pytest.approx(METER_W, rel=0.05)
    assert total_w < METER_W * 0.5  # packages + DRAM (+ the CPU estimate where taken), not the meter on top
    # The replay's summary is `greentop summary`'s: the same rows and domains, the meter included.
    cli = json.loads(greentop("summary", str(trace), "--format", "json", env=env).stdout)
    replay = json.loads(format_summary(model.summarise(), "json"))
    assert replay["rows"] == cli["rows"]
    assert "system-0" in {d["domain"] for r in replay["rows"] for d in r["domains"]}


def _gpu(name: str, domain: str) -> Channel:
    return _ch(name, domain, source="hwmon")


def _two_ranks(trace: TraceData) -> TraceData:
    """Two ranks of a torchrun job, each in "train" over the trace's second half."""
    from greentop.tracedata import Phase

    mid, end = T0 + 1000 * MS, T0 + 2000 * MS
    trace.phases = [Phase(i, "train", mid, end, 0, -1, 100 + i, {"rank": i, "local_rank": i}, "ok", f"id{i}") for i in (0, 1)]
    return trace


def test_summary_by_gpu_groups_hwmon_gpus_as_it_groups_nvml_ones() -> None:
    from greentop.groups import group_summary

    amd0, amd1 = _gpu("hwmon:amdgpu:PPT", "gpu-amdgpu-0"), _gpu("hwmon:hwmon3:PPT", "gpu-amdgpu-1")
    trace = _two_ranks(_trace([(PKG0, 50.0), (amd0, 100.0), (amd1, 250.0)]))
    rows = group_summary(summarise(trace, 0.0), "gpu")
    totals = {r.group: r for r in rows if r.note == "GPU total"}
    assert list(totals) == ["gpu-amdgpu-0", "gpu-amdgpu-1"]
    assert totals["gpu-amdgpu-0"].energy_j == pytest.approx(200.0, rel=1e-6)
    assert totals["gpu-amdgpu-1"].energy_j == pytest.approx(500.0, rel=1e-6)
    # Each rank's phase on the GPU its local_rank drives, at that GPU's own power.
    ranked = [(r.group, r.rank, round(r.average_w, 3)) for r in rows if r.phase == "train"]
    assert ranked == [("gpu-amdgpu-0", 0, 100.0), ("gpu-amdgpu-1", 1, 250.0)]
    by_rank = [(r.group, r.domains) for r in group_summary(summarise(trace, 0.0), "rank") if r.phase == "train"]
    assert by_rank == [("rank 0", ("gpu-amdgpu-0",)), ("rank 1", ("gpu-amdgpu-1",))]


def test_summary_by_gpu_lists_an_hwmon_gpu_beside_nvml_ones_which_keep_the_ranks() -> None:
    from greentop.groups import group_summary

    gpu1 = _ch("nvml:gpu1:energy", "gpu-1", source="nvml")
    xe = _gpu("hwmon:xe:card", "gpu-xe-0")
    trace = _two_ranks(_trace([(PKG0, 50.0), (GPU0, 300.0), (gpu1, 200.0), (xe, 20.0)]))
    rows = group_summary(summarise(trace, 0.0), "gpu")
    assert [r.group for r in rows if r.note == "GPU total"] == ["gpu-0", "gpu-1", "gpu-xe-0"]
    assert next(r.energy_j for r in rows if r.group == "gpu-xe-0") == pytest.approx(40.0, rel=1e-6)
    # The ranks drive the NVML GPUs, as before; the hwmon GPU has its total and no rank's phase.
    assert [(r.group, r.rank) for r in rows if r.phase == "train"] == [("gpu-0", 0), ("gpu-1", 1)]


PSYS_W = 70.0


@pytest.fixture
def psys_trace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A trace of a fake host with a RAPL package (50 W), DRAM (5 W) and psys (70 W)."""
    host = FakeHost(tmp_path / "host")
    host.add_cpus(2)
    host.add_rapl_zone("0", "package-0", PowerProfile.constant(PACKAGE_W))
    host.add_rapl_zone("0:0", "dram", PowerProfile.constant(DRAM_W))
    host.add_rapl_zone("1", "psys", PowerProfile.constant(PSYS_W))
    host.set_proc_stat(PowerProfile.constant(0.3), n_cpus=2)
    trace = tmp_path / "run.h5"
    with host:
        rec = greentop("record", "-o", str(trace), "--no-baseline", "--", sys.executable, "-c", "import time; time.sleep(1.5)",
                       env={"GREENTOP_SYSFS_ROOT": str(host.root), "GREENTOP_NVML_LIB": str(tmp_path / "no-nvml.so")})
    assert rec.returncode == 0, rec.stderr
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return trace


def test_replay_cpu_total_psys_charts_and_summarises_the_psys_total_as_the_summary_does(
        psys_trace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from greentop import cli
    from greentop.tui import replay

    model = replay.ReplayModel(psys_trace, cpu_total="psys")
    assert {model.domain_name(c): t for c, t in zip(model.primary, model.in_total)} == {"psys": True}
    bins = model.bins(model.start_ns, model.end_ns, 40)
    psys_name = model.primary[0].name
    # The charts' machine total is psys alone (the packages and DRAM it contains are not added to it).
    assert np.nanmean(bins[replay.TOTAL].mean_w) == pytest.approx(np.nanmean(bins[psys_name].mean_w), rel=1e-9)
    assert np.nanmean(bins[replay.TOTAL].mean_w) == pytest.approx(PSYS_W, rel=0.05)
    # The summary rows are `greentop summary --cpu-total psys`'s, and differ from the default's.
    cli_psys = json.loads(greentop("summary", str(psys_trace), "--format", "json", "--cpu-total", "psys", env={}).stdout)
    cli_default = json.loads(greentop("summary", str(psys_trace), "--format", "json", env={}).stdout)
    shown = json.loads(format_summary(model.summarise(), "json"))
    assert shown["rows"] == cli_psys["rows"] and shown["rows"] != cli_default["rows"]
    run_total = model.summary.row("run").total  # type: ignore[union-attr]
    assert run_total.energy_j == pytest.approx(model.summary.row("run").domain("psys").energy_j, rel=1e-9)  # type: ignore[union-attr]

    # `greentop replay --cpu-total psys` opens that model, and its total chart says what it adds up.
    opened: list[replay.ReplayModel] = []

    class Opened(replay.ReplayApp):
        def run(self, *args: object, **kwargs: object) -> int:  # type: ignore[override]
            opened.append(self.model)
            return 0

    monkeypatch.setenv("TEXTUAL_DRIVER", "headless")
    monkeypatch.setattr(replay, "ReplayApp", Opened)
    assert cli.main(["replay", str(psys_trace), "--cpu-total", "psys"]) == 0
    assert [m.cpu_total for m in opened] == ["psys"]
    assert [c.domain for c in opened[0].primary] == ["psys"]


def test_replay_cpu_total_system_totals_the_meter_and_titles_what_is_beside_it(
        metered: tuple[FakeHost, dict[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from greentop.tui.chart import PowerChart
    from greentop.tui.replay import TOTAL as REPLAY_TOTAL
    from greentop.tui.replay import ReplayApp, ReplayModel

    trace = _metered_trace(metered, tmp_path, monkeypatch)
    env = metered[1]
    model = ReplayModel(trace, cpu_total="system")
    assert [model.domain_name(c) for c, t in zip(model.primary, model.in_total) if t] == ["system-0"]
    bins = model.bins(model.start_ns, model.end_ns, 40)
    assert float(np.nanmean(bins[REPLAY_TOTAL].mean_w)) == pytest.approx(METER_W, rel=0.05)
    cli = json.loads(greentop("summary", str(trace), "--format", "json", "--cpu-total", "system", env=env).stdout)
    assert json.loads(format_summary(model.summarise(), "json"))["rows"] == cli["rows"]
    app = ReplayApp(model, background_summary=False)

    async def go() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            titles = {t.split("  ")[0] for t in (ch.title for ch in app.query(PowerChart))}
            # Drawn titles keep saying which charts the total leaves out, and what the total is.
            assert {"cpu-package-0 (not in total)", "dram-0 (not in total)", "system-0", "total (system meter)"} <= titles

    asyncio.run(go())


def test_replay_cpu_total_the_trace_cannot_give_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    from greentop import cli

    trace = tmp_path / "run.h5"  # packages and DRAM: no psys, no whole-system meter
    shutil.copy(REPO / "tests" / "data" / "fakehost_complete.h5", trace)
    for cpu_total, what in (("psys", "no psys domain"), ("system", "no whole-system meter")):
        assert cli.main(["replay", str(trace), "--cpu-total", cpu_total]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and what in err, err  # said before anything else (the terminal check included)


def test_an_apus_plain_ppt_is_the_socs_power_not_a_gpus(sysfs: FakeHost) -> None:
    """amdgpu labels an APU's meter "PPT" like a discrete card's, except on Van Gogh (slowPPT /
    fastPPT), and on an APU it reads the whole SoC, CPU cores included. amdgpu shows the
    ``vddnb`` voltage (``in1_label``) only on APUs (amdgpu_pm.c, hwmon_attributes_visible), so
    that tells them apart; adding the APU's PPT to RAPL's package would count the CPU twice."""
    steps = PowerProfile.constant(25.0)
    sysfs.add_hwmon("amdgpu", power=[("PPT", steps)], static={"in0_label": "vddgfx", "in1_label": "vddnb", "in1_input": "900"})
    sysfs.add_hwmon("amdgpu", power=[("PPT", PowerProfile.constant(200.0))], static={"in0_label": "vddgfx"})  # a discrete card
    sysfs.add_rapl_zone("0", "package-0", PowerProfile.constant(PACKAGE_W))
    ch = {c.name: c for c in hwmon.discover().channels}
    assert ch["hwmon:amdgpu:PPT"].domain == "amdgpu:PPT"
    assert "APU" in ch["hwmon:amdgpu:PPT"].note and "CPU included" in ch["hwmon:amdgpu:PPT"].note
    assert ch["hwmon:hwmon1:PPT"].domain == "gpu-amdgpu-0"  # the discrete card is the first GPU of amdgpu
    plan = plan_domains([*rapl_sysfs.discover().channels, *ch.values()])
    assert [c.name for c in plan.total] == ["rapl:package-0", "hwmon:hwmon1:PPT"]
    assert "amdgpu:PPT (scope unknown)" in plan.describe()


def test_an_mi300as_meter_is_the_sockets_power_though_it_shows_no_vddnb(sysfs: FakeHost) -> None:
    """MI300A is an APU (24 Zen 4 cores beside the GPU in one socket) whose amdgpu hides the
    voltages, ``vddnb`` included, so its PCI device id (0x74a0; MI300X is 0x74a1) tells it apart.
    Its meter reads the socket, CPU cores included: not a GPU, not added beside RAPL's package."""
    sysfs.add_hwmon("amdgpu", power=[("PPT", PowerProfile.constant(300.0))], static={"device/device": "0x74a0"})
    sysfs.add_hwmon("amdgpu", power=[("PPT", PowerProfile.constant(500.0))], static={"device/device": "0x74a1"})  # MI300X
    sysfs.add_rapl_zone("0", "package-0", PowerProfile.constant(PACKAGE_W))
    ch = {c.name: c for c in hwmon.discover().channels}
    assert ch["hwmon:amdgpu:PPT"].domain == "amdgpu:PPT"
    assert ch["hwmon:hwmon1:PPT"].domain == "gpu-amdgpu-0"
    plan = plan_domains([*rapl_sysfs.discover().channels, *ch.values()])
    assert [c.name for c in plan.total] == ["rapl:package-0", "hwmon:hwmon1:PPT"]
