"""The observation gate's errors. Standard library only."""

from __future__ import annotations

__all__ = ["GateError", "GateTimeout"]


class GateError(Exception):
    """The observation gate could not do what was asked; the message says why and what to do."""


class GateTimeout(GateError):
    """Something the gate waited for did not happen in time; the message says what was seen."""
