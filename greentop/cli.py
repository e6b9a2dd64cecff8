"""The ``greentop`` command."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, NoReturn, Sequence

from greentop import __version__
from greentop.energy import primary_channels
from greentop.measure import ChannelSummary, measure
from greentop.sampler import DEFAULT_RATE_HZ, DEFAULT_SLOW_RATE_HZ, MAX_RATE_HZ, SamplerError, SamplerHealth
from greentop.sources import DiscoveryOptions, SourceResult, discover

EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    """Bad input gets one clear line and exit code 2, not a usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"greentop: error: {message} (see '{self.prog} --help')\n")


def _number(text: str, ok: Callable[[float], bool], what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if math.isnan(value) or not ok(value):
        raise argparse.ArgumentTypeError(f"{what}, got {text}")
    return value


def _rate(text: str) -> float:
    return _number(text, lambda v: 0 < v <= MAX_RATE_HZ, f"rate must be in (0, {MAX_RATE_HZ:g}] Hz")


def _seconds(text: str) -> float:
    return _number(text, lambda v: 0 < v <= 7 * 24 * 3600, "duration must be positive seconds")


def _watts(text: str) -> float:
    return _number(text, lambda v: v >= 0, "watts must be >= 0")


def _add_discovery_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--msr", choices=["auto", "always", "never"], default="auto", help="read RAPL MSRs: auto = only without sysfs RAPL")
    p.add_argument("--no-gpu", action="store_true", help="skip NVML")
    p.add_argument("--cpu-idle-w", type=_watts, help="CPU estimate: whole-machine idle power (W)")
    p.add_argument("--cpu-max-w", type=_watts, help="CPU estimate: whole-machine full-load power (W)")
    p.add_argument("--estimate", action="store_true", help="add the CPU estimate even where a CPU sensor exists")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="greentop", description="Live energy profiler for machine-learning workloads.")
    parser.add_argument("--version", action="version", version=f"greentop {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    d = sub.add_parser("devices", help="list every power/energy channel, its state and update period")
    d.add_argument("--json", action="store_true", help="machine-readable output")
    d.add_argument("--watch", type=_seconds, default=1.0, metavar="S", help="seconds to watch channels to measure update periods (default 1)")
    d.add_argument("--rate", type=_rate, default=DEFAULT_RATE_HZ, metavar="HZ", help="fast-lane rate while watching (default 1000)")
    d.add_argument("--slow-rate", type=_rate, default=50.0, metavar="HZ", help="slow-lane rate while watching (default 50)")
    _add_discovery_options(d)

    s = sub.add_parser("sample", help="sample every channel for a while and print energy and power (headless)")
    s.add_argument("-d", "--duration", type=_seconds, default=5.0, metavar="S", help="seconds (default 5)")
    s.add_argument("--rate", type=_rate, default=DEFAULT_RATE_HZ, metavar="HZ", help="fast-lane rate (default 1000)")
    s.add_argument("--slow-rate", type=_rate, default=DEFAULT_SLOW_RATE_HZ, metavar="HZ", help="slow-lane rate (default 10)")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    _add_discovery_options(s)

    r = sub.add_parser("record", help="run a command and record every sensor to an HDF5 trace",
                       usage="greentop record -o RUN.h5 [options] -- CMD [ARGS...]")
    r.add_argument("-o", "--output", required=True, metavar="RUN.h5", help="trace file to write")
    r.add_argument("--force", action="store_true", help="replace RUN.h5 if it exists (by default an existing file is kept)")
    r.add_argument("--rate", type=_rate, default=DEFAULT_RATE_HZ, metavar="HZ", help="fast-lane rate (default 1000)")
    r.add_argument("--slow-rate", type=_rate, default=DEFAULT_SLOW_RATE_HZ, metavar="HZ", help="slow-lane rate (default 10)")
    r.add_argument("--baseline", type=_seconds, default=3.0, metavar="S", help="idle baseline before the command (default 3 s)")
    r.add_argument("--no-baseline", action="store_true", help="skip the idle baseline")
    _add_carbon_options(r)
    _add_discovery_options(r)
    r.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD ARGS", help="the workload")

    lv = sub.add_parser("run", help="show live power while a command runs (no command: watch the machine)",
                        usage="greentop run [-o RUN.h5] [options] [-- CMD [ARGS...]]")
    lv.add_argument("-o", "--output", metavar="RUN.h5", help="also record the whole run to this trace (without it: r records)")
    lv.add_argument("--force", action="store_true", help="with -o: replace RUN.h5 if it exists")
    lv.add_argument("--baseline", type=_seconds, default=3.0, metavar="S", help="with -o: idle baseline before the command (default 3 s)")
    lv.add_argument("--no-baseline", action="store_true", help="with -o: skip the idle baseline")
    lv.add_argument("--rate", type=_rate, default=DEFAULT_RATE_HZ, metavar="HZ", help="fast-lane rate (default 1000)")
    lv.add_argument("--slow-rate", type=_rate, default=DEFAULT_SLOW_RATE_HZ, metavar="HZ", help="slow-lane rate (default 10)")
    _add_carbon_options(lv)
    _add_discovery_options(lv)
    lv.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD ARGS", help="the workload (none: watch the machine)")

    m = sub.add_parser("summary", help="per-phase energy of a recorded trace")
    m.add_argument("trace", metavar="RUN.h5")
    m.add_argument("--format", choices=["table", "csv", "json", "md"], default="table")
    m.add_argument("-o", "--output", metavar="FILE", help="write there instead of standard output")
    _add_carbon_options(m)

    rp = sub.add_parser("replay", help="browse a recorded trace: power over time, phases, per-phase energy")
    rp.add_argument("trace", metavar="RUN.h5", help="trace written by greentop record")
    _add_carbon_options(rp)

    ph = sub.add_parser("phase", help="tag a phase from a shell workload running under greentop record")
    ph.add_argument("action", choices=["start", "end"])
    ph.add_argument("name")

    from greentop.report.cli import add_parser as add_report_parser

    add_report_parser(sub)
    return parser


def _add_carbon_options(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--carbon-intensity", type=_watts, metavar="G_PER_KWH", help="grid carbon intensity, gCO2e/kWh")
    g.add_argument("--region", metavar="CODE", help="grid region for the carbon intensity (e.g. FR, DE, US; WORLD by default)")


def _options(args: argparse.Namespace) -> DiscoveryOptions:
    return DiscoveryOptions(
        msr=args.msr, gpus=not args.no_gpu, cpu_idle_w=args.cpu_idle_w, cpu_max_w=args.cpu_max_w, force_estimate=args.estimate
    )


def _fmt(value: float | None, spec: str, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:{spec}}{unit}"


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


def _period_text(seconds: float | None) -> str:
    if seconds is None:
        return "no change seen"
    return f"{seconds * 1e3:.1f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.0f} us"


def _print_problems(found: SourceResult) -> None:
    for p in found.problems:
        print(f"  ! {p.source}: {p.what}: {p.reason}\n      fix: {p.fix}")
    for n in found.notes:
        print(f"  - {n}")


def cmd_devices(args: argparse.Namespace) -> int:
    found = discover(_options(args))
    channels = found.channels
    result = measure(channels, args.watch, args.rate, args.slow_rate) if channels else None
    summaries = {s.name: s for s in result.summaries()} if result else {}
    health = result.health if result else None
    entries = []
    for c in channels:
        s = summaries[c.name]
        h = health.channels[c.name] if health else None
        state = "estimated" if c.estimated else "ok"
        if h and h.errors:
            state = f"read errors: {h.errors} ({h.last_error})"
        entries.append((c, s, h, state))
    if args.json:
        doc = {
            "channels": [
                c.to_dict()
                | {
                    "state": state,
                    "update_period_s": s.update_period_s,
                    "read_cost_us": h.mean_cost_ns / 1e3 if h else None,
                    "average_w": s.average_w if not math.isnan(s.average_w) else None,
                    "samples": s.samples,
                }
                for c, s, h, state in entries
            ],
            "problems": [p.to_dict() for p in found.problems],
            "notes": found.notes,
            "devices": found.devices,
            "watch_s": args.watch,
        }
        print(json.dumps(doc, indent=2))
        return 0
    if not channels:
        print("No power or energy channel found on this machine.")
    else:
        rows = [
            [c.name, c.source, c.domain, c.unit, c.lane.value, state, _period_text(s.update_period_s),
             _fmt(h.mean_cost_ns / 1e3 if h else None, ".1f", " us"), _fmt(s.average_w, ".1f", " W")]
            for c, s, h, state in entries
        ]
        print(_table(rows, ["CHANNEL", "SOURCE", "DOMAIN", "UNIT", "LANE", "STATE", "UPDATES EVERY", "READ COST", "POWER"]))
    if not any(not c.estimated for c in channels):
        print("\nNo hardware power sensor is readable here: greentop will use the CPU estimate above.")
    for c in channels:
        if c.note and (c.estimated or "MIG" in c.note):
            print(f"  * {c.name}: {c.note}")
    if found.problems or found.notes:
        print()
        _print_problems(found)
    return 0


def _health_lines(health: SamplerHealth) -> list[str]:
    lines = []
    for name, lane in health.lanes.items():
        achieved = lane.ticks / lane.elapsed_s if lane.elapsed_s else 0.0
        cpu = 100 * lane.cpu_s / lane.elapsed_s if lane.elapsed_s else 0.0
        lines.append(
            f"{name} lane: {achieved:.0f} Hz of {lane.rate_hz:g} Hz asked, {lane.missed} missed ticks, "
            f"{lane.late} late wake-ups (worst {lane.lateness_max_ns / 1e3:.0f} us), sampler CPU {cpu:.2f}% of a core"
        )
    lines.append(f"overruns: {health.overruns}, read errors: {health.read_errors}")
    return lines


def _summary_row(s: ChannelSummary) -> list[str]:
    return [
        s.name + (" (estimated)" if s.estimated else ""), s.domain, str(s.samples), _fmt(s.rate_hz, ".0f", " Hz"),
        _fmt(s.energy_j, ".3f", " J"), _fmt(s.average_w, ".2f", " W"), _fmt(s.peak_w, ".2f", " W"), str(s.wraps),
    ]


def cmd_sample(args: argparse.Namespace) -> int:
    found = discover(_options(args))
    if not found.channels:
        print("greentop: no channel to sample (no sensor and no /proc/stat)", file=sys.stderr)
        return 1
    print(f"Sampling {len(found.channels)} channels for {args.duration:g} s at {args.rate:g} Hz ...", file=sys.stderr)
    result = measure(found.channels, args.duration, args.rate, args.slow_rate)
    summaries = result.summaries()
    primary = {c.name for c in primary_channels(found.channels)}
    total_j = sum(s.energy_j for s in summaries if s.name in primary)
    duration_s = max((s.duration_s for s in summaries), default=0.0)
    if args.json:
        print(json.dumps({
            "channels": [s.__dict__ for s in summaries],
            "total": {"energy_j": total_j, "average_w": total_j / duration_s if duration_s else None, "channels": sorted(primary)},
            "health": {"lanes": {k: v.__dict__ for k, v in result.health.lanes.items()},
                       "channels": {k: v.__dict__ for k, v in result.health.channels.items()}},
        }, indent=2, default=float))
        return 0
    print(_table([_summary_row(s) for s in summaries], ["CHANNEL", "DOMAIN", "SAMPLES", "RATE", "ENERGY", "AVG", "PEAK", "WRAPS"]))
    estimated = any(s.estimated for s in summaries if s.name in primary)
    print(f"\nTotal ({', '.join(sorted(primary))}): {total_j:.3f} J = {total_j / 3600:.6f} Wh over {duration_s:.2f} s, "
          f"{total_j / duration_s if duration_s else 0:.2f} W average" + (" (includes estimates)" if estimated else ""))
    for s in summaries:
        if s.backwards:
            print(f"{s.name}: {s.backwards} backward steps that no wrap explains were held, not integrated")
    for line in _health_lines(result.health):
        print(line)
    return 0


def _carbon(args: argparse.Namespace, stored: tuple[float, str] | None = None) -> tuple[float, str]:
    from greentop.carbon import intensity_for

    if args.carbon_intensity is None and args.region is None and stored is not None and stored[1]:
        return stored
    return intensity_for(args.region, args.carbon_intensity)


def cmd_record(args: argparse.Namespace) -> int:
    from greentop.recorder import RecordOptions, check_inputs, record

    cmd = list(args.cmd)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    check_inputs(cmd, Path(args.output), getattr(args, "force", False))
    intensity, source = _carbon(args)
    found = discover(_options(args))
    if not found.channels:
        raise UsageError("no channel to sample (no sensor and no /proc/stat)")
    opts = RecordOptions(output=Path(args.output), rate_hz=args.rate, slow_rate_hz=args.slow_rate,
                         baseline_s=0.0 if args.no_baseline else args.baseline, carbon_g_per_kwh=intensity, carbon_source=source,
                         force=getattr(args, "force", False))
    names = ", ".join(c.name for c in found.channels)
    print(f"greentop: recording {len(found.channels)} channels ({names}) to {args.output}", file=sys.stderr)
    result = record(cmd, found.channels, found, opts)
    print(f"greentop: workload exited with {result.exit_code}; trace: {args.output}", file=sys.stderr)
    try:
        _print_summary(Path(args.output), "table", (intensity, source), None, sys.stderr)
    except Exception as exc:  # the trace is written; a summary problem must not hide the exit code
        print(f"greentop: summary failed: {exc}", file=sys.stderr)
    return result.exit_code


def _print_summary(path: Path, fmt: str, carbon: tuple[float, str] | None, args: argparse.Namespace | None, out: Any) -> None:
    from greentop.attribution import summarise
    from greentop.summary_format import format_summary
    from greentop.trace import iter_channels, load, open_trace

    # Only the primary channels count, and their samples are read one channel at a time, each let go
    # once summarised: an hour at 1 kHz never has all its samples in memory (same figures as load()).
    with open_trace(path) as f:
        trace = load(f, channels=())
        stored = (float(trace.meta.get("carbon_g_per_kwh", 0.0)), str(trace.meta.get("carbon_source", "")))
        intensity, source = carbon if carbon is not None else _carbon(args, stored)  # type: ignore[arg-type]
        primary = primary_channels([cd.channel for cd in iter_channels(f, ends_only=True)])
        streamed = iter_channels(f, [c.name for c in primary], read_ahead=True)
        summary = summarise(trace, intensity, source, channels=streamed)
    print(format_summary(summary, fmt), file=out, end="" if fmt in ("csv", "json") else "\n")


def cmd_summary(args: argparse.Namespace) -> int:
    if args.output:
        import io

        from greentop.trace_files import write_atomically

        # Written whole or not at all: a trace that fails to read leaves an old report as it was.
        out = io.StringIO()
        _print_summary(Path(args.trace), args.format, None, args, out)
        write_atomically(Path(args.output), out.getvalue())
    else:
        _print_summary(Path(args.trace), args.format, None, args, sys.stdout)
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from greentop.trace import load, open_trace
    from greentop.tui.replay import ReplayApp, ReplayModel

    with open_trace(args.trace) as f:  # a bad file: TraceError, one line and exit 2, before any screen
        meta = load(f, channels=()).meta
    stored = (float(meta.get("carbon_g_per_kwh", 0.0)), str(meta.get("carbon_source", "")))
    model = ReplayModel(args.trace, _carbon(args, stored))
    return int(ReplayApp(model).run() or 0)


def cmd_phase(args: argparse.Namespace) -> int:
    from greentop.phases import shell_event

    return shell_event(args.action, args.name, t_ns=_STARTED_NS)


def cmd_run(args: argparse.Namespace) -> int:
    from greentop.recorder import check_command, check_output, replace_output
    from greentop.tui.app import run_live

    cmd = list(args.cmd)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    output = Path(args.output) if args.output else None
    if cmd:
        check_command(cmd, usage="greentop run [-o run.h5] -- CMD ARGS...")
    if output is not None:
        check_output(output, args.force)
        if args.force:
            replace_output(output)
    carbon = _carbon(args)  # an unknown region: one line and exit 2, before any screen
    textual_driver = "TEXTUAL_DRIVER" in os.environ  # a driver named explicitly draws without a tty
    if cmd and not textual_driver and not (sys.stdin.isatty() and sys.stdout.isatty()):
        # No terminal to draw on (a pipe, CI, an IDE's run window): do what the view would have
        # done without the pictures: record the workload and print its summary.
        from greentop.recorder import default_trace_path

        if args.output is None:
            args.output = str(default_trace_path(None))
        print("greentop: not a terminal: recording without the live view", file=sys.stderr)
        return cmd_record(args)
    found = discover(_options(args))
    if not found.channels:
        raise UsageError("no channel to sample (no sensor and no /proc/stat)")
    result = run_live(cmd, found.channels, args.rate, args.slow_rate, output=output,
                      baseline_s=0.0 if args.no_baseline else args.baseline, found=found, carbon=carbon)
    if output is not None and output.exists():
        # The recording's summary is the reference (phase boundaries interpolated, uncertainties,
        # baseline): print it rather than the live view's running totals.
        try:
            _print_summary(output, "table", carbon, None, sys.stderr)
        except Exception as exc:  # noqa: BLE001 -- the trace is written; say why there is no table
            print(f"greentop: summary failed: {exc}", file=sys.stderr)
            for line in result.summary:
                print(line, file=sys.stderr)
    else:
        for line in result.summary:
            print(line, file=sys.stderr)
    for trace in result.traces:
        print(f"greentop: trace: {trace}", file=sys.stderr)
    if cmd:
        print(f"greentop: workload exited with {result.exit_code}", file=sys.stderr)
    return result.exit_code


def cmd_report(args: argparse.Namespace) -> int:
    from greentop.report.cli import run as run_report

    return run_report(args)


def _exit_if_stuck() -> None:
    """After a trace read that timed out (``greentop.deadline``) its thread holds HDF5's lock and
    the interpreter's exit would wait on it forever; after a failed write (a full disk) HDF5 holds
    handles it can neither flush nor release, and its shutdown can crash: leave at once."""
    from greentop.deadline import stuck
    from greentop.trace import WRITE_FAILED

    if stuck() or WRITE_FAILED.is_set():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_BAD_INPUT)


class UsageError(Exception):
    """Bad input found after parsing; one line, exit code 2."""


COMMANDS = {"devices": cmd_devices, "sample": cmd_sample, "record": cmd_record, "summary": cmd_summary, "phase": cmd_phase, "run": cmd_run,
            "replay": cmd_replay, "report": cmd_report}


_STARTED_NS = 0  # when this command started: a shell's phase boundary, before argument parsing


def main(argv: Sequence[str] | None = None) -> int:
    global _STARTED_NS
    _STARTED_NS = time.monotonic_ns()
    from greentop.recorder import RecordError
    from greentop.trace import TraceError

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        # Bare ``greentop``: watch the machine in a terminal; anywhere else (a pipe, CI) print the
        # help and exit 0 rather than start a full-screen view nobody sees.
        if not sys.stdout.isatty():
            parser.print_help()
            return 0
        args = parser.parse_args(["run"])
    try:
        return COMMANDS[args.command](args)
    except (SamplerError, ValueError, UsageError, RecordError, TraceError) as exc:
        print(f"greentop: error: {exc}", file=sys.stderr)
        _exit_if_stuck()
        return EXIT_BAD_INPUT
    except OSError as exc:
        print(f"greentop: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
