"""The shared timeline of a group of listeners (issue 12): clocks, the offset and drift of a
listener's clock against its sender's, and the arithmetic of "when is this sample due".

Nothing here touches a socket or an output: :mod:`appliance.wire.timesync` carries the time
exchange, :mod:`appliance.sender.timeserver` answers it, :mod:`appliance.listener.timesync` asks.
"""
