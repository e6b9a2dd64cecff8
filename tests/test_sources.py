"""Every CPU-side source against the fake host tree: discovery, errors, and sampled energy."""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from greentop.channel import Channel, Lane, Quantity
from greentop.energy import converter_for
from greentop.sampler import Sampler
from greentop.sources import DiscoveryOptions, cpu_estimate, discover, hwmon, rapl_msr, rapl_sysfs
from tests.fakes.host import (
    AMD_MSR_CORE_ENERGY_STATUS,
    AMD_MSR_PKG_ENERGY_STATUS,
    INTEL_MSR_DRAM_ENERGY_STATUS,
    INTEL_MSR_PKG_ENERGY_STATUS,
    INTEL_MSR_PLATFORM_ENERGY_STATUS,
    INTEL_MSR_RAPL_POWER_UNIT,
    FakeCounter,
    FakeHost,
)
from tests.fakes.profile import PowerProfile

REPO = Path(__file__).resolve().parent.parent
PR_CAPBSET_DROP, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 24, 1, 2
STEPS = PowerProfile(((0.05, 40.0), (0.03, 95.0), (0.02, 12.0)))


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHost]:
    root = tmp_path / "host"
    root.mkdir()
    monkeypatch.setenv("GREENTOP_SYSFS_ROOT", str(root))
    h = FakeHost(root)
    yield h
    h.close()


def by_name(channels: list[Channel]) -> dict[str, Channel]:
    return {c.name: c for c in channels}


def settle(host: FakeHost) -> None:
    """Start the fake and let 50 ms of energy accumulate: live counters are never 0."""
    host.start(writer="none")
    host.update(time.monotonic_ns() + 50_000_000)


def sample_while_driving(host: FakeHost, channels: list[Channel], seconds: float = 0.6, step_s: float = 0.002) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[int]]:
    """Sample while the test itself writes the counters, so every value's true time is known."""
    if host.epoch_ns is None:
        host.start(writer="none")
    written: list[int] = []
    sampler = Sampler(channels, rate_hz=1000, slow_rate_hz=100)
    first = time.monotonic_ns()
    host.update(first)  # a value is in place before the first read
    written.append(first)
    with sampler:
        end = time.monotonic_ns() + int(seconds * 1e9)
        while (t := time.monotonic_ns()) < end:
            host.update(t)
            written.append(t)
            time.sleep(step_s)
    got = sampler.drain()
    return {k: (v.t_ns, v.raw) for k, v in got.items()}, written


def check_counter_energy(channel: Channel, counter: FakeCounter, t_ns: np.ndarray, raw: np.ndarray, written: list[int]) -> int:
    """The unwrapped energy between the first and last sample equals the scripted energy
    between the instants those two values were written. Returns the wraps seen."""
    when = {counter.value_at(t): t for t in written}
    conv = converter_for(channel)
    energy_j = conv.feed(t_ns, raw).energy_j
    t_first, t_last = when[int(raw[0])], when[int(raw[-1])]
    truth_j = counter.energy_between_j(t_first, t_last)
    # Each raw value is floored to the counter's unit: at most one unit off at each end.
    assert energy_j[-1] == pytest.approx(truth_j, abs=2 * counter.unit_j + 1e-9)
    assert conv.backwards == 0  # type: ignore[union-attr]
    return conv.wraps  # type: ignore[union-attr]


# --- RAPL through sysfs -----------------------------------------------------------------------
def test_powercap_zones_sockets_and_mmio_are_discovered(host: FakeHost) -> None:
    for pkg in ("0", "1"):
        host.add_rapl_zone(pkg, f"package-{pkg}", STEPS)
        host.add_rapl_zone(f"{pkg}:0", "core", STEPS)
        host.add_rapl_zone(f"{pkg}:1", "uncore", STEPS)
        host.add_rapl_zone(f"{pkg}:2", "dram", STEPS, max_energy_range_uj=65532610987)
    host.add_rapl_zone("2", "psys", STEPS)
    host.add_rapl_zone("0", "package-0", STEPS, mmio=True)
    settle(host)
    found = rapl_sysfs.discover()
    ch = by_name(found.channels)
    assert set(ch) == {
        "rapl:package-0", "rapl:package-0:core", "rapl:package-0:uncore", "rapl:package-0:dram",
        "rapl:package-1", "rapl:package-1:core", "rapl:package-1:uncore", "rapl:package-1:dram",
        "rapl:psys", "rapl-mmio:package-0",
    }
    assert ch["rapl:package-1"].domain == "cpu-package-1" and ch["rapl:package-1"].parent == ""
    # DRAM is its own domain, outside the package (Intel SDM vol. 3B, 15.10): no parent to hide it.
    assert ch["rapl:package-1:dram"].domain == "dram-1" and ch["rapl:package-1:dram"].parent == ""
    assert ch["rapl:package-1:dram"].wrap_raw == 65532610987 + 1
    assert ch["rapl:package-0:core"].domain == "cpu-core-0"
    assert ch["rapl-mmio:package-0"].parent == "rapl:package-0"  # same counter: never added twice
    assert ch["rapl:psys"].domain == "psys" and "platform" in ch["rapl:psys"].note
    assert all(c.unit == "uJ" and c.scale == 1e-6 and c.quantity is Quantity.ENERGY for c in found.channels)
    assert not found.problems


