"""RAPL through the powercap driver: ``/sys/class/powercap/intel-rapl[-mmio]:N[:M]/energy_uj``.

The same driver serves AMD CPUs on Linux 5.8 and later, under the same ``intel-rapl`` names.
``energy_uj`` is root-only since the fix for CVE-2020-8694 (a power side channel), so an
unreadable zone is reported with the command that grants access.
"""

from __future__ import annotations

import re
from pathlib import Path

from greentop._paths import display_path, host_path
from greentop.channel import Channel, Problem, Quantity, Reader, ReaderKind
from greentop.sources._common import SourceResult, probe_int, read_text

SOURCE = "rapl-sysfs"
_ZONE = re.compile(r"^(intel-rapl(?:-mmio)?):(\d+)(?::(\d+))?$")


def _fix_for(path: Path) -> str:
    shown = display_path(path)
    return (
        f"sudo chmod o+r {shown} (until reboot); to keep it, add a udev rule such as "
        "/etc/udev/rules.d/99-greentop-rapl.rules: "
        'SUBSYSTEM=="powercap", ACTION=="add", RUN+="/bin/chmod o+r /sys%p/energy_uj" '
        "(this re-opens the CVE-2020-8694 power side channel to local users: your call)"
    )


def _domain(zone_name: str, package: str) -> str:
    if zone_name.startswith("package"):
        return f"cpu-{zone_name}"
    if zone_name == "psys":
        return "psys"
    if zone_name == "core":
        return f"cpu-core-{package}"
    return f"{zone_name}-{package}"  # dram-0, uncore-0


def _zone_sort_key(entry: str) -> tuple[str, int, int]:
    m = _ZONE.match(entry)
    assert m is not None
    return (m.group(1), int(m.group(2)), int(m.group(3) or -1))


def discover() -> SourceResult:
    result = SourceResult()
    base = host_path("/sys/class/powercap")
    try:
        entries = sorted((e for e in (p.name for p in base.iterdir()) if _ZONE.match(e)), key=_zone_sort_key)
    except OSError:
        return result
    top_names: dict[tuple[str, str], str] = {}  # (control type, package index) -> channel name
    seen: set[str] = set()
    for entry in entries:
        m = _ZONE.match(entry)
        assert m is not None
        control, package, sub = m.group(1), m.group(2), m.group(3)
        zone_dir = base / entry
        zone_name = read_text(zone_dir / "name") or entry
        energy = zone_dir / "energy_uj"
        if not energy.exists():
            continue  # some MMIO zones carry power limits only
        is_mmio = control.endswith("mmio")
        prefix = "rapl-mmio" if is_mmio else "rapl"
        if sub is None:
            name = f"{prefix}:{zone_name}"
            parent = ""
            if is_mmio and ("intel-rapl", package) in top_names:
                # The MMIO interface reports the same package counter as the MSR-backed zone.
                parent = top_names[("intel-rapl", package)]
            top_names[(control, package)] = name
        else:
            parent = top_names.get((control, package), "")
            name = f"{parent or prefix + ':' + entry}:{zone_name}"
        if name in seen:
            name = f"{name}@{entry}"
        seen.add(name)
        try:
            probe_int(energy)
        except PermissionError:
            result.problems.append(
                Problem(SOURCE, display_path(energy), "permission denied (root-only since CVE-2020-8694)", _fix_for(energy))
            )
            continue
        except OSError as exc:
            result.problems.append(Problem(SOURCE, display_path(energy), f"unreadable: {exc}", "check the powercap driver (dmesg | grep -i rapl)"))
            continue
        max_range = read_text(zone_dir / "max_energy_range_uj")
        wrap = int(max_range) + 1 if max_range and max_range.isdigit() else 0
        result.channels.append(
            Channel(
                name=name,
                source=SOURCE,
                domain=_domain(zone_name, package),
                quantity=Quantity.ENERGY,
                unit="uJ",
                scale=1e-6,
                reader=Reader(ReaderKind.FILE_DECIMAL, path=str(energy)),
                wrap_raw=wrap,
                # DRAM is outside the package domain (Intel SDM vol. 3B, 15.10): sysfs only nests it.
                parent="" if zone_name == "dram" else parent,
                note="psys covers the whole platform, packages included" if zone_name == "psys" else "",
            )
        )
    return result
