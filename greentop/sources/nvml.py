"""NVIDIA GPUs through NVML: discovery and metadata with pynvml, sampling in compiled code.

Per GPU: ``PowerUsage`` (mW) on the fast lane, the instant/average power field values where the
driver has them (also fast: a few µs each), and the total energy counter (mJ) on the slow lane,
because one call costs milliseconds (3.9 ms measured on an H200).

``GREENTOP_NVML_LIB`` names the library to use instead of ``libnvidia-ml.so.1`` (the test
suite's fake). It is loaded first with RTLD_GLOBAL, so pynvml's own dlopen of the soname
resolves to that same library and both sides see one NVML.
"""

from __future__ import annotations

import ctypes

from greentop._paths import NVML_LIB_ENV, host_path, nvml_library_path
from greentop.channel import Channel, Lane, Problem, Quantity, Reader, ReaderKind
from greentop.sources._common import SourceResult

SOURCE = "nvml"
LIB_ENV = NVML_LIB_ENV  # one name, kept in greentop._paths
FIELD_POWER_AVERAGE = 185
FIELD_POWER_INSTANT = 186
ERROR_LIBRARY_NOT_FOUND = 12
ERROR_DRIVER_NOT_LOADED = 9
ERROR_NO_PERMISSION = 4
ERROR_NOT_SUPPORTED = 3


def library_path() -> str:
    """The NVML library greentop loads: ``$GREENTOP_NVML_LIB`` or the driver's soname."""
    return nvml_library_path()


def _preload() -> None:
    path = library_path()
    if path:
        ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)


def _soname(path: str) -> str:
    """The DT_SONAME of a 64-bit little-endian ELF shared library ("" if none or unreadable)."""
    import struct

    try:
        data = open(path, "rb").read()
        if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
            return ""
        shoff, = struct.unpack_from("<Q", data, 0x28)
        shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
        sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
        for _name, kind, _flags, _addr, offset, size, link, *_ in sections:
            if kind != 6:  # SHT_DYNAMIC
                continue
            strtab = sections[link]
            for k in range(0, size, 16):
                tag, value = struct.unpack_from("<qQ", data, offset + k)
                if tag == 14:  # DT_SONAME
                    start = strtab[4] + value
                    return data[start:data.index(b"\0", start)].decode(errors="replace")
    except (OSError, struct.error, IndexError, ValueError):
        return ""
    return ""


def _nvidia_device_nodes() -> bool:
    return host_path("/dev/nvidia0").exists() or host_path("/proc/driver/nvidia/version").exists()


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def discover() -> SourceResult:
    result = SourceResult()
    try:
        import pynvml
    except ImportError:  # nvidia-ml-py is a dependency; an install without it still runs
        result.notes.append("pynvml (nvidia-ml-py) is not installed: no GPU sensors")
        return result
    try:
        _preload()
        pynvml.nvmlInit()
    except OSError as exc:
        result.problems.append(Problem(SOURCE, library_path(), f"cannot load NVML: {exc}", f"point {LIB_ENV} at libnvidia-ml.so.1"))
        return result
    except pynvml.NVMLError as exc:
        code = getattr(exc, "value", None)
        if code == ERROR_LIBRARY_NOT_FOUND:
            if library_path():
                # The file named was loaded, yet NVML's loader looks for its soname: say what is wrong with it.
                result.problems.append(Problem(
                    SOURCE, library_path(),
                    f"{LIB_ENV}={library_path()} loads, but pynvml finds libraries by the name libnvidia-ml.so.1 and "
                    f"this file's SONAME is {_soname(library_path()) or 'missing'}",
                    "link the library with -Wl,-soname,libnvidia-ml.so.1 (readelf -d FILE shows it), or point "
                    f"{LIB_ENV} at the driver's libnvidia-ml.so.1"))
            elif _nvidia_device_nodes():
                result.problems.append(
                    Problem(SOURCE, "libnvidia-ml.so.1", "NVIDIA devices exist but NVML is not found",
                            f"install the driver's NVML library (libnvidia-ml.so.1) or set {LIB_ENV} to its path")
                )
            else:
                result.notes.append("no NVIDIA driver (libnvidia-ml.so.1 not found): no GPU sensors")
        elif code == ERROR_DRIVER_NOT_LOADED:
            result.problems.append(Problem(SOURCE, "nvidia driver", "NVML: driver not loaded", "sudo modprobe nvidia (or reinstall the driver)"))
        elif code == ERROR_NO_PERMISSION:
            result.problems.append(Problem(SOURCE, "/dev/nvidia*", "NVML: no permission", "add the user to the group owning /dev/nvidia* (often 'video')"))
        else:
            result.problems.append(Problem(SOURCE, "NVML", f"nvmlInit failed: {exc}", "check nvidia-smi; the driver may need a reload"))
        return result
    try:
        _discover_devices(pynvml, result)
    finally:
        pynvml.nvmlShutdown()
    return result


