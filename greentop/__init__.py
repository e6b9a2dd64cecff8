"""greentop: live energy profiling for machine-learning workloads.

In a workload: ``greentop.phase``, ``greentop.mark``, ``greentop.count`` (no-ops outside
``greentop record``). After a run: ``greentop.load("run.h5")``.
"""

from typing import Any

from greentop.phases import count, mark, phase

__version__ = "0.1.0"
__all__ = ["count", "load", "mark", "phase"]


def __getattr__(name: str) -> Any:
    # Lazy: a workload that only tags phases must not pay for importing h5py.
    if name == "load":
        from greentop.trace import load

        return load
    raise AttributeError(f"module 'greentop' has no attribute {name!r}")
