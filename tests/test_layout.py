"""The package's layout promises (docs/design.md, "Layout"): no import circle, a data module
that imports no arithmetic, a renderer without Textual, a sampler that imports no source."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "greentop"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(path: Path, name: str, known: dict[str, Path]) -> set[str]:
    """greentop modules ``path`` imports anywhere in it (top level, TYPE_CHECKING, inside functions):
    a function-level import that only hides a circle still closes it."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            for a in node.names:
                sub = f"{base}.{a.name}"
                found.add(sub if sub in known else base)
    return {m for m in found if m in known and m != name}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_circle_in_the_package() -> None:
    known = _modules()
    # A package's __init__ is run by importing any of its modules: that edge is not a circle.
    graph = {m: {d for d in _imports(p, m, known) if not m.startswith(d + ".")} for m, p in known.items()}
    assert _cycles(graph) == []


@pytest.mark.parametrize(("module", "must_not_load"), [
    ("greentop.tracedata", ("greentop.attribution", "greentop.summary_format")),  # plain data
    ("greentop.tui._chart_render", ("textual", "rich")),  # the pure renderer
    ("greentop.sampler", ("greentop.sources.nvml",)),  # reads its environment through _paths
    ("greentop.formatters", ("numpy", "greentop.attribution")),  # below everything that formats
])
def test_module_loads_nothing_above_it(module: str, must_not_load: tuple[str, ...]) -> None:
    code = (f"import sys, {module}\n"
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {sorted({n.split('.')[0] for n in must_not_load})!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    loaded = set(eval(out))  # noqa: S307 -- our own print of a list of names
    assert not {m for m in loaded if any(m == n or m.startswith(n + ".") for n in must_not_load)}


def test_the_views_launch_no_process_themselves() -> None:
    """Only greentop.launch starts a workload (one stop protocol); the TUI reads a LiveSession."""
    known = _modules()
    for name, path in known.items():
        if not name.startswith("greentop.tui"):
            continue
        tree = ast.parse(path.read_text(), str(path))
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert "subprocess" not in imported, f"{name} imports subprocess"
        assert "greentop.launch" not in _imports(path, name, known), f"{name} launches a workload itself"
