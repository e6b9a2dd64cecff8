"""A fake Linux host tree (powercap, hwmon, MSR, CPU topology, /proc/stat) under a temporary root.

greentop's sensor sources prefix every ``/sys``, ``/dev`` and ``/proc`` path with the environment
variable ``GREENTOP_SYSFS_ROOT``; point it at :attr:`FakeHost.root` (see :attr:`FakeHost.environ`)
and they find the tree built here, laid out as a real kernel lays it out:

- powercap: zones live at ``sys/devices/virtual/powercap/intel-rapl/intel-rapl:0[/intel-rapl:0:0]``
  and ``sys/class/powercap/`` holds one flat relative symlink per zone and per control type;
- hwmon: ``sys/class/hwmon/hwmonN -> ../../devices/platform/<drv>/hwmon/hwmonN``;
- MSR: ``dev/cpu/N/msr`` is a sparse regular file in which the 8-byte little-endian value of
  register R lives at byte offset R, so ``os.pread(fd, 8, R)`` behaves like the device;
- ``sys/devices/system/cpu/{online,present,possible,cpuN/topology/*}`` and ``proc/cpuinfo``;
- ``proc/stat`` driven by a utilisation profile.

Counters follow a :class:`~tests.fakes.profile.PowerProfile` whose time origin is
:attr:`FakeHost.epoch_ns` (``time.monotonic_ns()`` taken by :meth:`FakeHost.start`). A writer
(a daemon thread, or a forked process, or nobody: see :meth:`FakeHost.start`) rewrites every file
every ``tick_s``: at tick k it writes ``value_at(epoch_ns + k * tick_ns)`` for every counter. When
it falls behind it jumps to the newest tick that has begun; it never drifts and never writes a value
for a time that has not yet come. Invariant a test can rely on: a counter read at monotonic time
``t`` holds ``value_at(T)`` for some tick time ``T`` with ``last_tick_ns (read before) <= T <= t``.

Files are rewritten in place (``os.pwrite`` at offset 0, then ``os.ftruncate`` when the text got
shorter), never replaced, so a reader that keeps the file open and re-reads it with
``pread(fd, n, 0)`` sees every new value. A write is not atomic for a concurrent reader: when a
value gets shorter (a wrap, a falling power) the new text is first written padded with ``\\n`` to
the old length and then truncated, so a reader can see ``b"5\\n\\n\\n\\n"``; parse leading digits
(or ``int()``, which ignores surrounding whitespace), never require exactly one newline.

A flat MSR file cannot hold registers fewer than 8 apart without sharing bytes. Intel's RAPL
registers are 8 or more apart. AMD's are not: the package counter 0xC001029B overwrites bits 16
and up of the unit register 0xC0010299 (the power and energy units, bits 3:0 and 12:8, survive),
and the per-core counter 0xC001029A would overwrite the energy unit, so it never shares a cpu's
file with the unit register (see :meth:`FakeHost.add_msr`).

Values come from ``floor(E / unit)`` in floating point, so at an exact unit boundary the count can
be one less than exact arithmetic gives; :meth:`FakeCounter.value_at` is always exactly what is
written.
"""

from __future__ import annotations

import math
import mmap
import os
import re
import struct
import threading
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence

from tests.fakes.profile import PowerProfile

__all__ = [
    "FakeCounter",
    "FakeHost",
    "FakeProcStat",
    "INTEL_MSR_RAPL_POWER_UNIT",
    "INTEL_MSR_PKG_ENERGY_STATUS",
    "INTEL_MSR_DRAM_ENERGY_STATUS",
    "INTEL_MSR_PP0_ENERGY_STATUS",
    "INTEL_MSR_PP1_ENERGY_STATUS",
    "INTEL_MSR_PLATFORM_ENERGY_STATUS",
    "AMD_MSR_RAPL_POWER_UNIT",
    "AMD_MSR_CORE_ENERGY_STATUS",
    "AMD_MSR_PKG_ENERGY_STATUS",
    "msr_unit_value",
    "msr_energy_unit_j",
]

# --- MSR registers (Intel SDM vol. 4; AMD PPR for family 17h/19h) ---------------------------------
INTEL_MSR_RAPL_POWER_UNIT = 0x606
INTEL_MSR_PKG_ENERGY_STATUS = 0x611
INTEL_MSR_DRAM_ENERGY_STATUS = 0x619
INTEL_MSR_PP0_ENERGY_STATUS = 0x639
INTEL_MSR_PP1_ENERGY_STATUS = 0x641
INTEL_MSR_PLATFORM_ENERGY_STATUS = 0x64D
AMD_MSR_RAPL_POWER_UNIT = 0xC0010299
AMD_MSR_CORE_ENERGY_STATUS = 0xC001029A
AMD_MSR_PKG_ENERGY_STATUS = 0xC001029B

