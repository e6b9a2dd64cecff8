"""Fuzzing greentop's trace readers with mutated real traces.

Each *variant* is a copy of a real trace (the committed fixtures ``tests/data/h200_resnet50.h5``,
``tests/data/fakehost_complete.h5`` and ``tests/data/fakehost_killed.h5``, the last one left by a
recorder killed with SIGKILL) damaged in one way: truncated, bytes flipped, a block zeroed, bytes
flipped inside an HDF5 object header, or edited through h5py (attributes, datasets, dtypes,
shapes, phase tables, the overview). The variants come from a seed, so a corpus is the same on
every machine.

Every variant goes through three readers, each in a forked child with a deadline:
``greentop summary --format json`` (the CLI), ``greentop.load()`` followed by its summary, and
replay's loading path (``ReplayModel``, its summary and one chart window). Each outcome is one of:

- ``clean_error``: the documented failure (exit 2 with one line; ``TraceError``);
- ``traceback``: any other exception, exit code or signal;
- ``hang``: past the deadline;
- ``output`` (no error) that is either ``same`` as the undamaged trace's (energy of the run and of
  every phase within 1 %, same phases), ``flagged`` (different, and the summary says so: a new
  note, health counter, backward step or completeness), or ``silently_wrong`` (different and
  unflagged, or NaN/inf anywhere in it).

``python -m tests.fuzz_traces [--n N] [--seed S]`` runs a corpus and prints the counts as JSON
(``benchmarks/bench_fuzz_traces.py`` runs the full one).
"""

from __future__ import annotations

import io
import json
import math
import os
import random
import shutil
import signal
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import h5py
import numpy as np

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data"
BASES = ("h200_resnet50.h5", "fakehost_complete.h5", "fakehost_killed.h5")
TARGETS = ("summary", "load", "replay")
INT64_MAX = 2**63 - 1
REL_TOL = 0.01

Mutation = Callable[[Path, random.Random], str]


@dataclass(frozen=True)
class Variant:
    index: int
    base: str
    family: str
    seed: str


# -- byte-level mutations -----------------------------------------------------------------------

def _bytes(path: Path) -> bytearray:
    return bytearray(path.read_bytes())


def truncate(path: Path, rng: random.Random) -> str:
    data = _bytes(path)
    cut = rng.randint(0, len(data) - 1)
    path.write_bytes(data[:cut])
    return f"truncated to {cut} of {len(data)} bytes"


def byte_flips(path: Path, rng: random.Random) -> str:
    data = _bytes(path)
    k = rng.randint(1, 8)
    where = [rng.randrange(len(data)) for _ in range(k)]
    for i in where:
        data[i] ^= rng.randint(1, 255)
    path.write_bytes(data)
    return f"{k} bytes flipped at {where}"


def zero_block(path: Path, rng: random.Random) -> str:
    data = _bytes(path)
    n = rng.choice((64, 512, 4096, 16384))
    at = rng.randrange(len(data))
    data[at:at + n] = bytes(len(data[at:at + n]))
    path.write_bytes(data)
    return f"{n} bytes zeroed at {at}"


def _object_addrs(path: Path) -> list[tuple[str, int]]:
    addrs: list[tuple[str, int]] = []
    with _open_any(path) as f:
        def visit(name: str, obj: Any) -> None:
            addrs.append((name, h5py.h5o.get_info(obj.id).addr))
        f.visititems(visit)
    return addrs


def header_flip(path: Path, rng: random.Random) -> str:
    """One byte flipped inside an object header: HDF5 sees a bad metadata checksum (the SWMR hang)."""
    name, addr = rng.choice(_object_addrs(path))
    off = addr + rng.randint(0, 64)
    data = _bytes(path)
    data[off] ^= 0xFF
    path.write_bytes(data)
    return f"header of {name}: byte {off} flipped"


# -- h5py edits (complete traces only: a killed one cannot be opened for writing) ---------------

def _open_any(path: Path) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except OSError:
        return h5py.File(path, "r", swmr=True)


def _replace(g: h5py.Group, name: str, data: Any, **kw: Any) -> None:
    del g[name]
    g.create_dataset(name, data=data, **kw)


def _channel_keys(f: h5py.File) -> list[str]:
    return sorted(f["channels"])


