"""Container engines behind one interface: an in-memory fake and real Docker/Podman.

Engines know nothing about drivers. Import the concrete engines from their modules
(``engines.fake``, ``engines.docker``) so that importing the interface stays cheap.
"""

from .base import (
    ACTIVE_STATES,
    ALL_STATES,
    NON_TERMINAL_STATES,
    TERMINAL_STATES,
    Container,
    ContainerConfig,
    ContainerSpec,
    DeviceRequest,
    Engine,
    EngineConflict,
    EngineError,
    EngineInvalid,
    EngineNotFound,
    EngineUnavailable,
    Mount,
)

__all__ = [
    "ACTIVE_STATES",
    "ALL_STATES",
    "NON_TERMINAL_STATES",
    "TERMINAL_STATES",
    "Container",
    "ContainerConfig",
    "ContainerSpec",
    "DeviceRequest",
    "Engine",
    "EngineConflict",
    "EngineError",
    "EngineInvalid",
    "EngineNotFound",
    "EngineUnavailable",
    "Mount",
]
