"""greentop: live energy profiling for machine-learning workloads."""

__version__ = "0.1.0"
