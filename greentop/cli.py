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
from greentop.formatters import J_PER_WH, spec, text_table
from greentop.domains import CPU_TOTAL_PACKAGES, CPU_TOTALS, plan_domains
from greentop.channel import Channel, Lane, Problem
from greentop.measure import ChannelSummary, measure
from greentop.sampler import DEFAULT_RATE_HZ, DEFAULT_SLOW_RATE_HZ, MAX_RATE_HZ, SamplerError, SamplerHealth
from greentop.sources import DiscoveryOptions, discover
from greentop.update_period import update_period_text

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


# The slow lane's sources change no faster than this: the NVML energy counter updates every 100 ms
# (and costs ~4 ms a call), the CPU estimate follows /proc/stat's 10 ms ticks. Faster only burns CPU.
MAX_SLOW_RATE_HZ = 100.0
MAX_SECONDS = 7 * 24 * 3600


def _slow_rate(text: str) -> float:
    return _number(text, lambda v: 0 < v <= MAX_SLOW_RATE_HZ,
                   f"slow-lane rate must be in (0, {MAX_SLOW_RATE_HZ:g}] Hz (its sources change no faster)")


def _seconds(text: str) -> float:
    return _number(text, lambda v: 0 < v <= MAX_SECONDS, f"duration must be positive, at most {MAX_SECONDS} s (7 days)")


def _watts(text: str) -> float:
    return _number(text, lambda v: v >= 0, "power must be >= 0 W")


def _intensity(text: str) -> float:
    return _number(text, lambda v: v >= 0, "carbon intensity must be >= 0 gCO2e/kWh")


