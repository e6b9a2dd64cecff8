"""The fake host tree follows the kernel's layout and the scripted truth."""

from __future__ import annotations

import os
import stat
import threading
import time
from pathlib import Path

import pytest

from tests.fakes.host import (
    AMD_MSR_CORE_ENERGY_STATUS,
    AMD_MSR_PKG_ENERGY_STATUS,
    AMD_MSR_RAPL_POWER_UNIT,
    INTEL_MSR_DRAM_ENERGY_STATUS,
    INTEL_MSR_PKG_ENERGY_STATUS,
    INTEL_MSR_RAPL_POWER_UNIT,
    FakeHost,
    msr_energy_unit_j,
)
from tests.fakes.profile import PowerProfile

STEPS = PowerProfile(((0.05, 20.0), (0.03, 80.0), (0.02, 5.0)), repeat=True)


def read_int(fd: int) -> int:
    return int(os.pread(fd, 64, 0))


def read_text(path: Path) -> str:
    return path.read_text()


# --- powercap layout ---------------------------------------------------------------------------
def test_powercap_layout_follows_the_kernel(tmp_path: Path) -> None:
    host = FakeHost(tmp_path)
    host.add_rapl_zone("0", "package-0", STEPS)
    host.add_rapl_zone("0:0", "core", STEPS)
    host.add_rapl_zone("0:1", "uncore", STEPS)
    host.add_rapl_zone("0:2", "dram", STEPS, max_energy_range_uj=65532610987)
    host.add_rapl_zone("1", "psys", STEPS)
    host.add_rapl_zone("0", "package-0", STEPS, mmio=True)
    cls = tmp_path / "sys/class/powercap"
    dev = tmp_path / "sys/devices/virtual/powercap"

    assert sorted(p.name for p in cls.iterdir()) == [
        "intel-rapl",
        "intel-rapl-mmio",
        "intel-rapl-mmio:0",
        "intel-rapl:0",
        "intel-rapl:0:0",
        "intel-rapl:0:1",
        "intel-rapl:0:2",
        "intel-rapl:1",
    ]
    assert all(p.is_symlink() for p in cls.iterdir())
    assert (
        os.readlink(cls / "intel-rapl:0")
        == "../../devices/virtual/powercap/intel-rapl/intel-rapl:0"
    )
    assert (
        os.readlink(cls / "intel-rapl:0:0")
        == "../../devices/virtual/powercap/intel-rapl/intel-rapl:0/intel-rapl:0:0"
    )
    assert os.readlink(cls / "intel-rapl") == "../../devices/virtual/powercap/intel-rapl"
    assert (cls / "intel-rapl:0:1").resolve() == (
        dev / "intel-rapl/intel-rapl:0/intel-rapl:0:1"
    ).resolve()
    assert (cls / "intel-rapl-mmio:0").resolve() == (
        dev / "intel-rapl-mmio/intel-rapl-mmio:0"
    ).resolve()
    # the control type holds `enabled` and its zones, no counter
    assert read_text(cls / "intel-rapl/enabled") == "1\n"
    assert not (cls / "intel-rapl/energy_uj").exists()
    names = {
        z: read_text(cls / z / "name")
        for z in (
            "intel-rapl:0",
            "intel-rapl:0:0",
            "intel-rapl:0:1",
            "intel-rapl:0:2",
            "intel-rapl:1",
            "intel-rapl-mmio:0",
        )
    }
    assert names == {
        "intel-rapl:0": "package-0\n",
        "intel-rapl:0:0": "core\n",
        "intel-rapl:0:1": "uncore\n",
        "intel-rapl:0:2": "dram\n",
        "intel-rapl:1": "psys\n",
        "intel-rapl-mmio:0": "package-0\n",
    }
    assert read_text(cls / "intel-rapl:0/max_energy_range_uj") == "262143328850\n"
    assert read_text(cls / "intel-rapl:0:2/max_energy_range_uj") == "65532610987\n"
    assert read_text(cls / "intel-rapl:0/enabled") == "1\n"
    assert read_text(cls / "intel-rapl:0/energy_uj") == "0\n"
    host.close()


def test_subzone_needs_its_parent(tmp_path: Path) -> None:
    host = FakeHost(tmp_path)
    with pytest.raises(ValueError):
        host.add_rapl_zone("2:0", "core", STEPS)
    with pytest.raises(ValueError):
        host.add_rapl_zone("package", "package-0", STEPS)
    host.close()


