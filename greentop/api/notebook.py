"""Jupyter: ``%load_ext greentop`` adds the ``%%greentop`` cell magic and measurement tables.

``%%greentop [NAME] [-r RATE] [-s SOURCE,...] [--sync torch] [-o VAR]`` runs the cell inside a
Monitor window called NAME (default "cell"), shows its measurement as a table and leaves the
Monitor in the notebook's variable VAR (default ``_greentop``) for ``.summary()`` or ``.save()``.
"""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass
from typing import Any, Callable

from greentop.api.display import register_formatters
from greentop.sampler import DEFAULT_RATE_HZ


@dataclass(frozen=True)
class CellOptions:
    name: str = "cell"
    rate_hz: float = DEFAULT_RATE_HZ
    sources: tuple[str, ...] | None = None
    sync: str | None = None
    variable: str = "_greentop"


class MagicError(ValueError):
    """A bad ``%%greentop`` line; the message is one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse would sys.exit inside the kernel
        raise MagicError(f"%%greentop: {message}")


def parse_line(line: str) -> CellOptions:
    p = _Parser(prog="%%greentop", add_help=False)
    p.add_argument("name", nargs="?", default="cell")
    p.add_argument("-r", "--rate", type=float, default=DEFAULT_RATE_HZ)
    p.add_argument("-s", "--sources", default=None)
    p.add_argument("--sync", default=None)
    p.add_argument("-o", "--output", default="_greentop")
    try:
        a = p.parse_args(shlex.split(line))
    except ValueError as exc:  # shlex: unbalanced quotes
        raise MagicError(f"%%greentop: {exc}") from None
    if not a.output.isidentifier():
        raise MagicError(f"%%greentop: -o needs a variable name, got {a.output!r}")
    sources = tuple(s for s in a.sources.split(",") if s) if a.sources else None
    return CellOptions(a.name, a.rate, sources, a.sync, a.output)


def measure_cell(line: str, run: Callable[[], Any], namespace: dict[str, Any]) -> Any:
    """What the magic does, apart from IPython: start a Monitor, run the cell in a window, stop,
    store the Monitor in ``namespace`` and return the window's measurement (shown by the caller)."""
    from greentop.api.monitor import Monitor

    opts = parse_line(line)
    mon = Monitor(rate=opts.rate_hz, sources=opts.sources)
    namespace[opts.variable] = mon
    try:
        with mon.window(opts.name, sync=opts.sync):
            run()
    finally:
        mon.stop()
    return mon.measurement(opts.name)


def load_ipython_extension(ip: Any) -> None:
    """``%load_ext greentop``."""
    from IPython.core.magic import register_cell_magic
    from IPython.display import display

    register_formatters(ip)

    def greentop(line: str, cell: str) -> None:
        from greentop.api.monitor import MonitorError

        try:
            m = measure_cell(line, lambda: ip.run_cell(cell), ip.user_ns)
        except MagicError as exc:
            print(exc)
            return
        except (MonitorError, ValueError) as exc:  # no such source, a bad rate or sync name
            print(f"%%greentop: {exc}")
            return
        display(m)

    register_cell_magic(greentop)