def _edit_attr(f: h5py.File, rng: random.Random) -> str:
    key = rng.choice(_channel_keys(f))
    a = f["channels"][key].attrs
    field, value = rng.choice([
        ("scale", float("nan")), ("scale", float("inf")), ("scale", -1e-3), ("scale", 0.0), ("scale", 1e300),
        ("wrap_raw", -5), ("wrap_raw", 1), ("wrap_raw", 7), ("quantity", "bogus"), ("lane", "sideways"),
        ("reader_kind", "telepathy"), ("name", 42), ("metadata", "{not json"), ("estimated", "maybe"),
    ])
    a[field] = value
    return f"channels/{key} attr {field} = {value!r}"


def _edit_meta(f: h5py.File, rng: random.Random) -> str:
    field, value = rng.choice([
        ("carbon_g_per_kwh", float("nan")), ("carbon_g_per_kwh", -100.0), ("carbon_g_per_kwh", float("inf")),
        ("carbon_g_per_kwh", "lots"), ("start_mono_ns", "soon"), ("start_wall_ns", float("nan")),
        ("gpus", "json:[{broken"), ("rate_hz", float("nan")),
    ])
    f["meta"].attrs[field] = value
    return f"meta attr {field} = {value!r}"


def _edit_root(f: h5py.File, rng: random.Random) -> str:
    field, value = rng.choice([("format_version", 2), ("format_version", "one"), ("format", "other"), ("format_version", -1)])
    f.attrs[field] = value
    return f"root attr {field} = {value!r}"


