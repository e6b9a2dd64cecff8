"""greentop: live energy profiling for machine-learning workloads.

In a workload: ``greentop.phase``, ``greentop.mark``, ``greentop.count`` (no-ops outside
``greentop record`` and without a Monitor). In-process measurement: ``greentop.Monitor``,
``greentop.devices()`` (``greentop.api``). After a run: ``greentop.load("run.h5")``. In Jupyter:
``%load_ext greentop`` for the ``%%greentop`` cell magic.
"""

from typing import Any

from greentop.phases import count, mark, phase

__version__ = "0.1.0"
__all__ = ["Monitor", "count", "devices", "load", "mark", "phase"]


def __getattr__(name: str) -> Any:
    # Lazy: a workload that only tags phases must not pay for importing h5py or the sampler.
    if name == "load":
        from greentop.trace import load

        return load
    if name in ("Monitor", "devices", "MonitorError"):
        import greentop.api

        return getattr(greentop.api, name)
    raise AttributeError(f"module 'greentop' has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext greentop`` in IPython/Jupyter: the ``%%greentop`` cell magic."""
    from greentop.api.notebook import load_ipython_extension as load

    load(ipython)
