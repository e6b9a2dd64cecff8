"""greentop.api: the in-process Monitor, its windows, phase routing, saving, devices, display."""

from __future__ import annotations

import os
import sys
import time
import types
from pathlib import Path
from typing import Callable, Iterator

import pytest

import greentop
from greentop import phases
from greentop.api import Monitor, MonitorError, devices, select_channels
from greentop.api.display import measurement_html, measurement_text
from greentop.attribution import PhaseSummary, RunSummary
from greentop.listener import EventListener
from greentop.sources import DiscoveryOptions
from tests.fakes.host import FakeCounter, FakeHost
from tests.fakes.nvml import FakeNvmlConfig
from tests.fakes.profile import PowerProfile

NO_GPU = DiscoveryOptions(gpus=False)
PACKAGE = "cpu-package-0"


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, FakeCounter]]:
    """A fake host: a RAPL package alternating 30 W and 60 W every 0.1 s and a 5 W DRAM zone,
    written by a forked process (free of this process's GIL)."""
    h = FakeHost(tmp_path / "host")
    pkg = h.add_rapl_zone("0", "package-0", PowerProfile(((0.1, 30.0), (0.1, 60.0))))
    dram = h.add_rapl_zone("0:0", "dram", PowerProfile.constant(5.0))
    monkeypatch.setenv("GREENTOP_SYSFS_ROOT", str(h.root))
    monkeypatch.setenv("GREENTOP_NVML_LIB", str(tmp_path / "no-nvml.so"))
    h.start(writer="process")
    try:
        yield {"package": pkg, "dram": dram}
    finally:
        h.close()