_DEFAULT_ESU = {INTEL_MSR_RAPL_POWER_UNIT: 14, AMD_MSR_RAPL_POWER_UNIT: 16}
_POWER_UNITS_BITS = 3  # bits 3:0, power unit 1/2^3 W
_TIME_UNITS_BITS = 10  # bits 19:16, time unit 1/2^10 s

_HWMON_ENERGY_MODULUS = 1 << 64
_USER_HZ = 100  # jiffies per second in /proc/stat

_DEFAULT_MODEL_NAME = {
    "GenuineIntel": "Intel(R) Xeon(R) Platinum 8480+",
    "AuthenticAMD": "AMD EPYC 9654 96-Core Processor",
}
_CPU_FAMILY_MODEL = {"GenuineIntel": (6, 143), "AuthenticAMD": (25, 17)}


def msr_unit_value(esu: int) -> int:
    """The MSR_RAPL_POWER_UNIT value for energy status unit ``esu`` (energy unit 1/2^esu J),
    with power units 1/2^3 W (bits 3:0) and time units 1/2^10 s (bits 19:16) as on real parts."""
    if not 0 <= esu <= 31:
        raise ValueError(f"energy status unit must be in 0..31, got {esu}")
    return (_TIME_UNITS_BITS << 16) | (esu << 8) | _POWER_UNITS_BITS


def msr_energy_unit_j(unit_register_value: int) -> float:
    """Energy unit in joules decoded from a RAPL power-unit register value (bits 12:8)."""
    return 1.0 / (1 << ((unit_register_value >> 8) & 0x1F))


def _unit_register_for(register: int) -> int:
    """Which unit register scales ``register``: AMD's for the 0xC001xxxx space, else Intel's."""
    return AMD_MSR_RAPL_POWER_UNIT if register >= 0xC0000000 else INTEL_MSR_RAPL_POWER_UNIT


def _cpu_list(cpus: Sequence[int]) -> str:
    """Format cpu numbers the way the kernel's ``%*pbl`` does: ``0-3,8,10-11``."""
    out: list[str] = []
    ordered = sorted(set(cpus))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        out.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(out)


class _InPlaceFile:
    """One text file kept open O_RDWR and rewritten in place; skips writes of unchanged text."""

    __slots__ = ("path", "fd", "_length", "_last")

    def __init__(self, path: Path, text: bytes, mode: int) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        self._length = 0
        self._last = b""
        self.write(text)
        os.chmod(path, mode)  # the fd keeps its write access whatever the mode becomes

    def write(self, text: bytes) -> None:
        if text == self._last:
            return
        n, old = len(text), self._length
        if n < old:
            os.pwrite(self.fd, text.ljust(old, b"\n"), 0)
            os.ftruncate(self.fd, n)
        else:
            os.pwrite(self.fd, text, 0)
        self._length, self._last = n, text

    def forget(self) -> None:
        """Drop the cached text (another process may have written the file)."""
        self._length = os.fstat(self.fd).st_size
        self._last = b""

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _write_static(path: Path, text: str, mode: int = 0o444) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chmod(path, mode)


def _symlink(link: Path, target: str) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink():
        link.unlink()
    os.symlink(target, link)


