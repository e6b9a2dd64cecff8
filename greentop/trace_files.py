"""Creating the files greentop writes without clobbering anything or leaking readings.

- A trace is created, never reused: ``O_CREAT | O_EXCL | O_NOFOLLOW``, so an existing file (or a
  symlink planted at the output path, pointing anywhere) is never written through. The CLI refuses
  an existing output unless ``--force``, which removes the old entry (the link itself, not its
  target) first.
- A trace that holds readings other users of the machine could not make is created owner-only
  (0600): since CVE-2020-8694 (a power side channel: RAPL energy at kHz leaks what other code
  computes) the kernel makes ``energy_uj`` readable by root only, and an MSR device is root-only
  too. A trace of such readings readable by everyone would undo that. Traces of world-readable
  sensors (NVML, hwmon where world-readable, the CPU estimate) follow the umask as usual.
- A report (``greentop summary -o``) is written to a temporary file in the same folder and renamed
  over the target only once it is complete, so a failure leaves the old file as it was.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import Sequence

from greentop.channel import Channel, ReaderKind

PRIVATE_MODE = 0o600
SHARED_MODE = 0o666  # before the umask, as open() does


def private_readings(channels: Sequence[Channel]) -> bool:
    """Whether any channel reads a file that other users may not read (RAPL sysfs counters since
    CVE-2020-8694, MSR devices): its trace must then be owner-only."""
    for c in channels:
        if c.reader.kind is ReaderKind.MSR:
            return True
        if c.reader.kind is ReaderKind.FILE_DECIMAL and c.reader.path:
            try:
                mode = os.stat(c.reader.path).st_mode  # discovery stored the path it opens
            except OSError:
                return True  # cannot tell: err on the side of privacy
            if not mode & stat.S_IROTH:
                return True
    return False


def create_new(path: Path, private: bool) -> None:
    """Create ``path`` as a new empty regular file (mode 0600 when ``private``); FileExistsError
    if anything is there already, a symlink included (it is not followed)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 PRIVATE_MODE if private else SHARED_MODE)
    os.close(fd)


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file renamed over it once written: a failure
    leaves any old ``path`` untouched. The new file gets the usual mode (umask applied)."""
    folder = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, SHARED_MODE & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
