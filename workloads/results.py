"""The one format every workload writes its outcome in, and the sweep's results table.

A workload run with ``--result PATH`` writes one JSON document::

    {"schema": "greentop.workload-result/1",
     "workload": "train",            # train | infer | llm-infer | serve | loadgen | idle
     "primary_phase": "train",       # the phase whose energy the per-unit figures divide
     "params": {"arch": "resnet18", "batch_size": 64, ...},      # flat, scalars only
     "metrics": {"accuracy": 0.93, "loss": 0.21, "model_params": 11689512, ...},
     "hardware": {"device": "cuda:0", "device_name": "NVIDIA H200", ...}}

Counts of work go through ``greentop.count`` with these names, so summaries and the sweep's table
agree on them: ``samples``, ``input_tokens``, ``output_tokens``, ``requests``.

The sweep's ``results.csv`` has one row per point and these columns (schema version 1):

- ``schema_version``, ``sweep``, ``point`` (stable id of the parameters), ``status``
  (``ok`` | ``failed``), ``exit_code``, ``trace`` (path relative to the CSV), ``workload``,
  ``primary_phase``
- ``param.<name>``: every parameter of the point
- ``metric.<name>``: every metric of the workload's result document
- ``hw.<name>``: the workload's hardware description
- run totals over the workload (the idle baseline before it excluded): ``duration_s``,
  ``energy_j``, ``energy_above_idle_j``, ``avg_power_w``, ``peak_power_w``, ``idle_power_w``,
  ``gco2e``, ``carbon_g_per_kwh``, ``estimated`` (any estimated channel in the total)
- ``domain.<domain>.energy_j``: the run's energy per domain (``cpu-package-0``, ``gpu0``, ...)
- ``phase.<name>.energy_j``, ``phase.<name>.duration_s``, ``phase.<name>.exclusive_energy_j``:
  summed over every occurrence of a phase of that (leaf) name, inclusive of its children
  unless ``exclusive``
- ``count.<name>``: the workload's counts over the whole run
- ``energy_per_sample_j``, ``energy_per_input_token_j``, ``energy_per_output_token_j``,
  ``energy_per_request_j``: the primary phase's energy over its counts (empty where not counted)
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

RESULT_SCHEMA = "greentop.workload-result/1"
RESULTS_SCHEMA_VERSION = 1
COUNT_NAMES = ("samples", "input_tokens", "output_tokens", "requests")
PER_UNIT_COLUMNS = {
    "samples": "energy_per_sample_j",
    "input_tokens": "energy_per_input_token_j",
    "output_tokens": "energy_per_output_token_j",
    "requests": "energy_per_request_j",
}

Scalar = str | int | float | bool | None


def _scalar(v: Any) -> Scalar:
    """JSON-safe scalar: NaN and infinities become None (JSON has no NaN)."""
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if hasattr(v, "item"):  # numpy / torch scalars
        return _scalar(v.item())
    return str(v)


def write_result(path: str | Path, *, workload: str, primary_phase: str, params: dict[str, Any],
                 metrics: dict[str, Any], hardware: dict[str, Any] | None = None) -> Path:
    """Write a workload's result document atomically (a crash never leaves half a file)."""
    path = Path(path)
    doc = {
        "schema": RESULT_SCHEMA,
        "workload": workload,
        "primary_phase": primary_phase,
        "params": {k: _scalar(v) for k, v in params.items()},
        "metrics": {k: _scalar(v) for k, v in metrics.items()},
        "hardware": {k: _scalar(v) for k, v in (hardware or {}).items()},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def mark_outcome(metrics: dict[str, Any]) -> None:
    """Put the run's quality figures (accuracy, loss, latencies ...) into the recording as a mark
    named ``outcome``, so a trace holds what its energy bought even when no ``--result`` file was
    asked for. Numbers only (finite); outside ``greentop record`` this does nothing."""
    import greentop

    numbers = {k: v for k, v in metrics.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
    greentop.mark("outcome", **numbers)


class ResultError(ValueError):
    """A result document that is missing, unreadable or of another schema."""


def read_result(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ResultError(f"{path}: no result document") from exc
    except (OSError, ValueError) as exc:
        raise ResultError(f"{path}: unreadable result document ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("schema") != RESULT_SCHEMA:
        raise ResultError(f"{path}: not a {RESULT_SCHEMA} document")
    return doc