# --- counters follow the profile -----------------------------------------------------------------
def test_counter_read_twice_moves_by_the_scripted_energy(tmp_path: Path) -> None:
    host = FakeHost(tmp_path)
    pkg = host.add_rapl_zone("0", "package-0", STEPS, start_uj=123_456)
    with host:  # starts the writer thread; stops and closes on exit
        fd = os.open(pkg.path, os.O_RDONLY)
        ino = os.fstat(fd).st_ino
        samples = []
        for _ in range(40):
            before = host.last_tick_ns
            raw = os.pread(fd, 64, 0)
            after = time.monotonic_ns()
            samples.append((before, int(raw), after))
            time.sleep(0.005)
        os.close(fd)
        assert os.stat(pkg.path).st_ino == ino  # rewritten in place, never replaced
    for (b0, v0, a0), (b1, v1, a1) in zip(samples, samples[1:]):
        # v0 was written for some tick in [b0, a0], v1 for one in [b1, a1]
        moved_j = (v1 - v0) * 1e-6
        assert pkg.energy_between_j(a0, b1) - 1e-6 <= moved_j <= pkg.energy_between_j(b0, a1) + 1e-6
        # and within about one tick of energy of the truth between the reads
        assert (
            abs(moved_j - pkg.energy_between_j(a0, a1)) <= 80.0 * (a1 - b1 + a0 - b0) / 1e9 + 2e-6
        )
    # every value is the formula at its tick
    first = samples[0]
    assert first[1] >= 123_456
    total_j = (samples[-1][1] - samples[0][1]) * 1e-6
    truth_j = pkg.energy_between_j(samples[0][2], samples[-1][2])
    assert total_j == pytest.approx(truth_j, abs=0.2)
    assert total_j > 1.0  # about 0.2 s at 35 W mean


def test_value_at_is_exactly_what_is_written(tmp_path: Path) -> None:
    host = FakeHost(tmp_path)
    pkg = host.add_rapl_zone("0", "package-0", STEPS, start_uj=7)
    host.start(writer="none")
    for t_ms in (0, 1, 13, 49, 50, 51, 79, 80, 99, 100, 101, 1234):
        t_ns = host.epoch_ns + t_ms * 1_000_000
        host.update(t_ns)
        text = read_text(tmp_path / "sys/class/powercap/intel-rapl:0/energy_uj")
        assert text == f"{pkg.value_at(t_ns)}\n"
        expected = 7 + int(STEPS.energy_j(t_ms / 1000) * 1e6 + 1e-6)
        assert abs(int(text) - expected) <= 1
    host.close()


def test_powercap_counter_wraps_at_max_energy_range(tmp_path: Path) -> None:
    host = FakeHost(tmp_path)
    pkg = host.add_rapl_zone(
        "0", "package-0", PowerProfile.constant(50.0), max_energy_range_uj=999_999
    )
    host.start(writer="none")
    path = tmp_path / "sys/class/powercap/intel-rapl:0/energy_uj"
    host.update(host.epoch_ns + 19_000_010)  # 950000.5 uJ
    assert read_text(path) == "950000\n"
    host.update(host.epoch_ns + 20_000_010)  # 1000000.5 uJ: wraps to 0 after 999999
    assert read_text(path) == "0\n"  # in place, shorter text truncated
    host.update(host.epoch_ns + 20_100_010)
    assert read_text(path) == "5000\n" == f"{pkg.value_at(host.epoch_ns + 20_100_010)}\n"
    host.close()

    # and the live writer wraps too: 25 W on a 1 J range wraps every 40 ms (a counter added
    # after start follows the same epoch and holds the last tick's value at once)
    with FakeHost(tmp_path / "live") as host:
        pkg = host.add_rapl_zone(
            "0", "package-0", PowerProfile.constant(25.0), max_energy_range_uj=999_999
        )
        fd = os.open(pkg.path, os.O_RDONLY)
        tick_before_first = host.last_tick_ns
        values, unwrapped = [read_int(fd)], 0
        t_first = time.monotonic_ns()
        while time.monotonic_ns() - t_first < 250_000_000:
            time.sleep(0.002)
            tick_before_last = host.last_tick_ns
            values.append(read_int(fd))
            unwrapped += (values[-1] - values[-2]) % 1_000_000
        t_last = time.monotonic_ns()
        os.close(fd)
    assert all(0 <= v <= 999_999 for v in values)
    assert sum(b < a for a, b in zip(values, values[1:])) >= 4  # it wrapped, about 6 times
    # the first value is for a tick in [tick_before_first, t_first], the last in [.., t_last]
    low_j = pkg.energy_between_j(t_first, tick_before_last) - 2e-6
    high_j = pkg.energy_between_j(tick_before_first, t_last) + 2e-6
    assert low_j <= unwrapped * 1e-6 <= high_j


