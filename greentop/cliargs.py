"""Command-line pieces of the ``workloads`` study package and its sweeps: a parser whose errors
are one line and exit 2, and the number types options take (argparse ``type=`` callables).
``greentop``'s own command (``cli.py``) keeps its own, whose errors name each option's unit."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from typing import Any, NoReturn

EXIT_BAD_INPUT = 2


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad argument is one stderr line and exit 2 (not usage plus a message).
    ``label``: how that line names the command (default: ``prog``)."""

    def __init__(self, *args: Any, label: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.label = label or self.prog

    def error(self, message: str) -> NoReturn:
        print(f"{self.label}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)


def _bounded(parse: Callable[[str], float], what: str, lowest: float, strict: bool,
             wording: str) -> Callable[[str], Any]:
    def check(text: str) -> Any:
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {what}: {text!r}") from None
        if not math.isfinite(value) or value < lowest or (strict and value == lowest):
            raise argparse.ArgumentTypeError(f"must be {wording}, not {text}")
        return value

    return check


positive_int: Callable[[str], int] = _bounded(int, "a whole number", 0, True, "at least 1")
non_negative_int: Callable[[str], int] = _bounded(int, "a whole number", 0, False, "0 or more")
positive_float: Callable[[str], float] = _bounded(float, "a number", 0.0, True, "a positive number")
non_negative_float: Callable[[str], float] = _bounded(float, "a number", 0.0, False, "0 or more")
