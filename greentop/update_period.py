"""What a sensor's update period means, in one place: ``greentop devices`` and the summary say it
the same way.

The update period is measured, not looked up: the median interval between changes of the raw
reading (:func:`greentop.energy.update_period_s`). A sensor that changes at every read (the CPU
estimate is computed at each read; a fast counter sampled slowly) only shows that it is at least
as fast as the reads, so its measured period is the read interval, not a property of the sensor:
say so instead of printing the read interval as if it were the sensor's.
"""

from __future__ import annotations

# Changes at least every 1.5 read intervals count as "at every read": jitter in the lane's ticks
# spreads the measured median a little around the read interval.
EVERY_READ_RATIO = 1.5


def period_text(period_s: float) -> str:
    """A short period for reading: "100 ms", "20.0 ms", "977 us", "1.00 s"."""
    if period_s >= 1.0:
        return f"{period_s:.2f} s"
    if period_s >= 1e-3:
        return f"{period_s * 1e3:.1f} ms"
    return f"{period_s * 1e6:.0f} us"


def changes_at_every_read(update_period_s: float | None, read_interval_s: float | None) -> bool:
    return bool(update_period_s and read_interval_s and update_period_s <= EVERY_READ_RATIO * read_interval_s)


def update_period_text(update_period_s: float | None, read_interval_s: float | None, estimated: bool = False) -> str:
    """"updates every 977 us", or "changes at every read (every 100.0 ms)" when the reads are the
    limit ("computed at every read" for the CPU estimate), or "no change seen"."""
    if update_period_s is None:
        return "no change seen"
    if estimated or changes_at_every_read(update_period_s, read_interval_s):
        verb = "computed" if estimated else "changes"
        shown = read_interval_s if read_interval_s else update_period_s
        return f"{verb} at every read (every {period_text(shown)})"
    return f"updates every {period_text(update_period_s)}"