def test_amd_on_the_powercap_driver_uses_the_same_names(host: FakeHost) -> None:
    host.add_cpus(4, vendor="AuthenticAMD")
    host.add_rapl_zone("0", "package-0", STEPS)
    host.add_rapl_zone("0:0", "core", STEPS)
    settle(host)
    assert set(by_name(rapl_sysfs.discover().channels)) == {"rapl:package-0", "rapl:package-0:core"}


def test_powercap_energy_matches_truth_across_many_wraps(host: FakeHost) -> None:
    counter = host.add_rapl_zone("0", "package-0", STEPS, max_energy_range_uj=2_000_000, start_uj=1_500_000)
    settle(host)
    (channel,) = rapl_sysfs.discover().channels
    got, written = sample_while_driving(host, [channel])
    wraps = check_counter_energy(channel, counter, *got[channel.name], written)
    assert wraps >= 10  # ~0.6 s at ~50 W over a 2 J range


# --- RAPL through MSRs ------------------------------------------------------------------------
def test_intel_msrs_per_package_with_units_from_the_unit_register(host: FakeHost) -> None:
    host.add_cpus(8, vendor="GenuineIntel", packages=2, smt=2)
    host.set_msr_unit(0, INTEL_MSR_RAPL_POWER_UNIT, 14)
    for cpu in (0, 2):  # first CPU of each package (0-1 and 2-3 are the cores of packages 0, 1)
        host.add_msr(cpu, INTEL_MSR_PKG_ENERGY_STATUS, STEPS)
        host.add_msr(cpu, INTEL_MSR_DRAM_ENERGY_STATUS, STEPS)
    host.add_msr(0, INTEL_MSR_PLATFORM_ENERGY_STATUS, STEPS)
    settle(host)
    found = rapl_msr.discover()
    ch = by_name(found.channels)
    assert set(ch) == {"msr:package-0", "msr:package-0:dram", "msr:package-1", "msr:package-1:dram", "msr:psys"}
    pkg1 = ch["msr:package-1"]
    assert pkg1.reader.register == 0x611 and pkg1.reader.path.endswith("dev/cpu/2/msr")
    assert pkg1.scale == 2.0**-14 and pkg1.wrap_raw == 2**32 and pkg1.unit == "2^-14 J"
    assert ch["msr:package-1:dram"].parent == "" and ch["msr:package-1:dram"].domain == "dram-1"


def test_intel_msr_energy_matches_truth_through_a_32_bit_wrap(host: FakeHost) -> None:
    host.add_cpus(2, vendor="GenuineIntel")
    host.set_msr_unit(0, INTEL_MSR_RAPL_POWER_UNIT, 14)
    counter = host.add_msr(0, INTEL_MSR_PKG_ENERGY_STATUS, STEPS, start_units=2**32 - 50_000)
    settle(host)
    (channel,) = rapl_msr.discover().channels
    got, written = sample_while_driving(host, [channel])
    assert check_counter_energy(channel, counter, *got[channel.name], written) == 1


def test_amd_msrs_package_and_per_core(host: FakeHost) -> None:
    host.add_cpus(8, vendor="AuthenticAMD", smt=2)  # cores 0-3; cpu i and i+4 are siblings
    pkg = host.add_msr(0, AMD_MSR_PKG_ENERGY_STATUS, STEPS)
    cores = [host.add_msr(4 + i, AMD_MSR_CORE_ENERGY_STATUS, STEPS) for i in range(4)]
    settle(host)
    found = rapl_msr.discover()
    ch = by_name(found.channels)
    assert set(ch) == {"msr:package-0"} | {f"msr:package-0:core-{i}" for i in range(4)}
    assert ch["msr:package-0"].scale == 2.0**-16
    assert ch["msr:package-0:core-3"].parent == "msr:package-0"
    got, written = sample_while_driving(host, [ch["msr:package-0"], ch["msr:package-0:core-2"]])
    check_counter_energy(ch["msr:package-0"], pkg, *got["msr:package-0"], written)
    check_counter_energy(ch["msr:package-0:core-2"], cores[2], *got["msr:package-0:core-2"], written)


