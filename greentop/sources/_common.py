"""Helpers shared by the sources: reading small kernel files and describing unreadable ones."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from greentop._paths import display_path
from greentop.channel import Channel, Problem


@dataclass
class SourceResult:
    """What one source found: channels it can read, sensors it cannot, and plain notes."""

    channels: list[Channel] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    devices: list[dict[str, object]] = field(default_factory=list)  # metadata (GPU models, ...)

    def extend(self, other: "SourceResult") -> None:
        self.channels += other.channels
        self.problems += other.problems
        self.notes += other.notes
        self.devices += other.devices


def read_text(path: Path) -> str | None:
    """The stripped content of a small kernel file, or None where it is missing or unreadable."""
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def probe_int(path: Path) -> int:
    """Read a decimal counter the way the sampler will (open, pread at 0). Raises OSError."""
    fd = os.open(path, os.O_RDONLY)
    try:
        data = os.pread(fd, 32, 0)
    finally:
        os.close(fd)
    digits = data.split(b"\n", 1)[0].strip()
    if not digits.isdigit():
        raise OSError(f"{display_path(path)} holds no number: {data[:20]!r}")
    return int(digits)