def _discover_devices(pynvml: object, result: SourceResult) -> None:
    nv = pynvml
    driver = _try(lambda: _text(nv.nvmlSystemGetDriverVersion()), "")  # type: ignore[attr-defined]
    count = nv.nvmlDeviceGetCount()  # type: ignore[attr-defined]
    for i in range(count):
        handle = nv.nvmlDeviceGetHandleByIndex(i)  # type: ignore[attr-defined]
        name = _try(lambda: _text(nv.nvmlDeviceGetName(handle)), f"GPU {i}")  # type: ignore[attr-defined]
        uuid = _try(lambda: _text(nv.nvmlDeviceGetUUID(handle)), "")  # type: ignore[attr-defined]
        limit_mw = _try(lambda: int(nv.nvmlDeviceGetEnforcedPowerLimit(handle)), 0)  # type: ignore[attr-defined]
        mig = _try(lambda: int(nv.nvmlDeviceGetMigMode(handle)[0]), 0)  # type: ignore[attr-defined]
        note = "MIG enabled: power and energy are the whole GPU's, shared by all its MIG instances" if mig else ""
        result.devices.append({"gpu": i, "name": name, "uuid": uuid, "driver": driver, "power_limit_w": limit_mw / 1000, "mig": bool(mig)})
        domain, prefix = f"gpu-{i}", f"nvml:gpu{i}"

        def add(suffix: str, kind: ReaderKind, quantity: Quantity, unit: str, lane: Lane, field_id: int = 0, extra: str = "") -> None:
            result.channels.append(
                Channel(
                    name=f"{prefix}:{suffix}", source=SOURCE, domain=domain, quantity=quantity, unit=unit, scale=1e-3,
                    reader=Reader(kind, gpu_index=i, field_id=field_id), lane=lane,
                    note="; ".join(x for x in (note, extra) if x), metadata={"model": name, "uuid": uuid},
                )
            )

        power = _status(lambda: nv.nvmlDeviceGetPowerUsage(handle))  # type: ignore[attr-defined]
        if power is None:
            add("power", ReaderKind.NVML_POWER, Quantity.POWER, "mW", Lane.FAST)
        else:
            result.problems.append(Problem(SOURCE, f"{prefix}:power", f"nvmlDeviceGetPowerUsage: {power}", "none: this GPU does not report power"))
        for field_id, suffix, extra in (
            (FIELD_POWER_INSTANT, "power_instant", "instantaneous power field"),
            (FIELD_POWER_AVERAGE, "power_average", "1 s average power field"),
        ):
            if _field_supported(nv, handle, field_id):
                add(suffix, ReaderKind.NVML_FIELD, Quantity.POWER, "mW", Lane.FAST, field_id, extra)
        energy = _status(lambda: nv.nvmlDeviceGetTotalEnergyConsumption(handle))  # type: ignore[attr-defined]
        if energy is None:
            add("energy", ReaderKind.NVML_ENERGY, Quantity.ENERGY, "mJ", Lane.SLOW, extra="costs ms per call: slow lane")
        else:
            result.notes.append(f"{prefix}: no energy counter ({energy}); energy comes from integrating power")


def _try(fn, default):  # type: ignore[no-untyped-def]
    try:
        return fn()
    except Exception:  # metadata is best effort: a GPU without a name still has power
        return default


def _status(fn) -> str | None:  # type: ignore[no-untyped-def]
    """None where the call works, else its NVML error text."""
    try:
        fn()
        return None
    except Exception as exc:
        return str(exc) or type(exc).__name__


def _field_supported(nv: object, handle: object, field_id: int) -> bool:
    try:
        values = nv.nvmlDeviceGetFieldValues(handle, [field_id])  # type: ignore[attr-defined]
    except Exception:
        return False
    return int(values[0].nvmlReturn) == 0


