"""``greentop report RUNS_DIR [RUNS_DIR ...] -o DIR [--predict K=V,...]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

EXIT_BAD_INPUT = 2


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "report", help="study report from sweep results: figures, sensitivity, energy model, guidelines",
        description="Read the results.csv of one or more sweeps (a sweep folder, or a folder of sweeps) and write "
                    "a Markdown report with PNG figures; --predict asks the fitted energy model about a configuration.")
    p.add_argument("runs", nargs="+", type=Path, metavar="RUNS_DIR", help="sweep folder (with results.csv) or a folder of sweeps")
    p.add_argument("-o", "--output", type=Path, metavar="DIR", help="folder for report.md and the figures")
    p.add_argument("--predict", action="append", default=[], metavar="KEY=VAL,...",
                   help="predict energy for a configuration, e.g. arch=resnet50,batch_size=128,precision=bf16 (repeatable)")
    p.add_argument("--format", choices=["md"], default="md", help="report format (Markdown)")
    return p


def _error(message: str) -> int:
    print(f"greentop: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _print_predictions(models: list[Any], queries: list[str]) -> int:
    from greentop.report.model import ModelError, parse_query, predict_any

    status = 0
    for text in queries:
        try:
            query = parse_query(text)
        except ModelError as exc:
            return _error(str(exc))
        predictions, why = predict_any(models, query)
        if not predictions:
            status = _error(f"cannot predict {text}: " + ("; ".join(why) or "no energy model could be fitted"))
            continue
        for pr in predictions:
            unit = pr.target.removeprefix("energy_per_").removesuffix("_j")
            print(f"{pr.workload} {text}: {pr.value:.4g} J per {unit} (95% interval {pr.low:.4g} – {pr.high:.4g} J)")
            for feature, source in pr.filled.items():
                print(f"  {feature} = {source}")
    return status


def run(args: argparse.Namespace) -> int:
    from greentop.report import ReportInputError, load_results

    if args.output is None and not args.predict:
        return _error("report: give -o DIR to write the report, or --predict KEY=VAL,...")
    try:
        results = load_results(list(args.runs))
    except ReportInputError as exc:
        return _error(str(exc))
    for note in results.notes:
        print(f"greentop: note: {note}", file=sys.stderr)
    status = 0
    if args.output is not None:
        from greentop.report import write_report

        if args.output.exists() and not args.output.is_dir():
            return _error(f"{args.output}: exists and is not a folder")
        path = write_report(results, args.output)
        print(f"report written to {path}")
    if args.predict:
        from greentop.report.model import fit_all

        models, problems = fit_all(results.frame)
        for problem in problems:
            print(f"greentop: note: energy model not fitted: {problem}", file=sys.stderr)
        status = _print_predictions(models, args.predict)
    return status