@pytest.fixture(autouse=True)
def no_launcher(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(phases.ENV_VAR, raising=False)
    phases._reset()
    yield
    phases._reset()


def _busy(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def test_window_energy_is_the_fake_hosts_truth(host: dict[str, FakeCounter]) -> None:
    with Monitor(rate=1000, options=NO_GPU) as mon:
        time.sleep(0.05)
        with mon.window("train"):
            time.sleep(0.5)
    m = mon.measurement("train")
    assert isinstance(m, PhaseSummary) and m.status == "ok"
    assert m.duration_s == pytest.approx(0.5, abs=0.05)
    pkg = m.domain(PACKAGE)
    truth_j = host["package"].energy_between_j(m.start_ns, m.end_ns)
    # The fake writes every 1 ms; a read sees a value up to one tick old at each edge.
    assert abs(pkg.energy_j - truth_j) <= pkg.energy_uncertainty_j + 60.0 * 0.003
    assert 30.0 <= pkg.average_w <= 60.0 and pkg.peak_w >= pkg.average_w
    # RAPL's DRAM domain lies outside the package: the machine total adds both.
    assert m.total.energy_j == pytest.approx(pkg.energy_j + m.domain("dram-0").energy_j)
    assert not pkg.estimated


def test_measurements_are_what_load_summary_gives_for_the_saved_trace(host: dict[str, FakeCounter], tmp_path: Path) -> None:
    mon = Monitor(rate=1000, options=NO_GPU)
    with mon.window("a"):
        time.sleep(0.15)
    mon.begin("b")
    time.sleep(0.1)
    mon.end("b")
    mon.stop()
    path = mon.save(tmp_path / "run.h5")
    loaded = greentop.load(path)
    assert loaded.complete and loaded.meta["recorded_by"] == "greentop.Monitor"
    ours, theirs = mon.summary(), loaded.summary()
    assert isinstance(theirs, RunSummary)
    for name in ("run", "a", "b"):
        assert ours.row(name).domains == theirs.row(name).domains
        assert ours.row(name).start_ns == theirs.row(name).start_ns


def test_save_while_running_and_to_a_bad_path(host: dict[str, FakeCounter], tmp_path: Path) -> None:
    from greentop.recorder import RecordError

    with Monitor(rate=500, options=NO_GPU) as mon:
        mon.begin("open")
        time.sleep(0.1)
        path = mon.save(tmp_path / "snap.h5")
        with pytest.raises(RecordError, match="does not exist"):
            mon.save(tmp_path / "missing" / "x.h5")
    row = greentop.load(path).summary().row("open")
    assert row.status == "unclosed"


def test_windows_nest_overlap_and_decorate(host: dict[str, FakeCounter]) -> None:
    with Monitor(rate=500, options=NO_GPU) as mon:

        @mon.window("step")
        def step() -> None:
            with greentop.phase("forward"):
                time.sleep(0.01)

        with mon.window("epoch"):
            mon.begin("x")
            step()
            step()
            mon.begin("y")
            mon.end("x")  # x and y overlap
            time.sleep(0.02)
        mon.end("y")
    rows = {r.phase_id: r for r in mon.summary().phase_rows()}
    epoch = mon.measurement("epoch")
    steps = mon.measurements("step")
    assert len(steps) == 2 and all(s.parent == epoch.index for s in steps)
    forwards = mon.measurements("forward")
    assert [f.parent for f in forwards] == [s.index for s in steps]
    x, y = mon.measurement("x"), mon.measurement("y")
    assert x.depth == y.depth == 0  # begin/end windows are top level
    assert x.start_ns < y.start_ns < x.end_ns < y.end_ns
    assert y.end_ns > epoch.end_ns
    assert len(rows) == 7  # epoch, x, y, two steps, two forwards


def test_begin_end_misuse_is_a_clear_error(host: dict[str, FakeCounter]) -> None:
    with Monitor(rate=200, options=NO_GPU) as mon:
        mon.begin("a")
        with pytest.raises(MonitorError, match="already open"):
            mon.begin("a")
        with pytest.raises(MonitorError, match="not open"):
            mon.end("b")
        with pytest.raises(ValueError, match="sync must be"):
            mon.window("w", sync="jax")
        with pytest.raises(MonitorError, match="no window or phase named 'nope'"):
            mon.measurement("nope")
        mon.end("a")


def test_sources_select_channels(host: dict[str, FakeCounter]) -> None:
    with Monitor(rate=200, sources=["dram"], options=NO_GPU) as mon:
        time.sleep(0.02)
    assert [c.domain for c in mon.channels] == ["dram-0"]
    with pytest.raises(MonitorError, match="no channel matches source 'gpu'.*cpu-package-0"):
        Monitor(sources=["gpu"], options=NO_GPU)
    assert select_channels(mon.channels, None) == mon.channels


def test_open_window_measures_so_far_and_window_object_reads_it(host: dict[str, FakeCounter]) -> None:
    with Monitor(rate=500, options=NO_GPU) as mon:
        with mon.window("live") as w:
            time.sleep(0.1)
            m = w.measurement
            assert m.status == "unclosed" and m.total.energy_j > 0
        assert mon.measurement("live").status == "ok"


def test_phase_without_monitor_is_a_noop_and_with_one_is_measured(host: dict[str, FakeCounter]) -> None:
    assert greentop.phase("before") is phases._NOOP
    mon = Monitor(rate=500, options=NO_GPU)
    with greentop.phase("load", shard=3):
        greentop.count(samples=256)
        time.sleep(0.02)
    mon.stop()
    row = mon.measurement("load")
    assert row.attrs == {"shard": 3} and row.counts == {"samples": 256.0}
    assert greentop.phase("after") is phases._NOOP  # the last Monitor out unhooks the router


def test_two_monitors_both_see_phases_but_only_their_own_windows(host: dict[str, FakeCounter]) -> None:
    a = Monitor(rate=500, options=NO_GPU)
    b = Monitor(rate=500, options=NO_GPU)
    with a.window("only-a"):
        with greentop.phase("shared"):
            time.sleep(0.02)
    a.stop()
    with greentop.phase("after-a"):  # b still runs: still routed
        time.sleep(0.01)
    b.stop()
    assert a.measurement("shared").parent == a.measurement("only-a").index
    assert b.measurement("shared").depth == 0  # its parent window is a's, unknown to b
    with pytest.raises(MonitorError):
        b.measurement("only-a")
    assert b.measurement("after-a").total.energy_j > 0
    with pytest.raises(MonitorError):
        a.measurement("after-a")


def test_phases_reach_both_the_launcher_and_the_monitor(host: dict[str, FakeCounter], monkeypatch: pytest.MonkeyPatch) -> None:
    with EventListener() as listener:
        monkeypatch.setenv(phases.ENV_VAR, listener.path)
        phases._reset()
        with greentop.phase("early"):  # decides the launcher client before any Monitor
            pass
        with Monitor(rate=500, options=NO_GPU) as mon:
            with greentop.phase("both"):
                time.sleep(0.02)
        time.sleep(0.05)
        seen = [(e.kind, e.name) for e in listener.drain()]
    assert seen == [("start", "early"), ("end", "early"), ("start", "both"), ("end", "both")]
    assert mon.measurement("both").total.energy_j > 0
    assert isinstance(phases._client, phases._Client)  # the launcher's sink is back


def test_a_dropped_monitor_stops_sampling(host: dict[str, FakeCounter]) -> None:
    import gc
    import threading

    mon = Monitor(rate=500, options=NO_GPU)
    sampler_threads = {t for t in threading.enumerate() if t.name.startswith("greentop-")}
    assert sampler_threads
    del mon
    gc.collect()
    time.sleep(0.05)
    assert not any(t.is_alive() for t in sampler_threads)
    assert greentop.phase("x") is phases._NOOP


def test_sync_torch_waits_at_both_edges_only_when_cuda_is_initialised(host: dict[str, FakeCounter],
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    initialised = [False]
    cuda = types.SimpleNamespace(is_initialized=lambda: initialised[0], synchronize=lambda: calls.append(time.monotonic_ns()))
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))
    with Monitor(rate=500, options=NO_GPU) as mon:
        with mon.window("cold", sync="torch"):
            pass
        assert calls == []
        initialised[0] = True
        with mon.window("warm", sync="torch"):
            time.sleep(0.01)
    assert len(calls) == 2
    warm = mon.measurement("warm")
    assert calls[0] <= warm.start_ns and calls[1] <= warm.end_ns and calls[1] > warm.start_ns


def test_sync_never_imports_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    from greentop import gpusync

    monkeypatch.delitem(sys.modules, "torch", raising=False)
    assert gpusync.torch_synchronize() is False
    assert "torch" not in sys.modules


def test_two_monitors_over_fake_nvml_outlive_each_other(fake_nvml: Callable[[FakeNvmlConfig], FakeNvmlConfig], no_host: Path) -> None:
    fake_nvml(FakeNvmlConfig(energy_cost_us=0, update_ms=20))
    a = Monitor(rate=500, sources=["nvml:gpu0:power"])
    b = Monitor(rate=500, sources=["nvml:gpu0:power"])
    time.sleep(0.1)
    a.stop()
    with b.window("after"):
        time.sleep(0.2)
    b.stop()
    assert b.health().channels["nvml:gpu0:power"].errors == 0
    assert b.measurement("after").domain("gpu-0").average_w == pytest.approx(100.0, rel=0.01)


def test_devices_lists_channels_with_units_state_and_power(host: dict[str, FakeCounter]) -> None:
    found = devices(0.3, options=NO_GPU)
    by_domain = {d.domain: d for d in found}
    pkg = by_domain[PACKAGE]
    assert pkg.unit == "uJ" and pkg.quantity == "energy" and pkg.state == "ok" and pkg.lane == "fast"
    assert pkg.power_w is not None and 30.0 <= pkg.power_w <= 60.0
    assert pkg.read_cost_us is not None and pkg.read_cost_us > 0
    # Over a 0.3 s window the fake's writer process can trail by a scheduling slice on a loaded
    # 2-core machine (20 ms, +6.7 %, seen once in CI): 15 % still tells the 5 W DRAM from the package.
    assert by_domain["dram-0"].power_w == pytest.approx(5.0, rel=0.15)
    assert any("MSR" in n for n in found.notes)
    assert devices(0, options=NO_GPU)[0].power_w is None


def test_text_and_html_tables_show_every_domain(host: dict[str, FakeCounter]) -> None:
    with Monitor(rate=500, options=NO_GPU) as mon:
        with mon.window("t<1>"):
            time.sleep(0.05)
    m = mon.measurement("t<1>")
    text = measurement_text(m)
    assert text.splitlines()[0].startswith("t<1>: ") and PACKAGE in text and "total" in text
    assert f"{m.total.energy_j:.3f}"[:4] in text
    page = measurement_html(m)
    assert "<table>" in page and "t&lt;1&gt;" in page and PACKAGE in page
    assert "greentop.Monitor(stopped, 500 Hz" in repr(mon) and "t<1>" in repr(mon)
    assert "<table>" in mon._repr_html_()


def test_top_level_names_and_no_textual_on_the_api_path(host: dict[str, FakeCounter], tmp_path: Path) -> None:
    import subprocess

    assert greentop.Monitor is Monitor and greentop.devices is devices
    code = ("import sys, time, greentop, greentop.api.notebook\n"
            "m = greentop.Monitor(rate=200)\n"
            "with m.window('w'): time.sleep(0.05)\n"
            "m.stop(); m.measurement('w'); repr(m); m._repr_html_(); m.save(sys.argv[1])\n"
            "print(sorted(k for k in sys.modules if k.split('.')[0] in ('textual', 'pandas', 'matplotlib')))\n")
    env = os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "x.h5")], env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_report_without_its_extra_says_which_to_install(tmp_path: Path) -> None:
    import subprocess

    # A core install has no pandas: an import hook that refuses it stands in for its absence.
    code = ("import sys\n"
            "class NoPandas:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in ('pandas', 'matplotlib'): raise ImportError(name)\n"
            "sys.meta_path.insert(0, NoPandas())\n"
            "from greentop.cli import main\n"
            "sys.exit(main(['report', sys.argv[1], '-o', sys.argv[1]]))\n")
    env = os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stderr.strip() == ("greentop: error: greentop report needs pandas, which is not installed: "
                                  "pip install 'greentop[report]'")


