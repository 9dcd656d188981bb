"""trioping: async ICMP echo (ping) for Trio.

    async with trioping.open_pinger() as pinger:
        stats = await pinger.ping("127.0.0.1", count=5)

Times are seconds (floats), as everywhere in Trio; RTTs come from kernel timestamps
(see :class:`RttClock`).  Public names are re-exported here; modules starting with ``_``
are private.
"""

import importlib
from typing import TYPE_CHECKING, Any

from ._errors import (
    InvalidArgumentError,
    PacketError,
    PermissionDeniedError,
    PingerClosedError,
    ResolutionError,
    SocketError,
    TriopingError,
)
from ._fanout import Fanout, FanoutItem, FanoutProgress, HostError, HostResult
from ._options import (
    DEFAULT_COUNT,
    DEFAULT_FANOUT_BUFFER,
    DEFAULT_INTERVAL,
    DEFAULT_RATE,
    DEFAULT_RESOLVE_CONCURRENCY,
    DEFAULT_STREAM_BUFFER,
    DEFAULT_TIMEOUT,
)
from ._packet import DEFAULT_SIZE, Family, InvalidReason
from ._pinger import Pinger, open_pinger, ping
from ._resolve import resolve
from ._results import (
    IcmpError,
    IcmpErrorKind,
    InvalidReply,
    LateReply,
    Outstanding,
    ProbeResult,
    Reply,
    RttClock,
    SendError,
    Timeout,
)
from ._socket import PathMtuDiscovery, SocketKind
from ._stats import PingStats, ResultsNotKeptError
from ._stream import PingStream

if TYPE_CHECKING:
    from ._mtr import Mtr, MtrHop, MtrHost, MtrReport
    from ._trace import Hop, HopResult, Trace

_LAZY = {
    "Hop": "._trace",
    "HopResult": "._trace",
    "Trace": "._trace",
    "Mtr": "._mtr",
    "MtrHop": "._mtr",
    "MtrHost": "._mtr",
    "MtrReport": "._mtr",
}
"""Names imported on first use: the trace modules cost a ping run's start-up ~5 ms."""


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'trioping' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The lazy names too, so that ``dir()`` and completion show the whole public API."""
    return sorted({*globals(), *_LAZY})


__version__ = "0.1.0"

__all__ = [
    "Mtr",
    "MtrHop",
    "MtrHost",
    "MtrReport",
    "Hop",
    "HopResult",
    "Trace",
    "DEFAULT_COUNT",
    "DEFAULT_FANOUT_BUFFER",
    "DEFAULT_INTERVAL",
    "DEFAULT_RATE",
    "DEFAULT_RESOLVE_CONCURRENCY",
    "DEFAULT_SIZE",
    "DEFAULT_STREAM_BUFFER",
    "DEFAULT_TIMEOUT",
    "Family",
    "Fanout",
    "FanoutItem",
    "FanoutProgress",
    "HostError",
    "HostResult",
    "IcmpError",
    "IcmpErrorKind",
    "InvalidArgumentError",
    "InvalidReason",
    "InvalidReply",
    "LateReply",
    "Outstanding",
    "PacketError",
    "PathMtuDiscovery",
    "PermissionDeniedError",
    "PingerClosedError",
    "PingStats",
    "PingStream",
    "Pinger",
    "ProbeResult",
    "Reply",
    "ResolutionError",
    "ResultsNotKeptError",
    "RttClock",
    "SendError",
    "SocketError",
    "SocketKind",
    "Timeout",
    "TriopingError",
    "open_pinger",
    "ping",
    "resolve",
]
