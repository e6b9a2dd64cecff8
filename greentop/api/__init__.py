"""greentop's API without any view: devices, an in-process Monitor, measurement windows.

``devices()`` lists the channels ``greentop devices`` shows; ``Monitor`` runs the compiled sampler
in the calling process and measures windows (``window``, ``begin``/``end``, decorator) and
``greentop.phase`` calls; its measurements are the ``attribution`` result types that
``greentop.load(path).summary()`` returns. Nothing here imports Textual.
"""

from greentop.api.devices import DeviceChannel, Devices, devices
from greentop.api.monitor import Monitor, MonitorError, Window, select_channels

__all__ = ["DeviceChannel", "Devices", "Monitor", "MonitorError", "Window", "devices", "select_channels"]
