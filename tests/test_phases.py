"""Phase tagging: greentop.phase/mark/count in the workload, EventListener and build_phases in
the launcher, and the datagram protocol between them."""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import os
import random
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

import greentop
from greentop import phases
from greentop.events import Event, build_phases, parse_event
from greentop.listener import EventListener

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def no_launcher(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(phases.ENV_VAR, raising=False)
    phases._reset()
    yield
    phases._reset()


@pytest.fixture
def listener(monkeypatch: pytest.MonkeyPatch) -> Iterator[EventListener]:
    """A real listener, with this process as its workload."""
    with EventListener() as lst:
        monkeypatch.setenv(phases.ENV_VAR, lst.path)
        phases._reset()
        yield lst
    phases._reset()


def collect(lst: EventListener, n: int, timeout_s: float = 10.0) -> list[Event]:
    """Drain until at least ``n`` events have arrived (or the timeout passes)."""
    events: list[Event] = []
    deadline = time.monotonic() + timeout_s
    while len(events) < n and time.monotonic() < deadline:
        events += lst.drain()
        if len(events) < n:
            time.sleep(0.005)
    return events


def ev(kind: str, t_ns: int, name: str, phase_id: str = "", parent_id: str = "", pid: int = 100, value: float = 0.0) -> Event:
    return Event(kind=kind, t_ns=t_ns, pid=pid, name=name, phase_id=phase_id, parent_id=parent_id, value=value, attrs={})


# ---- outside a launcher ------------------------------------------------------------------------


def test_outside_a_launcher_phase_returns_one_shared_noop(no_launcher: None) -> None:
    a, b = greentop.phase("a"), greentop.phase("b", epoch=3)
    assert a is b
    with a as entered:
        assert entered is None


def test_outside_a_launcher_decorator_returns_the_function_itself(no_launcher: None) -> None:
    def f(x: int) -> int:
        return x * 2

    assert greentop.phase("inference")(f) is f
    assert f(21) == 42

    @greentop.phase("async")
    async def g() -> str:
        return "done"

    assert asyncio.run(g()) == "done"


def test_outside_a_launcher_mark_and_count_do_nothing(no_launcher: None) -> None:
    before = phases.send_failures, phases.invalid_dropped
    assert greentop.mark("checkpoint", step=10) is None
    assert greentop.count(samples=256, tokens=1024.0, junk="not a number") is None  # type: ignore[arg-type]
    assert (phases.send_failures, phases.invalid_dropped) == before


def test_exceptions_pass_through_a_phase(no_launcher: None) -> None:
    with pytest.raises(KeyError):
        with greentop.phase("x"):
            raise KeyError("boom")


# ---- with a listener: one process --------------------------------------------------------------


def test_nested_phases_marks_counts_and_attrs_arrive_with_monotonic_times(listener: EventListener) -> None:
    t0 = time.monotonic_ns()
    with greentop.phase("training", epoch=3, lr=0.5, fast=True, who=object):
        with greentop.phase("step", step=1):
            greentop.mark("checkpoint", step=10)
            greentop.count(samples=256, tokens=1024.5)
    t1 = time.monotonic_ns()
    events = collect(listener, 7)
    assert [(e.kind, e.name) for e in events] == [
        ("start", "training"), ("start", "step"), ("mark", "checkpoint"), ("count", "samples"), ("count", "tokens"),
        ("end", "step"), ("end", "training"),
    ]
    assert all(t0 <= e.t_ns <= t1 and e.pid == os.getpid() for e in events)
    assert [e.t_ns for e in events] == sorted(e.t_ns for e in events)
    training, step = events[0], events[1]
    assert training.attrs == {"epoch": 3, "lr": 0.5, "fast": True, "who": str(object)}
    assert training.phase_id.startswith(f"{os.getpid()}:") and training.parent_id == ""
    assert step.parent_id == training.phase_id
    assert events[2].phase_id == step.phase_id and events[2].attrs == {"step": 10}
    assert (events[3].value, events[4].value) == (256.0, 1024.5)

    found, marks, counts = build_phases(events, time.monotonic_ns())
    assert [(p.name, p.depth, p.parent, p.status) for p in found] == [("training", 0, -1, "ok"), ("step", 1, 0, "ok")]
    assert found[0].attrs["epoch"] == 3
    assert [m.name for m in marks] == ["checkpoint"]
    assert [(c.name, c.value, c.phase) for c in counts] == [("samples", 256.0, 1), ("tokens", 1024.5, 1)]


def test_phase_ids_are_unique_per_process(listener: EventListener) -> None:
    for _ in range(50):
        with greentop.phase("x"):
            pass
    ids = [e.phase_id for e in collect(listener, 100) if e.kind == "start"]
    assert len(ids) == len(set(ids)) == 50


def test_decorator_tags_every_call_sync_and_async(listener: EventListener) -> None:
    @greentop.phase("inference", model="m")
    def infer(x: int) -> int:
        return x + 1

    @greentop.phase("serve")
    async def serve() -> int:
        await asyncio.sleep(0)
        return infer(1)

    assert infer.__name__ == "infer"
    assert infer(1) == 2
    assert asyncio.run(serve()) == 2
    events = collect(listener, 6)
    found, _, _ = build_phases(events, time.monotonic_ns())
    assert [(p.name, p.parent) for p in found] == [("inference", -1), ("serve", -1), ("inference", 1)]
    assert found[0].attrs == {"model": "m"}


def test_count_skips_values_that_are_not_finite_numbers(listener: EventListener) -> None:
    np = pytest.importorskip("numpy")
    before = phases.invalid_dropped
    greentop.count(text="12", nan=float("nan"), inf=float("inf"), ok=3, np_value=np.int64(7), flag=True)  # type: ignore[arg-type]
    greentop.mark("done")
    events = collect(listener, 4)
    assert [(e.name, e.value) for e in events if e.kind == "count"] == [("ok", 3.0), ("np_value", 7.0), ("flag", 1.0)]
    assert phases.invalid_dropped == before + 3


def test_names_and_attrs_that_are_not_valid_utf8_are_repaired_not_lost(listener: EventListener) -> None:
    bad = b"ckpt-\xff.pt".decode("utf-8", "surrogateescape")  # how Python decodes an odd file name
    greentop.mark(bad, path=bad, **{bad: 1})
    events = collect(listener, 1)
    assert events[0].name == "ckpt-?.pt" and events[0].attrs == {"path": "ckpt-?.pt", "ckpt-?.pt": 1}
    assert listener.dropped == 0


def test_oversized_attrs_are_cut_to_keep_a_datagram_under_8_kib(listener: EventListener) -> None:
    big = {f"k{i}": "x" * 2000 for i in range(40)}
    with greentop.phase("n" * 1000, **big):
        pass
    events = collect(listener, 2)
    start = events[0]
    assert start.name == "n" * phases.MAX_NAME_CHARS
    assert 0 < len(start.attrs) < 40 and all(len(str(v)) <= 256 for v in start.attrs.values())
    assert listener.dropped == 0


# ---- with a listener: threads, tasks, processes ------------------------------------------------


def test_threads_each_have_their_own_phase_stack(listener: EventListener) -> None:
    barrier = threading.Barrier(2)

    def work(tag: str) -> None:
        with greentop.phase(f"{tag}-outer"):
            barrier.wait()  # both outers are open at once
            with greentop.phase(f"{tag}-inner"):
                barrier.wait()

    with greentop.phase("main"):
        threads = [threading.Thread(target=work, args=(tag,)) for tag in "ab"]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    found, _, _ = build_phases(collect(listener, 10), time.monotonic_ns())
    by_name = {p.name: p for p in found}
    for tag in "ab":
        assert found[by_name[f"{tag}-inner"].parent].name == f"{tag}-outer"
        # A new thread starts with an empty context: its phases are top level, not under "main".
        assert by_name[f"{tag}-outer"].parent == -1


def test_asyncio_tasks_each_have_their_own_phase_stack(listener: EventListener) -> None:
    async def work(tag: str) -> None:
        with greentop.phase(f"{tag}-outer"):
            await asyncio.sleep(0.01)
            with greentop.phase(f"{tag}-inner"):
                await asyncio.sleep(0.01)

    async def main() -> None:
        with greentop.phase("main"):
            await asyncio.gather(work("a"), work("b"))

    asyncio.run(main())
    found, _, _ = build_phases(collect(listener, 10), time.monotonic_ns())
    by_name = {p.name: p for p in found}
    for tag in "ab":
        assert found[by_name[f"{tag}-inner"].parent].name == f"{tag}-outer"
        assert found[by_name[f"{tag}-outer"].parent].name == "main"  # tasks copy the creator's context


def test_forked_child_phases_nest_under_the_phase_open_at_fork(listener: EventListener) -> None:
    with greentop.phase("epoch") as _, greentop.phase("load") as _:
        pid = os.fork()
        if pid == 0:  # the child: never return into pytest
            code = 1
            try:
                with greentop.phase("child-work", worker=0):
                    greentop.count(samples=8)
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    events = collect(listener, 7)
    found, _, counts = build_phases(events, time.monotonic_ns())
    assert [p.name for p in found] == ["epoch", "load", "child-work"]
    child = found[2]
    assert child.pid == pid and child.phase_id.startswith(f"{pid}:") and child.parent == 1 and child.depth == 2
    assert counts[0].pid == pid and counts[0].phase == 2


def test_forked_child_unwinding_through_a_parent_phase_does_not_end_it(listener: EventListener) -> None:
    scope = greentop.phase("parent")
    scope.__enter__()
    pid = os.fork()
    if pid == 0:
        try:
            scope.__exit__(None, None, None)  # what sys.exit() in the child would do
            greentop.mark("child-done")
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    greentop.mark("parent-still-in")
    scope.__exit__(None, None, None)
    events = collect(listener, 4)
    assert [(e.kind, e.name, e.pid) for e in events] == [
        ("start", "parent", os.getpid()), ("mark", "child-done", pid), ("mark", "parent-still-in", os.getpid()),
        ("end", "parent", os.getpid()),
    ]
    assert events[2].phase_id == events[0].phase_id  # still inside "parent"


def _mp_worker(n: int) -> None:
    with greentop.phase("worker-batch", n=n):
        greentop.count(samples=n)


def test_multiprocessing_fork_worker_phases_nest_under_the_parent_phase(listener: EventListener) -> None:
    ctx = mp.get_context("fork")
    with greentop.phase("epoch"):
        procs = [ctx.Process(target=_mp_worker, args=(n,)) for n in (1, 2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(30)
    assert [p.exitcode for p in procs] == [0, 0]
    found, _, counts = build_phases(collect(listener, 8), time.monotonic_ns())
    workers = [p for p in found if p.name == "worker-batch"]
    assert sorted(w.pid for w in workers) == sorted(p.pid for p in procs if p.pid is not None)
    assert all(w.parent == 0 and w.depth == 1 for w in workers)
    assert sorted((c.value, found[c.phase].pid) for c in counts) == sorted((float(w.attrs["n"]), w.pid) for w in workers)


# ---- shell workloads ---------------------------------------------------------------------------


def shell(kind: str, name: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    code = f"import sys; from greentop.phases import shell_event; sys.exit(shell_event({kind!r}, {name!r}))"
    base = {k: v for k, v in os.environ.items() if k != phases.ENV_VAR} | {"PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", code], env=base | env, capture_output=True, text=True, timeout=60)


def test_shell_events_pair_by_parent_pid_and_name(listener: EventListener) -> None:
    env = listener.env()
    for kind, name in [("start", "prep"), ("start", "download"), ("end", "download"), ("end", "prep")]:
        r = shell(kind, name, env)
        assert (r.returncode, r.stderr) == (0, "")
    events = collect(listener, 4)
    assert all(e.pid == os.getpid() and e.phase_id == "" for e in events)  # the "shell" is this test
    found, _, _ = build_phases(events, time.monotonic_ns())
    assert [(p.name, p.depth, p.parent, p.status) for p in found] == [("prep", 0, -1, "ok"), ("download", 1, 0, "ok")]


def test_shell_event_without_a_launcher_is_a_silent_no_op() -> None:
    r = shell("start", "prep", {})  # as greentop.phase outside a recording: the script runs the same
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")


def test_shell_event_rejects_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert phases.shell_event("begin", "x") == 2
    assert phases.shell_event("start", "") == 2
    assert capsys.readouterr().err.count("\n") == 2


# ---- the channel: security, bad input, dead listener ------------------------------------------


def test_socket_lives_in_a_private_directory() -> None:
    with EventListener() as lst:
        path = Path(lst.path)
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_ISSOCK(path.stat().st_mode)
        assert lst.env() == {phases.ENV_VAR: str(path)}
    assert not path.parent.exists()


def _valid(**override: object) -> bytes:
    msg: dict[str, object] = {"v": 1, "k": "mark", "t": 1, "p": 1, "n": "x", "id": "", "par": "", "a": {}}
    msg.update(override)
    return json.dumps({k: v for k, v in msg.items() if v is not ...}).encode()


MALFORMED = [
    b"\x00\xff garbage",
    b"",
    b"[1, 2, 3]",
    b'"just a string"',
    b"{not json",
    b"\xc3\x28",  # invalid UTF-8
    b"[" * 10000 + b"]" * 10000,
    _valid(v=2),
    _valid(v=True),
    _valid(v="1"),
    _valid(k="stop"),
    _valid(t=...),
    _valid(t=-5),
    _valid(t=1.5),
    _valid(t=2**64),
    _valid(p=...),
    _valid(p=0),
    _valid(n=...),
    _valid(n=""),
    _valid(n="x" * 257),
    _valid(n=7),
    _valid(id=5),
    _valid(par="x" * 100),
    _valid(a=[1]),
    _valid(a={"nested": {"x": 1}}),
    _valid(a={"none": None}),
    _valid(k="count"),  # no val
    _valid(k="count", val="3"),
    _valid(k="count", val=True),
    _valid(k="count", val=10**400),
    b'{"v":1,"k":"count","t":1,"p":1,"n":"x","val":NaN}',
    b'{"v":1,"k":"count","t":1,"p":1,"n":"x","val":1e999}',
    b'{"v":1,"k":"mark","t":1,"p":1,"n":"x","a":{"f":-Infinity}}',
    b'{"v":1,"k":"mark","t":1,"p":1,"n":"\\ud800"}',  # a lone surrogate: not writable as UTF-8
    b'{"v":1,"k":"mark","t":1,"p":1,"n":"x","a":{"path":"\\udcff"}}',
]


@pytest.mark.parametrize("data", MALFORMED, ids=range(len(MALFORMED)))
def test_parse_event_rejects_malformed_datagrams(data: bytes) -> None:
    assert parse_event(data) is None


def test_parse_event_accepts_the_minimal_valid_event() -> None:
    assert parse_event(_valid()) == Event("mark", 1, 1, "x", "", "", 0.0, {})
    assert parse_event(b'{"v":1,"k":"count","t":5,"p":2,"n":"samples","val":3}') == Event("count", 5, 2, "samples", "", "", 3.0, {})


def test_malformed_datagrams_are_dropped_and_counted_and_valid_ones_still_arrive(listener: EventListener) -> None:
    sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sender.settimeout(5.0)
    with sender:
        for data in MALFORMED:
            sender.sendto(data, listener.path)
    greentop.mark("after")
    events = collect(listener, 1)
    assert [e.name for e in events] == ["after"]
    assert listener.dropped == len(MALFORMED)


def test_events_still_queued_at_stop_can_be_drained_after_it(listener: EventListener) -> None:
    for i in range(5):
        greentop.mark("m", i=i)
    listener.stop()
    assert [e.attrs["i"] for e in listener.drain()] == [0, 1, 2, 3, 4]


def test_a_stopped_listener_does_not_crash_or_hang_the_workload(listener: EventListener) -> None:
    greentop.mark("before")
    assert collect(listener, 1)
    listener.stop()
    before = phases.send_failures
    for _ in range(100):
        with greentop.phase("after"):
            greentop.mark("m")
            greentop.count(samples=1)
    assert phases.send_failures == before + 400
    r = shell("start", "x", listener.env())
    assert r.returncode == 1 and r.stderr.count("\n") == 1


def test_a_hung_listener_costs_one_timeout_then_events_are_dropped(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    hung = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)  # bound, never read
    hung.bind(str(tmp_path / "s"))
    monkeypatch.setenv(phases.ENV_VAR, str(tmp_path / "s"))
    phases._reset()
    try:
        before = phases.send_failures
        for _ in range(200):
            greentop.mark("m")
        # The kernel queue holds a few (net.unix.max_dgram_qlen); the rest fail, one by timeout.
        assert phases.send_failures - before >= 100
        assert phases._client._degraded  # type: ignore[union-attr]
        for _ in range(3):  # a queue with room again: sends go through and waiting is back on
            hung.recv(100)
        greentop.mark("m")
        assert not phases._client._degraded  # type: ignore[union-attr]
    finally:
        phases._reset()
        hung.close()


def test_a_launcher_path_that_does_not_exist_only_counts_failures(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(phases.ENV_VAR, str(tmp_path / "missing"))
    phases._reset()
    try:
        before = phases.send_failures
        with greentop.phase("x"):
            greentop.mark("y")
        assert phases.send_failures == before + 3
    finally:
        phases._reset()


# ---- build_phases ------------------------------------------------------------------------------


def test_build_phases_closes_open_phases_as_crashed_when_the_workload_died() -> None:
    events = [ev("start", 10, "train", "1:1"), ev("start", 20, "step", "1:2", "1:1"), ev("end", 30, "step", "1:2")]
    stats: dict[str, int] = {}
    found, _, _ = build_phases(events, 100, "crashed", stats)
    assert [(p.name, p.end_ns, p.status) for p in found] == [("train", 100, "crashed"), ("step", 30, "ok")]
    assert stats["crashed"] == 1 and stats["unclosed"] == 0


def test_build_phases_marks_phases_left_open_by_a_clean_exit_unclosed() -> None:
    stats: dict[str, int] = {}
    found, _, _ = build_phases([ev("start", 10, "serve", "1:1")], 100, "ok", stats)
    assert (found[0].end_ns, found[0].status) == (100, "unclosed")
    assert stats["unclosed"] == 1


def test_build_phases_ignores_ends_without_a_start() -> None:
    stats: dict[str, int] = {}
    events = [ev("end", 5, "ghost", "1:9"), ev("end", 6, "shell-ghost"), ev("start", 10, "a", "1:1"), ev("end", 20, "a", "1:1"),
              ev("end", 30, "a", "1:1")]
    found, _, _ = build_phases(events, 100, stats=stats)
    assert [(p.name, p.start_ns, p.end_ns) for p in found] == [("a", 10, 20)]
    assert stats["unmatched_ends"] == 3


def test_build_phases_orders_out_of_order_arrivals_by_workload_time() -> None:
    a, b = 200, 300  # two worker pids under a parent in pid 100
    events = [
        ev("start", 0, "epoch", "100:1"),
        ev("start", 10, "batch", f"{a}:1", "100:1", pid=a), ev("start", 12, "batch", f"{b}:1", "100:1", pid=b),
        ev("start", 15, "decode", f"{a}:2", f"{a}:1", pid=a), ev("count", 16, "samples", f"{a}:2", pid=a, value=4),
        ev("end", 18, "decode", f"{a}:2", pid=a), ev("end", 20, "batch", f"{a}:1", pid=a), ev("end", 22, "batch", f"{b}:1", pid=b),
        ev("mark", 25, "sync", "100:1"), ev("end", 30, "epoch", "100:1"),
    ]
    expected = build_phases(events, 100)
    rng = random.Random(7)
    for _ in range(20):
        shuffled = events[:]
        rng.shuffle(shuffled)
        assert build_phases(shuffled, 100) == expected
    found, marks, counts = expected
    assert [(p.name, p.pid, p.parent, p.depth) for p in found] == [
        ("epoch", 100, -1, 0), ("batch", a, 0, 1), ("batch", b, 0, 1), ("decode", a, 1, 2)]
    assert [p.index for p in found] == [0, 1, 2, 3]
    assert (counts[0].phase, counts[0].value, marks[0].name) == (3, 4.0, "sync")


def test_build_phases_treats_unknown_or_later_parents_as_top_level() -> None:
    events = [ev("start", 10, "orphan", "1:1", "9:9"), ev("start", 20, "self", "1:2", "1:2"), ev("start", 30, "early", "1:3", "1:4"),
              ev("start", 40, "late", "1:4"), ev("start", 50, "dup", "1:1"), ev("count", 60, "n", "7:7", value=1)]
    stats: dict[str, int] = {}
    found, _, counts = build_phases(events, 100, stats=stats)
    assert [(p.name, p.parent, p.depth) for p in found] == [("orphan", -1, 0), ("self", -1, 0), ("early", -1, 0), ("late", -1, 0)]
    assert stats["duplicate_starts"] == 1 and counts[0].phase == -1


def test_build_phases_pairs_shell_events_by_pid_then_by_name() -> None:
    events = [ev("start", 10, "job", pid=50), ev("start", 20, "job", pid=60), ev("start", 25, "inner", pid=50),
              ev("end", 30, "inner", pid=50), ev("end", 40, "job", pid=50),
              ev("end", 50, "job", pid=1)]  # a shell that exec'd its last command: the launcher's pid
    found, _, _ = build_phases(events, 100)
    assert [(p.name, p.pid, p.end_ns, p.parent) for p in found] == [("job", 50, 40, -1), ("job", 60, 50, -1), ("inner", 50, 30, 0)]


def test_build_phases_ignores_run_events_and_keeps_attrs() -> None:
    start = Event("start", 10, 1, "a", "1:1", "", 0.0, {"epoch": 3})
    run = Event("run", 15, 2, "workload_exit", "", "", 0.0, {})
    found, marks, counts = build_phases([start, run, ev("end", 20, "a", "1:1", pid=1)], 100)
    assert [(p.name, p.attrs) for p in found] == [("a", {"epoch": 3})] and marks == [] and counts == []


def test_an_exception_leaving_a_phase_is_named_in_its_end_event(listener: EventListener) -> None:
    with pytest.raises(ValueError):
        with greentop.phase("outer"):
            with greentop.phase("inner"):
                raise ValueError("bad batch")
    events = collect(listener, 4)
    assert [(e.kind, e.name, e.attrs) for e in events[2:]] == [("end", "inner", {"exc": "ValueError"}), ("end", "outer", {"exc": "ValueError"})]


def test_build_phases_marks_phases_unwound_by_the_fatal_exception_crashed() -> None:
    def end(t: int, name: str, pid_id: str, exc: str, pid: int = 1) -> Event:
        return Event("end", t, pid, name, pid_id, "", 0.0, {"exc": exc} if exc else {})

    events = [
        ev("start", 10, "train", "1:1", pid=1),
        ev("start", 20, "retry", "1:2", "1:1", pid=1), end(25, "retry", "1:2", "OSError"),  # caught: the run went on
        ev("start", 30, "step", "1:3", "1:1", pid=1), end(40, "step", "1:3", "RuntimeError"), end(41, "train", "1:1", "RuntimeError"),
    ]
    stats: dict[str, int] = {}
    found, _, _ = build_phases(events, 100, "crashed", stats)
    assert [(p.name, p.end_ns, p.status, p.attrs.get("exception")) for p in found] == [
        ("train", 41, "crashed", "RuntimeError"), ("retry", 25, "ok", "OSError"), ("step", 40, "crashed", "RuntimeError")]
    assert stats["crashed"] == 2
    # The same events from a run that exited 0: the exception was handled outside every phase.
    assert [p.status for p in build_phases(events, 100, "ok")[0]] == ["ok", "ok", "ok"]


def test_a_listener_never_stopped_removes_its_directory_at_exit(tmp_path: Path) -> None:
    code = "from greentop.listener import EventListener\nl = EventListener(); l.start(); print(l.path)\n"
    r = subprocess.run([sys.executable, "-c", code], env=os.environ | {"PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert not Path(r.stdout.strip()).parent.exists()


def test_a_forked_copy_of_the_launcher_exiting_leaves_the_socket_alone() -> None:
    with EventListener() as lst:
        pid = os.fork()
        if pid == 0:
            try:
                assert lst._cleanup is not None
                lst._cleanup()  # what the child's interpreter exit would run
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        assert Path(lst.path).exists()


# ---- device synchronisation at phase edges ---------------------------------------------------


class _FakeCuda:
    """Stands in for ``torch.cuda``: a "GPU" whose queued work ends ``queued_s`` after it was queued."""

    def __init__(self, initialized: bool) -> None:
        self.initialized = initialized
        self.busy_until_ns = 0
        self.synced_at_ns: list[int] = []

    def is_initialized(self) -> bool:
        return self.initialized

    def queue(self, queued_s: float) -> None:
        self.busy_until_ns = max(self.busy_until_ns, time.monotonic_ns()) + int(queued_s * 1e9)

    def synchronize(self) -> None:
        while time.monotonic_ns() < self.busy_until_ns:
            time.sleep(0.001)
        self.synced_at_ns.append(time.monotonic_ns())


@pytest.fixture
def fake_torch(monkeypatch: pytest.MonkeyPatch) -> _FakeCuda:
    import types

    cuda = _FakeCuda(initialized=True)
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))
    return cuda


def test_sync_torch_ends_a_phase_when_its_queued_gpu_work_ends(listener: EventListener, fake_torch: _FakeCuda) -> None:
    with greentop.phase("warm"):
        fake_torch.queue(0.1)  # queued, not finished: an unsynchronised phase ends at once
    warm_work_end_ns = fake_torch.busy_until_ns
    with greentop.phase("step", sync="torch"):
        fake_torch.queue(0.1)
    events = {(e.kind, e.name): e for e in collect(listener, 4)}
    assert events["end", "warm"].t_ns < warm_work_end_ns  # without sync the work of "warm" spills past its end ...
    # ... with sync the entry waits for them (so "step" starts after the previous work is done)
    # and the exit waits for the step's own work, which therefore lies inside the phase.
    entry, exit_ = fake_torch.synced_at_ns
    assert events["start", "step"].t_ns >= entry >= events["end", "warm"].t_ns + 0.09e9
    assert events["end", "step"].t_ns >= exit_ >= events["start", "step"].t_ns + 0.09e9


def test_sync_torch_does_nothing_until_cuda_is_initialised(listener: EventListener, fake_torch: _FakeCuda) -> None:
    fake_torch.initialized = False
    with greentop.phase("cpu-only", sync="torch"):
        pass
    assert fake_torch.synced_at_ns == []
    assert len(collect(listener, 2)) == 2


def test_sync_torch_without_torch_imported_imports_nothing(listener: EventListener, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    with greentop.phase("no-torch", sync="torch"):
        pass
    assert "torch" not in sys.modules
    assert len(collect(listener, 2)) == 2


def test_sync_callable_runs_at_entry_and_exit_also_for_decorated_calls(listener: EventListener) -> None:
    calls: list[str] = []

    @greentop.phase("infer", sync=lambda: calls.append("sync"))
    def infer() -> None:
        calls.append("body")

    infer()
    assert calls == ["sync", "body", "sync"]


def test_a_failing_sync_is_counted_and_never_breaks_the_workload(listener: EventListener) -> None:
    def broken() -> None:
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    before = phases.sync_failures
    with greentop.phase("p", sync=broken):
        pass
    assert phases.sync_failures == before + 2
    assert [e.kind for e in collect(listener, 2)] == ["start", "end"]


def test_outside_a_launcher_sync_is_not_called_but_a_bad_value_is_refused(no_launcher: None) -> None:
    calls: list[int] = []
    with greentop.phase("p", sync=lambda: calls.append(1)):
        pass
    assert calls == []
    with pytest.raises(ValueError, match="sync must be"):
        greentop.phase("p", sync="jax")  # type: ignore[arg-type]
