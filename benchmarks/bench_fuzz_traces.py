"""The full trace-fuzzing run: hundreds of damaged copies of real traces through greentop's readers.

    python benchmarks/bench_fuzz_traces.py [--n 300] [--seed 1] [--timeout 20] [--out FILE.json]

The variants and the way each outcome is judged are those of ``tests/fuzz_traces.py`` (which the
test suite runs on a small fixed-seed corpus): truncations, byte flips, zeroed blocks, flipped
object headers and h5py edits of three real traces (the committed H200 trace, and a complete and
a killed recording over the fake host), each read by ``greentop summary``, ``greentop.load()``
and replay's loading path in a forked child with a deadline.

Prints one JSON object: per reader, how many variants ended in a clean error, a traceback, a hang,
the same output as the undamaged trace, a different output that says it is different
(``flagged``), or a different output that does not (``silently_wrong``, NaN included); with
``--examples`` it also lists the bad outcomes. The goal is 0 tracebacks, 0 hangs and 0 silently
wrong outputs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.fuzz_traces import TARGETS, Outcome, corpus, counts, run_corpus  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description="fuzz greentop's trace readers")
    p.add_argument("--n", type=int, default=300, help="variants (default 300; each is read by 3 readers)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--timeout", type=float, default=20.0, help="seconds before a reader counts as hung")
    p.add_argument("--examples", action="store_true", help="list every traceback, hang and silently wrong output")
    p.add_argument("--out", type=Path, help="also write the result here")
    args = p.parse_args()
    bad: list[Outcome] = []

    def keep(o: Outcome) -> None:
        if o.outcome in ("traceback", "hang", "silently_wrong"):
            bad.append(o)

    t0 = time.monotonic()
    outcomes = run_corpus(corpus(args.n, args.seed), args.timeout, TARGETS, keep)
    doc = {
        "bench": "fuzz_traces", "variants": args.n, "seed": args.seed, "timeout_s": args.timeout,
        "wall_s": round(time.monotonic() - t0, 1), "counts": counts(outcomes),
        "machine": {"platform": platform.platform(), "nproc": os.cpu_count(), "python": platform.python_version(),
                    "load_avg": os.getloadavg()},
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if args.examples:
        doc["bad"] = [{"variant": o.variant.index, "base": o.variant.base, "family": o.variant.family,
                       "mutation": o.mutation, "reader": o.target, "outcome": o.outcome, "why": o.why[-400:]} for o in bad]
    text = json.dumps(doc, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