def test_missing_msr_module_says_modprobe(host: FakeHost) -> None:
    host.add_cpus(2, vendor="GenuineIntel")
    found = rapl_msr.discover()
    (p,) = found.problems
    assert "msr kernel module" in p.reason and p.fix.startswith("sudo modprobe msr")
    assert p.what == "/dev/cpu/0/msr"  # the path as the user knows it, not the fake root


def test_non_x86_vendor_has_no_msr_channels(host: FakeHost) -> None:
    assert rapl_msr.discover().channels == [] and rapl_msr.discover().problems == []


# --- permission denied (needs a non-root process: root ignores file modes) --------------------
def _drop_file_override_capabilities() -> None:
    """In the child, before exec: without CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH even root
    obeys file modes, as an ordinary user would."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def _discover_as_unprivileged(root: Path) -> dict[str, object]:
    code = (
        "import json; from greentop.sources import discover;"
        "r = discover(); print(json.dumps({'channels': [c.name for c in r.channels],"
        " 'problems': [p.to_dict() for p in r.problems]}))"
    )
    env = {"GREENTOP_SYSFS_ROOT": str(root), "PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO)}
    preexec = _drop_file_override_capabilities if os.geteuid() == 0 else None
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd="/", check=True, preexec_fn=preexec)
    return json.loads(out.stdout)


@pytest.fixture
def public_host(tmp_path: Path) -> Iterator[FakeHost]:
    h = FakeHost(tmp_path)
    yield h
    h.close()


def test_unreadable_energy_uj_is_listed_with_the_fix_and_the_rest_carries_on(public_host: FakeHost) -> None:
    public_host.add_cpus(2, vendor="GenuineIntel")
    public_host.add_rapl_zone("0", "package-0", STEPS, readable=False)
    public_host.add_hwmon("acpi_power", power=[(None, STEPS)])
    public_host.set_proc_stat(PowerProfile.constant(0.1), n_cpus=2)
    got = _discover_as_unprivileged(public_host.root)
    problems = got["problems"]
    rapl = [p for p in problems if p["source"] == "rapl-sysfs"]  # type: ignore[union-attr, index]
    assert len(rapl) == 1
    assert "CVE-2020-8694" in rapl[0]["reason"] and "chmod o+r /sys/class/powercap/intel-rapl:0/energy_uj" in rapl[0]["fix"]
    assert "hwmon:acpi_power:power1" in got["channels"]  # type: ignore[operator]
    assert "estimate:cpu" in got["channels"]  # type: ignore[operator]  # no readable CPU sensor


def test_unreadable_msr_device_says_how_to_grant_access(public_host: FakeHost) -> None:
    public_host.add_cpus(2, vendor="GenuineIntel")
    public_host.add_msr(0, INTEL_MSR_PKG_ENERGY_STATUS, STEPS)
    public_host.deny("dev/cpu/0/msr")
    got = _discover_as_unprivileged(public_host.root)
    msr = [p for p in got["problems"] if p["source"] == "rapl-msr"]  # type: ignore[union-attr, index]
    assert len(msr) == 1 and "CAP_SYS_RAWIO" in msr[0]["fix"]


# --- hwmon ------------------------------------------------------------------------------------
def test_hwmon_energy_and_power_channels(host: FakeHost) -> None:
    host.add_hwmon("amd_energy", energy=[("Esocket0", STEPS), ("Ecore000", STEPS)])
    host.add_hwmon("acpi_power", power=[("meter", STEPS)], power_file="both")
    host.add_hwmon("nvme")  # no power at all
    ch = by_name(hwmon.discover().channels)
    assert set(ch) == {"hwmon:amd_energy:Esocket0", "hwmon:amd_energy:Ecore000", "hwmon:acpi_power:meter"}
    assert ch["hwmon:amd_energy:Esocket0"].domain == "cpu-package-0"
    assert ch["hwmon:amd_energy:Ecore000"].domain == "cpu-core-0"
    meter = ch["hwmon:acpi_power:meter"]
    assert meter.quantity is Quantity.POWER and meter.unit == "uW" and meter.reader.path.endswith("power1_input")


def test_hwmon_average_power_used_where_no_input(host: FakeHost) -> None:
    host.add_hwmon("power_meter", power=[(None, STEPS)], power_file="average")
    (c,) = hwmon.discover().channels
    assert c.reader.path.endswith("power1_average")


def test_hwmon_energy_and_integrated_power_match_truth(host: FakeHost) -> None:
    energy, power = host.add_hwmon("board", energy=[("e", STEPS)], power=[("p", STEPS)])
    ch = by_name(hwmon.discover().channels)
    got, written = sample_while_driving(host, list(ch.values()))
    check_counter_energy(ch["hwmon:board:e"], energy, *got["hwmon:board:e"], written)
    t, raw = got["hwmon:board:p"]
    # Integrating the gauge: exact up to the step between a write and the next read (<= 1 ms
    # sample period), at each of the profile's steps.
    e = converter_for(ch["hwmon:board:p"]).feed(t, raw).energy_j[-1]
    truth = power.energy_between_j(int(t[0]), int(t[-1]))
    steps = (t[-1] - t[0]) / 1e9 / 0.02
    assert e == pytest.approx(truth, abs=steps * 95.0 * 0.003)


# --- the CPU estimate -------------------------------------------------------------------------
def test_cpu_estimate_follows_utilisation_through_the_model(host: FakeHost) -> None:
    util = PowerProfile(((0.2, 0.25), (0.2, 0.75)))
    stat = host.set_proc_stat(util, n_cpus=4)
    found = cpu_estimate.discover(idle_w=10.0, max_w=50.0)
    (c,) = found.channels
    assert c.estimated and c.lane is Lane.SLOW and "estimated" in c.note and c.model is not None
    assert c.model.n_cpus == 4
    got, written = sample_while_driving(host, [c], seconds=0.8)
    t, raw = got[c.name]
    e = converter_for(c).feed(t, raw).energy_j[-1]
    seconds = (t[-1] - t[0]) / 1e9
    u = stat.utilisation_between(int(t[0]), int(t[-1]))
    # Jiffies are whole: one jiffy per CPU of rounding at each end.
    assert e == pytest.approx(10.0 * seconds + 40.0 * u * seconds, abs=40.0 * 2 * 0.01)


def test_cpu_model_override_from_environment(host: FakeHost, monkeypatch: pytest.MonkeyPatch) -> None:
    host.set_proc_stat(PowerProfile.constant(0.5), n_cpus=2)
    monkeypatch.setenv("GREENTOP_CPU_MODEL", "3,30")
    (c,) = cpu_estimate.discover().channels
    assert c.model is not None and (c.model.idle_w, c.model.max_w) == (3.0, 30.0)
    monkeypatch.setenv("GREENTOP_CPU_MODEL", "lots")
    with pytest.raises(ValueError, match="IDLE_W,MAX_W"):
        cpu_estimate.discover()


def test_default_cpu_model_scales_with_cpus(host: FakeHost) -> None:
    host.set_proc_stat(PowerProfile.constant(0.5), n_cpus=8)
    (c,) = cpu_estimate.discover().channels
    assert c.model is not None and c.model.idle_w == 8 * cpu_estimate.IDLE_W_PER_CPU and c.model.max_w == 8 * cpu_estimate.MAX_W_PER_CPU


# --- the merge policy -------------------------------------------------------------------------
def test_sysfs_rapl_is_preferred_and_msrs_are_skipped(host: FakeHost) -> None:
    host.add_cpus(2)
    host.add_rapl_zone("0", "package-0", STEPS)
    host.add_msr(0, INTEL_MSR_PKG_ENERGY_STATUS, STEPS)
    host.set_proc_stat(PowerProfile.constant(0.1), n_cpus=2)
    settle(host)
    found = discover(DiscoveryOptions(gpus=False))
    assert [c.name for c in found.channels] == ["rapl:package-0"]
    assert any("MSRs not read" in n for n in found.notes)
    both = discover(DiscoveryOptions(gpus=False, msr="always"))
    assert {c.name for c in both.channels} == {"rapl:package-0", "msr:package-0"}


def test_msrs_serve_where_sysfs_has_no_rapl_and_no_estimate_is_added(host: FakeHost) -> None:
    host.add_cpus(2)
    host.add_msr(0, INTEL_MSR_PKG_ENERGY_STATUS, STEPS)
    host.set_proc_stat(PowerProfile.constant(0.1), n_cpus=2)
    settle(host)
    assert [c.name for c in discover(DiscoveryOptions(gpus=False)).channels] == ["msr:package-0"]


def test_machine_without_sensors_gets_the_labelled_estimate(host: FakeHost) -> None:
    host.set_proc_stat(PowerProfile.constant(0.1), n_cpus=2)
    found = discover(DiscoveryOptions(gpus=False))
    assert [c.name for c in found.channels] == ["estimate:cpu"]
    assert found.channels[0].estimated
    assert any("estimated" in n for n in found.notes)