def _add_discovery_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--msr", choices=["auto", "always", "never"], default="auto", help="read RAPL MSRs: auto = only where sysfs gives no readable package counter")
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
    d.add_argument("--slow-rate", type=_slow_rate, default=50.0, metavar="HZ", help="slow-lane rate while watching (default 50)")
    _add_discovery_options(d)

    s = sub.add_parser("sample", help="sample every channel for a while and print energy and power (headless)")
    s.add_argument("-d", "--duration", type=_seconds, default=5.0, metavar="S", help="seconds (default 5)")
    s.add_argument("--rate", type=_rate, default=DEFAULT_RATE_HZ, metavar="HZ", help="fast-lane rate (default 1000)")
    s.add_argument("--slow-rate", type=_slow_rate, default=DEFAULT_SLOW_RATE_HZ, metavar="HZ", help="slow-lane rate (default 10)")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    _add_cpu_total_option(s)
    _add_discovery_options(s)

    r = sub.add_parser("record", help="run a command and record every sensor to an HDF5 trace",
                       usage="greentop record -o RUN.h5 [options] -- CMD [ARGS...]")
    r.add_argument("-o", "--output", required=True, metavar="RUN.h5", help="trace file to write ({host}, {rank}, {node_rank} are filled in)")
    r.add_argument("--force", action="store_true", help="replace RUN.h5 if it exists (by default an existing file is kept)")
    r.add_argument("--rate", type=_rate, default=DEFAULT_RATE_HZ, metavar="HZ", help="fast-lane rate (default 1000)")
    r.add_argument("--slow-rate", type=_slow_rate, default=DEFAULT_SLOW_RATE_HZ, metavar="HZ", help="slow-lane rate (default 10)")
    r.add_argument("--baseline", type=_seconds, default=3.0, metavar="S", help="idle baseline before the command (default 3 s)")
    r.add_argument("--no-baseline", action="store_true", help="skip the idle baseline")
    r.add_argument("--export", metavar="HOST:PORT", help="also serve Prometheus metrics there while recording (docs/prometheus.md)")
    _add_user_option(r)
    _add_cpu_total_option(r)
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
    lv.add_argument("--slow-rate", type=_slow_rate, default=DEFAULT_SLOW_RATE_HZ, metavar="HZ", help="slow-lane rate (default 10)")
    _add_user_option(lv)
    _add_cpu_total_option(lv)
    _add_carbon_options(lv)
    _add_discovery_options(lv)
    lv.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD ARGS", help="the workload (none: watch the machine)")

    m = sub.add_parser("summary", help="per-phase energy of a recorded trace")
    m.add_argument("trace", metavar="RUN.h5")
    m.add_argument("--format", choices=["table", "csv", "json", "md"], default="table")
    m.add_argument("-o", "--output", metavar="FILE", help="write there instead of standard output")
    _add_cpu_total_option(m)
    m.add_argument("--by", choices=["node", "rank", "gpu"], help="group: per node (merged jobs), per rank, per GPU (docs/clusters.md)")
    m.add_argument("--detail", action="store_true",
                   help="table: every phase and every domain with its uncertainty (default: repeated phases folded)")
    _add_carbon_options(m)

    rp = sub.add_parser("replay", help="browse a recorded trace: power over time, phases, per-phase energy")
    rp.add_argument("trace", metavar="RUN.h5", help="trace written by greentop record")
    _add_cpu_total_option(rp)
    _add_carbon_options(rp)

    ex = sub.add_parser("export", help="serve every domain's energy and power as Prometheus metrics (docs/prometheus.md)")
    ex.add_argument("--listen", default="127.0.0.1:9464", metavar="HOST:PORT",
                    help="where to serve /metrics (default 127.0.0.1:9464; a non-loopback address exposes the metrics to the network)")
    ex.add_argument("--rate", type=_rate, default=100.0, metavar="HZ", help="fast-lane rate (default 100)")
    ex.add_argument("--slow-rate", type=_slow_rate, default=DEFAULT_SLOW_RATE_HZ, metavar="HZ", help="slow-lane rate (default 10)")
    ex.add_argument("--duration", type=_seconds, metavar="S", help="stop after this long (default: until Ctrl-C or SIGTERM)")
    _add_cpu_total_option(ex)
    _add_discovery_options(ex)

    mg = sub.add_parser("merge", help="merge the traces of a job's nodes into one job trace (aligned on their wall clocks)")
    mg.add_argument("traces", nargs="+", metavar="NODE.h5", help="one trace per node (greentop record -o run-{host}.h5)")
    mg.add_argument("-o", "--output", required=True, metavar="JOB.h5", help="job trace to write")

    ph = sub.add_parser("phase", help="tag a phase from a shell workload running under greentop record")
    ph.add_argument("action", choices=["start", "end"])
    ph.add_argument("name")

    from greentop.report.cli import add_parser as add_report_parser

    add_report_parser(sub)
    return parser


def _add_user_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--user", metavar="NAME|UID",
                   help="run the workload as this user (greentop itself runs as root, for the sensors); "
                        "its phase events reach greentop")


def _run_as(args: argparse.Namespace) -> Any:
    """``--user`` resolved and allowed, or None; one line and exit 2 when it cannot be."""
    from greentop.run_as import RunAsError, from_option

    try:
        return from_option(getattr(args, "user", None))
    except RunAsError as exc:
        raise UsageError(str(exc)) from None


def _add_cpu_total_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cpu-total", choices=list(CPU_TOTALS), default=CPU_TOTAL_PACKAGES,
                   help="CPU side of the machine total: packages = CPU packages + DRAM (default), "
                        "psys = the platform domain instead; system = a whole-system meter (ACPI power "
                        "meter) alone, the rest shown beside it")