# --- hwmon -------------------------------------------------------------------------------------
def test_hwmon_layout_and_values(tmp_path: Path) -> None:
    host = FakeHost(tmp_path)
    e1, e2, p1 = host.add_hwmon(
        "amd_energy",
        energy=[("Esocket0", STEPS), (None, PowerProfile.constant(3.0))],
        power=[("PPT", STEPS)],
    )
    pi, pa = host.add_hwmon("acpi_power", power=[(None, STEPS)], power_file="both")
    cls = tmp_path / "sys/class/hwmon"
    assert os.readlink(cls / "hwmon0") == "../../devices/platform/amd_energy.0/hwmon/hwmon0"
    assert (cls / "hwmon0").resolve() == (
        tmp_path / "sys/devices/platform/amd_energy.0/hwmon/hwmon0"
    ).resolve()
    assert read_text(cls / "hwmon0/name") == "amd_energy\n"
    assert read_text(cls / "hwmon1/name") == "acpi_power\n"
    assert read_text(cls / "hwmon0/energy1_label") == "Esocket0\n"
    assert not (cls / "hwmon0/energy2_label").exists()
    assert read_text(cls / "hwmon0/power1_label") == "PPT\n"
    assert e1.path == cls / "hwmon0/energy1_input" and e2.path == cls / "hwmon0/energy2_input"
    assert p1.path == cls / "hwmon0/power1_input" and not (cls / "hwmon0/power1_average").exists()
    assert pi.path == cls / "hwmon1/power1_input" and pa.path == cls / "hwmon1/power1_average"
    host.start(writer="none")
    t_ns = host.epoch_ns + 60_000_000  # in the 80 W segment
    host.update(t_ns)
    assert read_text(e1.path) == f"{int(STEPS.energy_j(0.06) * 1e6)}\n"
    assert int(read_text(e2.path)) == e2.value_at(t_ns) and abs(e2.value_at(t_ns) - 180_000) <= 1
    assert read_text(p1.path) == "80000000\n" == read_text(pa.path) == read_text(pi.path)
    host.update(host.epoch_ns + 90_000_000)  # 5 W: shorter text
    assert read_text(p1.path) == "5000000\n"
    assert p1.power_w_at(host.epoch_ns + 90_000_000) == 5.0
    host.close()


# --- MSR ---------------------------------------------------------------------------------------
def test_intel_msr_decodes_with_the_unit_register(tmp_path: Path) -> None:
    host = FakeHost(tmp_path)
    host.add_cpus(4)
    host.set_msr_unit(0, INTEL_MSR_RAPL_POWER_UNIT, 14)
    pkg = host.add_msr(0, INTEL_MSR_PKG_ENERGY_STATUS, PowerProfile.constant(40.0))
    host.add_msr(0, INTEL_MSR_DRAM_ENERGY_STATUS, PowerProfile.constant(4.0))
    with host:
        msr = tmp_path / "dev/cpu/0/msr"
        assert pkg.path == (msr, 0x611) and msr.is_file()
        fd = os.open(msr, os.O_RDONLY)
        unit_raw = int.from_bytes(os.pread(fd, 8, 0x606), "little")
        assert (unit_raw >> 8) & 0x1F == 14 and unit_raw & 0xF == 3 and (unit_raw >> 16) & 0xF == 10
        unit_j = msr_energy_unit_j(unit_raw)
        assert unit_j == pkg.unit_j == 2.0**-14
        b0 = host.last_tick_ns
        p0 = int.from_bytes(os.pread(fd, 8, 0x611), "little")
        d0 = int.from_bytes(os.pread(fd, 8, 0x619), "little")
        t0 = time.monotonic_ns()
        time.sleep(0.2)
        b1 = host.last_tick_ns
        p1 = int.from_bytes(os.pread(fd, 8, 0x611), "little")
        d1 = int.from_bytes(os.pread(fd, 8, 0x619), "little")
        t1 = time.monotonic_ns()
        os.close(fd)
    assert p1 < 2**32 and d1 < 2**32
    assert (
        pkg.energy_between_j(t0, b1) - unit_j
        <= (p1 - p0) * unit_j
        <= pkg.energy_between_j(b0, t1) + unit_j
    )
    assert (p1 - p0) * unit_j == pytest.approx(40.0 * (t1 - t0) / 1e9, abs=0.5)
    assert (d1 - d0) * unit_j == pytest.approx(4.0 * (t1 - t0) / 1e9, abs=0.05)


