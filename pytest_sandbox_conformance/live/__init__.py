"""Live safety: the suite touches only containers it created, and leaves none behind.

``session.py`` claims a session (labels, a lock file), sweeps the leftovers of dead sessions and
removes a session's containers at its end; ``gpu.py`` finds out which GPU request styles a real
engine puts in effect and what a container sees of its GPU. No pytest here.
"""

from .session import (
    NAMESPACE_PREFIX,
    SESSION_LABEL,
    LiveSession,
    SweepResult,
    default_lock_dir,
    open_engine,
)

__all__ = ["NAMESPACE_PREFIX", "SESSION_LABEL", "LiveSession", "SweepResult", "default_lock_dir",
           "open_engine"]
