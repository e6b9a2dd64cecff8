"""The ``greentop`` executable's entry point: ``greentop phase start|end NAME`` without the CLI.

A shell workload calls ``greentop phase`` around every step, so its cost lands inside the phases
it tags. Importing :mod:`greentop.cli` pulls in numpy, the sampler and the sources (about 0.2 s);
the phase command needs none of them. Every other command goes to :func:`greentop.cli.main`.
"""

from __future__ import annotations

import sys
import time
from typing import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    started_ns = time.monotonic_ns()  # the shell's phase boundary: before any import
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) == 3 and args[0] == "phase" and args[1] in ("start", "end") and not args[2].startswith("-"):
        from greentop.phases import shell_event

        return shell_event(args[1], args[2], t_ns=started_ns)
    from greentop.cli import main as cli_main

    return cli_main(argv)