def _add_carbon_options(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--carbon-intensity", type=_intensity, metavar="G_PER_KWH", help="grid carbon intensity, gCO2e/kWh")
    g.add_argument("--region", metavar="CODE", help="grid region for the carbon intensity (e.g. FR, DE, US; WORLD by default)")


def _options(args: argparse.Namespace) -> DiscoveryOptions:
    return DiscoveryOptions(
        msr=args.msr, gpus=not args.no_gpu, cpu_idle_w=args.cpu_idle_w, cpu_max_w=args.cpu_max_w, force_estimate=args.estimate
    )


def _print_problems(problems: Sequence[Problem], notes: Sequence[str]) -> None:
    for p in problems:
        print(f"  ! {p.source}: {p.what}: {p.reason}\n      fix: {p.fix}")
    for n in notes:
        print(f"  - {n}")


def cmd_devices(args: argparse.Namespace) -> int:
    from greentop.api import devices

    found = devices(args.watch, rate_hz=args.rate, slow_rate_hz=args.slow_rate, options=_options(args))
    if args.json:
        doc = {
            "channels": [
                d.channel.to_dict()
                | {"state": d.state, "update_period_s": d.update_period_s, "read_cost_us": d.read_cost_us,
                   "average_w": d.power_w, "samples": d.samples, "kind": d.kind, "in_total": d.in_total}
                for d in found
            ],
            "problems": [p.to_dict() for p in found.problems],
            "notes": found.notes,
            "devices": found.hardware,
            "watch_s": args.watch,
        }
        print(json.dumps(doc, indent=2))
        return 0
    if not found:
        print("No power or energy channel found on this machine.")
    else:
        rows = [
            [d.name, d.source, d.domain, d.unit, d.lane, d.state,
             update_period_text(d.update_period_s, d.read_interval_s, d.estimated),
             spec(d.read_cost_us, ".1f", " us"), spec(d.power_w, ".1f", " W"), "yes" if d.in_total else "no"]
            for d in found
        ]
        print(text_table(["CHANNEL", "SOURCE", "DOMAIN", "UNIT", "LANE", "STATE", "UPDATE PERIOD", "READ COST", "POWER",
                          "IN TOTAL"], rows))
    if not any(not d.estimated for d in found):
        print("\nNo hardware power sensor is readable here: greentop will use the CPU estimate above.")
    for d in found:
        if d.note and (d.estimated or "MIG" in d.note or d.kind in ("system", "other")):
            print(f"  * {d.name}: {d.note}")
    if found.problems or found.notes:
        print()
        _print_problems(found.problems, found.notes)
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
        s.name + (" (estimated)" if s.estimated else ""), s.domain, str(s.samples), spec(s.rate_hz, ".0f", " Hz"),
        spec(s.energy_j, ".3f", " J"), spec(s.average_w, ".2f", " W"), spec(s.peak_w, ".2f", " W"), str(s.wraps),
    ]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _lanes_text(channels: Sequence[Channel], rate_hz: float, slow_rate_hz: float) -> str:
    """"2 channels at 1000 Hz and 1 channel at 10 Hz": each lane that has channels, at its rate."""
    parts = []
    for lane, hz in ((Lane.FAST, rate_hz), (Lane.SLOW, slow_rate_hz)):
        n = sum(1 for c in channels if c.lane is lane)
        if n:
            parts.append(f"{_plural(n, 'channel')} at {hz:g} Hz")
    return " and ".join(parts)


