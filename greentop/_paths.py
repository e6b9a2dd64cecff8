"""Where the host's kernel interfaces and driver libraries live.

``GREENTOP_SYSFS_ROOT`` prefixes every ``/sys``, ``/dev`` and ``/proc`` path, so the test suite can
point greentop at a fake host tree. Unset, paths are the real ones. ``GREENTOP_NVML_LIB`` names
the NVML library to load instead of the driver's ``libnvidia-ml.so.1`` (the test suite's fake).
The sampler reads it here, not through the NVML source module.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT_ENV = "GREENTOP_SYSFS_ROOT"
NVML_LIB_ENV = "GREENTOP_NVML_LIB"


def host_path(path: str) -> Path:
    """Map an absolute host path (``/sys/...``, ``/dev/...``, ``/proc/...``) into the configured root."""
    root = os.environ.get(ROOT_ENV, "")
    if not root:
        return Path(path)
    return Path(root) / path.lstrip("/")


def display_path(path: Path) -> str:
    """The path as the user would type it on the real host (the fake root stripped)."""
    root = os.environ.get(ROOT_ENV, "")
    text = str(path)
    if root and text.startswith(root.rstrip("/") + "/"):
        return "/" + text[len(root.rstrip("/")) + 1 :]
    return text


def nvml_library_path() -> str:
    """The NVML library greentop loads: ``$GREENTOP_NVML_LIB``, or "" for the driver's soname."""
    return os.environ.get(NVML_LIB_ENV, "")
