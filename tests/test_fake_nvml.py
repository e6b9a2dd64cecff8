"""The fake libnvidia-ml.so.1 behaves like NVML and reports exactly the scripted truth.

Every scenario that loads the library runs in its own Python subprocess, so library loading and
NVML's process-wide state start clean each time. Timing tests assert lower bounds only.
"""

from __future__ import annotations

import ctypes
import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.nvml import (
    CALLS_ENERGY,
    CALLS_FIELD_VALUES,
    CALLS_POWER_USAGE,
    CONFIG_ENV,
    LIB_NAME,
    NVML_FI_DEV_POWER_AVERAGE,
    NVML_FI_DEV_POWER_INSTANT,
    FakeNvmlConfig,
    build_fake_nvml,
    expected_energy_mj,
    expected_field_timestamp_us,
    expected_power_average_mw,
    expected_power_mw,
    fake_nvml_env,
    refresh_instant_ns,
)
from tests.fakes.profile import PowerProfile

try:
    import pynvml
except ImportError:  # the model tests still run; every test that loads the fake is skipped
    pynvml = None

NVML_SUCCESS = 0
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_UNKNOWN = 999
NVML_VALUE_TYPE_UNSIGNED_INT = 1


@pytest.fixture(scope="session")
def fake_lib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_fake_nvml(tmp_path_factory.mktemp("fake_nvml"))


def run_scenario(
    lib: Path,
    config: FakeNvmlConfig | Path | None,
    code: str,
    tmp_path: Path,
    *,
    check: bool = True,
    ld_library_path: bool = True,
) -> Any:
    """Run ``code`` in a fresh interpreter against the fake; return the JSON it prints last."""
    if pynvml is None:
        pytest.skip("needs nvidia-ml-py (pynvml)")
    if isinstance(config, FakeNvmlConfig):
        config_path: Path | None = config.write(tmp_path / "nvml.conf")
    else:
        config_path = config
    env = fake_nvml_env(lib, config_path)
    if not ld_library_path:
        env.pop("LD_LIBRARY_PATH")
    env["FAKE_NVML_LIB"] = str(lib)
    prelude = "import ctypes, json, os, sys, time\nimport pynvml\n"
    proc = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if check:
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout.strip().splitlines()[-1])
    return proc


def allowed_values(
    fn: Callable[[int], int], config: FakeNvmlConfig, t0_ns: int, t1_ns: int
) -> set[int]:
    """Every value ``fn`` takes for a call that happened somewhere in [t0_ns, t1_ns]."""
    values = {fn(t0_ns), fn(t1_ns)}
    t = refresh_instant_ns(config, t0_ns) + config.update_ns
    while t <= t1_ns:
        values.add(fn(t))
        t += config.update_ns
    return values


# ---- the Python model, on its own -----------------------------------------------------------


def test_model_constant_power_reads_round_numbers() -> None:
    config = FakeNvmlConfig(epoch_ns=0, update_ms=100, energy_start_mj={0: 5})
    for t_ns in range(0, 3_000_000_000, 7_000_001):
        assert expected_power_mw(config, 0, t_ns) == 100_000
        assert expected_power_average_mw(config, 0, t_ns) == 100_000
        q_ms = t_ns // 100_000_000 * 100
        assert expected_energy_mj(config, 0, t_ns) == 5 + 100 * q_ms