def test_msr_counter_wraps_at_32_bits(tmp_path: Path) -> None:
    host = FakeHost(tmp_path)
    pkg = host.add_msr(
        0, INTEL_MSR_PKG_ENERGY_STATUS, PowerProfile.constant(20.0), start_units=2**32 - 1000
    )
    host.start(writer="none")
    msr = tmp_path / "dev/cpu/0/msr"
    fd = os.open(msr, os.O_RDONLY)
    assert int.from_bytes(os.pread(fd, 8, 0x611), "little") == 2**32 - 1000
    t_ns = host.epoch_ns + 10_000_000  # 0.2 J = 3276.8 units at ESU 14 (the default)
    host.update(t_ns)
    raw = int.from_bytes(os.pread(fd, 8, 0x611), "little")
    assert raw == 3276 - 1000 == pkg.value_at(t_ns)
    assert pkg.delta_j(2**32 - 1000, raw) == pytest.approx(0.2, abs=2**-14)
    os.close(fd)
    host.close()


def test_amd_msr(tmp_path: Path) -> None:
    host = FakeHost(tmp_path)
    host.add_cpus(2, vendor="AuthenticAMD")
    pkg = host.add_msr(0, AMD_MSR_PKG_ENERGY_STATUS, PowerProfile.constant(100.0))  # ESU 16 default
    core = host.add_msr(1, AMD_MSR_CORE_ENERGY_STATUS, PowerProfile.constant(8.0))
    host.start(writer="none")
    host.update(host.epoch_ns + 500_000_000)
    fd0 = os.open(tmp_path / "dev/cpu/0/msr", os.O_RDONLY)
    fd1 = os.open(tmp_path / "dev/cpu/1/msr", os.O_RDONLY)
    unit0 = int.from_bytes(os.pread(fd0, 8, AMD_MSR_RAPL_POWER_UNIT), "little")
    # 0xA1003 as Zen parts report, but the package counter 2 bytes above overwrites bits 16 and up
    assert unit0 & 0xFFFF == 0x1003 and msr_energy_unit_j(unit0) == 2.0**-16
    assert int.from_bytes(
        os.pread(fd0, 8, AMD_MSR_PKG_ENERGY_STATUS), "little"
    ) * 2.0**-16 == pytest.approx(50.0)
    assert int.from_bytes(
        os.pread(fd1, 8, AMD_MSR_CORE_ENERGY_STATUS), "little"
    ) * 2.0**-16 == pytest.approx(4.0)
    assert os.pread(fd0, 8, 0x611) in (b"", bytes(8))  # no Intel register there
    assert pkg.modulus == core.modulus == 2**32
    # per-core 0xC001029A would clobber the unit register's ESU byte: never on one cpu together
    with pytest.raises(ValueError):
        host.set_msr_unit(1, AMD_MSR_RAPL_POWER_UNIT, 16)
    with pytest.raises(ValueError):
        host.add_msr(0, AMD_MSR_CORE_ENERGY_STATUS, PowerProfile.constant(1.0))
    os.close(fd0)
    os.close(fd1)
    assert "AuthenticAMD" in read_text(tmp_path / "proc/cpuinfo")
    host.close()


