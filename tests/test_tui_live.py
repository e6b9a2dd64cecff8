"""The live view: a scripted sampler (synthetic clock, known watts) drives LiveApp through Pilot."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from greentop.channel import Channel, Quantity, Reader, ReaderKind
from greentop.events import Event
from greentop.sampler import ChannelHealth, LaneHealth, SamplerHealth, Samples
from greentop.tui.app import ConfirmQuit, HelpScreen, LiveApp
from greentop.tui.chart import PowerChart
from greentop.tui.live import LiveModel

T0_NS = 1_000_000_000_000
DRAIN_NS = 50_000_000  # each scripted drain covers 50 ms of the synthetic clock
RATE_HZ = 1000


def gauge(name: str, domain: str, *, estimated: bool = False) -> Channel:
    """A power gauge whose raw value is in W."""
    return Channel(name=name, source="test", domain=domain, quantity=Quantity.POWER, unit="W", scale=1.0,
                   reader=Reader(ReaderKind.FILE_DECIMAL), estimated=estimated)


def counter(name: str, domain: str) -> Channel:
    """An energy counter whose raw value is in uJ (like RAPL's energy_uj)."""
    return Channel(name=name, source="test", domain=domain, quantity=Quantity.ENERGY, unit="uJ", scale=1e-6,
                   reader=Reader(ReaderKind.FILE_DECIMAL))


class ScriptedSampler:
    """The Sampler interface over a synthetic clock: every drain returns the next 50 ms at 1 kHz of
    each channel at ``power_w[name]`` watts (counters integrate it, gauges report it)."""

    def __init__(self, channels: list[Channel], power_w: dict[str, float]) -> None:
        self.channels, self.power_w = channels, dict(power_w)
        self.t_ns = T0_NS
        self.energy_uj = {c.name: 0.0 for c in channels}
        self.drains = 0
        self.silent: set[str] = set()  # channels whose reads stopped (their rings stay empty)

    def drain(self) -> dict[str, Samples]:
        n = DRAIN_NS * RATE_HZ // 1_000_000_000
        t = self.t_ns + np.arange(1, n + 1, dtype=np.int64) * (1_000_000_000 // RATE_HZ)
        out = {}
        for c in self.channels:
            p = self.power_w[c.name]
            if c.quantity is Quantity.ENERGY:
                e = self.energy_uj[c.name] + p * 1e6 * (t - self.t_ns) * 1e-9
                self.energy_uj[c.name] = float(e[-1])
                raw = np.round(e).astype(np.int64)
            else:
                raw = np.full(n, int(p), np.int64)
            out[c.name] = Samples(t[:0], raw[:0]) if c.name in self.silent else Samples(t, raw)
        self.t_ns = int(t[-1])
        self.drains += 1
        return out

    def health(self) -> SamplerHealth:
        elapsed = (self.t_ns - T0_NS) * 1e-9
        ticks = int(elapsed * RATE_HZ)
        return SamplerHealth(
            {"fast": LaneHealth(RATE_HZ, ticks, 0, 0, 0, 0.0, elapsed)},
            {c.name: ChannelHealth(ticks, 0, "", 0, 1000.0, 2000) for c in self.channels},
        )


class ScriptedListener:
    def __init__(self) -> None:
        self.pending: list[Event] = []

    def drain(self) -> list[Event]:
        out, self.pending = self.pending, []
        return out


class FakeChild:
    def __init__(self) -> None:
        self.rc: int | None = None

    def poll(self) -> int | None:
        return self.rc


CHANNELS = [counter("rapl:package-0", "cpu-package-0"), gauge("nvml:gpu0:power", "gpu-0")]
POWER = {"rapl:package-0": 30.0, "nvml:gpu0:power": 120.0}


def make_app(**kwargs: object) -> tuple[LiveApp, ScriptedSampler]:
    sampler = ScriptedSampler(CHANNELS, POWER)
    app = LiveApp(sampler, CHANNELS, timers=False, **kwargs)  # type: ignore[arg-type]
    return app, sampler


def step(app: LiveApp, drains: int = 20) -> None:
    for _ in range(drains):
        app.drain_now()
    app.refresh_view()


def titles(app: LiveApp) -> list[str]:
    return [c.title for c in app.query(PowerChart)]


def run(coro_fn) -> None:  # type: ignore[no-untyped-def]
    asyncio.run(coro_fn())


# -- the model, without a screen -----------------------------------------------------------------


def test_model_totals_a_counter_and_a_gauge_on_one_grid() -> None:
    sampler = ScriptedSampler(CHANNELS, POWER)
    model = LiveModel(CHANNELS)
    for _ in range(40):  # 2 s
        model.feed(sampler.drain())
    for col, want in ((0, 30.0), (1, 120.0), (2, 150.0)):
        st = model.stats(col)
        assert st.now_w == pytest.approx(want, rel=1e-3)
        assert st.avg_w == pytest.approx(want, rel=1e-2)
        assert st.peak_w == pytest.approx(want, rel=1e-2)
    assert model.energy_j == pytest.approx(150.0 * model.duration_s, rel=1e-3)
    assert model.duration_s == pytest.approx(2.0, abs=0.06)


def test_model_peak_keeps_a_burst_after_it_ends() -> None:
    sampler = ScriptedSampler(CHANNELS, POWER)
    model = LiveModel(CHANNELS)
    for _ in range(10):
        model.feed(sampler.drain())
    sampler.power_w["nvml:gpu0:power"] = 600.0
    for _ in range(4):  # 200 ms at 600 W
        model.feed(sampler.drain())
    sampler.power_w["nvml:gpu0:power"] = 120.0
    for _ in range(20):
        model.feed(sampler.drain())
    st = model.stats(1)
    assert st.now_w == pytest.approx(120.0, rel=1e-3)
    assert st.peak_w == pytest.approx(600.0, rel=1e-3)


def test_model_retains_only_its_window() -> None:
    sampler = ScriptedSampler(CHANNELS, POWER)
    model = LiveModel(CHANNELS, retain_s=1.0)
    for _ in range(200):  # 10 s
        model.feed(sampler.drain())
    t = model.ring.t_ns
    assert (t[-1] - t[0]) * 1e-9 < 3.0  # trimmed (amortised: up to twice the retention plus a drain)
    assert model.energy_j == pytest.approx(150.0 * model.duration_s, rel=1e-3)  # the run's energy is whole


def test_model_does_not_wait_for_a_silent_channel_and_names_it_stale() -> None:
    sampler = ScriptedSampler(CHANNELS, POWER)
    model = LiveModel(CHANNELS)
    for _ in range(10):
        model.feed(sampler.drain())
    assert model.stale() == []
    sampler.silent.add("nvml:gpu0:power")
    for _ in range(60):  # 3 s: the grid stops for STALE_S, then goes on without it
        model.feed(sampler.drain())
    assert model.stale() == ["nvml:gpu0:power"]
    assert model.t_ns is not None and sampler.t_ns - model.t_ns < 100_000_000
    assert model.stats(0).now_w == pytest.approx(30.0, rel=1e-3)


# -- the app through Pilot -------------------------------------------------------------------------


def test_charts_show_domain_titles_and_watts() -> None:
    async def go() -> None:
        app, _ = make_app()
        async with app.run_test(size=(140, 60)) as pilot:
            step(app)
            await pilot.pause()
            t = titles(app)
            assert [x.split()[0] for x in t] == ["cpu-package-0", "gpu-0", "total"]
            assert "30.0 W now" in t[0] and "120.0 W now" in t[1] and "150.0 W now" in t[2]
            assert "30.0 W peak" in t[0]
            assert "watching the machine" in str(app.query_one("#workload").render())  # no child given

    run(go)


def test_estimated_channel_is_marked() -> None:
    chans = [gauge("cpu-estimate", "cpu", estimated=True)]

    async def go() -> None:
        app = LiveApp(ScriptedSampler(chans, {"cpu-estimate": 40.0}), chans, timers=False)
        async with app.run_test(size=(120, 40)) as pilot:
            step(app)
            await pilot.pause()
            charts = list(app.query(PowerChart))
            assert all(c.estimated for c in charts)  # the chart appends "(estimated)" to its title row
            assert "40.0 W now" in charts[0].title
            assert "estimated" in str(app.query_one("#energy").render())

    run(go)


def test_pause_freezes_the_charts_while_draining_goes_on() -> None:
    async def go() -> None:
        app, sampler = make_app()
        async with app.run_test(size=(140, 60)) as pilot:
            step(app)
            before = titles(app)
            await pilot.press("p")
            assert app.paused
            sampler.power_w["nvml:gpu0:power"] = 500.0
            drains = sampler.drains
            step(app)
            assert sampler.drains > drains  # sampling and draining went on
            assert titles(app) == before
            assert "PAUSED" in str(app.query_one("#workload").render())
            await pilot.press("p")
            assert not app.paused
            assert "500.0 W now" in titles(app)[1]

    run(go)


def test_plus_and_minus_halve_and_double_the_window() -> None:
    async def go() -> None:
        app, _ = make_app()
        async with app.run_test(size=(140, 60)) as pilot:
            step(app)
            assert app.window_s == 60.0
            await pilot.press("plus")
            assert app.window_s == 30.0
            await pilot.press("minus")
            await pilot.press("minus")
            assert app.window_s == 120.0
            t0, t1 = app.query_one("#chart-0", PowerChart).view_ns
            assert (t1 - t0) * 1e-9 == pytest.approx(120.0, rel=0.05)
            for _ in range(10):
                await pilot.press("plus")
            assert app.window_s >= 1.0  # bounded

    run(go)


def test_q_with_a_running_workload_asks_and_n_stays_y_quits() -> None:
    async def go() -> None:
        child = FakeChild()
        app, _ = make_app(child=child)
        async with app.run_test(size=(140, 60)) as pilot:
            step(app)
            assert "running" in str(app.query_one("#workload").render())
            await pilot.press("q")
            assert isinstance(app.screen, ConfirmQuit)
            await pilot.press("n")
            assert not isinstance(app.screen, ConfirmQuit)
            assert app.is_running
            await pilot.press("q")
            await pilot.press("y")
            await pilot.pause()
        assert app.return_value == 130

    run(go)


def test_q_after_the_workload_exited_quits_at_once() -> None:
    async def go() -> None:
        child = FakeChild()
        app, _ = make_app(child=child)
        async with app.run_test(size=(140, 60)) as pilot:
            child.rc = 3
            step(app)
            assert "exited 3" in str(app.query_one("#workload").render())
            await pilot.press("q")
            await pilot.pause()
        assert app.return_value == 3

    run(go)


def test_help_overlay_opens_and_closes() -> None:
    async def go() -> None:
        app, _ = make_app()
        async with app.run_test(size=(140, 60)) as pilot:
            await pilot.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
            await pilot.press("x")
            assert not isinstance(app.screen, HelpScreen)

    run(go)


def test_charts_keep_updating_and_resizes_work_while_a_dialog_is_on_top() -> None:
    """Timers tick whatever screen is on top: the view must not look its widgets up on it."""
    async def go() -> None:
        app, _ = make_app()
        async with app.run_test(size=(140, 60)) as pilot:
            step(app)
            before = app.model.duration_s
            await pilot.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
            step(app)  # drain + redraw with the help on top
            await pilot.resize_terminal(60, 20)
            await pilot.pause()
            assert app.model.duration_s > before
            assert titles(app)[-1].startswith("total")
            assert "150" in titles(app)[-1]
            assert app._too_small.display  # the size check ran under the dialog

    run(go)


def _ev(kind: str, t_ns: int, name: str, pid_: str, parent: str = "") -> Event:
    return Event(kind=kind, t_ns=t_ns, pid=42, name=name, phase_id=pid_, parent_id=parent, value=0.0, attrs={})


def test_phase_from_a_listener_event_appears_with_its_energy() -> None:
    async def go() -> None:
        listener = ScriptedListener()
        app, sampler = make_app(listener=listener, child=FakeChild())
        async with app.run_test(size=(140, 60)) as pilot:
            step(app, 10)  # 0.5 s before the phase
            start = sampler.t_ns
            listener.pending += [_ev("start", start, "training", "42:1")]
            step(app, 20)  # 1 s in it
            await pilot.pause()
            table = app.query_one("#phases")
            row = [str(c) for c in table.get_row_at(0)]  # type: ignore[attr-defined]
            assert row[0].strip() == "training *"  # * = still open
            assert float(row[3]) == pytest.approx(150.0, rel=0.05)  # 1 s at 150 W
            assert "training" in str(app.query_one("#energy").render())
            listener.pending += [_ev("end", start + 1_000_000_000, "training", "42:1"),
                                 _ev("start", start + 1_000_000_000, "inference", "42:2")]
            step(app, 20)
            rows = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]  # type: ignore[attr-defined]
            assert [r[0].strip() for r in rows] == ["training", "inference *"]
            assert float(rows[0][4]) == pytest.approx(150.0, rel=0.02)  # avg W of the closed phase

    run(go)


# -- the real sampler on a fake host ---------------------------------------------------------------


@pytest.fixture
def rapl_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from tests.fakes.host import FakeHost
    from tests.fakes.profile import PowerProfile

    host = FakeHost(tmp_path / "host")
    host.add_cpus(2)
    host.add_rapl_zone("0", "package-0", PowerProfile.constant(40.0))
    host.set_proc_stat(PowerProfile.constant(0.3), n_cpus=2)
    monkeypatch.setenv("GREENTOP_SYSFS_ROOT", str(host.root))
    monkeypatch.setenv("GREENTOP_NVML_LIB", str(tmp_path / "no-nvml.so"))
    with host:
        yield


def test_live_view_over_the_real_sampler_on_a_fake_rapl_host(rapl_host: None) -> None:
    from greentop.sampler import Sampler
    from greentop.sources import DiscoveryOptions, discover

    found = discover(DiscoveryOptions(gpus=False))
    sampler = Sampler(found.channels, rate_hz=500).start()

    async def go() -> None:
        app = LiveApp(sampler, found.channels)  # real timers
        async with app.run_test(size=(140, 60)) as pilot:
            for _ in range(200):  # until 1 s of data is in (no timing assert: waits as long as needed)
                await pilot.pause(0.05)
                if app.model.duration_s >= 1.0:
                    break
            app.refresh_view()
            t = titles(app)
            assert t[0].startswith("cpu-package-0")
            now_w = float(t[0].split()[1])
            assert now_w == pytest.approx(40.0, rel=0.1)
            assert "fast" in str(app.query_one("#health").render())

    try:
        run(go)
    finally:
        sampler.stop()


def test_cli_run_refuses_a_missing_command_and_output_for_now() -> None:
    from greentop.cli import main

    assert main(["run", "--", "no-such-command-xyz"]) == 127  # as a shell says it
    assert main(["run", "-o", os.devnull, "--", "true"]) == 2


# -- recording from the live view ------------------------------------------------------------------

import subprocess  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

from textual.drivers.headless_driver import HeadlessDriver  # noqa: E402

from greentop.recorder import Recorder, RecordOptions, SampleTap, run_metadata  # noqa: E402
from greentop.sources import SourceResult  # noqa: E402
from greentop.trace import load  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


class QuitWhenDoneDriver(HeadlessDriver):
    """Headless (no terminal needed), and presses q once the view has seen the workload exit:
    lets ``greentop run`` run to its end in a subprocess (``TEXTUAL_DRIVER``)."""

    linger_s = 0.2  # how long the view stays open after the workload exited

    def start_application_mode(self) -> None:
        super().start_application_mode()
        app = self._app

        def watch() -> None:
            while getattr(app, "exit_code", None) is None:
                time.sleep(0.05)
            time.sleep(self.linger_s)
            try:
                app.call_from_thread(app.action_quit_app)
            except RuntimeError:
                pass

        threading.Thread(target=watch, daemon=True).start()


class LingeringQuitDriver(QuitWhenDoneDriver):
    """Looks at the finished run for 2 s before pressing q."""

    linger_s = 2.0


class LockedListener(ScriptedListener):
    """A listener drained from the recorder's thread while the test adds events."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.dropped = self.overflowed = 0

    def add(self, *events: Event) -> None:
        with self.lock:
            self.pending += events

    def drain(self) -> list[Event]:
        with self.lock:
            return super().drain()


def test_r_twice_records_a_complete_trace_of_what_happened_in_between(tmp_path: Path) -> None:
    sampler = ScriptedSampler(CHANNELS, POWER)
    sampler.t_ns = time.monotonic_ns()  # the synthetic clock near the real one: run events share the trace
    listener = LockedListener()
    path = tmp_path / "live.h5"

    def new_recording(seen: list[Event]) -> Recorder:
        meta = run_metadata(SourceResult(channels=CHANNELS), ["workload"], RecordOptions(path))
        rec = Recorder(sampler, listener, CHANNELS, meta, path, tap=SampleTap())
        rec.start(carried=seen)
        return rec

    app = LiveApp(sampler, CHANNELS, listener=listener, child=FakeChild(), timers=False, new_recording=new_recording)

    async def go() -> None:
        async with app.run_test(size=(140, 60)) as pilot:
            listener.add(_ev("start", sampler.t_ns, "serving", "42:1"))  # open before the recording
            step(app, 5)
            await pilot.press("r")
            assert app.recording is not None
            drains = sampler.drains
            # Real CLOCK_MONOTONIC stamps, as a workload's are: the recording moves the carried
            # "serving" start to its own (real-clock) start, and the order must not depend on how
            # far the synthetic sampler clock lags the real one on a loaded machine.
            listener.add(_ev("start", time.monotonic_ns(), "training", "42:2", parent="42:1"))
            await pilot.pause(0.4)
            listener.add(_ev("end", time.monotonic_ns(), "training", "42:2"))
            await pilot.pause(0.4)
            step(app, 1)  # the view takes what the recorder drained
            assert sampler.drains > drains + 4  # the recorder's thread drains now ...
            assert "● REC" in str(app.query_one("#workload").render()) and "live.h5" in str(app.query_one("#workload").render())
            assert [r.path for r in app.model.phases()[0]] == ["serving", "serving/training"]  # ... and feeds the view
            await pilot.press("r")
            assert app.recording is None and app.saved == [path]
            drains = sampler.drains
            step(app, 3)
            assert sampler.drains == drains + 3  # the view drains the sampler itself again
            assert "saved" in str(app.query_one("#workload").render())

    run(go)
    tr = load(path)
    assert tr.complete and tr.meta["run"]["workload_running"] is True
    assert [(p.name, p.status) for p in tr.phases] == [("serving", "unclosed"), ("training", "ok")]
    assert "started_before_recording_ns" in tr.phases[0].attrs and tr.phases[1].parent == 0
    for ch in tr.channels:
        assert ch.t_ns.size >= 300  # 0.8 s at 1 kHz, at least
        assert np.all(np.diff(ch.t_ns) > 0)


def test_r_records_into_a_timestamped_file_in_the_cwd_and_r_without_a_recorder_warns(tmp_path: Path,
                                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from greentop.recorder import default_trace_path

    monkeypatch.chdir(tmp_path)
    now = time.time()
    p = default_trace_path(now=now)
    assert p.parent == tmp_path and p.name == time.strftime("greentop-%Y%m%d-%H%M%S.h5", time.localtime(now))
    p.touch()
    assert default_trace_path(now=now).name == p.stem + "-1.h5"  # never overwrites an earlier trace

    async def go() -> None:
        app, _ = make_app()
        async with app.run_test(size=(140, 60)) as pilot:
            await pilot.press("r")
            assert app.recording is None

    run(go)


def test_run_with_output_records_the_whole_run_while_showing_it(tmp_path: Path) -> None:
    from tests.fakes.host import FakeHost
    from tests.fakes.profile import PowerProfile

    host = FakeHost(tmp_path / "host")
    host.add_cpus(2)
    host.add_rapl_zone("0", "package-0", PowerProfile.constant(40.0))
    host.set_proc_stat(PowerProfile.constant(0.3), n_cpus=2)
    code = ("import greentop, time\n"
            "with greentop.phase('training'):\n"
            "    for i in range(2):\n"
            "        with greentop.phase('step', step=i):\n"
            "            time.sleep(0.2)\n"
            "with greentop.phase('inference'):\n"
            "    time.sleep(0.2)\n"
            "print('workload done', flush=True)\n")
    out = tmp_path / "run.h5"
    with host:
        env = os.environ | {"GREENTOP_SYSFS_ROOT": str(host.root), "GREENTOP_NVML_LIB": str(tmp_path / "no-nvml.so"),
                            "PYTHONPATH": str(REPO), "TEXTUAL_DRIVER": "tests.test_tui_live:LingeringQuitDriver"}
        proc = subprocess.run([sys.executable, "-m", "greentop", "run", "-o", str(out), "--baseline", "0.3", "--no-gpu",
                               "--", sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"trace: {out}" in proc.stderr and "training" in proc.stderr
    tr = load(out)
    assert tr.complete and tr.meta["run"]["exit_code"] == 0 and tr.meta["run"]["interrupted"] is False
    assert [(p.name, p.status) for p in tr.phases] == [("training", "ok"), ("step", "ok"), ("step", "ok"), ("inference", "ok")]
    assert tr.baseline is not None and tr.baseline[1] <= tr.phases[0].start_ns
    assert all(ch.t_ns.size > 100 for ch in tr.channels)
    # -o records the workload's run: it ends with the workload, not 2 s later when q is pressed
    assert tr.meta["run"]["end_mono_ns"] - tr.phases[-1].end_ns < 1_000_000_000
    assert "not a terminal" not in proc.stderr
    assert "avg W" in proc.stderr and "idle baseline" in proc.stderr  # the trace's summary table


def test_run_without_a_terminal_records_headless_and_prints_the_summary(tmp_path: Path) -> None:
    from tests.fakes.host import FakeHost
    from tests.fakes.profile import PowerProfile

    host = FakeHost(tmp_path / "host")
    host.add_cpus(2)
    host.add_rapl_zone("0", "package-0", PowerProfile.constant(40.0))
    code = "import greentop, time\nwith greentop.phase('training'):\n    time.sleep(0.3)\n"
    work = tmp_path / "work"
    work.mkdir()
    with host:
        env = {k: v for k, v in os.environ.items() if k != "TEXTUAL_DRIVER"} | {
            "GREENTOP_SYSFS_ROOT": str(host.root), "GREENTOP_NVML_LIB": str(tmp_path / "no-nvml.so"), "PYTHONPATH": str(REPO)}
        proc = subprocess.run([sys.executable, "-m", "greentop", "run", "--no-baseline", "--no-gpu", "--", sys.executable, "-c", code],
                              env=env, capture_output=True, text=True, cwd=work, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert "not a terminal" in proc.stderr
    traces = list(work.glob("greentop-*.h5"))
    assert len(traces) == 1
    assert [p.name for p in load(traces[0]).phases] == ["training"]
    assert "training" in proc.stderr and "avg W" in proc.stderr


def test_run_output_checks_come_before_anything_starts(tmp_path: Path) -> None:
    from greentop.cli import main

    assert main(["run", "-o", str(tmp_path / "no" / "x.h5"), "--", "true"]) == 2
    assert main(["run", "-o", str(tmp_path), "--", "true"]) == 2


# -- timeline, carbon, per-unit energy, export, panes, small terminals, bare greentop ----------------

from greentop.tui.chart import _LABEL_W, column_edges_ns  # noqa: E402
from greentop.tui.timeline import PhaseTimeline  # noqa: E402


def _count(t_ns: int, name: str, value: float, phase_id: str) -> Event:
    return Event(kind="count", t_ns=t_ns, pid=42, name=name, phase_id=phase_id, parent_id="", value=value, attrs={})


def test_timeline_draws_nested_phases_on_the_charts_time_axis() -> None:
    async def go() -> None:
        listener = ScriptedListener()
        app, sampler = make_app(listener=listener, child=FakeChild(), window_s=7.5)
        async with app.run_test(size=(140, 60)) as pilot:
            step(app, 10)
            s0 = sampler.t_ns
            listener.pending += [_ev("start", s0, "training", "42:1"), _ev("start", s0, "step", "42:2", parent="42:1"),
                                 _ev("start", s0, "fwd", "42:3", parent="42:2"), _ev("start", s0, "deep", "42:4", parent="42:3")]
            step(app, 40)  # 2 s
            s1 = sampler.t_ns
            listener.pending += [_ev("end", s1, "deep", "42:4"), _ev("end", s1, "fwd", "42:3"), _ev("end", s1, "step", "42:2")]
            step(app, 40)
            await pilot.pause()
            tl = app.query_one("#timeline", PhaseTimeline)
            chart = app.query_one("#chart-2", PowerChart)
            assert tl.region.y >= chart.region.bottom  # under the charts
            assert tl.region.height == 3  # one row per depth, at most 3 ("deep" is depth 3: not drawn)
            bars = {b.name: b for b in tl.bars}
            assert set(bars) == {"training", "step", "fwd"}
            assert (bars["training"].row, bars["step"].row, bars["fwd"].row) == (0, 1, 2)
            # The chart's own column mapping: its drawn window cut into its plot cells.
            cells = chart.size.width - _LABEL_W - 1
            edges = column_edges_ns(*chart.view_ns, cells)
            x_start = int(np.searchsorted(edges, s0, side="right")) - 1
            x_end = int(np.searchsorted(edges, s1, side="left"))
            assert (bars["step"].x0, bars["step"].x1) == (x_start, x_end)
            assert bars["training"].x0 == x_start and bars["training"].x1 == cells  # still open: up to now
            rows = [tl.row_text(r) for r in range(3)]
            assert rows[0].startswith(" phases│")
            assert "training" in rows[0][_LABEL_W + 1 + x_start:]
            assert rows[1][_LABEL_W + 1 + x_start:].startswith("step")  # the name clipped inside its bar
            assert rows[2][_LABEL_W + 1 + x_start:].startswith("fwd")
            await pilot.press("minus")  # zoom out: the bars follow the charts' axis
            assert tl.bars and tl.bars[0].x1 - tl.bars[0].x0 < bars["training"].x1 - bars["training"].x0

    run(go)


def test_status_shows_run_and_phase_gco2e_and_table_shows_energy_per_sample() -> None:
    async def go() -> None:
        listener = ScriptedListener()
        app, sampler = make_app(listener=listener, child=FakeChild(), carbon=(400.0, "given explicitly"))
        async with app.run_test(size=(140, 60)) as pilot:
            step(app, 10)
            s0 = sampler.t_ns
            listener.pending += [_ev("start", s0, "training", "42:1")]
            step(app, 20)
            listener.pending += [_count(sampler.t_ns, "samples", 300.0, "42:1")]
            step(app, 20)
            await pilot.pause()
            energy = str(app.query_one("#energy").render())
            run_g = app.model.energy_j / 3.6e6 * 400.0
            assert f"{run_g:.4f} gCO2e" in energy.split("\n")[0]
            _rows, current = app.model.phases()
            assert current is not None and f"{current.energy_j / 3.6e6 * 400.0:.4f} gCO2e" in energy.split("\n")[1]
            table = app.query_one("#phases")
            row = [str(c) for c in table.get_row_at(0)]  # type: ignore[attr-defined]
            per = float(row[5].split()[0])
            assert row[5].strip().endswith("J/sample")
            assert per == pytest.approx(float(row[3]) / 300.0, rel=0.02)

    run(go)


def test_run_takes_carbon_options_like_record(monkeypatch: pytest.MonkeyPatch) -> None:
    from greentop import cli
    from greentop.tui import app as app_mod

    seen: dict[str, object] = {}

    def fake_run_live(cmd, channels, rate, slow, **kw):  # type: ignore[no-untyped-def]
        seen.update(kw)
        return app_mod.LiveResult(0, 0.0, 0.0, [])

    monkeypatch.setattr(app_mod, "run_live", fake_run_live)
    assert cli.main(["run", "--carbon-intensity", "123", "--no-gpu"]) == 0
    assert seen["carbon"] == (123.0, "given explicitly (123 gCO2e/kWh)")
    assert cli.main(["run", "--region", "FR", "--no-gpu"]) == 0
    assert seen["carbon"][0] != 123.0 and "FR" in seen["carbon"][1]  # type: ignore[index]
    assert cli.main(["run", "--region", "NOWHERE"]) == 2  # one line, before any screen


def test_e_exports_the_live_phase_table_as_markdown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    async def go() -> None:
        listener = ScriptedListener()
        app, sampler = make_app(listener=listener, child=FakeChild(), carbon=(400.0, "given explicitly"))
        notes: list[str] = []
        app.notify = lambda message, **kw: notes.append(str(message))  # type: ignore[method-assign]
        async with app.run_test(size=(140, 60)) as pilot:
            s0 = sampler.t_ns
            listener.pending += [_ev("start", s0, "training", "42:1")]
            step(app, 20)
            listener.pending += [_count(sampler.t_ns, "tokens", 1000.0, "42:1"), _ev("end", sampler.t_ns, "training", "42:1")]
            step(app, 5)
            await pilot.press("e")
            await pilot.pause()
            assert len(app.exported) == 1
            path = app.exported[0]
            assert path.parent == tmp_path and path.name.startswith("greentop-summary-") and path.suffix == ".md"
            assert any(path.name in n for n in notes)
            text = path.read_text()
            assert "| phase | n | time | energy J | avg W | gCO2e | per unit |" in text
            line = next(ln for ln in text.splitlines() if ln.startswith("| training"))
            assert "J/token" in line and "| 1 |" in line
            await pilot.press("e")  # a second export never overwrites the first
            assert len(set(app.exported)) == 2 and all(p.exists() for p in app.exported)

    run(go)


def test_e_exports_greentop_summary_markdown_of_a_finished_recording(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from greentop.attribution import summarise
    from greentop.summary_format import format_summary

    monkeypatch.chdir(tmp_path)
    sampler = ScriptedSampler(CHANNELS, POWER)
    sampler.t_ns = time.monotonic_ns()
    listener = LockedListener()
    path = tmp_path / "live.h5"

    def new_recording(seen: list[Event]) -> Recorder:
        meta = run_metadata(SourceResult(channels=CHANNELS), ["workload"], RecordOptions(path))
        rec = Recorder(sampler, listener, CHANNELS, meta, path, tap=SampleTap())
        rec.start(carried=seen)
        return rec

    app = LiveApp(sampler, CHANNELS, listener=listener, child=FakeChild(), timers=False, new_recording=new_recording,
                  carbon=(250.0, "given explicitly"))

    async def go() -> None:
        async with app.run_test(size=(140, 60)) as pilot:
            await pilot.press("r")
            listener.add(_ev("start", sampler.t_ns, "training", "42:1"))
            await pilot.pause(0.3)
            listener.add(_ev("end", sampler.t_ns, "training", "42:1"))
            await pilot.pause(0.2)
            await pilot.press("e")  # while recording: the trace as written so far
            await pilot.pause()
            text = app.exported[0].read_text()
            assert "training" in text and "greentop live summary" not in text  # from the trace, not the fallback
            await pilot.press("r")
            assert app.saved == [path]
            await pilot.press("e")
            await pilot.pause()

    run(go)
    assert len(app.exported) == 2
    want = format_summary(summarise(load(path), 250.0, "given explicitly"), "md")
    assert app.exported[1].read_text() == want


def test_tab_and_shift_tab_move_focus_between_panes_with_a_visible_style() -> None:
    import queue

    async def go() -> None:
        app, _ = make_app(child=FakeChild(), output=queue.SimpleQueue())
        async with app.run_test(size=(140, 60)) as pilot:
            step(app)
            table, log = app.query_one("#phases"), app.query_one("#output")
            unfocused = table.styles.border_top
            await pilot.press("tab")
            assert app.focused is table
            assert table.styles.border_top != log.styles.border_top  # the focused pane's border stands out
            await pilot.press("tab")
            assert app.focused is log
            assert log.styles.border_top != unfocused and table.styles.border_top == unfocused
            await pilot.press("tab")
            assert app.focused is table  # wraps around
            await pilot.press("shift+tab")
            assert app.focused is log

    run(go)


def test_a_terminal_below_80x24_shows_one_message_until_resized() -> None:
    async def go() -> None:
        app, _ = make_app()
        async with app.run_test(size=(70, 20)) as pilot:
            step(app)
            await pilot.pause()
            msg = app.query_one("#too-small")
            assert msg.display and not app.query_one("#main").display
            assert str(msg.render()) == "terminal too small: 80x24 needed, have 70x20"
            assert msg.region.width == 70 and msg.region.height == 20  # the whole screen, text centred
            await pilot.resize_terminal(100, 30)
            await pilot.pause()
            step(app)
            assert not msg.display and app.query_one("#main").display
            assert app.query_one("#chart-0").region.height > 0
            await pilot.resize_terminal(79, 40)
            await pilot.pause()
            assert msg.display and "have 79x40" in str(msg.render())

    run(go)


def test_bare_greentop_watches_the_machine_in_a_terminal_and_prints_help_otherwise(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from greentop import cli

    calls: list[object] = []
    monkeypatch.setitem(cli.COMMANDS, "run", lambda args: calls.append(args) or 0)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False)
    assert cli.main([]) == 0
    assert "usage: greentop" in capsys.readouterr().out and calls == []
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert cli.main([]) == 0
    assert len(calls) == 1
    args = calls[0]
    assert args.command == "run" and args.cmd == [] and args.output is None  # type: ignore[attr-defined]


def test_bare_greentop_without_a_terminal_exits_at_once() -> None:
    proc = subprocess.run([sys.executable, "-m", "greentop"], capture_output=True, text=True, cwd=REPO, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0 and "usage: greentop" in proc.stdout


def test_charts_scrolled_out_of_view_are_skipped_until_they_show() -> None:
    chans = [counter(f"rapl:{i}", f"gpu-{i}") for i in range(8)]
    sampler = ScriptedSampler(chans, {c.name: 10.0 + i for i, c in enumerate(chans)})
    app = LiveApp(sampler, chans, timers=False)  # type: ignore[arg-type]

    async def go() -> None:
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            step(app)
            drawn = ["W now" in t for t in titles(app)]
            assert drawn[0] and not drawn[-1]  # the total sits below the fold: not drawn
            app.query_one("#charts").scroll_end(animate=False)
            await pilot.pause()
            step(app, 1)
            assert titles(app)[-1].startswith("total")
            assert "108.0 W now" in titles(app)[-1]  # 10 + 11 + ... + 17

    run(go)


def test_charts_redraw_once_per_new_dot_column_and_every_frame_when_zoomed_in(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    original = PowerChart._take_data  # where a chart is handed new data (set_data, set_live_data)

    def counting(self: PowerChart, *a: object, **k: object) -> None:
        calls.append(1)
        original(self, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(PowerChart, "_take_data", counting)

    async def go() -> None:
        app, _ = make_app()
        async with app.run_test(size=(120, 60)) as pilot:
            await pilot.pause()
            step(app, 1)
            n_charts = len(app._charts)
            calls.clear()
            for _ in range(40):  # 40 frames, 50 ms of data each, in a 60 s window of ~224 dot columns
                step(app, 1)
            # a dot column is 60 s / 224 = 268 ms: every 6th frame, not every frame
            assert 0 < len(calls) <= n_charts * 8
            app.window_s = 1.875
            step(app, 1)
            calls.clear()
            for _ in range(10):  # 1.875 s / 224 columns = 8 ms per column: every frame redraws
                step(app, 1)
            assert len(calls) == 10 * n_charts

    run(go)


@pytest.mark.parametrize("n_channels, tall", [(1, True), (8, False)])
def test_few_charts_share_the_pane_and_many_keep_their_minimum_and_scroll(n_channels: int, tall: bool) -> None:
    chans = [counter(f"rapl:{i}", f"gpu-{i}") for i in range(n_channels)]
    sampler = ScriptedSampler(chans, {c.name: 10.0 for c in chans})
    app = LiveApp(sampler, chans, timers=False)  # type: ignore[arg-type]

    async def go() -> None:
        async with app.run_test(size=(160, 50)) as pilot:
            await pilot.pause()
            await pilot.pause()
            heights = {c.size.height for c in app._charts}
            pane = app._charts_pane
            assert len(heights) == 1
            if tall:  # one domain, one chart (no total: it would be the same): it fills the pane
                assert len(app._charts) == 1 and heights.pop() == pane.size.height > 9
            else:  # nine do not fit: each keeps 9 rows and the pane scrolls
                assert heights.pop() == 9 and pane.virtual_size.height > pane.size.height

    run(go)


# -- the run ends with the workload ---------------------------------------------------------------


def test_run_total_stops_growing_when_the_workload_exits() -> None:
    """`greentop run -- false`: the view stays open on the finished run, but its energy and
    duration are the workload's (they kept growing: 163 J "over 18.5 s" for an instant command)."""
    async def go() -> None:
        child = FakeChild()
        app, _ = make_app(child=child)
        async with app.run_test(size=(140, 60)) as pilot:
            step(app, drains=4)  # 0.2 s
            child.rc = 1
            step(app, drains=1)
            at_exit_j, at_exit_s = app.model.energy_j, app.model.duration_s
            step(app, drains=200)  # 10 s more with the view open
            assert app.model.duration_s == pytest.approx(at_exit_s, abs=0.06)
            assert app.model.duration_s < 0.4
            assert app.model.energy_j == pytest.approx(at_exit_j, abs=150.0 * 0.06)
            assert app.model.stats(2).now_w == pytest.approx(150.0, rel=1e-3)  # the machine goes on
            await pilot.press("q")
            await pilot.pause()

    run(go)


def test_live_view_sample_and_summary_agree_on_the_same_samples() -> None:
    """One ledger: the same samples fed to the live model, to ``greentop sample``'s measurement and
    to ``greentop summary``'s attribution give the same energy, average and peak power."""
    from greentop.attribution import summarise
    from greentop.energy import converter_for
    from greentop.measure import ChannelRecord, Measurement
    from greentop.tracedata import ChannelData, TraceData

    sampler = ScriptedSampler(CHANNELS, POWER)
    model = LiveModel(CHANNELS)
    records = {c.name: ChannelRecord(c, converter_for(c)) for c in CHANNELS}
    for k in range(60):  # 3 s with a 50 ms burst to 600 W on the GPU, astride two peak windows
        sampler.power_w["nvml:gpu0:power"] = 600.0 if k == 20 else 120.0
        drained = sampler.drain()
        model.feed(drained)
        for name, smp in drained.items():
            records[name].add(smp)
    measured = Measurement(records, sampler.health())
    sample_run = measured.account().row("run")
    data = [ChannelData(r.channel, *r.arrays()[:2]) for r in records.values()]
    trace = TraceData({}, data, [], [], [], int(data[0].t_ns[0]), int(data[0].t_ns[-1]))
    summary_run = summarise(trace, 0.0).row("run")
    for k in range(len(CHANNELS) + 1):
        s, m = summary_run.domains[k], sample_run.domains[k]
        assert (m.energy_j, m.average_w, m.peak_w) == (s.energy_j, s.average_w, s.peak_w)  # one code path
    assert 120.0 < summary_run.domains[1].peak_w < 600.0
    summaries = {c.name: c for c in measured.summaries()}
    assert summaries["nvml:gpu0:power"].peak_w == summary_run.domains[1].peak_w
    # The live view's run is its 10 ms grid (from the first grid point to the newest): over that
    # same window the summary of the raw samples gives what the live view shows.
    assert model.run_start_ns is not None and model.t_ns is not None
    window = TraceData({}, data, [], [], [], model.run_start_ns, model.t_ns)
    same = summarise(window, 0.0).row("run")
    live = model.run_figures()
    for k in range(len(CHANNELS) + 1):
        assert live[k] == pytest.approx((same.domains[k].average_w, same.domains[k].peak_w), rel=1e-9)
    assert model.energy_j == pytest.approx(same.total.energy_j, rel=1e-9)


def test_a_counter_reset_is_flagged_live_and_the_energy_after_it_kept() -> None:
    sampler = ScriptedSampler(CHANNELS, POWER)
    model = LiveModel(CHANNELS)
    for _ in range(20):
        model.feed(sampler.drain())
    sampler.energy_uj["rapl:package-0"] = 0.0  # the driver reloaded: the counter restarts at 0
    for _ in range(20):
        model.feed(sampler.drain())
    assert model.counter_trouble() == ["rapl:package-0 (1 reset)"]
    assert model.stats(0).avg_w == pytest.approx(30.0, rel=1e-2)  # one interval lost, not the rest
    sampler.power_w["rapl:package-0"] = 0.0  # the counter freezes while it is still read
    for _ in range(50):  # 2.5 s
        model.feed(sampler.drain())
    assert model.counter_trouble() == ["rapl:package-0 (1 reset, stalled)"]

    async def go() -> None:
        app, sampler2 = make_app()
        async with app.run_test(size=(140, 60)) as pilot:
            step(app)
            sampler2.energy_uj["rapl:package-0"] = 0.0
            step(app)
            app._update_health()
            app.refresh_view()
            await pilot.pause()
            assert "rapl:package-0 (1 reset)" in str(app.query_one("#health").render())

    run(go)


# -- stalls: the summary's rule (a multiple of the channel's own update period), live ----------


def _held_counter(period_s: float, seconds: float, frozen: tuple[float, float] | None = None,
                  power_w: float = 100.0, read_s: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """A meter read every ``read_s`` whose counter (uJ) only changes at its updates, every
    ``period_s``; it misses every update while ``frozen`` (s from the start), then counts on."""
    t_s = np.arange(1, round(seconds / read_s) + 1) * read_s
    counted_s = np.floor(t_s / period_s + 1e-9) * period_s  # seconds of energy counted so far
    if frozen is not None:
        held_s = np.floor(frozen[0] / period_s + 1e-9) * period_s
        resumed_s = np.ceil(frozen[1] / period_s - 1e-9) * period_s
        counted_s = np.where(counted_s > held_s, held_s, counted_s) + np.where(
            counted_s >= resumed_s, counted_s - resumed_s + period_s, 0.0)
    raw = np.round(counted_s * power_w * 1e6).astype(np.int64)
    return T0_NS + np.round(t_s * 1e9).astype(np.int64), raw


def _live_and_summary_stalls(channel: Channel, t: np.ndarray,
                             raw: np.ndarray) -> tuple[LiveModel, list[tuple[float, list[str]]], int]:
    """The live model fed ``t``/``raw`` in 50 ms drains, with what it flags after each (s since
    the first sample, trouble); and how many stalls ``greentop summary`` finds in the same samples."""
    from greentop.attribution import summarise
    from greentop.tracedata import ChannelData, TraceData

    model = LiveModel([channel])
    seen: list[tuple[float, list[str]]] = []
    edges = np.searchsorted(t, np.arange(t[0], t[-1] + DRAIN_NS, DRAIN_NS), side="right")
    for a, b in zip(edges[:-1], edges[1:]):
        if b > a:
            model.feed({channel.name: Samples(t[a:b], raw[a:b])})
            seen.append(((int(t[b - 1]) - int(t[0])) * 1e-9, model.counter_trouble()))
    trace = TraceData({}, [ChannelData(channel, t, raw)], [], [], [], int(t[0]), int(t[-1]))
    return model, seen, len(summarise(trace, 0.0).domains[0].stalls_ns)


SLOW_METER = counter("hwmon:power_meter:energy1", "platform")
GPU_ENERGY = counter("nvml:gpu0:energy", "gpu-0")


def test_a_healthy_meter_that_updates_every_3_s_is_not_stalled_live_or_in_the_summary() -> None:
    t, raw = _held_counter(3.0, 30.0)
    model, seen, summary_stalls = _live_and_summary_stalls(SLOW_METER, t, raw)
    assert [f for _, f in seen if f] == [] and summary_stalls == 0  # 2 s between its updates is no stall
    assert model._lanes[0].update_period_s() == pytest.approx(3.0)  # judged by its own period


def test_a_100ms_counter_unchanged_for_50_updates_is_not_stalled_live_or_in_the_summary() -> None:
    t, raw = _held_counter(0.1, 12.0, frozen=(2.0, 7.0))  # 5 s unchanged
    _model, seen, summary_stalls = _live_and_summary_stalls(GPU_ENERGY, t, raw)
    assert [f for _, f in seen if f] == [] and summary_stalls == 0


def test_a_100ms_counter_is_stalled_after_100_updates_live_as_in_the_summary() -> None:
    t, raw = _held_counter(0.1, 20.0, frozen=(2.0, 14.0))  # 12 s unchanged
    model, seen, summary_stalls = _live_and_summary_stalls(GPU_ENERGY, t, raw)
    assert summary_stalls == 1
    stalled_s = [at for at, f in seen if f == ["nvml:gpu0:energy (stalled)"]]
    # Flagged from 100 of its periods after its last change (2.0 s) until it moved again (14.0 s).
    assert stalled_s and stalled_s[0] == pytest.approx(12.0, abs=0.06) and stalled_s[-1] == pytest.approx(14.0, abs=0.06)
    assert [f for at, f in seen if at < stalled_s[0] and f] == []
    assert model.counter_trouble() == ["nvml:gpu0:energy (1 stall)"]  # the stall is still said once it ended


# -- --cpu-total: the live total's CPU side, chosen as in greentop summary -----------------------


@pytest.fixture
def psys_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fake host whose RAPL has a package (40 W), its DRAM (5 W) and psys (70 W); no GPU."""
    from tests.fakes.host import FakeHost
    from tests.fakes.profile import PowerProfile

    host = FakeHost(tmp_path / "host")
    host.add_cpus(2)
    host.add_rapl_zone("0", "package-0", PowerProfile.constant(40.0))
    host.add_rapl_zone("0:0", "dram", PowerProfile.constant(5.0))
    host.add_rapl_zone("1", "psys", PowerProfile.constant(70.0))
    monkeypatch.setenv("GREENTOP_SYSFS_ROOT", str(host.root))
    monkeypatch.setenv("GREENTOP_NVML_LIB", str(tmp_path / "no-nvml.so"))
    with host:
        yield host.root


def test_live_total_is_psys_with_cpu_total_psys_on_a_fake_rapl_host(psys_host: Path) -> None:
    from greentop.sampler import Sampler
    from greentop.sources import DiscoveryOptions, discover
    from greentop.tui.live_text import live_summary_markdown, summary_lines

    found = discover(DiscoveryOptions(gpus=False))
    assert "rapl:psys" in [c.name for c in found.channels]
    default, psys = LiveModel(found.channels), LiveModel(found.channels, cpu_total="psys")
    assert [c.name for c in default.channels] == ["rapl:package-0", "rapl:package-0:dram"]
    assert [c.name for c in psys.channels] == ["rapl:psys"]
    assert "--cpu-total packages" in default.machine_total and "--cpu-total psys" in psys.machine_total
    with Sampler(found.channels, rate_hz=500) as sampler:
        while psys.duration_s < 0.5 or default.duration_s < 0.5:  # no timing assert: as long as it takes
            time.sleep(0.05)
            drained = sampler.drain()
            default.feed(drained)
            psys.feed(drained)
    # The fake's writer may lag under load, so its watts are only roughly the profile's: 70 W of
    # psys against the 45 W the packages and DRAM add up to.
    assert psys.stats(0).avg_w == pytest.approx(70.0, rel=0.25)
    assert default.stats(len(default.channels)).avg_w == pytest.approx(45.0, rel=0.25)
    assert psys.machine_total in summary_lines(psys) and "psys (platform)" in psys.machine_total
    assert psys.machine_total in live_summary_markdown(psys, (0.0, "none"))


def test_live_view_says_which_cpu_total_it_shows() -> None:
    from greentop.tui.screens import DevicesScreen

    channels = [counter("rapl:psys", "psys"), counter("rapl:package-0", "cpu-package-0"), gauge("nvml:gpu0:power", "gpu-0")]
    power = {"rapl:psys": 70.0, "rapl:package-0": 30.0, "nvml:gpu0:power": 120.0}

    async def go() -> None:
        app = LiveApp(ScriptedSampler(channels, power), channels, timers=False, cpu_total="psys")
        async with app.run_test(size=(140, 60)) as pilot:
            step(app)
            await pilot.pause()
            assert titles(app)[0].startswith("psys") and titles(app)[-1].startswith("total (psys)")
            assert float(titles(app)[-1].split()[2]) == pytest.approx(190.0, rel=1e-3)  # psys + GPU, not the package
            await pilot.press("d")
            await pilot.pause()
            assert isinstance(app.screen, DevicesScreen)
            assert "--cpu-total psys" in str(app.screen.query_one("#devices").render())

    run(go)
    with pytest.raises(ValueError, match="no psys"):
        LiveApp(ScriptedSampler(CHANNELS, POWER), CHANNELS, timers=False, cpu_total="psys")


def test_run_with_cpu_total_psys_without_psys_says_so_before_the_workload(tmp_path: Path) -> None:
    from tests.fakes.host import FakeHost
    from tests.fakes.profile import PowerProfile

    host = FakeHost(tmp_path / "host")
    host.add_cpus(2)
    host.add_rapl_zone("0", "package-0", PowerProfile.constant(40.0))
    ran = tmp_path / "ran"
    with host:
        env = {k: v for k, v in os.environ.items() if k != "TEXTUAL_DRIVER"} | {
            "GREENTOP_SYSFS_ROOT": str(host.root), "GREENTOP_NVML_LIB": str(tmp_path / "no-nvml.so"), "PYTHONPATH": str(REPO)}
        view = {"TEXTUAL_DRIVER": "tests.test_tui_live:QuitWhenDoneDriver"}  # the live view's path, not headless
        for command, extra in (("run", view), ("run", {}), ("record", {})):
            out = ["-o", str(tmp_path / f"{command}.h5")]
            proc = subprocess.run([sys.executable, "-m", "greentop", command, *out, "--no-baseline", "--cpu-total", "psys",
                                   "--", "touch", str(ran)], env=env | extra, capture_output=True, text=True, timeout=120,
                                  stdin=subprocess.DEVNULL)
            assert proc.returncode == 2, proc.stderr
            assert proc.stderr.strip().splitlines()[-1] == "greentop: error: --cpu-total psys: this machine (or trace) has no psys domain"
            assert not ran.exists() and not (tmp_path / f"{command}.h5").exists()


def test_run_and_record_print_the_summary_with_the_cpu_total_asked(tmp_path: Path, psys_host: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TEXTUAL_DRIVER"} | {"PYTHONPATH": str(REPO)}
    view = {"TEXTUAL_DRIVER": "tests.test_tui_live:QuitWhenDoneDriver"}  # through the live view
    for command, extra in (("run", view), ("run", {}), ("record", {})):
        path = tmp_path / f"{command}{len(extra)}.h5"
        proc = subprocess.run([sys.executable, "-m", "greentop", command, "-o", str(path), "--no-baseline", "--cpu-total", "psys",
                               "--", sys.executable, "-c", "import time; time.sleep(0.3)"],
                              env=env | extra, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        assert proc.returncode == 0, proc.stderr
        assert "machine total = psys (platform)" in proc.stderr and "(--cpu-total psys): psys" in proc.stderr
        summary = subprocess.run([sys.executable, "-m", "greentop", "summary", str(path), "--cpu-total", "psys"],
                                 env=env, capture_output=True, text=True, timeout=120)
        assert summary.stdout.strip() in proc.stderr  # the summary greentop summary --cpu-total psys gives


def test_at_the_drain_rate_each_frame_is_drawn_right_after_its_drain() -> None:
    """With ``fps`` equal to ``DRAIN_HZ`` one timer drains and then redraws: every frame shows
    samples drained just before it, and the charts fill from the timers alone."""
    from greentop.tui.app import DRAIN_HZ

    async def scenario() -> None:
        sampler = ScriptedSampler(CHANNELS, POWER)
        app = LiveApp(sampler, CHANNELS, fps=DRAIN_HZ)  # type: ignore[arg-type]
        seen: list[int] = []
        refresh = app.refresh_view

        def recording_refresh() -> None:
            seen.append(sampler.drains)
            refresh()

        app.refresh_view = recording_refresh  # type: ignore[method-assign]
        async with app.run_test(size=(120, 40)) as pilot:
            while len(seen) < 8:
                await pilot.pause(0.05)
            assert all(b == a + 1 for a, b in zip(seen, seen[1:]))  # one drain before each frame
            assert sampler.drains == seen[-1]
            assert all("now" in t for t in titles(app))

    run(scenario)


def test_the_phase_tables_numeric_headers_are_right_aligned_over_their_numbers() -> None:
    """Each numeric column's header ends where its figures end (they are right-aligned); the phase
    name column stays left-aligned."""

    async def go() -> None:
        listener = ScriptedListener()
        app, sampler = make_app(listener=listener, child=FakeChild())
        async with app.run_test(size=(140, 60)) as pilot:
            step(app, 10)
            listener.pending += [_ev("start", sampler.t_ns, "training", "42:1")]
            step(app, 20)
            listener.pending += [_count(sampler.t_ns, "samples", 300.0, "42:1")]
            step(app, 20)
            await pilot.pause()
            table = app.query_one("#phases")
            header = table.render_line(0).text  # type: ignore[attr-defined]
            row = table.render_line(1).text  # type: ignore[attr-defined]
            assert header.lstrip().startswith("phase") and row.lstrip().startswith("training")
            assert header.index("phase") == row.index("training")
            cells = [str(c) for c in table.get_row_at(0)]  # type: ignore[attr-defined]
            end = row.index("training") + len("training")
            for label, cell in zip(("n", "time", "energy J", "avg W", "per unit"), cells[1:]):
                value = cell.strip()
                end = row.index(value, end) + len(value)  # each figure after the one before
                assert header.index(label) + len(label) == end, (label, header, row)

    run(go)


def test_what_the_exited_workload_left_running_is_shown_beside_its_exit() -> None:
    async def go() -> None:
        child = FakeChild()
        left = [2]
        app, _ = make_app(child=child, left_running=lambda: left[0])
        async with app.run_test(size=(140, 60)) as pilot:
            step(app)
            assert "still running" not in str(app.query_one("#workload").render())
            child.rc = 0
            step(app)
            text = str(app.query_one("#workload").render())
            assert "exited 0" in text and "2 processes" in text and "still running" in text
            left[0] = 0
            app._left_scanned = -float("inf")  # the next frame rescans (the view rescans every 2 s)
            step(app)
            assert "still running" not in str(app.query_one("#workload").render())
            await pilot.press("q")
            await pilot.pause()

    run(go)
