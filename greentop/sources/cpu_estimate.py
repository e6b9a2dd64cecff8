"""A CPU power estimate for machines with no readable CPU energy sensor.

Utilisation comes from the busy jiffies of ``/proc/stat`` and turns into watts through a linear
model, ``P = idle_w + u * (max_w - idle_w)`` for the whole machine. The default assumes
1.0 W idle and 5.0 W at full load per logical CPU: a server thread's share of a 100-300 W
package is roughly 2-5 W at full load, desktop parts run higher. It is an estimate and says so
everywhere; override it with ``--cpu-idle-w`` / ``--cpu-max-w`` or
``GREENTOP_CPU_MODEL=IDLE_W,MAX_W`` (whole machine, watts).
"""

from __future__ import annotations

import math
import os
import re

from greentop._paths import host_path
from greentop.channel import Channel, CpuPowerModel, Lane, Problem, Quantity, Reader, ReaderKind
from greentop.sources._common import SourceResult, read_text

SOURCE = "cpu-estimate"
MODEL_ENV = "GREENTOP_CPU_MODEL"
IDLE_W_PER_CPU = 1.0
MAX_W_PER_CPU = 5.0


def count_cpus() -> int:
    text = read_text(host_path("/proc/stat")) or ""
    n = len(re.findall(r"^cpu\d+ ", text, re.MULTILINE))
    return n or (os.cpu_count() or 1)


def model_from(idle_w: float | None, max_w: float | None, n_cpus: int) -> CpuPowerModel:
    """The model in force: explicit values, else ``$GREENTOP_CPU_MODEL``, else the default."""
    if idle_w is None and max_w is None and os.environ.get(MODEL_ENV):
        parts = os.environ[MODEL_ENV].split(",")
        if len(parts) != 2:
            raise ValueError(f"{MODEL_ENV} must be IDLE_W,MAX_W, got {os.environ[MODEL_ENV]!r}")
        try:
            idle_w, max_w = float(parts[0]), float(parts[1])
        except ValueError:
            raise ValueError(f"{MODEL_ENV} must be two numbers IDLE_W,MAX_W, got {os.environ[MODEL_ENV]!r}") from None
        if not (math.isfinite(idle_w) and math.isfinite(max_w)):
            raise ValueError(f"{MODEL_ENV} must be finite watts, got {os.environ[MODEL_ENV]!r}")
    idle = IDLE_W_PER_CPU * n_cpus if idle_w is None else idle_w
    peak = MAX_W_PER_CPU * n_cpus if max_w is None else max_w
    if idle < 0 or peak < idle:
        raise ValueError(f"CPU power model needs 0 <= idle_w <= max_w, got idle_w={idle}, max_w={peak}")
    return CpuPowerModel(idle_w=idle, max_w=peak, n_cpus=n_cpus)


def discover(idle_w: float | None = None, max_w: float | None = None) -> SourceResult:
    result = SourceResult()
    stat = host_path("/proc/stat")
    if read_text(stat) is None:
        result.problems.append(Problem(SOURCE, "/proc/stat", "unreadable", "mount procfs"))
        return result
    model = model_from(idle_w, max_w, count_cpus())
    result.channels.append(
        Channel(
            name="estimate:cpu",
            source=SOURCE,
            domain="cpu",
            quantity=Quantity.CPU_BUSY,
            unit="jiffies",
            scale=1.0 / os.sysconf("SC_CLK_TCK"),
            reader=Reader(ReaderKind.PROC_STAT_BUSY, path=str(stat)),
            estimated=True,
            lane=Lane.SLOW,
            note=f"estimated: {model.idle_w:g} W idle to {model.max_w:g} W busy over {model.n_cpus} CPUs, from /proc/stat",
            model=model,
        )
    )
    return result
