"""Optional dependencies: pandas and matplotlib are extras (``greentop[report]``,
``greentop[pandas]``), not part of the core install. What needs one asks for it here and gets one
clear line when it is missing, instead of a traceback from deep inside an import."""

from __future__ import annotations

import importlib
from types import ModuleType


class MissingExtra(ImportError):
    """An optional dependency is not installed; the message says which extra installs it."""


def require(module: str, extra: str, what: str) -> ModuleType:
    """Import ``module`` for ``what`` (a command or method), or raise :class:`MissingExtra`."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtra(f"{what} needs {module}, which is not installed: pip install 'greentop[{extra}]'") from None