def test_model_follows_profile() -> None:
    profile = PowerProfile(((0.2, 100.0), (0.2, 400.0)))
    config = FakeNvmlConfig(epoch_ns=10**12, update_ms=50, profiles={0: profile})
    at = lambda s: 10**12 + round(s * 1e9)  # noqa: E731
    assert expected_power_mw(config, 0, at(0.01)) == 100_000  # before the first full window
    assert expected_power_mw(config, 0, at(0.22)) == 100_000  # window [0.15, 0.20]
    assert expected_power_mw(config, 0, at(0.27)) == 400_000  # window [0.20, 0.25]
    assert expected_power_mw(config, 0, at(0.32)) == 400_000  # window [0.25, 0.30]
    assert expected_power_mw(config, 0, at(0.42)) == 400_000  # window [0.35, 0.40]
    assert expected_power_mw(config, 0, at(0.47)) == 100_000  # window [0.40, 0.45], cycled
    # 1 s average at q = 1.4 s: window [0.4, 1.4] is 0.6 s at 100 W and 0.4 s at 400 W
    assert expected_power_average_mw(config, 0, at(1.41)) == 220_000
    # energy: E(0.35) = 0.2 * 100 + 0.15 * 400 = 80 J
    assert expected_energy_mj(config, 0, at(0.37)) == 80_000
    # before the epoch the device drew P(0); the counter never goes below 0
    assert expected_power_mw(config, 0, at(-1.0)) == 100_000
    assert expected_energy_mj(config, 0, at(-1.0)) == 0
    for t_s in (0.0, 0.013, 0.5, 1.77, 123.456):
        truth_mj = profile.energy_j(t_s) * 1000
        got = expected_energy_mj(config, 0, at(t_s))
        assert truth_mj - 400 * 50 - 1 <= got <= truth_mj + 1  # lags by at most one window


def test_model_window_inside_segment_is_segment_power() -> None:
    profile = PowerProfile(((0.13, 120.0), (0.07, 690.0), (0.2, 300.0)))
    config = FakeNvmlConfig(epoch_ns=0, update_ms=10, profiles={0: profile})
    for q_ms in range(10, 4000, 10):
        lo, hi = (q_ms - 10) / 1000 % 0.4, (q_ms / 1000 - 1e-9) % 0.4
        if profile.power_w(lo) == profile.power_w(hi):
            t_ns = q_ms * 1_000_000 + 5
            assert expected_power_mw(config, 0, t_ns) == profile.power_w(lo) * 1000


def test_config_text() -> None:
    config = FakeNvmlConfig(
        devices=2,
        epoch_ns=123,
        mig={1: True},
        names={0: "NVIDIA H200"},
        power_limit_mw={0: 650_000},
        energy_start_mj={1: 10**9},
        profiles={1: PowerProfile(((0.5, 122.0), (1.5, 690.0)))},
    )
    text = config.to_text()
    for line in (
        "devices 2", "epoch_ns 123", "update_ms 100", "energy_cost_us 3900", "fields 1",
        "mig 1 1", "name 0 NVIDIA H200", "power_limit_mw 0 650000",
        "energy_start_mj 1 1000000000", "profile 1 0.5 122.0 1.5 690.0",
    ):
        assert line in text.splitlines()
    with pytest.raises(ValueError):
        FakeNvmlConfig(devices=1, names={3: "x"}).to_text()
    with pytest.raises(ValueError):
        FakeNvmlConfig(profiles={0: PowerProfile(((1.0, 1.0),), repeat=False)}).to_text()


def test_build_is_cached(fake_lib: Path) -> None:
    mtime = fake_lib.stat().st_mtime_ns
    assert build_fake_nvml(fake_lib.parent) == fake_lib
    assert fake_lib.stat().st_mtime_ns == mtime
    assert fake_lib.name == LIB_NAME


# ---- pynvml against the fake ----------------------------------------------------------------