class FakeCounter:
    """One fake sensor file: an energy counter (``kind == "energy"``) or a power gauge
    (``kind == "power"``), following :attr:`profile`.

    ``path`` is the file the code under test opens (for powercap and hwmon, the path through
    ``sys/class/...``), or ``(msr file, register)`` for an MSR counter.
    Energy counters hold ``(start_units + floor(E(t) / unit_j)) % modulus`` where E is the
    profile's energy since the epoch; power gauges hold ``round(P(t) * 1e6)`` µW.
    """

    def __init__(
        self,
        host: "FakeHost",
        path: Path | tuple[Path, int],
        profile: PowerProfile,
        *,
        kind: str,
        unit_j: float,
        modulus: int,
        start_units: int,
        sink: _InPlaceFile | None = None,
        msr_fd: int = -1,
        msr_register: int = -1,
    ) -> None:
        self._host = host
        self.path = path
        self.profile = profile
        self.kind = kind
        self.unit_j = unit_j  # joules per count (energy counters); 1e-6 W per count for power
        self.modulus = modulus  # the counter wraps to 0 at this value (energy counters)
        self.start_units = start_units
        self._sink = sink
        self._msr_fd = msr_fd
        self._msr_register = msr_register
        self._last = -1

    # --- truth --------------------------------------------------------------------------------
    def _value_s(self, t_s: float) -> int:
        if self.kind == "power":
            return int(round(self.profile.power_w(t_s) * 1e6))
        if self.unit_j == 1e-6:
            units = math.floor(self.profile.energy_j(t_s) * 1e6)
        else:
            units = math.floor(self.profile.energy_j(t_s) / self.unit_j)  # unit is 2^-ESU: exact
        return (self.start_units + units) % self.modulus

    def value_at(self, t_ns: int) -> int:
        """Raw value (counts, wrapped; µW for a power gauge) the writer puts in the file for
        monotonic time ``t_ns``. The writer calls this with tick times only."""
        return self._value_s((t_ns - self._host._require_epoch()) / 1e9)

    def energy_between_j(self, t0_ns: int, t1_ns: int) -> float:
        """Scripted energy (J, unwrapped, not quantised) between two monotonic times."""
        epoch = self._host._require_epoch()
        return self.profile.energy_between_j((t0_ns - epoch) / 1e9, (t1_ns - epoch) / 1e9)

    def power_w_at(self, t_ns: int) -> float:
        """Scripted power (W) at monotonic time ``t_ns``."""
        return self.profile.power_w((t_ns - self._host._require_epoch()) / 1e9)

    def delta_j(self, raw_before: int, raw_after: int) -> float:
        """Energy (J) between two raw readings of this counter, assuming at most one wrap."""
        if self.kind != "energy":
            raise TypeError("delta_j is for energy counters")
        return ((raw_after - raw_before) % self.modulus) * self.unit_j

    # --- writer -------------------------------------------------------------------------------
    def _forget(self) -> None:
        self._last = -1
        if self._sink is not None:
            self._sink.forget()

    def _write_s(self, t_s: float) -> None:
        value = self._value_s(t_s)
        if value == self._last:
            return
        self._last = value
        if self._sink is not None:
            self._sink.write(b"%d\n" % value)
        else:
            os.pwrite(self._msr_fd, value.to_bytes(8, "little"), self._msr_register)

    def __repr__(self) -> str:
        return f"FakeCounter({self.kind}, {self.path!s})"


class FakeProcStat:
    """``proc/stat`` driven by a utilisation profile (fraction 0..1 of all cpus).

    With U(t) the profile's integral (cpu-fraction x seconds), the aggregate line holds
    ``busy = base + floor(100 * n_cpus * U(t))`` jiffies (split 3:1 into user:system) and
    ``idle = base + floor(100 * n_cpus * (t - U(t)))``; the ``cpuN`` lines share each field so that
    they sum exactly to the aggregate. nice, iowait, irq, softirq, steal, guest stay constant.
    """

    BASE_USER = 12_000
    BASE_SYSTEM = 4_000
    BASE_IDLE = 500_000
    BASE_NICE = 30
    BASE_IOWAIT = 200

    def __init__(self, host: "FakeHost", path: Path, profile: PowerProfile, n_cpus: int) -> None:
        self._host = host
        self.path = path
        self.profile = profile
        self.n_cpus = n_cpus
        self._sink = _InPlaceFile(path, self._render(0.0), 0o444)
        self._last_key: tuple[int, int] = (-1, -1)

    def _jiffies_s(self, t_s: float) -> tuple[int, int]:
        t_s = max(t_s, 0.0)
        u = self.profile.energy_j(t_s)
        scale = _USER_HZ * self.n_cpus
        return math.floor(scale * u), math.floor(scale * max(t_s - u, 0.0))

    def jiffies_at(self, t_ns: int) -> tuple[int, int]:
        """(busy, idle) jiffies summed over all cpus that the writer adds to the base values for
        monotonic time ``t_ns`` (busy = user + system). The writer calls this with tick times."""
        return self._jiffies_s((t_ns - self._host._require_epoch()) / 1e9)

    def utilisation_between(self, t0_ns: int, t1_ns: int) -> float:
        """Scripted mean utilisation (0..1 of all cpus) between two monotonic times."""
        epoch = self._host._require_epoch()
        return self.profile.energy_between_j((t0_ns - epoch) / 1e9, (t1_ns - epoch) / 1e9) / (
            (t1_ns - t0_ns) / 1e9
        )

    def _render(self, t_s: float) -> bytes:
        busy, idle = self._jiffies_s(t_s)
        n = self.n_cpus
        system = busy // 4
        user = busy - system
        ticks = int(max(t_s, 0.0) * 1000)

        def share(total: int, i: int) -> int:
            return (total + n - 1 - i) // n

        def line(label: str, u: int, ni: int, s: int, idl: int, io: int) -> str:
            return f"{label} {u} {ni} {s} {idl} {io} 0 0 0 0 0\n"

        parts = [
            line(
                "cpu ",
                user + self.BASE_USER * n,
                self.BASE_NICE * n,
                system + self.BASE_SYSTEM * n,
                idle + self.BASE_IDLE * n,
                self.BASE_IOWAIT * n,
            )
        ]
        for i in range(n):
            parts.append(
                line(
                    f"cpu{i}",
                    share(user, i) + self.BASE_USER,
                    self.BASE_NICE,
                    share(system, i) + self.BASE_SYSTEM,
                    share(idle, i) + self.BASE_IDLE,
                    self.BASE_IOWAIT,
                )
            )
        intr = 1_000_000 + 1_000 * n * ticks // 1000
        parts.append(f"intr {intr} 0 0 0 0 0 0 0 0\n")
        parts.append(f"ctxt {2_000_000 + 500 * n * ticks // 1000}\n")
        parts.append("btime 1764300000\n")
        parts.append(f"processes {5_000 + ticks // 1000}\n")
        parts.append(f"procs_running {1 + round(self.profile.power_w(t_s) * n)}\n")
        parts.append("procs_blocked 0\n")
        sirq = 400_000 + 200 * n * ticks // 1000
        parts.append(f"softirq {sirq} 0 {sirq // 2} 0 0 0 0 {sirq // 2} 0 0 0\n")
        return "".join(parts).encode()

    def _forget(self) -> None:
        self._last_key = (-1, -1)
        self._sink.forget()

    def _write_s(self, t_s: float) -> None:
        key = self._jiffies_s(t_s)
        if key == self._last_key:
            return
        self._last_key = key
        self._sink.write(self._render(t_s))


