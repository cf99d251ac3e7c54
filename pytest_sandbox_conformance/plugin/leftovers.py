"""What a session leaves behind, and what it sweeps of others: the session's end on a real engine
and its runs' state folders.

* At the end a live session removes its containers. When it cannot (the engine stopped
  answering, or refused), it says so with the ``docker rm`` command that removes them, and keeps
  its lock *file*: the next session on this machine sees a dead session and sweeps them.
* ``--sandbox-keep`` keeps them on purpose and prints the same command (the lock file goes: the
  kept containers are left alone by later sessions).
* Runs keep drivers' state in folders under one session state folder per process
  (``live/state.py``); the folders of processes that died (SIGKILL) are swept when the suite
  starts.
"""

from __future__ import annotations

from pathlib import Path

from ..engines.base import EngineError
from ..live import SESSION_LABEL
from ..live.state import SessionState, sweep_state

__all__ = ["StateFolders", "finish_live", "removal_hint"]


def removal_hint(live) -> str:
    return (f"  docker rm -f $(docker ps -aq --filter label={SESSION_LABEL}={live.session})\n"
            "  (containers of drivers that do not apply sandbox labels carry the namespace "
            f"label {live.namespace_prefix}-*)")


def finish_live(live, keep: bool) -> str | None:
    """Remove what is left of the session ``live`` (or keep it); release its lock. Returns what
    to print, if anything."""
    message = None
    keep_file = False
    try:
        if keep:
            left = live.leftovers()
            if left:
                message = (f"sandbox conformance: kept {len(left)} container(s) "
                           f"(--sandbox-keep); remove them with:\n{removal_hint(live)}")
        else:
            live.cleanup()
    except EngineError as exc:
        keep_file = True
        message = (f"sandbox conformance: could not remove the containers of session "
                   f"{live.session}: {exc}\n  the next run on this machine removes them (its "
                   f"header says 'swept'); or, once the engine answers:\n{removal_hint(live)}")
    finally:
        live.release(keep_file=keep_file)
    return message


class StateFolders:
    """The runs' state root of this process: a session state folder under ``root``, made on
    first use; dead processes' folders under ``root`` are swept when it is made."""

    def __init__(self, root: Path | None) -> None:
        self.root = root
        self.swept: list[Path] = sweep_state(root) if root is not None else []
        self._state = SessionState(root) if root is not None else None

    def path(self) -> Path | None:
        return self._state.open() if self._state is not None else None

    def close(self) -> None:
        if self._state is not None:
            self._state.close()
