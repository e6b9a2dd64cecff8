"""Where greentop writes the files nobody named: a headless ``run``'s trace, a trace started with
``r`` in the live view, and the summaries ``e`` exports. ``GREENTOP_OUTPUT_DIR`` chooses; unset, the
working directory. The messages that announce such a file give its full path.
"""

from __future__ import annotations

import os
from pathlib import Path

OUTPUT_DIR_ENV = "GREENTOP_OUTPUT_DIR"


def output_dir() -> Path:
    value = os.environ.get(OUTPUT_DIR_ENV, "")
    return Path(value).expanduser() if value else Path.cwd()
