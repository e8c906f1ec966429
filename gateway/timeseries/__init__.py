"""Time series over the gateway: time-window reads, resume after reconnect, live follow.

* :mod:`gateway.timeseries.proxy` - :class:`TimeSeries`, the client-side proxy (numpy only);
* :mod:`gateway.timeseries.reads` - the server-side reads (Python API over the storage);
* :mod:`gateway.timeseries.events` - the ``ts:*`` socket.io events;
* :mod:`gateway.timeseries.catalog` - series discovery (``ts:mrange``, the dashboard);
* :mod:`gateway.timeseries.downsample`, :mod:`~gateway.timeseries.times`,
  :mod:`~gateway.timeseries.shared` - slicing statistics, time parsing, shared reads.

The events are documented in ``docs/time-series-events.md``.
"""

from gateway.timeseries.proxy import Downsampled, Resumed, TimeSeries, TimeSeriesError, Window

__all__ = ["Downsampled", "Resumed", "TimeSeries", "TimeSeriesError", "Window"]