def cmd_sample(args: argparse.Namespace) -> int:
    found = discover(_options(args))
    if not found.channels:
        print("greentop: no channel to sample (no sensor and no /proc/stat)", file=sys.stderr)
        return 1
    plan_domains(found.channels, args.cpu_total)  # --cpu-total psys without psys: say so before sampling
    print(f"Sampling {_lanes_text(found.channels, args.rate, args.slow_rate)} for {args.duration:g} s ...", file=sys.stderr)
    result = measure(found.channels, args.duration, args.rate, args.slow_rate)
    ledger = result.account(args.cpu_total)  # the one ledger: the same figures as greentop summary
    summaries = result.summaries(ledger)
    run = ledger.row("run")
    primary = {s.name for s in summaries if s.in_total}
    total_j, duration_s = run.total.energy_j, run.duration_s
    if args.json:
        print(json.dumps({
            "channels": [s.__dict__ for s in summaries],
            "total": {"energy_j": total_j, "average_w": total_j / duration_s if duration_s else None,
                      "peak_w": run.total.peak_w, "energy_uncertainty_j": run.total.energy_uncertainty_j,
                      "channels": sorted(primary), "cpu_total": ledger.cpu_total, "machine_total": ledger.machine_total},
            "health": {"lanes": {k: v.__dict__ for k, v in result.health.lanes.items()},
                       "channels": {k: v.__dict__ for k, v in result.health.channels.items()}},
            "notes": ledger.notes,
        }, indent=2, default=float))
        return 0
    print(text_table(["CHANNEL", "DOMAIN", "SAMPLES", "RATE", "ENERGY", "AVG", "PEAK", "WRAPS"], [_summary_row(s) for s in summaries]))
    estimated = any(s.estimated for s in summaries if s.name in primary)
    print(f"\nTotal ({', '.join(sorted(primary))}): {total_j:.3f} J = {total_j / J_PER_WH:.6f} Wh over {duration_s:.2f} s, "
          f"{total_j / duration_s if duration_s else 0:.2f} W average, {run.total.peak_w:.2f} W peak"
          + (" (includes estimates)" if estimated else ""))
    print(ledger.machine_total)
    for s in summaries:
        if s.backwards or s.glitches:
            print(f"{s.name}: {s.backwards} counter resets (counted from the new value), {s.glitches} glitches skipped")
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

    from greentop.merge import expand_output

    cmd = list(args.cmd)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    args.output = expand_output(args.output)  # run-{host}.h5: one trace per node of a job
    run_as = _run_as(args)
    check_inputs(cmd, Path(args.output), getattr(args, "force", False))
    intensity, source = _carbon(args)
    found = discover(_options(args))
    if not found.channels:
        raise UsageError("no channel to sample (no sensor and no /proc/stat)")
    plan_domains(found.channels, args.cpu_total)  # --cpu-total psys without psys: say so before the workload runs
    opts = RecordOptions(output=Path(args.output), rate_hz=args.rate, slow_rate_hz=args.slow_rate,
                         baseline_s=0.0 if args.no_baseline else args.baseline, carbon_g_per_kwh=intensity, carbon_source=source,
                         force=getattr(args, "force", False), run_as=run_as)
    names = ", ".join(c.name for c in found.channels)
    exporter = _exporter(found.channels, args.export, args.cpu_total) if getattr(args, "export", None) else None
    print(f"greentop: recording {_plural(len(found.channels), 'channel')} ({names}) to {args.output}", file=sys.stderr)
    try:
        result = record(cmd, found.channels, found, opts, follower=exporter)
    finally:
        if exporter is not None:
            exporter.close()
    if result.write_error:
        # The workload's exit code stays greentop's: a scheduler sees the job's result, and this says the rest.
        print(f"greentop: workload exited with {result.exit_code}; the recording stopped early: {result.write_error}; "
              f"{args.output} holds the run up to its last flush (greentop summary reads it)", file=sys.stderr)
        return result.exit_code
    print(f"greentop: workload exited with {result.exit_code}; trace: {args.output}", file=sys.stderr)
    try:
        _print_summary(Path(args.output), "table", (intensity, source), None, sys.stderr, cpu_total=args.cpu_total)
    except Exception as exc:  # the trace is written; a summary problem must not hide the exit code
        print(f"greentop: summary failed: {exc}", file=sys.stderr)
    return result.exit_code


