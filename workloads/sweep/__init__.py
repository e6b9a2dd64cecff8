"""``python -m workloads sweep FILE.toml``: run a grid of workload points, each under ``greentop record``.

A sweep file::

    [sweep]
    name = "cnn"                 # default: the file's stem; names the results and the default --out
    description = "..."          # free text, for people reading the file
    workload = "train"           # train | infer | llm-infer | serve-bench | idle
    repeats = 1                  # each point runs this many times (param ``repeat`` = 0, 1, ...)
    rate = 1000.0                # greentop record --rate (Hz); default: greentop's
    slow_rate = 10.0             # greentop record --slow-rate (Hz); default: greentop's
    baseline = 3.0               # idle baseline before each point (s); 0 or false: --no-baseline
    region = "FR"                # or carbon_intensity = 56.0 (gCO2e/kWh), not both
    record_args = ["--no-gpu"]   # any other greentop record options, passed as they are
    timeout_s = 1800             # a point still running after this long is stopped and failed

    [base]                       # parameters of every point
    data = "synthetic"
    image_size = 32

    [grid]                       # parameter -> values; the points are the cartesian product
    arch = ["resnet18", "vit"]
    batch_size = [32, 128]

    [[exclude]]                  # grid points matching every key here are dropped (a list: any of)
    arch = "vit"
    batch_size = 128

    [[include]]                  # extra points: base + this table
    arch = "resnet50"
    batch_size = 64

A parameter becomes a workload flag: ``batch_size = 64`` -> ``--batch-size 64``; ``true`` ->
``--flag`` alone; ``false`` -> nothing; a list -> its items joined by commas. The sweep appends
``--result points/<id>.json``. ``repeat`` is the sweep's own parameter and is not passed on.

Each point runs in its own process (nothing carries over between points: allocator caches, warm
GPUs, compiled kernels) as::

    python -m greentop record -o OUT/points/<id>.h5 [record options] -- \\
        python -m workloads <workload> <flags> --result OUT/points/<id>.json

with its output in ``OUT/points/<id>.log``; then ``python -m greentop summary <trace> --format
json`` (greentop's public command line: workloads never import greentop's internals) gives the
energy figures, kept as ``OUT/points/<id>.summary.json``, and one row per point goes into
``OUT/results.csv`` (columns: :mod:`workloads.results`), rewritten atomically after every point.
The sweep file is copied to ``OUT/sweep.toml``.

Output folder (``--out``, default ``runs/<name>`` under the current folder)::

    OUT/sweep.toml  OUT/results.csv
    OUT/points/<id>.h5 (trace)  <id>.json (result document)  <id>.log  <id>.summary.json

A point id reads as the values of the parameters that vary, then a hash of all the parameters
(and the workload): ``resnet18-bs32-fp32-1a2b3c4d`` (``-rep1`` added with repeats > 1). The hash is what identifies the point, so a
finished point is recognised on a later run even if the readable part changes.

Resuming: a point whose row says ``ok`` and whose trace exists is skipped; a ``failed`` point is
rerun only with ``--retry-failed``. A point fails when greentop record or the workload exits
non-zero, when it runs past ``timeout_s`` (exit code 124, as ``timeout(1)`` reports it), or when its
trace, summary or result document cannot be read; the failure gets a row (with whatever figures
could be read) and the sweep goes on. Ctrl-C stops the current point (greentop record stops the
workload and finishes its trace), keeps every finished row and exits 130; that point runs again
next time.

Exit codes: 0 every point ok; 1 some point failed; 2 bad input (one line on stderr); 130 Ctrl-C.

Energy columns: greentop's run row covers the idle baseline too, so the run totals
(``duration_s``, ``energy_j``, ``energy_above_idle_j``, ``gco2e``) and ``domain.*`` are the run's
minus the baseline window's; ``peak_power_w`` is the run's (the idle window never holds the peak);
``idle_power_w`` is the baseline's average. ``phase.<name>.*`` sum every occurrence of that phase
name, leaving out occurrences nested inside one of the same name (already in its inclusive
figures); the ``energy_per_*`` columns divide the primary phase's summed energy by the counts
made inside those occurrences.

In ``results.csv`` booleans read ``true``/``false`` (pandas reads them as booleans), empty cells
are values that do not apply, floats are written in full (``repr``).
"""


from workloads.sweep.cli import build_parser, main
from workloads.sweep.spec import (
    Point,
    PointFiles,
    RecordSettings,
    Sweep,
    SweepError,
    expand,
    load_sweep,
    point_id,
    point_key,
    record_command,
    workload_flags,
)
from workloads.sweep.table import read_results, summary_columns, write_results

__all__ = ["Point", "PointFiles", "RecordSettings", "Sweep", "SweepError", "build_parser", "expand", "load_sweep",
           "main", "point_id", "point_key", "read_results", "record_command", "summary_columns", "workload_flags",
           "write_results"]
