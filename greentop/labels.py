"""How a phase's attributes and a per-unit figure read, the same in every view: the summary's
table and Markdown, the replay view, the live view's export.

``attrs_text({"epoch": 0, "lr": 0.1})`` -> ``"epoch=0 lr=0.1"``; ``per_unit_label("samples")`` ->
``"J/sample"`` (a count is named in the plural by the workload; a figure per one of them reads in
the singular).
"""

from __future__ import annotations

from typing import Any, Mapping


def attrs_text(attrs: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in attrs.items())


def phase_label(name: str, attrs: Mapping[str, Any]) -> str:
    """The name, then its attributes: ``"epoch  epoch=3"``."""
    return f"{name}  {attrs_text(attrs)}" if attrs else name


def singular(count_name: str) -> str:
    # "samples" -> "sample"; short names ("bus") and anything else stay as they are.
    return count_name[:-1] if count_name.endswith("s") and len(count_name) > 3 else count_name


def per_unit_label(count_name: str) -> str:
    return f"J/{singular(count_name)}"