def _print_summary(path: Path, fmt: str, carbon: tuple[float, str] | None, args: argparse.Namespace | None, out: Any,
                   by: str | None = None, cpu_total: str | None = None) -> None:
    from greentop.summary_format import format_summary
    from greentop.trace import load, open_trace, summarise_open

    # Only the primary channels count, and their samples are read one channel at a time, each let go
    # once summarised: an hour at 1 kHz never has all its samples in memory (same figures as load()).
    with open_trace(path) as f:
        trace = load(f, channels=())
        stored = (float(trace.meta.get("carbon_g_per_kwh", 0.0)), str(trace.meta.get("carbon_source", "")))
        intensity, source = carbon if carbon is not None else _carbon(args, stored)  # type: ignore[arg-type]
        if cpu_total is None:
            cpu_total = getattr(args, "cpu_total", CPU_TOTAL_PACKAGES) if args is not None else CPU_TOTAL_PACKAGES
        summary = summarise_open(f, trace, intensity, source, cpu_total)
    if by is not None:
        from greentop.groups import format_groups, group_summary

        print(format_groups(group_summary(summary, by), by, fmt), file=out, end="")
        return
    detail = bool(getattr(args, "detail", False))
    print(format_summary(summary, fmt, detail=detail), file=out, end="" if fmt in ("csv", "json") else "\n")
    if fmt == "table" and trace.meta.get("merged_nodes"):  # a merged job: its per-node totals too
        from greentop.groups import format_groups, group_summary

        print("\n" + format_groups(group_summary(summary, "node"), "node", fmt), file=out, end="")


def cmd_summary(args: argparse.Namespace) -> int:
    if args.output:
        import io

        from greentop.trace_files import write_atomically

        # Written whole or not at all: a trace that fails to read leaves an old report as it was.
        out = io.StringIO()
        _print_summary(Path(args.trace), args.format, None, args, out, by=args.by)
        write_atomically(Path(args.output), out.getvalue())
    else:
        _print_summary(Path(args.trace), args.format, None, args, sys.stdout, by=args.by)
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from greentop.trace import iter_channels, load, open_trace
    from greentop.tui.replay import ReplayApp, ReplayModel

    with open_trace(args.trace) as f:  # a bad file: TraceError, one line and exit 2, before any screen
        meta = load(f, channels=()).meta
        # --cpu-total psys of a trace without psys: one line, before any screen (as summary says it)
        plan_domains([cd.channel for cd in iter_channels(f, ends_only=True)], args.cpu_total)
    if "TEXTUAL_DRIVER" not in os.environ and not (sys.stdin.isatty() and sys.stdout.isatty()):
        # A full-screen view into a pipe writes escape codes nobody reads and waits for keys
        # that never come: say so instead (the summary is what prints without a terminal).
        raise UsageError(f"replay needs a terminal; without one: greentop summary {args.trace}")
    stored = (float(meta.get("carbon_g_per_kwh", 0.0)), str(meta.get("carbon_source", "")))
    model = ReplayModel(args.trace, _carbon(args, stored), args.cpu_total)
    return int(ReplayApp(model).run() or 0)


def cmd_phase(args: argparse.Namespace) -> int:
    from greentop.phases import shell_event

    return shell_event(args.action, args.name, t_ns=_STARTED_NS)


def _exporter(channels: list[Any], listen: str, cpu_total: str) -> Any:
    from greentop.export import Exporter, is_loopback, parse_listen

    host, _ = parse_listen(listen)
    exporter = Exporter(channels, listen, cpu_total=cpu_total)
    url = exporter.serve()
    print(f"greentop: serving Prometheus metrics at {url}", file=sys.stderr)
    if not is_loopback(host):
        print(f"greentop: {host} is not a loopback address: anyone who reaches this port reads this host's power, "
              "its phase names and ranks (no authentication)", file=sys.stderr)
    return exporter


