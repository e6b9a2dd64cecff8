"""The busy main thread the sampler benchmarks run beside: fixed, CPU-bound, pure-Python work."""

from __future__ import annotations

import time


def py_work(n: int) -> int:
    """Fixed CPU-bound pure-Python work: dict and str operations, no C extension doing the bulk."""
    d: dict[str, int] = {}
    acc = 0
    for i in range(n):
        k = "key%d" % (i & 1023)
        d[k] = d.get(k, 0) + i
        acc += len(k.upper())
    return acc + len(d)


def calibrate_work(target_s: float) -> int:
    """How many iterations of :func:`py_work` take about ``target_s`` seconds on this machine."""
    n = 20_000
    while True:
        t0 = time.perf_counter()
        py_work(n)
        el = time.perf_counter() - t0
        if el > 0.05:
            return max(int(n * target_s / el), 1)
        n *= 4