def test_cpu_topology_and_cpuinfo(tmp_path: Path) -> None:
    host = FakeHost(tmp_path)
    host.add_cpus(8, packages=2, smt=2, model_name="Test CPU")
    cpu = tmp_path / "sys/devices/system/cpu"
    assert read_text(cpu / "online") == "0-7\n"
    pkgs = [int(read_text(cpu / f"cpu{i}/topology/physical_package_id")) for i in range(8)]
    cores = [int(read_text(cpu / f"cpu{i}/topology/core_id")) for i in range(8)]
    assert pkgs == [0, 0, 1, 1, 0, 0, 1, 1]
    assert cores == [0, 1, 0, 1, 0, 1, 0, 1]
    assert read_text(cpu / "cpu0/topology/thread_siblings_list") == "0,4\n"
    assert read_text(cpu / "cpu2/topology/core_siblings_list") == "2-3,6-7\n"
    blocks = [b for b in read_text(tmp_path / "proc/cpuinfo").split("\n\n") if b.strip()]
    assert len(blocks) == 8
    parsed = [
        dict((k.strip(), v.strip()) for k, v in (ln.split(":", 1) for ln in b.splitlines()))
        for b in blocks
    ]
    assert [int(p["processor"]) for p in parsed] == list(range(8))
    assert {p["vendor_id"] for p in parsed} == {"GenuineIntel"}
    assert {p["model name"] for p in parsed} == {"Test CPU"}
    assert [int(p["physical id"]) for p in parsed] == pkgs
    assert [int(p["core id"]) for p in parsed] == cores
    assert "processor\t: 3\n" in blocks[3] + "\n"
    host.close()


# --- /proc/stat --------------------------------------------------------------------------------
def parse_stat(path: Path) -> dict[str, list[int]]:
    out = {}
    for line in path.read_text().splitlines():
        key, *vals = line.split()
        out[key] = [int(v) for v in vals]
    return out


def busy_idle(fields: list[int]) -> tuple[int, int]:
    user, nice, system, idle, iowait, irq, softirq, steal = fields[:8]
    return user + nice + system + irq + softirq + steal, idle + iowait


def test_proc_stat_follows_the_utilisation_profile(tmp_path: Path) -> None:
    util = PowerProfile(((0.2, 0.25), (0.3, 0.75)), repeat=True)
    host = FakeHost(tmp_path)
    stat_h = host.set_proc_stat(util, 4)
    host.start(writer="none")
    path = tmp_path / "proc/stat"
    text = path.read_text()
    assert text.startswith("cpu  ")
    assert [ln.split()[0] for ln in text.splitlines()] == [
        "cpu",
        "cpu0",
        "cpu1",
        "cpu2",
        "cpu3",
        "intr",
        "ctxt",
        "btime",
        "processes",
        "procs_running",
        "procs_blocked",
        "softirq",
    ]
    assert all(len(ln.split()) == 11 for ln in text.splitlines()[:5])
    host.update(host.epoch_ns + 100_000_000)
    s0 = parse_stat(path)
    host.update(host.epoch_ns + 400_000_000)  # 0.1 s at 25 %, 0.2 s at 75 % of 4 cpus
    s1 = parse_stat(path)
    b0, i0 = busy_idle(s0["cpu"])
    b1, i1 = busy_idle(s1["cpu"])
    # 4 cpus x 100 jiffies/s x (0.1 s at 25 % + 0.2 s at 75 %) = 70 busy, 50 idle
    jb0, ji0 = stat_h.jiffies_at(host.epoch_ns + 100_000_000)
    jb1, ji1 = stat_h.jiffies_at(host.epoch_ns + 400_000_000)
    assert (b1 - b0, i1 - i0) == (jb1 - jb0, ji1 - ji0)
    assert abs((b1 - b0) - 70) <= 1 and abs((i1 - i0) - 50) <= 1
    # the per-cpu lines sum to the aggregate
    assert [sum(s1[f"cpu{i}"][j] for i in range(4)) for j in range(10)] == s1["cpu"]
    assert stat_h.utilisation_between(
        host.epoch_ns + 100_000_000, host.epoch_ns + 400_000_000
    ) == pytest.approx(70 / 120)
    host.close()

    # live: the busy share over 0.3 s matches the truth within a couple of jiffies
    with FakeHost(tmp_path / "live") as host:
        stat_h = host.set_proc_stat(util, 2)
        path = tmp_path / "live/proc/stat"
        fd = os.open(path, os.O_RDONLY)
        t0 = time.monotonic_ns()
        b0, i0 = busy_idle([int(v) for v in os.pread(fd, 4096, 0).split(b"\n")[0].split()[1:]])
        time.sleep(0.3)
        b1, i1 = busy_idle([int(v) for v in os.pread(fd, 4096, 0).split(b"\n")[0].split()[1:]])
        t1 = time.monotonic_ns()
        os.close(fd)
    truth_busy = (
        2
        * 100
        * stat_h.profile.energy_between_j((t0 - host.epoch_ns) / 1e9, (t1 - host.epoch_ns) / 1e9)
    )
    assert abs((b1 - b0) - truth_busy) <= 4
    assert abs((b1 - b0 + i1 - i0) - 2 * 100 * (t1 - t0) / 1e9) <= 4