def cmd_export(args: argparse.Namespace) -> int:
    import signal
    import threading

    from greentop.sampler import Sampler

    found = discover(_options(args))
    if not found.channels:
        raise UsageError("no channel to sample (no sensor and no /proc/stat)")
    plan_domains(found.channels, args.cpu_total)  # --cpu-total psys without psys: one line, before serving
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        exporter = _exporter(found.channels, args.listen, args.cpu_total)
        try:
            with Sampler(found.channels, rate_hz=args.rate, slow_rate_hz=args.slow_rate) as sampler:
                exporter.feed_from(sampler)
                stop.wait(args.duration)
        finally:
            exporter.close()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from greentop.merge import check_inputs as check_merge_inputs
    from greentop.merge import describe, merge

    check_merge_inputs(args.traces, args.output)
    print(describe(merge(args.traces, args.output)), file=sys.stderr)
    return 0


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
    run_as = _run_as(args)  # likewise an unknown user, or --user without root
    if run_as is not None and not cmd:
        raise UsageError("--user needs a command to run as that user (greentop run --user NAME -- CMD)")
    textual_driver = "TEXTUAL_DRIVER" in os.environ  # a driver named explicitly draws without a tty
    if cmd and not textual_driver and not (sys.stdin.isatty() and sys.stdout.isatty()):
        # No terminal to draw on (a pipe, CI, an IDE's run window): do what the view would have
        # done without the pictures: record the workload and print its summary.
        from greentop.recorder import default_trace_path

        if args.output is None:
            args.output = str(default_trace_path(None))
        print(f"greentop: not a terminal: recording without the live view to {Path(args.output).resolve()} (-o chooses)",
              file=sys.stderr)
        return cmd_record(args)
    found = discover(_options(args))
    if not found.channels:
        raise UsageError("no channel to sample (no sensor and no /proc/stat)")
    plan_domains(found.channels, args.cpu_total)  # --cpu-total psys without psys: one line, before any screen
    result = run_live(cmd, found.channels, args.rate, args.slow_rate, output=output,
                      baseline_s=0.0 if args.no_baseline else args.baseline, found=found, carbon=carbon,
                      cpu_total=args.cpu_total, run_as=run_as)
    if result.write_error:
        print(f"greentop: the recording stopped early: {result.write_error}; {output} holds the run up to its last "
              "flush (greentop summary reads it)", file=sys.stderr)
    elif output is not None and output.exists():
        # The recording's summary is the reference (phase boundaries interpolated, uncertainties,
        # baseline): print it rather than the live view's running totals.
        try:
            _print_summary(output, "table", carbon, None, sys.stderr, cpu_total=args.cpu_total)
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
    from greentop._extras import MissingExtra, require
    from greentop.report.cli import run as run_report

    try:
        for module in ("pandas", "matplotlib"):
            require(module, "report", "greentop report")
    except MissingExtra as exc:
        print(f"greentop: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT

    return run_report(args)


def _exit_if_stuck(code: int = EXIT_BAD_INPUT, reads_too: bool = True) -> int:
    """After a trace read that timed out (``greentop.deadline``; with ``reads_too``) its thread
    holds HDF5's lock and the interpreter's exit would wait on it forever; after a failed write (a
    full disk) HDF5 holds handles it can neither flush nor release, and its shutdown can crash:
    leave at once, with ``code``. Otherwise ``code``, for the caller to return."""
    from greentop.deadline import stuck
    from greentop.trace import WRITE_FAILED

    if (reads_too and stuck()) or WRITE_FAILED.is_set():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


class UsageError(Exception):
    """Bad input found after parsing; one line, exit code 2."""


COMMANDS = {"devices": cmd_devices, "sample": cmd_sample, "record": cmd_record, "summary": cmd_summary, "phase": cmd_phase, "run": cmd_run,
            "replay": cmd_replay, "report": cmd_report, "merge": cmd_merge,
            "export": cmd_export}


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
        # A trace whose disk filled: leave at once, with the workload's code.
        return _exit_if_stuck(COMMANDS[args.command](args), reads_too=False)
    except (SamplerError, ValueError, UsageError, RecordError, TraceError) as exc:
        print(f"greentop: error: {exc}", file=sys.stderr)
        return _exit_if_stuck(getattr(exc, "exit_code", EXIT_BAD_INPUT))  # 127/126: a command not found/executable
    except OSError as exc:
        print(f"greentop: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
