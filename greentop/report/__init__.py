"""``greentop report``: turn sweep results tables into a study report (Markdown + PNG figures).

Public entry points: ``analyse`` (everything but figures, no files written) and ``write_report``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from greentop.report.load import ReportInputError, Results, load_results
    from greentop.report.render import ReportParts

__all__ = ["ReportInputError", "Results", "analyse", "load_results", "write_report"]


def __getattr__(name: str) -> Any:
    # Lazy: `greentop --help` registers the report's parser and must not pay for pandas.
    if name in ("ReportInputError", "Results", "load_results"):
        from greentop.report import load

        return getattr(load, name)
    raise AttributeError(f"module 'greentop.report' has no attribute {name!r}")


def analyse(results: "Results") -> "ReportParts":
    """Sensitivity, energy models, Pareto front, guidelines and totals (no figures yet)."""
    from greentop.report import guidelines, model, pareto, sensitivity, totals
    from greentop.report.load import DISCRIMINATIVE, GENERATIVE
    from greentop.report.render import ReportParts

    frame = results.frame
    present = set(frame["workload"].dropna()) if "workload" in frame.columns else set()
    sens = [row for w in (*DISCRIMINATIVE, *GENERATIVE) if w in present for row in sensitivity.sensitivity(frame, w)]
    models, problems = model.fit_all(frame)
    points = [pt for w in DISCRIMINATIVE if w in present for pt in pareto.pareto_points(frame, w)]
    return ReportParts(results=results, totals=totals.totals(frame, results.carbon_sources, results.traces_read),
                       guidelines=guidelines.build(frame, points, sens, models), plots={}, sensitivity=sens,
                       models=models, model_problems=problems, pareto=points)


def write_report(results: "Results", out_dir: Path) -> Path:
    """Write out_dir/report.md and its figures; returns the report's path."""
    from greentop.report.plots import draw_all
    from greentop.report.render import render

    parts = analyse(results)
    parts.plots = draw_all(results.frame, parts.pareto, out_dir)
    path = out_dir / "report.md"
    path.write_text(render(parts))
    return path