# --- permissions -------------------------------------------------------------------------------
def test_deny_sets_mode_000_and_writer_keeps_going(tmp_path: Path) -> None:
    host = FakeHost(tmp_path)
    pkg = host.add_rapl_zone("0", "package-0", PowerProfile.constant(10.0))
    core = host.add_rapl_zone("0:0", "core", PowerProfile.constant(5.0), readable=False)
    msr = host.add_msr(0, INTEL_MSR_PKG_ENERGY_STATUS, PowerProfile.constant(10.0))
    assert stat.S_IMODE(os.stat(pkg.path).st_mode) == 0o444
    assert stat.S_IMODE(os.stat(core.path).st_mode) == 0
    assert stat.S_IMODE(os.stat(msr.path[0]).st_mode) == 0o600
    host.deny(pkg.path)
    host.deny("dev/cpu/0/msr")
    assert stat.S_IMODE(os.stat(pkg.path).st_mode) == 0
    assert stat.S_IMODE(os.stat(msr.path[0]).st_mode) == 0
    host.start(writer="none")
    host.update(host.epoch_ns + 1_000_000_000)
    assert os.stat(pkg.path).st_size == len("10000000\n")  # still written through the open fd
    if os.geteuid() != 0:
        with pytest.raises(PermissionError):
            open(pkg.path).close()
    host.close()


# --- the writer --------------------------------------------------------------------------------
def test_writer_keeps_up_and_never_runs_ahead(tmp_path: Path) -> None:
    with FakeHost(tmp_path) as host:
        for z in range(4):
            host.add_rapl_zone(str(z), f"package-{z}", STEPS)
        host.add_hwmon("x", energy=[(None, STEPS)] * 4, power=[(None, STEPS)] * 4)
        host.set_proc_stat(PowerProfile.constant(0.5), 4)
        lags = []
        for _ in range(100):
            time.sleep(0.002)
            now = time.monotonic_ns()
            last = host.last_tick_ns
            assert last <= now and (last - host.epoch_ns) % host.tick_ns == 0
            lags.append(now - last)
    assert host.passes > 100
    lags.sort()
    assert lags[len(lags) // 2] < 5_000_000  # median lag under 5 ms on a loaded machine


def test_process_writer_runs_while_python_spins(tmp_path: Path) -> None:
    host = FakeHost(tmp_path)
    pkg = host.add_rapl_zone("0", "package-0", PowerProfile.constant(30.0))
    host.start(writer="process")
    stop = threading.Event()

    def spin() -> None:
        x = 0
        while not stop.is_set():
            x += 1

    spinner = threading.Thread(target=spin)
    spinner.start()
    try:
        fd = os.open(pkg.path, os.O_RDONLY)
        t0 = time.monotonic_ns()
        v0 = read_int(fd)
        time.sleep(0.2)
        v1 = read_int(fd)
        t1 = time.monotonic_ns()
        os.close(fd)
        assert (v1 - v0) * 1e-6 == pytest.approx(30.0 * (t1 - t0) / 1e9, abs=0.3)
        assert host.passes > 50
    finally:
        stop.set()
        spinner.join()
        host.close()
    assert host._child_pid is None


def test_restart_after_a_process_writer_rewrites_exactly(tmp_path: Path) -> None:
    host = FakeHost(tmp_path)
    pkg = host.add_rapl_zone("0", "package-0", PowerProfile.constant(100.0))
    host.start(writer="process")
    time.sleep(0.05)
    host.stop()
    assert int(read_text(pkg.path)) > 1_000_000  # the child wrote several joules' worth
    host.start(writer="none")  # a new epoch: the counter starts again from start_uj
    host.update(host.epoch_ns + 1_005_000)
    assert read_text(pkg.path) == f"{pkg.value_at(host.epoch_ns + 1_005_000)}\n" == "100500\n"
    host.close()
