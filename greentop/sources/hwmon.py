"""hwmon: ``/sys/class/hwmon/hwmonN/energyK_input`` (µJ counters) and ``powerK_input`` /
``powerK_average`` (µW gauges), from drivers such as amd_energy, zenpower, ACPI power meters,
GPU drivers and board rail monitors.

What a meter measures decides its domain, and so whether the machine total adds it
(``domains.plan_domains``); the hwmon ``name`` file says which driver it is:

- CPU drivers (amd_energy, zenergy, zenpower): ``Esocket<N>`` is ``cpu-package-<N>``, ``Ecore<N>``
  ``cpu-core-<N>``.
- An ACPI power meter (hwmon name ``power_meter``, drivers/hwmon/acpi_power_meter.c) reads the
  whole machine's power: ``system-<N>`` (N counts the meters), shown beside the total, never added.
- A discrete GPU's driver (amdgpu, i915, xe): ``gpu-<driver>-<N>`` (N counts that driver's hwmon
  devices; never NVML's ``gpu-<N>``), added. Its first meter is the GPU; a further one (xe's
  ``pkg`` beside its ``card``) lies inside it and is not added. On an APU amdgpu's meter (``PPT``,
  or ``slowPPT`` / ``fastPPT`` on Van Gogh) reads the whole SoC, CPU cores included: scope
  unknown, never added (RAPL's package holds the same cores), and not counted among the GPUs.
  amdgpu labels an APU's meter ``PPT`` as it does a discrete card's; what tells them apart is the
  ``vddnb`` voltage (``in1_label``), which amdgpu shows on APUs only (``amdgpu_pm.c``,
  ``hwmon_attributes_visible``). MI300A hides its voltages, so there its PCI device id
  (``device/device``, 0x74a0) tells.
- Anything else (board rails such as ina2xx/ina3221, whose total rail and sub-rails overlap):
  ``<driver>:<label>``, scope unknown, shown and not added.
"""

from __future__ import annotations

import re

from greentop._paths import display_path, host_path
from greentop.channel import Channel, Problem, Quantity, Reader, ReaderKind
from greentop.sources._common import SourceResult, probe_int, read_text

SOURCE = "hwmon"
_FILE = re.compile(r"^(energy|power)(\d+)_(input|average)$")
_CPU_DRIVERS = ("amd_energy", "zenergy", "zenpower")
_SYSTEM_DRIVERS = ("power_meter",)
_GPU_DRIVERS = ("amdgpu", "i915", "xe")
_APU_LABELS = ("slowPPT", "fastPPT")  # amdgpu on Van Gogh: the SoC's power, CPU cores included
# APUs whose amdgpu shows no vddnb (GC 9.4.3 hides every voltage): MI300A.
_APU_PCI_IDS = ("0x74a0",)


def _is_apu(driver: str, in1_label: str | None, pci_device: str | None) -> bool:
    """Whether an amdgpu hwmon device is an APU's, by its ``in1_label`` or its PCI device id."""
    return driver == "amdgpu" and (in1_label == "vddnb" or (pci_device or "").lower() in _APU_PCI_IDS)


def _domain(driver: str, label: str, device_index: int, apu: bool = False) -> str:
    """The domain of meter ``label`` of the ``device_index``-th hwmon device of ``driver`` (GPU
    drivers: the ``device_index``-th GPU; ``apu``: the device is an APU's)."""
    if driver in _CPU_DRIVERS:
        m = re.fullmatch(r"Esocket(\d+)", label)
        if m:
            return f"cpu-package-{m.group(1)}"
        m = re.fullmatch(r"Ecore(\d+)", label)
        if m:
            return f"cpu-core-{int(m.group(1))}"
    if driver in _SYSTEM_DRIVERS:
        return f"system-{device_index}"
    if driver in _GPU_DRIVERS and not apu and label not in _APU_LABELS:
        return f"gpu-{driver}-{device_index}"
    # "/" would read as a merged job's "<node>/<domain>"
    return f"{driver}:{label}".replace("/", "_")


def _note(driver: str, label: str, domain: str, dev_file: str) -> str:
    """What the meter is, where the machine total is concerned (``devices`` and the trace show it)."""
    if driver in _SYSTEM_DRIVERS:
        return f"{dev_file}: whole-system meter (ACPI power meter): shown, not added to the machine total"
    if domain.startswith("gpu-"):
        return f"{dev_file}: GPU ({driver})"
    if driver in _GPU_DRIVERS:
        return f"{dev_file}: APU SoC power ({label}: CPU included): scope unknown, not added to the machine total"
    if domain.startswith(("cpu-package-", "cpu-core-")):
        return dev_file
    return f"{dev_file}: scope unknown: shown, not added to the machine total"


def discover() -> SourceResult:
    result = SourceResult()
    base = host_path("/sys/class/hwmon")
    try:
        devices = sorted((p for p in base.iterdir() if re.fullmatch(r"hwmon\d+", p.name)), key=lambda p: int(p.name[5:]))
    except OSError:
        return result
    seen_drivers: dict[str, int] = {}
    for dev in devices:
        driver = read_text(dev / "name") or dev.name
        apu = _is_apu(driver, read_text(dev / "in1_label"), read_text(dev / "device" / "device"))
        device_index = seen_drivers.get(driver, 0)
        if not apu:  # an APU's meter is not a GPU: the GPUs are numbered without it
            seen_drivers[driver] = device_index + 1
        first = ""  # a GPU device's first meter: the GPU; the others lie inside it
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
            domain = _domain(driver, label, device_index, apu)
            parent = ""
            if domain.startswith("gpu-"):
                if first:
                    parent, domain = first, f"{domain}:{label}"
                else:
                    first = name
            result.channels.append(
                Channel(
                    name=name,
                    source=SOURCE,
                    domain=domain,
                    quantity=Quantity.ENERGY if kind == "energy" else Quantity.POWER,
                    unit="uJ" if kind == "energy" else "uW",
                    scale=1e-6,
                    reader=Reader(ReaderKind.FILE_DECIMAL, path=str(path)),
                    wrap_raw=0,
                    parent=parent,
                    note=_note(driver, label, domain, f"{dev.name}/{fname}"),
                )
            )
    return result


def _file_key(fname: str) -> tuple[str, int, int]:
    m = _FILE.match(fname)
    assert m is not None
    return (m.group(1), int(m.group(2)), 0 if m.group(3) == "input" else 1)
