"""Driver adapters: the interface every driver is tested through, and the bundled ones."""

from .base import (
    ADAPTER_CAPABILITIES,
    ENTRY_POINT_GROUP,
    AdapterLoadError,
    DriverAdapter,
    DriverContext,
    DriverFactory,
    DriverProbe,
    check_adapter,
    load_factory,
)

__all__ = [
    "ADAPTER_CAPABILITIES",
    "ENTRY_POINT_GROUP",
    "AdapterLoadError",
    "DriverAdapter",
    "DriverContext",
    "DriverFactory",
    "DriverProbe",
    "check_adapter",
    "load_factory",
]