def test_samples_stay_in_time_order_while_the_drain_thread_and_callers_both_pull(host: dict[str, FakeCounter]) -> None:
    with Monitor(rate=2000, options=NO_GPU) as mon:
        name = mon.channels[0].name
        end = time.monotonic() + 0.6  # spans two of the drain thread's passes
        while time.monotonic() < end:
            mon.samples(name)
    t = mon.samples(name).t_ns
    assert t.size > 500 and bool((t[1:] > t[:-1]).all())


def test_a_window_right_after_start_and_right_before_stop_is_covered_on_the_slow_lane(
        fake_nvml: Callable[[FakeNvmlConfig], FakeNvmlConfig], no_host: Path) -> None:
    from greentop.attribution import FLAG_OUTSIDE

    fake_nvml(FakeNvmlConfig(energy_cost_us=0, update_ms=20))
    mon = Monitor(rate=1000, sources=["nvml:gpu0:energy"])  # a 10 Hz slow-lane counter only
    with mon.window("edge-to-edge"):
        time.sleep(0.15)
    mon.stop()
    gpu = mon.measurement("edge-to-edge").domain("gpu-0")
    assert FLAG_OUTSIDE not in gpu.flag
    assert gpu.average_w == pytest.approx(100.0, rel=0.02)


def test_measurement_of_a_window_is_its_row_in_the_whole_runs_summary(host: dict[str, FakeCounter]) -> None:
    with Monitor(rate=1000, options=NO_GPU) as mon:
        with mon.window("outer"):
            time.sleep(0.05)
            with mon.window("inner"):
                with greentop.phase("leaf"):
                    greentop.count(samples=3)
                    time.sleep(0.05)
                greentop.count(samples=2)
                time.sleep(0.02)
            import contextvars
            import threading

            # Two children of "outer" that overlap: "other" runs in a thread started in outer's context.
            other = threading.Thread(target=contextvars.copy_context().run,
                                     args=(lambda: mon.window("other")(time.sleep)(0.06),))
            with mon.window("sibling"):
                other.start()
                time.sleep(0.04)
            other.join()
        mon.begin("lone")
        time.sleep(0.03)
        mon.end("lone")
    whole = {r.name: r for r in mon.summary().phase_rows()}
    for name in ("outer", "inner", "leaf", "sibling", "other", "lone"):
        assert mon.measurement(name) == whole[name], name
    assert whole["inner"].counts == {"samples": 5.0}
    assert "overlapping children" in whole["outer"].flag and whole["other"].parent == whole["outer"].index
