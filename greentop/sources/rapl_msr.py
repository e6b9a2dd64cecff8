"""RAPL through the model-specific registers: ``pread(/dev/cpu/N/msr, 8, offset=register)``.

One reading per package (per core for AMD's core counters), taken on the first CPU of each.
Energy counters are 32 bits wide in units of 1/2^ESU J, ESU being bits 12:8 of the unit register.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from greentop._paths import display_path, host_path
from greentop.channel import Channel, Problem, Quantity, Reader, ReaderKind
from greentop.sources._common import SourceResult, read_text

SOURCE = "rapl-msr"
COUNTER_MASK = 0xFFFF_FFFF
COUNTER_WRAP = 1 << 32

INTEL_UNIT = 0x606
INTEL_REGISTERS: tuple[tuple[int, str], ...] = (
    (0x611, "package"),
    (0x619, "dram"),
    (0x639, "pp0"),
    (0x641, "pp1"),
    (0x64D, "psys"),
)
AMD_UNIT = 0xC0010299
AMD_CORE = 0xC001029A
AMD_PACKAGE = 0xC001029B

FIX_MODPROBE = "sudo modprobe msr (keep it across reboots: echo msr | sudo tee /etc/modules-load.d/msr.conf)"
FIX_PERMISSION = (
    "reading MSRs needs root, or CAP_SYS_RAWIO plus read access: "
    "sudo setcap cap_sys_rawio=ep $(readlink -f $(which python3)) && sudo chmod o+r /dev/cpu/*/msr"
)


@dataclass(frozen=True)
class Cpu:
    index: int
    package: int
    core: int


def cpu_vendor() -> str:
    """``GenuineIntel``, ``AuthenticAMD``, ``HygonGenuine`` or "" from /proc/cpuinfo."""
    text = read_text(host_path("/proc/cpuinfo")) or ""
    m = re.search(r"^vendor_id\s*:\s*(\S+)", text, re.MULTILINE)
    return m.group(1) if m else ""


def is_virtual_machine() -> bool:
    text = read_text(host_path("/proc/cpuinfo")) or ""
    return bool(re.search(r"^flags\s*:.*\bhypervisor\b", text, re.MULTILINE))


def list_cpus() -> list[Cpu]:
    base = host_path("/sys/devices/system/cpu")
    cpus: list[Cpu] = []
    try:
        entries = [p for p in base.iterdir() if re.fullmatch(r"cpu\d+", p.name)]
    except OSError:
        return cpus
    for p in entries:
        pkg = read_text(p / "topology" / "physical_package_id")
        core = read_text(p / "topology" / "core_id")
        if pkg is None or not pkg.lstrip("-").isdigit():
            continue
        cpus.append(Cpu(int(p.name[3:]), int(pkg), int(core) if core and core.isdigit() else 0))
    return sorted(cpus, key=lambda c: c.index)


def read_msr(path: Path, register: int) -> int | None:
    """The 64-bit register value, or None where the CPU has no such register. Raises OSError."""
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            data = os.pread(fd, 8, register)
        except OSError as exc:
            if exc.errno == 5:  # EIO: the rdmsr faulted, so the register does not exist
                return None
            raise
    finally:
        os.close(fd)
    if len(data) != 8:
        return None
    return int(struct.unpack("<Q", data)[0])


def energy_unit_j(unit_register_value: int) -> tuple[float, int]:
    esu = (unit_register_value >> 8) & 0x1F
    return 1.0 / (1 << esu), esu


def _channel(name: str, domain: str, path: Path, register: int, esu: int, parent: str = "", note: str = "") -> Channel:
    return Channel(
        name=name,
        source=SOURCE,
        domain=domain,
        quantity=Quantity.ENERGY,
        unit=f"2^-{esu} J",
        scale=1.0 / (1 << esu),
        reader=Reader(ReaderKind.MSR, path=str(path), register=register, mask=COUNTER_MASK),
        wrap_raw=COUNTER_WRAP,
        parent=parent,
        note=note,
    )


def _msr_path(cpu: int) -> Path:
    return host_path(f"/dev/cpu/{cpu}/msr")


def discover() -> SourceResult:
    result = SourceResult()
    vendor = cpu_vendor()
    if vendor not in ("GenuineIntel", "AuthenticAMD", "HygonGenuine"):
        return result
    cpus = list_cpus()
    if not cpus:
        return result
    first = cpus[0]
    probe = _msr_path(first.index)
    try:
        unit_value = read_msr(probe, INTEL_UNIT if vendor == "GenuineIntel" else AMD_UNIT)
    except FileNotFoundError:
        reason = "no MSR device: the msr kernel module is not loaded"
        if is_virtual_machine():
            reason += " (this is a virtual machine: its hypervisor may not expose RAPL at all)"
        result.problems.append(Problem(SOURCE, display_path(probe), reason, FIX_MODPROBE))
        return result
    except PermissionError:
        result.problems.append(Problem(SOURCE, display_path(probe), "permission denied", FIX_PERMISSION))
        return result
    except OSError as exc:
        result.problems.append(Problem(SOURCE, display_path(probe), f"unreadable: {exc}", FIX_PERMISSION))
        return result
    if unit_value is None:
        result.notes.append(f"{vendor} CPU without the RAPL unit register: no RAPL MSRs")
        return result
    if vendor == "GenuineIntel":
        _discover_intel(result, cpus, unit_value)
    else:
        _discover_amd(result, cpus, unit_value)
    return result


def _first_per(cpus: list[Cpu], key: str) -> list[Cpu]:
    seen: dict[tuple[int, ...], Cpu] = {}
    for c in cpus:
        k = (c.package,) if key == "package" else (c.package, c.core)
        seen.setdefault(k, c)
    return list(seen.values())


def _last_per_core(cpus: list[Cpu]) -> list[Cpu]:
    """Any thread of a core reads that core's counter; the last one spreads the reads away from
    the CPU that also serves the package counter."""
    seen: dict[tuple[int, int], Cpu] = {}
    for c in cpus:
        seen[(c.package, c.core)] = c
    return sorted(seen.values(), key=lambda c: (c.package, c.core))


def _readable(path: Path, register: int) -> bool:
    """Whether the CPU implements this counter. Absent registers fault (EIO) on most parts;
    some return 0 instead, and a live energy counter is never exactly 0 after boot."""
    try:
        value = read_msr(path, register)
    except OSError:
        return False
    return bool(value and value & COUNTER_MASK)


def _discover_intel(result: SourceResult, cpus: list[Cpu], unit_value: int) -> None:
    _, esu = energy_unit_j(unit_value)
    for cpu in _first_per(cpus, "package"):
        path = _msr_path(cpu.index)
        package_name = f"msr:package-{cpu.package}"
        for register, label in INTEL_REGISTERS:
            if label == "psys" and cpu.package != cpus[0].package:
                continue  # one platform counter, read once
            if not _readable(path, register):
                continue
            if label == "package":
                name, domain, parent, note = package_name, f"cpu-package-{cpu.package}", "", ""
            elif label == "psys":
                name, domain, parent, note = "msr:psys", "psys", "", "psys covers the whole platform, packages included"
            else:
                domain = {"dram": "dram", "pp0": "cpu-core", "pp1": "uncore"}[label]
                name, domain, parent = f"{package_name}:{label}", f"{domain}-{cpu.package}", package_name
                if label == "dram":
                    parent = ""  # DRAM is outside the package domain (Intel SDM vol. 3B, 15.10)
                note = "some Xeon parts count DRAM in fixed 15.3 uJ units, not the unit register's" if label == "dram" else ""
            result.channels.append(_channel(name, domain, path, register, esu, parent, note))


def _discover_amd(result: SourceResult, cpus: list[Cpu], unit_value: int) -> None:
    _, esu = energy_unit_j(unit_value)
    for cpu in _first_per(cpus, "package"):
        path = _msr_path(cpu.index)
        if _readable(path, AMD_PACKAGE):
            result.channels.append(_channel(f"msr:package-{cpu.package}", f"cpu-package-{cpu.package}", path, AMD_PACKAGE, esu))
    for cpu in _last_per_core(cpus):
        path = _msr_path(cpu.index)
        if _readable(path, AMD_CORE):
            parent = f"msr:package-{cpu.package}"
            result.channels.append(
                _channel(f"{parent}:core-{cpu.core}", f"cpu-core-{cpu.package}.{cpu.core}", path, AMD_CORE, esu, parent)
            )