def test_pynvml_walkthrough(fake_lib: Path, tmp_path: Path) -> None:
    config = FakeNvmlConfig(
        devices=3,
        names={0: "NVIDIA H200", 2: "NVIDIA A100-SXM4-80GB"},
        mig={1: True},
        power_limit_mw={2: 400_000},
        energy_cost_us=0,
    )
    out = run_scenario(fake_lib, config, """
        pynvml.nvmlInit()
        n = pynvml.nvmlDeviceGetCount()
        devs = []
        for i in range(n):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            fv = pynvml.nvmlDeviceGetFieldValues(h, [pynvml.NVML_FI_DEV_POWER_INSTANT,
                                                     pynvml.NVML_FI_DEV_POWER_AVERAGE])
            devs.append({
                "index": pynvml.nvmlDeviceGetIndex(h),
                "name": pynvml.nvmlDeviceGetName(h),
                "uuid": pynvml.nvmlDeviceGetUUID(h),
                "mig": pynvml.nvmlDeviceGetMigMode(h),
                "limit": pynvml.nvmlDeviceGetPowerManagementLimit(h),
                "enforced": pynvml.nvmlDeviceGetEnforcedPowerLimit(h),
                "power": pynvml.nvmlDeviceGetPowerUsage(h),
                "energy": pynvml.nvmlDeviceGetTotalEnergyConsumption(h),
                "fields": [(v.fieldId, v.nvmlReturn, v.value.uiVal) for v in fv],
            })
        try:
            pynvml.nvmlDeviceGetHandleByIndex(n)
            bad_index = None
        except pynvml.NVMLError as e:
            bad_index = e.value
        print(json.dumps({
            "count": n, "devs": devs, "bad_index": bad_index,
            "driver": pynvml.nvmlSystemGetDriverVersion(),
            "nvml": pynvml.nvmlSystemGetNVMLVersion(),
            "err": pynvml.nvmlErrorString(pynvml.NVML_ERROR_NOT_SUPPORTED),
        }))
        pynvml.nvmlShutdown()
    """, tmp_path)
    assert out["count"] == 3
    assert out["bad_index"] == NVML_ERROR_INVALID_ARGUMENT
    assert out["driver"] and out["nvml"]
    assert out["err"] == "Not Supported"
    devs = out["devs"]
    assert [d["index"] for d in devs] == [0, 1, 2]
    assert [d["name"] for d in devs] == ["NVIDIA H200", "Fake GPU 1", "NVIDIA A100-SXM4-80GB"]
    assert len({d["uuid"] for d in devs}) == 3 and all(d["uuid"].startswith("GPU-") for d in devs)
    assert [d["mig"] for d in devs] == [[0, 0], [1, 1], [0, 0]]
    assert [d["limit"] for d in devs] == [700_000, 700_000, 400_000]
    assert [d["enforced"] for d in devs] == [700_000, 700_000, 400_000]
    for d in devs:
        assert d["power"] == 100_000
        assert d["fields"] == [[186, 0, 100_000], [185, 0, 100_000]]


def test_default_without_config(fake_lib: Path, tmp_path: Path) -> None:
    out = run_scenario(fake_lib, None, """
        t0 = time.monotonic_ns()
        pynvml.nvmlInit()
        t1 = time.monotonic_ns()
        lib = ctypes.CDLL("libnvidia-ml.so.1")
        lib.fakeNvmlEpochNs.restype = ctypes.c_longlong
        h = pynvml.nvmlDeviceGetHandleByIndex(0)
        print(json.dumps({"count": pynvml.nvmlDeviceGetCount(),
                          "name": pynvml.nvmlDeviceGetName(h),
                          "power": pynvml.nvmlDeviceGetPowerUsage(h),
                          "epoch": lib.fakeNvmlEpochNs(), "t0": t0, "t1": t1}))
    """, tmp_path)
    assert out["count"] == 1
    assert out["name"] == "Fake GPU 0"
    assert out["power"] == 100_000
    assert out["t0"] <= out["epoch"] <= out["t1"]  # default epoch: the first init


