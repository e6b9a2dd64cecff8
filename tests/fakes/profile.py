"""Scripted power profiles: the ground truth that every fake sensor follows.

A profile is a list of ``(duration_s, power_w)`` segments, constant power in each. With
``repeat=True`` the list cycles for ever; otherwise the last segment's power holds after the end.
Energy is the exact integral, so a test can ask "how many joules between t0 and t1" and compare
what greentop measured against it.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field


@dataclass(frozen=True)
class PowerProfile:
    segments: tuple[tuple[float, float], ...]
    repeat: bool = True
    _starts_s: tuple[float, ...] = field(init=False, repr=False)
    _energy_at_start_j: tuple[float, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.segments:
            raise ValueError("a profile needs at least one segment")
        starts, energies = [0.0], [0.0]
        for duration_s, power_w in self.segments:
            if duration_s <= 0 or power_w < 0:
                raise ValueError(f"bad segment ({duration_s}, {power_w})")
            energies.append(energies[-1] + duration_s * power_w)
            starts.append(starts[-1] + duration_s)
        object.__setattr__(self, "_starts_s", tuple(starts))
        object.__setattr__(self, "_energy_at_start_j", tuple(energies))

    @classmethod
    def constant(cls, power_w: float) -> "PowerProfile":
        return cls(((1.0, power_w),), repeat=True)

    @property
    def period_s(self) -> float:
        return self._starts_s[-1]

    def power_w(self, t_s: float) -> float:
        """Instantaneous power (W) at ``t_s`` seconds after the profile's epoch."""
        if t_s < 0:
            return 0.0
        if self.repeat:
            t_s = t_s % self.period_s
        elif t_s >= self.period_s:
            return self.segments[-1][1]
        i = bisect.bisect_right(self._starts_s, t_s) - 1
        return self.segments[i][1]

    def energy_j(self, t_s: float) -> float:
        """Energy (J) delivered from the epoch to ``t_s`` seconds after it."""
        if t_s <= 0:
            return 0.0
        period, total = self.period_s, self._energy_at_start_j[-1]
        base = 0.0
        if self.repeat:
            cycles = int(t_s // period)
            base = cycles * total
            t_s -= cycles * period
        elif t_s >= period:
            return total + (t_s - period) * self.segments[-1][1]
        i = bisect.bisect_right(self._starts_s, t_s) - 1
        i = min(i, len(self.segments) - 1)
        return base + self._energy_at_start_j[i] + (t_s - self._starts_s[i]) * self.segments[i][1]

    def energy_between_j(self, t0_s: float, t1_s: float) -> float:
        return self.energy_j(t1_s) - self.energy_j(t0_s)

    def to_config(self) -> str:
        """One line of ``dur_s power_w`` pairs, as the fake NVML library's config reads it."""
        return " ".join(f"{d!r} {p!r}" for d, p in self.segments)
