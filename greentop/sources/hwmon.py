"""hwmon: ``/sys/class/hwmon/hwmonN/energyK_input`` (µJ counters) and ``powerK_input`` /
``powerK_average`` (µW gauges), from drivers such as amd_energy, zenpower, ACPI power meters
and some BMC-backed boards."""

from __future__ import annotations

import re

from greentop._paths import display_path, host_path
from greentop.channel import Channel, Problem, Quantity, Reader, ReaderKind
from greentop.sources._common import SourceResult, probe_int, read_text

SOURCE = "hwmon"
_FILE = re.compile(r"^(energy|power)(\d+)_(input|average)$")
_CPU_DRIVERS = ("amd_energy", "zenergy", "zenpower")


def _domain(driver: str, label: str) -> str:
    if driver in _CPU_DRIVERS:
        m = re.fullmatch(r"Esocket(\d+)", label)
        if m:
            return f"cpu-package-{m.group(1)}"
        m = re.fullmatch(r"Ecore(\d+)", label)
        if m:
            return f"cpu-core-{int(m.group(1))}"
    return f"{driver}:{label}"


def discover() -> SourceResult:
    result = SourceResult()
    base = host_path("/sys/class/hwmon")
    try:
        devices = sorted((p for p in base.iterdir() if re.fullmatch(r"hwmon\d+", p.name)), key=lambda p: int(p.name[5:]))
    except OSError:
        return result
    for dev in devices:
        driver = read_text(dev / "name") or dev.name
        try:
            files = sorted((f for f in (p.name for p in dev.iterdir()) if _FILE.match(f)), key=_file_key)
        except OSError:
            continue
        power_seen: set[str] = set()
        names = {c.name for c in result.channels}
        for fname in files:
            m = _FILE.match(fname)
            assert m is not None
            kind, index = m.group(1), m.group(2)
            if kind == "power" and index in power_seen:
                continue  # powerK_input preferred; powerK_average only where no input exists
            path = dev / fname
            label = read_text(dev / f"{kind}{index}_label") or f"{kind}{index}"
            try:
                probe_int(path)
            except PermissionError:
                result.problems.append(
                    Problem(SOURCE, display_path(path), "permission denied", f"sudo chmod o+r {display_path(path)}")
                )
                continue
            except OSError as exc:
                result.problems.append(Problem(SOURCE, display_path(path), f"unreadable: {exc}", "check the driver (dmesg)"))
                continue
            if kind == "power":
                power_seen.add(index)
            name = f"hwmon:{driver}:{label}"
            if name in names:
                name = f"hwmon:{dev.name}:{label}"
            result.channels.append(
                Channel(
                    name=name,
                    source=SOURCE,
                    domain=_domain(driver, label),
                    quantity=Quantity.ENERGY if kind == "energy" else Quantity.POWER,
                    unit="uJ" if kind == "energy" else "uW",
                    scale=1e-6,
                    reader=Reader(ReaderKind.FILE_DECIMAL, path=str(path)),
                    wrap_raw=0,
                    note=f"{dev.name}/{fname}",
                )
            )
    return result


def _file_key(fname: str) -> tuple[str, int, int]:
    m = _FILE.match(fname)
    assert m is not None
    return (m.group(1), int(m.group(2)), 0 if m.group(3) == "input" else 1)
