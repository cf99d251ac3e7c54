"""The observation gate: a Docker Engine API proxy that holds a driver's container-list requests
until the schedule releases them (``proxy.py``). Standard library only."""

from .proxy import LIST_PATH, STREAM_PATH, GateError, GateRecord, GateTimeout, ObservationGate

__all__ = ["GateError", "GateRecord", "GateTimeout", "LIST_PATH", "ObservationGate",
           "STREAM_PATH"]
