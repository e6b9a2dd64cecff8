"""Bounded SWMR reads: a damaged trace fails at once instead of being retried for minutes.

In SWMR read mode HDF5 retries every metadata read whose checksum fails, on the theory that the
writer is mid-flush: by default up to 100 attempts, with a growing sleep between them. On a trace
whose recorder died, a checksum that fails will never succeed, and one flipped byte in an object
header made ``greentop summary`` spin for 15 minutes. The library's knob for this,
``H5Pset_metadata_read_attempts``, is not exposed by h5py: it is called here through ctypes on
the very HDF5 library h5py loaded (found in this process's memory map), with a small count.
Where that library cannot be found, SWMR files open with HDF5's defaults.
"""

from __future__ import annotations

import ctypes
import functools
import logging

import h5py

log = logging.getLogger(__name__)

# Enough for a reader racing a live writer's flush (one retry almost always suffices), few enough
# that a checksum that will never match costs milliseconds.
SWMR_READ_ATTEMPTS = 4


@functools.cache
def _hdf5_library() -> ctypes.CDLL | None:
    """The HDF5 shared library h5py is linked with (already loaded: this only finds its handle)."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "libhdf5" in line and ".so" in line and "_hl" not in line}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
            fn = lib.H5Pset_metadata_read_attempts
        except (OSError, AttributeError):
            continue
        fn.argtypes = [ctypes.c_int64, ctypes.c_uint]
        fn.restype = ctypes.c_int
        return lib
    log.info("HDF5 library not found in the process map: SWMR reads keep HDF5's retry count")
    return None


def swmr_read_fapl(attempts: int = SWMR_READ_ATTEMPTS) -> h5py.h5p.PropFAID | None:
    """A file-access property list for SWMR reading with ``attempts`` metadata read attempts, or
    None when the limit cannot be set (the caller then opens with HDF5's defaults)."""
    lib = _hdf5_library()
    if lib is None:
        return None
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_fclose_degree(h5py.h5f.CLOSE_STRONG)  # as h5py.File does: closing the file closes everything in it
    if lib.H5Pset_metadata_read_attempts(fapl.id, attempts) < 0:
        return None
    return fapl
