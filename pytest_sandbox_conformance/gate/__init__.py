"""The observation gate: a Docker Engine API proxy that holds a driver's container-list requests
and buffers its engine event streams until the schedule releases them. Standard library only.

``proxy.py`` serves the connections (:class:`ObservationGate`; ``lists.py`` and ``events.py``
what it serves for container lists and engine event streams), ``policy.py`` decides what is held
and when and makes the waits (observe, quiet, start-up; ``buffers.py`` its part for the events of
engine event streams), ``upstream.py`` reaches the engine (Unix,
TCP, TLS), ``wire.py`` reads and writes HTTP/1.1, ``log.py`` keeps the records, ``errors.py`` the
errors.
"""

from .errors import GateError, GateTimeout
from .log import GateRecord
from .proxy import ObservationGate
from .wire import EVENTS_PATH, LIST_PATH, STREAM_PATH

__all__ = ["EVENTS_PATH", "GateError", "GateRecord", "GateTimeout", "LIST_PATH",
           "ObservationGate", "STREAM_PATH"]