@pytest.fixture(scope="module")
def sampled(fake_lib: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[FakeNvmlConfig, Any]:
    """Power, energy and field values of two devices read for 0.5 s, with call times."""
    config = FakeNvmlConfig(
        devices=2,
        # start 0.95 s ago: the 1 s average window fills during sampling, the profiles cycle
        epoch_ns=time.monotonic_ns() - 950_000_000,
        update_ms=20,
        energy_cost_us=0,
        energy_start_mj={0: 1_000_000_000, 1: 17},
        profiles={
            0: PowerProfile(((0.13, 120.0), (0.07, 690.0), (0.2, 300.0))),
            1: PowerProfile(((0.25, 50.5), (0.05, 700.0))),
        },
    )
    out = run_scenario(fake_lib, config, """
        pynvml.nvmlInit()
        hs = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(2)]
        ids = [pynvml.NVML_FI_DEV_POWER_INSTANT, pynvml.NVML_FI_DEV_POWER_AVERAGE]
        out = {"power": [], "energy": [], "fields": []}
        end = time.monotonic_ns() + 500_000_000
        while time.monotonic_ns() < end:
            for i, h in enumerate(hs):
                t0 = time.monotonic_ns(); p = pynvml.nvmlDeviceGetPowerUsage(h)
                t1 = time.monotonic_ns(); e = pynvml.nvmlDeviceGetTotalEnergyConsumption(h)
                t2 = time.monotonic_ns(); fv = pynvml.nvmlDeviceGetFieldValues(h, ids)
                t3 = time.monotonic_ns()
                out["power"].append((i, t0, t1, p))
                out["energy"].append((i, t1, t2, e))
                out["fields"].append((i, t2, t3, [
                    (v.fieldId, v.nvmlReturn, v.valueType, v.value.uiVal, v.timestamp,
                     v.latencyUsec) for v in fv]))
            time.sleep(0.002)
        lib = ctypes.CDLL("libnvidia-ml.so.1")
        out["counts"] = [lib.fakeNvmlCallCount(w) for w in range(3)]
        print(json.dumps(out))
    """, tmp_path_factory.mktemp("sampled"))
    return config, out


def test_power_follows_profile_with_refresh_quantisation(
    sampled: tuple[FakeNvmlConfig, Any],
) -> None:
    config, out = sampled
    seen: set[int] = set()
    for dev, t0, t1, p in out["power"]:
        allowed = allowed_values(lambda t: expected_power_mw(config, dev, t), config, t0, t1)
        assert p in allowed, (dev, t0 - config.epoch_ns, p, allowed)
        seen.add(p)
    assert len(seen) >= 4  # the profile really moved
    assert len(out["power"]) >= 100


def test_energy_counter_matches_model(sampled: tuple[FakeNvmlConfig, Any]) -> None:
    config, out = sampled
    last = {0: 0, 1: 0}
    for dev, t0, t1, e in out["energy"]:
        allowed = allowed_values(lambda t: expected_energy_mj(config, dev, t), config, t0, t1)
        assert e in allowed, (dev, t0 - config.epoch_ns, e, allowed)
        assert e >= last[dev]
        last[dev] = e
    assert last[0] > 1_000_000_000 + 950 * 120  # started at energy_start_mj, then grew


def test_field_values_match_model(sampled: tuple[FakeNvmlConfig, Any]) -> None:
    config, out = sampled
    for dev, t0, t1, values in out["fields"]:
        (id_i, ret_i, type_i, inst, ts_i, lat_i), (id_a, ret_a, type_a, avg, ts_a, _) = values
        assert (id_i, id_a) == (NVML_FI_DEV_POWER_INSTANT, NVML_FI_DEV_POWER_AVERAGE)
        assert ret_i == ret_a == NVML_SUCCESS
        assert type_i == type_a == NVML_VALUE_TYPE_UNSIGNED_INT
        assert lat_i >= 0
        assert ts_i == ts_a
        # one refresh instant explains timestamp and both values together
        candidates = {
            (
                expected_field_timestamp_us(config, t),
                expected_power_mw(config, dev, t),
                expected_power_average_mw(config, dev, t),
            )
            for t in (t0, t1)
        }
        assert (ts_i, inst, avg) in candidates, (dev, t0 - config.epoch_ns, candidates)


def test_call_counts(sampled: tuple[FakeNvmlConfig, Any]) -> None:
    _, out = sampled
    assert out["counts"][CALLS_POWER_USAGE] == len(out["power"])
    assert out["counts"][CALLS_ENERGY] == len(out["energy"])
    assert out["counts"][CALLS_FIELD_VALUES] == len(out["fields"])


def test_call_counts_are_thread_safe(fake_lib: Path, tmp_path: Path) -> None:
    out = run_scenario(fake_lib, FakeNvmlConfig(), """
        import threading
        lib = ctypes.CDLL("libnvidia-ml.so.1")   # ctypes drops the GIL around each call
        assert lib.nvmlInit_v2() == 0
        h = ctypes.c_void_p()
        assert lib.nvmlDeviceGetHandleByIndex_v2(0, ctypes.byref(h)) == 0
        def work():
            mw = ctypes.c_uint()
            for _ in range(20000):
                lib.nvmlDeviceGetPowerUsage(h, ctypes.byref(mw))
        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads: t.start()
        for t in threads: t.join()
        lib.fakeNvmlCallCount.restype = ctypes.c_ulonglong
        print(json.dumps(lib.fakeNvmlCallCount(0)))
    """, tmp_path)
    assert out == 80_000


def test_calls_cost_at_least_configured_time(fake_lib: Path, tmp_path: Path) -> None:
    config = FakeNvmlConfig(energy_cost_us=3900, power_cost_us=500)
    out = run_scenario(fake_lib, config, """
        pynvml.nvmlInit()
        h = pynvml.nvmlDeviceGetHandleByIndex(0)
        energy, power = [], []
        for _ in range(5):
            t0 = time.perf_counter(); pynvml.nvmlDeviceGetTotalEnergyConsumption(h)
            t1 = time.perf_counter(); pynvml.nvmlDeviceGetPowerUsage(h)
            t2 = time.perf_counter()
            energy.append(t1 - t0); power.append(t2 - t1)
        print(json.dumps({"energy": energy, "power": power}))
    """, tmp_path)
    assert min(out["energy"]) >= 3900e-6
    assert min(out["power"]) >= 500e-6


def test_fields_not_supported(fake_lib: Path, tmp_path: Path) -> None:
    out = run_scenario(fake_lib, FakeNvmlConfig(fields=False), """
        pynvml.nvmlInit()
        h = pynvml.nvmlDeviceGetHandleByIndex(0)
        fv = pynvml.nvmlDeviceGetFieldValues(h, [186, 185])
        print(json.dumps([v.nvmlReturn for v in fv]))
    """, tmp_path)
    assert out == [NVML_ERROR_NOT_SUPPORTED, NVML_ERROR_NOT_SUPPORTED]


def test_energy_not_supported(fake_lib: Path, tmp_path: Path) -> None:
    out = run_scenario(fake_lib, FakeNvmlConfig(energy=False), """
        pynvml.nvmlInit()
        h = pynvml.nvmlDeviceGetHandleByIndex(0)
        try:
            pynvml.nvmlDeviceGetTotalEnergyConsumption(h)
            print(json.dumps(None))
        except pynvml.NVMLError_NotSupported as e:
            print(json.dumps([e.value, pynvml.nvmlDeviceGetPowerUsage(h)]))
    """, tmp_path)
    assert out == [NVML_ERROR_NOT_SUPPORTED, 100_000]


@pytest.mark.parametrize("code", [NVML_ERROR_DRIVER_NOT_LOADED, NVML_ERROR_UNKNOWN, 4])
def test_init_error_propagates(fake_lib: Path, tmp_path: Path, code: int) -> None:
    out = run_scenario(fake_lib, FakeNvmlConfig(init_error=code), """
        try:
            pynvml.nvmlInit()
            print(json.dumps(None))
        except pynvml.NVMLError as e:
            print(json.dumps([e.value, type(e).__name__, str(e)]))
    """, tmp_path)
    assert out[0] == code
    assert out[1] != "NVMLError"  # pynvml mapped it to its subclass
    assert out[2]


def test_bad_config_fails_init_loudly(fake_lib: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "bad.conf"
    cfg.write_text("devices 1\nwatts 0 100\n")
    proc = run_scenario(fake_lib, cfg, """
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as e:
            print(json.dumps(e.value))
    """, tmp_path, check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == NVML_ERROR_UNKNOWN
    assert "unknown directive 'watts'" in proc.stderr


def test_refcounted_init_and_config_reread(fake_lib: Path, tmp_path: Path) -> None:
    second = FakeNvmlConfig(devices=4, mig={3: True}).write(tmp_path / "second.conf")
    out = run_scenario(fake_lib, FakeNvmlConfig(devices=2), f"""
        def code(fn, *args):
            try:
                fn(*args)
                return 0
            except pynvml.NVMLError as e:
                return e.value
        pynvml.nvmlInit()
        pynvml.nvmlInit()
        os.environ["{CONFIG_ENV}"] = {str(second)!r}
        pynvml.nvmlInit()                       # refcount 2 -> 3: no re-read
        counts = [pynvml.nvmlDeviceGetCount()]
        pynvml.nvmlShutdown(); pynvml.nvmlShutdown()
        counts.append(pynvml.nvmlDeviceGetCount())   # still initialised once
        pynvml.nvmlShutdown()
        after = code(pynvml.nvmlDeviceGetCount)
        extra_shutdown = code(pynvml.nvmlShutdown)
        pynvml.nvmlInit()                       # 0 -> 1: reads the second config
        counts.append(pynvml.nvmlDeviceGetCount())
        mig = pynvml.nvmlDeviceGetMigMode(pynvml.nvmlDeviceGetHandleByIndex(3))
        print(json.dumps({{"counts": counts, "after": after, "extra": extra_shutdown,
                          "mig": mig}}))
    """, tmp_path)
    assert out["counts"] == [2, 2, 4]
    assert out["after"] == NVML_ERROR_UNINITIALIZED
    assert out["extra"] == NVML_ERROR_UNINITIALIZED
    assert out["mig"] == [1, 1]


def test_rtld_global_load_serves_pynvml_by_soname(fake_lib: Path, tmp_path: Path) -> None:
    config = FakeNvmlConfig(names={0: "Loaded By Path"})
    out = run_scenario(fake_lib, config, """
        ctypes.CDLL(os.environ["FAKE_NVML_LIB"], mode=ctypes.RTLD_GLOBAL)
        pynvml.nvmlInit()                       # dlopen("libnvidia-ml.so.1") finds it by soname
        print(json.dumps(pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(0))))
    """, tmp_path, ld_library_path=False)
    assert out == "Loaded By Path"


# ---- the C interface through ctypes, as a dlopen/dlsym sampler sees it ----------------------


class FieldValue(ctypes.Structure):
    """nvmlFieldValue_t as nvml.h declares it, written independently of pynvml."""

    class Value(ctypes.Union):
        _fields_ = [
            ("dVal", ctypes.c_double),
            ("uiVal", ctypes.c_uint),
            ("ulVal", ctypes.c_ulong),
            ("ullVal", ctypes.c_ulonglong),
            ("sllVal", ctypes.c_longlong),
            ("siVal", ctypes.c_int),
            ("usVal", ctypes.c_ushort),
        ]

    _fields_ = [
        ("fieldId", ctypes.c_uint),
        ("scopeId", ctypes.c_uint),
        ("timestamp", ctypes.c_longlong),
        ("latencyUsec", ctypes.c_longlong),
        ("valueType", ctypes.c_int),
        ("nvmlReturn", ctypes.c_int),
        ("value", Value),
    ]


def test_field_value_layout_matches_pynvml() -> None:
    if pynvml is None:
        pytest.skip("needs nvidia-ml-py (pynvml)")
    assert ctypes.sizeof(FieldValue) == 40
    assert ctypes.sizeof(pynvml.c_nvmlFieldValue_t) == 40
    for name, _ in FieldValue._fields_:
        assert getattr(FieldValue, name).offset == getattr(pynvml.c_nvmlFieldValue_t, name).offset


def test_field_values_through_ctypes(fake_lib: Path, tmp_path: Path) -> None:
    config = FakeNvmlConfig(
        epoch_ns=time.monotonic_ns() - 5_000_000_000,
        update_ms=1000,  # one refresh a second: the read below sees a known instant
        profiles={0: PowerProfile(((2.0, 250.0), (3.0, 400.0)))},
    )
    # the fields are declared in the child exactly as FieldValue above
    out = run_scenario(fake_lib, config, """
        class Value(ctypes.Union):
            _fields_ = [("dVal", ctypes.c_double), ("uiVal", ctypes.c_uint),
                        ("ulVal", ctypes.c_ulong), ("ullVal", ctypes.c_ulonglong),
                        ("sllVal", ctypes.c_longlong), ("siVal", ctypes.c_int),
                        ("usVal", ctypes.c_ushort)]
        class FieldValue(ctypes.Structure):
            _fields_ = [("fieldId", ctypes.c_uint), ("scopeId", ctypes.c_uint),
                        ("timestamp", ctypes.c_longlong), ("latencyUsec", ctypes.c_longlong),
                        ("valueType", ctypes.c_int), ("nvmlReturn", ctypes.c_int),
                        ("value", Value)]
        lib = ctypes.CDLL(os.environ["FAKE_NVML_LIB"])
        assert lib.nvmlInitWithFlags(0) == 0
        h = ctypes.c_void_p()
        assert lib.nvmlDeviceGetHandleByIndex_v2(0, ctypes.byref(h)) == 0
        vals = (FieldValue * 4)()
        for v, fid in zip(vals, (186, 185, 1, 0)):
            v.fieldId = fid
            v.value.ullVal = 0xDEADBEEFDEADBEEF    # the fake must clear the whole union
        t0 = time.monotonic_ns()
        ret = lib.nvmlDeviceGetFieldValues(h, ctypes.c_int(4), vals)
        t1 = time.monotonic_ns()
        bad = lib.nvmlDeviceGetFieldValues(ctypes.c_void_p(12345), 1, vals)
        print(json.dumps({"ret": ret, "bad": bad, "t0": t0, "t1": t1, "vals": [
            (v.fieldId, v.nvmlReturn, v.valueType, v.value.uiVal, v.value.ullVal, v.timestamp)
            for v in vals]}))
    """, tmp_path)
    assert out["ret"] == NVML_SUCCESS
    assert out["bad"] == NVML_ERROR_INVALID_ARGUMENT
    (fi, ri, ti, inst, inst_ull, ts), (fa, ra, ta, avg, _, _), unknown, zero = out["vals"]
    assert (fi, ri, ti) == (186, NVML_SUCCESS, NVML_VALUE_TYPE_UNSIGNED_INT)
    assert (fa, ra, ta) == (185, NVML_SUCCESS, NVML_VALUE_TYPE_UNSIGNED_INT)
    assert inst_ull == inst  # upper half of the union zeroed
    t = out["t0"]
    if refresh_instant_ns(config, out["t0"]) != refresh_instant_ns(config, out["t1"]):
        pytest.skip("a refresh fell inside the call")  # one chance in many thousands
    assert inst == expected_power_mw(config, 0, t) and inst in (250_000, 400_000)
    assert avg == expected_power_average_mw(config, 0, t)
    assert ts == expected_field_timestamp_us(config, t)
    assert unknown[:2] == [1, NVML_ERROR_NOT_SUPPORTED]
    assert zero[:2] == [0, NVML_ERROR_INVALID_ARGUMENT]