def _edit_samples(f: h5py.File, rng: random.Random) -> str:
    key = rng.choice(_channel_keys(f))
    g = f["channels"][key]
    t, raw = g["t_ns"][()], g["raw"][()]
    what = rng.choice(["t_int64max", "t_wall", "t_negative", "t_swap", "t_dup_all", "raw_negative", "raw_huge",
                       "float_dtype", "string_dtype", "2d", "short_raw", "drop_raw", "empty"])
    i = rng.randrange(max(t.size, 1))
    if what == "t_int64max":
        t[i] = INT64_MAX
    elif what == "t_wall":
        t[i] = time.time_ns()
    elif what == "t_negative":
        t[i] = -t[i]
    elif what == "t_swap" and t.size > 2:
        t[i], t[(i + 1) % t.size] = t[(i + 1) % t.size], t[i]
    elif what == "t_dup_all":
        t[:] = t[0]
    elif what == "raw_negative":
        raw[i] = -abs(int(raw[i])) - 1
    elif what == "raw_huge":
        raw[i] = 2**62
    if what.startswith("t_"):
        _replace(g, "t_ns", t)
    elif what.startswith("raw_"):
        _replace(g, "raw", raw)
    elif what == "float_dtype":
        _replace(g, "raw", raw.astype(np.float64) * 1.5)
    elif what == "string_dtype":
        _replace(g, "raw", np.array([str(x) for x in raw[:100]], dtype=object), dtype=h5py.string_dtype())
    elif what == "2d":
        _replace(g, "t_ns", np.stack([t, t]))
    elif what == "short_raw":
        _replace(g, "raw", raw[: raw.size // 2])
    elif what == "drop_raw":
        del g["raw"]
    elif what == "empty":
        _replace(g, "t_ns", np.zeros(0, np.int64))
        _replace(g, "raw", np.zeros(0, np.int64))
    return f"channels/{key}: {what} (row {i})"


def _edit_events(f: h5py.File, rng: random.Random) -> str:
    ev = f["events"]
    n = ev["t_ns"].shape[0]
    i = rng.randrange(max(n, 1))
    what = rng.choice(["kind_unknown", "kind_all_bogus", "t_int64max", "t_wall", "t_negative", "attrs_bad_json",
                       "attrs_list", "value_nan", "short_kind", "drop_name", "pid_negative", "t_float"])
    if n == 0:
        return "events: empty, nothing to edit"
    if what.startswith("kind"):
        kinds = [k.decode() if isinstance(k, bytes) else k for k in ev["kind"][()]]
        if what == "kind_unknown":
            kinds[i] = "bogus"
        else:
            kinds = ["strat" if k == "start" else k for k in kinds]
        _replace(ev, "kind", np.array(kinds, dtype=object), dtype=h5py.string_dtype())
    elif what.startswith("t_") and what != "t_float":
        t = ev["t_ns"][()]
        t[i] = {"t_int64max": INT64_MAX, "t_wall": time.time_ns(), "t_negative": -1}[what]
        _replace(ev, "t_ns", t)
    elif what == "t_float":
        _replace(ev, "t_ns", ev["t_ns"][()].astype(np.float64) + 0.5)
    elif what.startswith("attrs"):
        attrs = [a.decode() if isinstance(a, bytes) else a for a in ev["attrs"][()]]
        attrs[i] = "{broken" if what == "attrs_bad_json" else "[1, 2]"
        _replace(ev, "attrs", np.array(attrs, dtype=object), dtype=h5py.string_dtype())
    elif what == "value_nan":
        v = ev["value"][()]
        v[i] = float("nan")
        _replace(ev, "value", v)
    elif what == "short_kind":
        _replace(ev, "kind", ev["kind"][()][: n // 2], dtype=h5py.string_dtype())
    elif what == "drop_name":
        del ev["name"]
    elif what == "pid_negative":
        p = ev["pid"][()]
        p[i] = -7
        _replace(ev, "pid", p)
    return f"events: {what} (row {i})"


def _edit_tables(f: h5py.File, rng: random.Random) -> str:
    if "phases" not in f or f["phases"]["name"].shape[0] == 0:
        return _edit_events(f, rng)
    p = f["phases"]
    n = p["name"].shape[0]
    i = rng.randrange(n)
    what = rng.choice(["start_after_end", "end_int64max", "parent_out", "parent_self", "depth_negative", "status_bogus",
                       "attrs_bad", "drop_column", "short_column", "count_phase_out", "count_value_nan", "marks_attrs_bad",
                       "run_exit_code_text", "start_wall"])
    if what == "start_after_end":
        s, e = p["start_ns"][()], p["end_ns"][()]
        s[i] = e[i] + 10**9
        _replace(p, "start_ns", s)
    elif what in ("end_int64max", "start_wall"):
        col = "end_ns" if what == "end_int64max" else "start_ns"
        v = p[col][()]
        v[i] = INT64_MAX if what == "end_int64max" else time.time_ns()
        _replace(p, col, v)
    elif what in ("parent_out", "parent_self"):
        v = p["parent"][()]
        v[i] = 10**6 if what == "parent_out" else i
        _replace(p, "parent", v)
    elif what == "depth_negative":
        v = p["depth"][()]
        v[i] = -3
        _replace(p, "depth", v)
    elif what in ("status_bogus", "attrs_bad"):
        col = "status" if what == "status_bogus" else "attrs"
        v = [x.decode() if isinstance(x, bytes) else x for x in p[col][()]]
        v[i] = "sideways" if col == "status" else "{oops"
        _replace(p, col, np.array(v, dtype=object), dtype=h5py.string_dtype())
    elif what == "drop_column":
        del p[rng.choice(["name", "start_ns", "end_ns", "parent"])]
    elif what == "short_column":
        _replace(p, "end_ns", p["end_ns"][()][: n // 2])
    elif what in ("count_phase_out", "count_value_nan"):
        c = f["counts"]
        if c["t_ns"].shape[0] == 0:
            return "counts: empty"
        col = "phase" if what == "count_phase_out" else "value"
        v = c[col][()]
        v[0] = 999 if col == "phase" else float("nan")
        _replace(c, col, v)
    elif what == "marks_attrs_bad":
        m = f["marks"]
        if m["t_ns"].shape[0] == 0:
            return "marks: empty"
        v = [x.decode() if isinstance(x, bytes) else x for x in m["attrs"][()]]
        v[0] = "not json"
        _replace(m, "attrs", np.array(v, dtype=object), dtype=h5py.string_dtype())
    elif what == "run_exit_code_text":
        f["run"].attrs["exit_code"] = "zero"
    return f"phases: {what} (row {i})"


def _edit_health(f: h5py.File, rng: random.Random) -> str:
    h = f["health"]
    what = rng.choice(["channels_bad_json", "channels_short", "reads_1d", "lanes_bad", "tail_len_negative",
                       "tail_len_huge", "tail_len_long", "dropped_negative"])
    if what == "channels_bad_json":
        h.attrs["channels"] = "[oops"
    elif what == "channels_short":
        h.attrs["channels"] = json.dumps(json.loads(h.attrs["channels"])[:1] + ["ghost", "ghost2", "ghost3"])
    elif what == "reads_1d":
        _replace(h, "reads", np.arange(3, dtype=np.int64))
    elif what == "lanes_bad":
        h.attrs["lanes"] = "7"
    elif what.startswith("tail_len"):
        n = f["tail_len"].shape[0]
        v = {"tail_len_negative": np.full(n, -4), "tail_len_huge": np.full(n, 10**12),
             "tail_len_long": np.zeros(n + 5)}[what].astype(np.int64)
        _replace(f, "tail_len", v)
    elif what == "dropped_negative":
        v = h["events_dropped"][()]
        if v.size:
            v[-1] = -9
            _replace(h, "events_dropped", v)
    return f"health: {what}"


def _edit_overview(f: h5py.File, rng: random.Random) -> str:
    if "overview" not in f:
        return _edit_attr(f, rng)
    top = f["overview"]
    key = rng.choice(sorted(top))
    g = top[key]
    what = rng.choice(["n_bins_huge", "bin_ns_zero", "energy_nan", "drop_level", "mean_nan", "levels_text", "factor_zero",
                       "first_bin_huge", "mean_2d", "version_text"])
    if what == "n_bins_huge":
        g.attrs["level_n_bins"] = np.full(len(g.attrs["level_n_bins"]), 2**40, np.int64)
    elif what == "bin_ns_zero":
        g.attrs["level_bin_ns"] = np.zeros(len(g.attrs["level_bin_ns"]), np.int64)
    elif what == "energy_nan":
        g.attrs["energy_j"] = float("nan")
    elif what == "drop_level":
        del g["L00"]
    elif what == "mean_nan":
        m = g["L00"]["mean_w"][()]
        m[:] = np.nan
        _replace(g["L00"], "mean_w", m)
    elif what == "levels_text":
        g.attrs["level_first_bin"] = "many"
    elif what == "factor_zero":
        g.attrs["factor"] = 0
    elif what == "first_bin_huge":
        g.attrs["level_first_bin"] = np.full(len(g.attrs["level_first_bin"]), 2**61, np.int64)
    elif what == "mean_2d":
        m = g["L00"]["mean_w"][()]
        _replace(g["L00"], "mean_w", np.stack([m, m]))
    elif what == "version_text":
        top.attrs["overview_version"] = "one"
    return f"overview/{key}: {what}"


EDITS: dict[str, Callable[[h5py.File, random.Random], str]] = {
    "edit_channel_attr": _edit_attr, "edit_meta": _edit_meta, "edit_root": _edit_root, "edit_samples": _edit_samples,
    "edit_events": _edit_events, "edit_tables": _edit_tables, "edit_health": _edit_health, "edit_overview": _edit_overview,
}
BYTE_MUTATIONS: dict[str, Mutation] = {"truncate": truncate, "byte_flips": byte_flips, "zero_block": zero_block,
                                       "header_flip": header_flip}


def _h5edit(edit: Callable[[h5py.File, random.Random], str]) -> Mutation:
    def apply(path: Path, rng: random.Random) -> str:
        with h5py.File(path, "r+") as f:
            return edit(f, rng)
    return apply


def families(base: str) -> dict[str, Mutation]:
    out = dict(BYTE_MUTATIONS)
    if base != "fakehost_killed.h5":
        out |= {name: _h5edit(e) for name, e in EDITS.items()}
    return out


def corpus(n: int, seed: int = 0) -> list[Variant]:
    """``n`` variants, spread over the bases and the mutation families, the same for a seed."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        base = BASES[i % len(BASES)]
        fam = sorted(families(base))
        out.append(Variant(i, base, fam[(i // len(BASES)) % len(fam)] if i < len(BASES) * len(fam) else rng.choice(fam),
                           f"{seed}-{i}"))
    return out


# -- running readers under a deadline -----------------------------------------------------------

def _summary_digest(doc: dict[str, Any]) -> dict[str, Any]:
    rows = []
    for r in doc["rows"]:
        rows.append({"kind": r["kind"], "name": r["name"], "energy_j": sum(d["energy_j"] or 0.0 for d in r["domains"])})
    flags = {
        "notes": sorted(doc.get("notes", [])),
        "health": json.dumps(doc.get("health", {}), sort_keys=True),
        "complete": doc.get("complete"),
        "backwards": sum(int(d.get("backwards", 0)) for d in doc.get("domains", [])),
        "wraps": sum(int(d.get("wraps", 0)) for d in doc.get("domains", [])),
    }
    return {"rows": rows, "flags": flags}


def _has_nonfinite(text: str) -> bool:
    bad = False

    def const(_: str) -> float:
        nonlocal bad
        bad = True
        return 0.0

    json.loads(text, parse_constant=const)
    return bad


def _one_clean_line(text: str) -> bool:
    lines = text.strip().splitlines()
    return len(lines) == 1 and lines[0].startswith("greentop: error:")


def _target(name: str, path: Path, errfile: Path) -> tuple[str, str]:
    """Run one reader in this (child) process: ("clean"|"ok"|"traceback", detail or summary JSON)."""
    from greentop.summary_format import format_summary
    from greentop.trace import TraceError

    if name == "summary":
        from greentop import cli

        out = io.StringIO()
        # stderr to a file: the CLI may leave with os._exit after a read that timed out.
        with open(errfile, "w", buffering=1) as err:
            sys.stdout, sys.stderr = out, err
            try:
                rc = cli.main(["summary", str(path), "--format", "json"])
            finally:
                sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
        errors = errfile.read_text()
        if rc == 2 and _one_clean_line(errors) and not out.getvalue():
            return "clean", errors.strip()
        if rc == 0:
            return "ok", out.getvalue()
        return "traceback", f"exit {rc}: {errors[-2000:]}"
    try:
        if name == "load":
            import greentop

            trace = greentop.load(path)
            return "ok", format_summary(trace.summary(), "json")
        from greentop.tui.replay import ReplayModel

        model = ReplayModel(path)
        text = format_summary(model.summarise(), "json")
        model.bins(model.start_ns, model.end_ns, 120)
        return "ok", text
    except TraceError as exc:
        text = str(exc)
        if "\n" in text or not text:
            return "traceback", f"TraceError of {len(text.splitlines())} lines"
        return "clean", text


def run_target(name: str, path: Path, timeout_s: float) -> tuple[str, str]:
    """``_target`` in a forked child with a deadline: adds "hang" and catches anything raised."""
    errfile = Path(tempfile.mkstemp(prefix="greentop-fuzz-err-")[1])
    try:
        return _run_target(name, path, timeout_s, errfile)
    finally:
        errfile.unlink(missing_ok=True)


def _run_target(name: str, path: Path, timeout_s: float, errfile: Path) -> tuple[str, str]:
    with tempfile.TemporaryFile("w+") as result:
        pid = os.fork()
        if pid == 0:  # the child: never returns
            code = 0
            try:
                # The readers' own time limit (greentop.deadline) well inside the harness's deadline:
                # a read that HDF5 cannot finish must end as a clean error, not as a hang.
                os.environ["GREENTOP_READ_TIMEOUT_S"] = str(max(timeout_s / 4, 1.0))
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 1)
                os.dup2(devnull, 2)
                status, detail = _target(name, path, errfile)
            except BaseException as exc:  # noqa: BLE001 -- that is what is being measured
                status, detail = "traceback", "".join(traceback.format_exception(exc))[-3000:]
            try:
                json.dump({"status": status, "detail": detail}, result)
                result.flush()
            except BaseException:  # noqa: BLE001
                code = 3
            os._exit(code)
        deadline = time.monotonic() + timeout_s
        while True:
            done, wstatus = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return "hang", f"no answer in {timeout_s:g} s"
            time.sleep(0.02)
        if os.WIFSIGNALED(wstatus):
            return "traceback", f"killed by signal {os.WTERMSIG(wstatus)}"
        result.seek(0)
        try:
            doc = json.load(result)
        except ValueError:
            errors = errfile.read_text()
            if os.WEXITSTATUS(wstatus) == 2 and _one_clean_line(errors):
                return "clean", errors.strip()  # the CLI's immediate exit after a read that timed out
            return "traceback", f"child exited {os.WEXITSTATUS(wstatus)} without a result: {errors[-500:]}"
        return doc["status"], doc["detail"]


def classify(status: str, detail: str, reference: dict[str, Any]) -> tuple[str, str]:
    """(outcome, why): outcome one of clean_error, traceback, hang, same, flagged, silently_wrong."""
    if status == "clean":
        return "clean_error", detail
    if status in ("traceback", "hang"):
        return status, detail
    if _has_nonfinite(detail):
        return "silently_wrong", "NaN or inf in the output"
    got = _summary_digest(json.loads(detail))
    if _close(got["rows"], reference["rows"]):
        return "same", ""
    if got["flags"] != reference["flags"]:
        return "flagged", "different, and flagged"
    return "silently_wrong", _diff(got["rows"], reference["rows"])


def _close(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    if [(r["kind"], r["name"]) for r in a] != [(r["kind"], r["name"]) for r in b]:
        return False
    return all(math.isclose(x["energy_j"], y["energy_j"], rel_tol=REL_TOL, abs_tol=1e-6) for x, y in zip(a, b))


def _diff(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> str:
    if len(a) != len(b):
        return f"{len(a)} rows instead of {len(b)}"
    for x, y in zip(a, b):
        if (x["kind"], x["name"]) != (y["kind"], y["name"]) or not math.isclose(x["energy_j"], y["energy_j"], rel_tol=REL_TOL):
            return f"row {y['name']}: {x['energy_j']:.6g} J instead of {y['energy_j']:.6g} J"
    return "rows differ"


@dataclass
class Outcome:
    variant: Variant
    mutation: str
    target: str
    outcome: str
    why: str


def prepare_bases(work: Path) -> dict[str, Path]:
    """Copies of the bases, complete ones with a stored overview (so the overview gets fuzzed too)."""
    from greentop.overview import ensure_overview

    out = {}
    for name in BASES:
        dst = work / name
        shutil.copyfile(DATA / name, dst)
        if name != "fakehost_killed.h5":
            ensure_overview(dst)
        out[name] = dst
    return out


def references(bases: dict[str, Path], timeout_s: float) -> dict[str, dict[str, Any]]:
    refs = {}
    for name, path in bases.items():
        status, detail = run_target("summary", path, timeout_s)
        if status != "ok":
            raise RuntimeError(f"{name}: the undamaged trace does not summarise: {detail}")
        refs[name] = _summary_digest(json.loads(detail))
    return refs


def run_corpus(variants: list[Variant], timeout_s: float = 20.0, targets: tuple[str, ...] = TARGETS,
               on_outcome: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="greentop-fuzz-") as tmp:
        work = Path(tmp)
        bases = prepare_bases(work)
        refs = references(bases, timeout_s)
        for v in variants:
            for target in targets:
                # A fresh copy per reader: replay may store an overview into a complete trace.
                path = work / f"v{v.index}.h5"
                shutil.copyfile(bases[v.base], path)
                mutation = families(v.base)[v.family](path, random.Random(v.seed))
                status, detail = run_target(target, path, timeout_s)
                outcome, why = classify(status, detail, refs[v.base])
                o = Outcome(v, mutation, target, outcome, why)
                outcomes.append(o)
                if on_outcome is not None:
                    on_outcome(o)
                path.unlink(missing_ok=True)
    return outcomes


def counts(outcomes: list[Outcome]) -> dict[str, dict[str, int]]:
    keys = ("clean_error", "traceback", "hang", "same", "flagged", "silently_wrong")
    out: dict[str, dict[str, int]] = {}
    for t in sorted({o.target for o in outcomes}, key=TARGETS.index):
        out[t] = {k: sum(1 for o in outcomes if o.target == t and o.outcome == k) for k in keys}
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=36, help="variants (default 36)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=20.0, help="seconds before a reader counts as hung")
    p.add_argument("--targets", default=",".join(TARGETS))
    p.add_argument("-v", "--verbose", action="store_true", help="print every bad outcome")
    args = p.parse_args(argv)

    def show(o: Outcome) -> None:
        if args.verbose and o.outcome in ("traceback", "hang", "silently_wrong"):
            print(f"{o.variant.index} {o.variant.base} {o.target} {o.outcome}: {o.mutation} :: {o.why[-300:]}", file=sys.stderr)

    t0 = time.monotonic()
    outcomes = run_corpus(corpus(args.n, args.seed), args.timeout, tuple(args.targets.split(",")), show)
    print(json.dumps({"variants": args.n, "seed": args.seed, "timeout_s": args.timeout,
                      "wall_s": round(time.monotonic() - t0, 1), "counts": counts(outcomes)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