class FakeHost:
    """A fake host tree under ``root``; see the module docstring for the layout and guarantees.

    Build the tree with the ``add_*``/``set_*`` methods, then :meth:`start` (or use it as a
    context manager, which starts it on entry and stops and closes it on exit).
    """

    epoch_ns: int | None

    def __init__(self, root: Path, tick_s: float = 0.001) -> None:
        if tick_s <= 0:
            raise ValueError("tick_s must be positive")
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.tick_s = tick_s
        self.tick_ns = max(1, round(tick_s * 1e9))
        self.epoch_ns = None
        self._writers: tuple[FakeCounter | FakeProcStat, ...] = ()
        self._files: list[_InPlaceFile] = []
        self._msr_fds: dict[int, int] = {}
        self._msr_esu: dict[int, int] = {}  # unit register -> ESU, one for the whole host
        self._msr_regs: dict[int, dict[int, bool]] = {}  # cpu -> {register: is a unit register}
        self._msr_counters: list[tuple[int, FakeCounter]] = []  # (unit register, counter)
        self._hwmon_count = 0
        self._control_types: set[str] = set()
        # shared with a forked writer: stop flag, last tick written (ns), passes, ticks skipped
        self._shared = mmap.mmap(-1, 32)
        self._thread: threading.Thread | None = None
        self._pass_lock = threading.Lock()  # held by the writer thread during each pass
        self._child_pid: int | None = None
        self._closed = False

    # --- paths --------------------------------------------------------------------------------
    @property
    def environ(self) -> dict[str, str]:
        """Environment entries that point greentop at this tree."""
        return {"GREENTOP_SYSFS_ROOT": str(self.root)}

    def _require_epoch(self) -> int:
        if self.epoch_ns is None:
            raise RuntimeError("FakeHost not started: no epoch yet")
        return self.epoch_ns

    def _add_writer(self, writer: FakeCounter | FakeProcStat) -> None:
        if self._child_pid is not None:
            raise RuntimeError("cannot add counters while a forked writer runs")
        with self._pass_lock:  # between two passes of the writer thread
            if self.epoch_ns is not None:  # started: hold the last tick's value, not the start
                writer._write_s((self.last_tick_ns - self.epoch_ns) / 1e9)
            self._writers = self._writers + (writer,)

    # --- powercap -----------------------------------------------------------------------------
    def add_rapl_zone(
        self,
        zone: str,
        name: str,
        profile: PowerProfile,
        *,
        max_energy_range_uj: int = 262143328850,
        start_uj: int = 0,
        mmio: bool = False,
        readable: bool = True,
    ) -> FakeCounter:
        """A powercap RAPL zone: ``zone="0"`` is ``intel-rapl:0`` (a package, psys, ...),
        ``zone="0:1"`` is subzone ``intel-rapl:0:1`` nested in ``intel-rapl:0`` (add that first).
        With ``mmio`` the control type is ``intel-rapl-mmio``. ``energy_uj`` (µJ) wraps to 0 after
        ``max_energy_range_uj``. ``readable=False`` makes ``energy_uj`` mode 000 as the
        CVE-2020-8694 fix makes it for non-root users (root still reads it)."""
        if not re.fullmatch(r"\d+(:\d+)?", zone):
            raise ValueError(f"zone must look like '0' or '0:1', got {zone!r}")
        if max_energy_range_uj <= 0:
            raise ValueError("max_energy_range_uj must be positive")
        ctype = "intel-rapl-mmio" if mmio else "intel-rapl"
        devices = self.root / "sys/devices/virtual/powercap"
        cls = self.root / "sys/class/powercap"
        ctype_dir = devices / ctype
        if ctype not in self._control_types:
            ctype_dir.mkdir(parents=True, exist_ok=True)
            _write_static(ctype_dir / "enabled", "1\n", 0o644)
            _symlink(cls / ctype, f"../../devices/virtual/powercap/{ctype}")
            self._control_types.add(ctype)
        parts = zone.split(":")
        zone_name = f"{ctype}:{zone}"
        if len(parts) == 2:
            parent = ctype_dir / f"{ctype}:{parts[0]}"
            if not parent.is_dir():
                raise ValueError(f"add parent zone {ctype}:{parts[0]} before {zone_name}")
            rel = f"{ctype}/{ctype}:{parts[0]}/{zone_name}"
        else:
            rel = f"{ctype}/{zone_name}"
        zone_dir = devices / rel
        if zone_dir.exists():
            raise ValueError(f"zone {zone_name} exists already")
        zone_dir.mkdir(parents=True)
        _write_static(zone_dir / "name", f"{name}\n")
        _write_static(zone_dir / "max_energy_range_uj", f"{max_energy_range_uj}\n")
        _write_static(zone_dir / "enabled", "1\n", 0o644)
        _symlink(cls / zone_name, f"../../devices/virtual/powercap/{rel}")
        modulus = max_energy_range_uj + 1
        sink = _InPlaceFile(
            zone_dir / "energy_uj", b"%d\n" % (start_uj % modulus), 0o444 if readable else 0
        )
        self._files.append(sink)
        counter = FakeCounter(
            self,
            cls / zone_name / "energy_uj",
            profile,
            kind="energy",
            unit_j=1e-6,
            modulus=modulus,
            start_units=start_uj,
            sink=sink,
        )
        self._add_writer(counter)
        return counter

    # --- hwmon --------------------------------------------------------------------------------
    def add_hwmon(
        self,
        name: str,
        *,
        energy: Sequence[tuple[str | None, PowerProfile]] = (),
        power: Sequence[tuple[str | None, PowerProfile]] = (),
        power_file: str = "input",
        static: Mapping[str, str] = {},
    ) -> list[FakeCounter]:
        """A hwmon device ``hwmonN`` (N counts from 0 per host) with ``name``, one
        ``energyK_input`` (µJ, 64-bit) per ``energy`` entry and one power gauge (µW) per ``power``
        entry, K from 1; a non-None label writes ``energyK_label`` / ``powerK_label``.
        ``power_file`` is ``"input"`` (``powerK_input``), ``"average"`` (``powerK_average``) or
        ``"both"``. ``static``: further files of the device and their contents (an APU's
        ``in1_label``, say). Returns the energy counters in order, then the power gauges in order
        (for ``"both"``: input then average for each K)."""
        if power_file not in ("input", "average", "both"):
            raise ValueError(f"power_file must be input, average or both, not {power_file!r}")
        n = self._hwmon_count
        self._hwmon_count += 1
        drv = re.sub(r"[^A-Za-z0-9_-]", "_", name) + f".{n}"
        rel = f"devices/platform/{drv}/hwmon/hwmon{n}"
        hw_dir = self.root / "sys" / rel
        hw_dir.mkdir(parents=True)
        _write_static(hw_dir / "name", f"{name}\n")
        for fname, content in static.items():
            _write_static(hw_dir / fname, f"{content}\n")
        cls_dir = self.root / "sys/class/hwmon" / f"hwmon{n}"
        _symlink(cls_dir, f"../../{rel}")
        counters: list[FakeCounter] = []
        for k, (label, profile) in enumerate(energy, start=1):
            if label is not None:
                _write_static(hw_dir / f"energy{k}_label", f"{label}\n")
            sink = _InPlaceFile(hw_dir / f"energy{k}_input", b"0\n", 0o444)
            self._files.append(sink)
            counters.append(
                FakeCounter(
                    self,
                    cls_dir / f"energy{k}_input",
                    profile,
                    kind="energy",
                    unit_j=1e-6,
                    modulus=_HWMON_ENERGY_MODULUS,
                    start_units=0,
                    sink=sink,
                )
            )
        suffixes = ("input", "average") if power_file == "both" else (power_file,)
        for k, (label, profile) in enumerate(power, start=1):
            if label is not None:
                _write_static(hw_dir / f"power{k}_label", f"{label}\n")
            for suffix in suffixes:
                initial = b"%d\n" % round(profile.power_w(0.0) * 1e6)
                sink = _InPlaceFile(hw_dir / f"power{k}_{suffix}", initial, 0o444)
                self._files.append(sink)
                counters.append(
                    FakeCounter(
                        self,
                        cls_dir / f"power{k}_{suffix}",
                        profile,
                        kind="power",
                        unit_j=1e-6,
                        modulus=0,
                        start_units=0,
                        sink=sink,
                    )
                )
        for c in counters:
            self._add_writer(c)
        return counters

    # --- cpus, MSR ----------------------------------------------------------------------------
    def add_cpus(
        self,
        n_cpus: int,
        *,
        vendor: str = "GenuineIntel",
        packages: int = 1,
        smt: int = 1,
        model_name: str | None = None,
    ) -> None:
        """CPU topology files, ``sys/devices/system/cpu/{online,present,possible}`` and
        ``proc/cpuinfo`` for ``n_cpus`` logical cpus in ``packages`` packages with ``smt``
        threads per core. Numbering as Linux does on x86: first thread of every core of every
        package, then the second threads (so with smt=2, cpu i and i + n_cpus/2 are siblings)."""
        if n_cpus <= 0 or packages <= 0 or smt <= 0 or n_cpus % (packages * smt):
            raise ValueError("n_cpus must be a positive multiple of packages * smt")
        cores = n_cpus // (packages * smt)  # cores per package
        model_name = model_name or _DEFAULT_MODEL_NAME.get(vendor, "Fake CPU")
        family, model = _CPU_FAMILY_MODEL.get(vendor, (6, 1))
        cpu_dir = self.root / "sys/devices/system/cpu"
        every = _cpu_list(range(n_cpus)) + "\n"
        for f in ("online", "present", "possible"):
            _write_static(cpu_dir / f, every)
        placement = []
        for i in range(n_cpus):
            rem = i % (packages * cores)
            placement.append((rem // cores, rem % cores))  # (package, core)
        blocks = []
        for i, (pkg, core) in enumerate(placement):
            topo = cpu_dir / f"cpu{i}/topology"
            siblings = [j for j, pc in enumerate(placement) if pc == (pkg, core)]
            package_cpus = [j for j, pc in enumerate(placement) if pc[0] == pkg]
            _write_static(topo / "physical_package_id", f"{pkg}\n")
            _write_static(topo / "die_id", "0\n")
            _write_static(topo / "core_id", f"{core}\n")
            _write_static(topo / "thread_siblings_list", _cpu_list(siblings) + "\n")
            _write_static(topo / "core_cpus_list", _cpu_list(siblings) + "\n")
            _write_static(topo / "core_siblings_list", _cpu_list(package_cpus) + "\n")
            _write_static(topo / "package_cpus_list", _cpu_list(package_cpus) + "\n")
            if i > 0:
                _write_static(cpu_dir / f"cpu{i}/online", "1\n", 0o644)
            blocks.append(
                f"processor\t: {i}\n"
                f"vendor_id\t: {vendor}\n"
                f"cpu family\t: {family}\n"
                f"model\t\t: {model}\n"
                f"model name\t: {model_name}\n"
                f"stepping\t: 1\n"
                f"cpu MHz\t\t: 2000.000\n"
                f"physical id\t: {pkg}\n"
                f"siblings\t: {cores * smt}\n"
                f"core id\t\t: {core}\n"
                f"cpu cores\t: {cores}\n"
                f"apicid\t\t: {i}\n"
                f"fpu\t\t: yes\n"
                f"flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic\n"
                f"\n"
            )
        _write_static(self.root / "proc/cpuinfo", "".join(blocks))

    def _msr_fd(self, cpu: int) -> int:
        fd = self._msr_fds.get(cpu)
        if fd is None:
            path = self.root / f"dev/cpu/{cpu}/msr"
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            os.chmod(path, 0o600)
            self._msr_fds[cpu] = fd
        return fd

    def _msr_conflict(self, cpu: int, register: int, is_unit: bool) -> str | None:
        """Why ``register`` cannot live in cpu's flat msr file next to the registers already
        there, or None. Registers are 8 bytes at offset = number, so numbers closer than 8 share
        bytes. Tolerated: a counter 2 or more bytes above a unit register overwrites only the
        unit register's bits 16 and up (time units, reserved), keeping the power units (bits 3:0)
        and the energy status unit (bits 12:8) that readers decode."""
        for other, other_is_unit in self._msr_regs.get(cpu, {}).items():
            if other == register or abs(other - register) >= 8:
                continue
            lo_unit = other_is_unit if other < register else is_unit
            if lo_unit and abs(other - register) >= 2 and not (is_unit and other_is_unit):
                continue
            return (
                f"MSR {register:#x} and {other:#x} overlap in the flat file dev/cpu/{cpu}/msr "
                "(8 bytes at offset = register); put them on different cpus"
            )
        return None

    def _write_msr_unit(self, cpu: int, register: int) -> None:
        value = msr_unit_value(self._msr_esu[register]).to_bytes(8, "little")
        above = [r for r in self._msr_regs.get(cpu, {}) if register < r < register + 8]
        length = min(above, default=register + 8) - register  # leave overlapping counters alone
        os.pwrite(self._msr_fd(cpu), value[:length], register)
        self._msr_regs.setdefault(cpu, {})[register] = True

    def set_msr_unit(self, cpu: int, register: int, esu: int) -> None:
        """Write the RAPL power-unit register (0x606 Intel, 0xC0010299 AMD) of ``cpu`` with
        energy status unit ``esu`` (energy unit 1/2^esu J). One unit holds for all cpus of the
        host, as on real parts: unit registers already written on other cpus are rewritten, and
        counters of that vendor take the new unit (their values jump: set it before start)."""
        if register not in _DEFAULT_ESU:
            raise ValueError(f"unit register must be 0x606 or 0xC0010299, got {register:#x}")
        msr_unit_value(esu)  # validates
        if register not in self._msr_regs.get(cpu, {}):
            why = self._msr_conflict(cpu, register, True)
            if why:
                raise ValueError(why)
        self._msr_esu[register] = esu
        self._write_msr_unit(cpu, register)
        for other_cpu, regs in self._msr_regs.items():
            if other_cpu != cpu and regs.get(register):
                self._write_msr_unit(other_cpu, register)
        for unit_reg, counter in self._msr_counters:
            if unit_reg == register:
                counter.unit_j = 1.0 / (1 << esu)
                counter._last = -1

    def add_msr(
        self,
        cpu: int,
        register: int,
        profile: PowerProfile,
        *,
        bits: int = 32,
        start_units: int = 0,
    ) -> FakeCounter:
        """An energy-status counter at ``register`` of ``dev/cpu/<cpu>/msr``, counting in the
        unit of that vendor's unit register (AMD's for registers 0xC001xxxx, else Intel's; ESU 14
        for Intel, 16 for AMD unless :meth:`set_msr_unit` said otherwise), wrapping at 2^bits.
        The unit register is written on ``cpu`` too when it fits: AMD's per-core 0xC001029A
        overlaps the ESU byte of 0xC0010299, so a cpu with a core counter has no unit register
        (read the unit on another cpu). Real parts report a package counter on every cpu of the
        package: add it on each cpu you read."""
        if not 1 <= bits <= 64:
            raise ValueError("bits must be in 1..64")
        if register in self._msr_regs.get(cpu, {}):
            raise ValueError(f"MSR {register:#x} of cpu {cpu} exists already")
        why = self._msr_conflict(cpu, register, False)
        if why:
            raise ValueError(why)
        unit_reg = _unit_register_for(register)
        self._msr_esu.setdefault(unit_reg, _DEFAULT_ESU[unit_reg])
        if unit_reg not in self._msr_regs.get(cpu, {}) and (
            self._msr_conflict(cpu, unit_reg, True) is None
            and abs(register - unit_reg) >= 2  # the new counter would clobber the ESU byte
        ):
            self._write_msr_unit(cpu, unit_reg)
        fd = self._msr_fd(cpu)
        modulus = 1 << bits
        counter = FakeCounter(
            self,
            (self.root / f"dev/cpu/{cpu}/msr", register),
            profile,
            kind="energy",
            unit_j=1.0 / (1 << self._msr_esu[unit_reg]),
            modulus=modulus,
            start_units=start_units,
            msr_fd=fd,
            msr_register=register,
        )
        self._msr_regs.setdefault(cpu, {})[register] = False
        os.pwrite(fd, (start_units % modulus).to_bytes(8, "little"), register)
        self._msr_counters.append((unit_reg, counter))
        self._add_writer(counter)
        return counter

    # --- /proc/stat ---------------------------------------------------------------------------
    def set_proc_stat(self, util_profile: PowerProfile, n_cpus: int) -> FakeProcStat:
        """``proc/stat`` for ``n_cpus`` cpus whose busy share follows ``util_profile`` (its
        "power" is the utilisation, 0..1 of all cpus). Returns the handle with the truth."""
        if any(p > 1.0 for _, p in util_profile.segments):
            raise ValueError("utilisation must be within 0..1")
        if n_cpus <= 0:
            raise ValueError("n_cpus must be positive")
        stat = FakeProcStat(self, self.root / "proc/stat", util_profile, n_cpus)
        self._files.append(stat._sink)
        self._add_writer(stat)
        return stat

    # --- permissions --------------------------------------------------------------------------
    def deny(self, path: Path | str) -> None:
        """``chmod 000`` a file of the tree (absolute, or relative to :attr:`root`; symlinks
        are followed). Root ignores modes: a test that needs EACCES must run unprivileged.
        The writer keeps updating the file through its open descriptor."""
        p = Path(path)
        if not p.is_absolute():
            p = self.root / p
        os.chmod(p, 0)

    # --- writer -------------------------------------------------------------------------------
    @property
    def last_tick_ns(self) -> int:
        """Monotonic tick time of the last complete pass over all counters (0 before any)."""
        return struct.unpack_from("q", self._shared, 8)[0]

    @property
    def passes(self) -> int:
        """Number of passes the writer has made over all counters."""
        return struct.unpack_from("q", self._shared, 16)[0]

    @property
    def ticks_skipped(self) -> int:
        """Ticks the writer jumped over because it fell behind."""
        return struct.unpack_from("q", self._shared, 24)[0]

    def update(self, t_ns: int) -> None:
        """Write every counter for monotonic time ``t_ns`` now (for ``start(writer="none")``:
        exact, deterministic tests). Not quantised to the tick."""
        if self._thread is not None or self._child_pid is not None:
            raise RuntimeError("update() is for start(writer='none'): a writer is running")
        epoch = self._require_epoch()
        t_s = (t_ns - epoch) / 1e9
        with self._pass_lock:
            for w in self._writers:
                w._write_s(t_s)
            struct.pack_into("q", self._shared, 8, t_ns)

    def _loop(self, stop: Callable[[], bool], check_parent: bool) -> None:
        epoch, tick = self._require_epoch(), self.tick_ns
        shared, monotonic_ns, sleep = self._shared, time.monotonic_ns, time.sleep
        lock = self._pass_lock
        parent = os.getppid()
        k = passes = skipped = 0
        while not stop():
            deadline = epoch + k * tick
            now = monotonic_ns()
            if now < deadline:
                sleep((deadline - now) / 1e9)
                now = monotonic_ns()
            latest = (now - epoch) // tick
            if latest > k:  # behind: jump to the newest tick that has begun
                skipped += latest - k
                k = latest
            t_ns = epoch + k * tick
            t_s = (t_ns - epoch) / 1e9
            passes += 1
            with lock:
                for w in self._writers:
                    w._write_s(t_s)
                struct.pack_into("qqq", shared, 8, t_ns, passes, skipped)
            k += 1
            if check_parent and passes & 255 == 0 and os.getppid() != parent:
                return

    def start(self, *, writer: str = "thread") -> None:
        """Record :attr:`epoch_ns` and start advancing every counter every tick.

        ``writer``: ``"thread"`` (a daemon thread; it needs the GIL, so a Python thread that
        spins in the same process can delay it by the switch interval, 5 ms: values stay
        exact for their tick, only staler), ``"process"`` (a forked child, free of the GIL;
        no counter can be added while it runs), or ``"none"`` (call :meth:`update` yourself)."""
        if writer not in ("thread", "process", "none"):
            raise ValueError(f"writer must be thread, process or none, not {writer!r}")
        if self._thread is not None or self._child_pid is not None:
            raise RuntimeError("already started")
        if self._closed:
            raise RuntimeError("closed")
        self._shared[0:32] = bytes(32)
        for w in self._writers:  # a forked writer of an earlier start may have written the files
            w._forget()
        self.epoch_ns = time.monotonic_ns()
        self.update(self.epoch_ns)  # tick 0
        if writer == "thread":
            self._thread = threading.Thread(
                target=self._loop,
                args=(lambda: self._shared[0] != 0, False),
                name="fakehost-writer",
                daemon=True,
            )
            self._thread.start()
        elif writer == "process":
            pid = os.fork()
            if pid == 0:  # child: write until told to stop or orphaned, never return
                code = 0
                try:
                    self._loop(lambda: self._shared[0] != 0, True)
                except BaseException:
                    code = 1
                finally:
                    os._exit(code)
            self._child_pid = pid

    def stop(self) -> None:
        """Stop the writer; files keep their last values and descriptors stay open. A later
        :meth:`start` begins a new epoch: counters restart from their start value."""
        self._shared[0] = 1
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._child_pid is not None:
            pid, self._child_pid = self._child_pid, None
            for _ in range(500):
                done, _status = os.waitpid(pid, os.WNOHANG)
                if done:
                    break
                time.sleep(0.01)
            else:
                os.kill(pid, 9)
                os.waitpid(pid, 0)

    def close(self) -> None:
        """Stop and close every descriptor the fake holds."""
        self.stop()
        for f in self._files:
            f.close()
        for fd in self._msr_fds.values():
            os.close(fd)
        self._msr_fds.clear()
        self._writers = ()
        self._closed = True

    def __enter__(self) -> "FakeHost":
        if self.epoch_ns is None:  # not started yet: start the default thread writer
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
