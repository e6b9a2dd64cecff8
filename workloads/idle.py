"""``python -m workloads idle``: a torch-free stand-in workload.

It does no learning at all: it tags the given phases in turn, spends ``--seconds`` in total inside
them (sleeping, or busy-looping with ``--busy``), counts ``--samples`` samples in each phase, and
writes a result document like the real workloads do. The sweep's tests run it under a real
``greentop record`` in well under a second per point, so the whole sweep machinery (records,
summaries, the results table, resuming, failures) is exercised without torch or a GPU.

Its ``accuracy`` and ``loss`` metrics are deterministic functions of the parameters, so a report
built from a sweep of it can be checked against known values:
``accuracy = samples / (samples + 100)``, ``loss = 1 - accuracy``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import greentop
from greentop.cliargs import OneLineParser, non_negative_float, non_negative_int
from workloads.results import write_result

EXIT_BAD_INPUT = 2
# Counts are reported in this many chunks per phase, as a training loop reports one per step, so a
# trace holds several count events per phase rather than one.
STEPS_PER_PHASE = 5


def _phase_names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",")]
    if not names or any(not n for n in names):
        raise argparse.ArgumentTypeError(f"phases must be comma-separated non-empty names, got {text!r}")
    return names


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m workloads idle", label="workloads idle", description="A torch-free stand-in workload: tagged phases, counted samples, a result document, no model.")
    p.add_argument("--seconds", type=non_negative_float, default=0.5, metavar="S",
                   help="time spent inside the phases, in total, split evenly between them (default 0.5)")
    p.add_argument("--samples", type=non_negative_int, default=100, metavar="N",
                   help="samples counted in each phase (default 100)")
    p.add_argument("--phases", type=_phase_names, default=["work"], metavar="A,B",
                   help="phases tagged in turn; the first is the primary phase (default: work)")
    p.add_argument("--busy", action="store_true", help="busy-loop instead of sleeping (draws CPU power)")
    p.add_argument("--fail", action="store_true", help="exit 1 after the phases, without a result document")
    p.add_argument("--result", metavar="PATH", help="write the result document (workloads.results) there")
    return p


def _spend(seconds: float, busy: bool) -> None:
    """Pass ``seconds`` of wall time, sleeping or spinning (the spin is what a busy CPU looks like)."""
    if not busy:
        time.sleep(seconds)
        return
    deadline = time.monotonic() + seconds
    x = 0
    while time.monotonic() < deadline:
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF  # arbitrary integer work to keep a core busy


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    phases: list[str] = args.phases
    per_phase_s = args.seconds / len(phases)
    per_step_s = per_phase_s / STEPS_PER_PHASE
    for name in phases:
        with greentop.phase(name):
            done = 0
            for step in range(STEPS_PER_PHASE):
                _spend(per_step_s, args.busy)
                # Spread the samples over the steps; the last step takes the remainder.
                n = args.samples // STEPS_PER_PHASE + (args.samples % STEPS_PER_PHASE if step == STEPS_PER_PHASE - 1 else 0)
                if n:
                    greentop.count(samples=n)
                done += n
    if args.fail:
        print("workloads idle: failing as asked (--fail)", file=sys.stderr)
        return 1
    if args.result:
        accuracy = args.samples / (args.samples + 100)
        write_result(
            args.result,
            workload="idle",
            primary_phase=phases[0],
            params={"seconds": args.seconds, "samples": args.samples, "phases": ",".join(phases), "busy": args.busy},
            metrics={"accuracy": accuracy, "loss": 1.0 - accuracy},
            hardware={"device": "cpu", "cpu_count": os.cpu_count() or 0, "machine": platform.machine()},
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
