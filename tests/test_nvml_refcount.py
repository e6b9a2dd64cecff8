"""Two users of the compiled NVML readers in one process (two Monitors, a Monitor beside a
recording): the second must keep reading after the first lets NVML go."""

from __future__ import annotations

import time
from typing import Callable

from greentop.sampler import Sampler
from greentop.sources import nvml
from tests.fakes.nvml import FakeNvmlConfig

Install = Callable[[FakeNvmlConfig], FakeNvmlConfig]


def test_second_sampler_keeps_reading_after_the_first_stops(fake_nvml: Install) -> None:
    fake_nvml(FakeNvmlConfig(energy_cost_us=0))
    power = [c for c in nvml.discover().channels if c.name == "nvml:gpu0:power"]
    first = Sampler(power, rate_hz=500).start()
    second = Sampler(power, rate_hz=500).start()
    try:
        time.sleep(0.1)
        first.stop()
        before = second.health().channels["nvml:gpu0:power"]
        time.sleep(0.2)
        after = second.health().channels["nvml:gpu0:power"]
        assert after.reads > before.reads
        # Without a reference count the first stop shut NVML down under the second.
        assert after.errors == 0, after.last_error
    finally:
        second.stop()
