"""The event rules (contract OWN-10, OWN-17): what the driver tells its watchers, and when.

* A snapshot event when a sandbox's snapshot changes; a Deleted event only from an explicit delete.
* A Warning per distinct *condition*, keyed (``replacement-intent:A:B``, ``missing:A``, ...): raised
  when the key appears, not again while it stays, and again if it clears and comes back.
* Events raised before anyone watches are kept and delivered to the first watcher; every watcher
  also starts with the current snapshot of every sandbox (as ``WatchSandboxes`` does).
"""

from __future__ import annotations

from collections import deque
from typing import Callable, Iterable

from pytest_sandbox_conformance.api import Event, PlatformEvent, Snapshot, SnapshotEvent

from .decision import Notice

__all__ = ["EventHub", "Watcher"]

#: Events kept for the first watcher at most; older ones are dropped first.
BACKLOG_LIMIT = 10_000


class Watcher:
    """One subscriber's queue of events. ``drain()`` returns and forgets what arrived."""

    def __init__(self, hub: "EventHub", initial: Iterable[Event]) -> None:
        self._hub = hub
        self._queue: deque[Event] = deque(initial)

    def drain(self) -> list[Event]:
        events = list(self._queue)
        self._queue.clear()
        return events

    def pending(self) -> int:
        """How many events wait to be drained."""
        return len(self._queue)

    def close(self) -> None:
        self._hub._detach(self)

    def _push(self, event: Event) -> None:
        self._queue.append(event)


class EventHub:
    """Fans events out to watchers; deduplicates notices per sandbox."""

    def __init__(self) -> None:
        self._watchers: list[Watcher] = []
        self._backlog: deque[Event] | None = deque(maxlen=BACKLOG_LIMIT)  # None once watched
        self._active: dict[str, frozenset[str]] = {}
        self._last: dict[str, Snapshot] = {}

    def watch(self, current: Callable[[], Iterable[Snapshot]]) -> Watcher:
        """A new watcher: the current snapshots, then (for the first watcher) the backlog."""
        initial: list[Event] = [SnapshotEvent(s) for s in current()]
        if self._backlog is not None:
            initial.extend(e for e in self._backlog if not isinstance(e, SnapshotEvent))
            self._backlog = None
        watcher = Watcher(self, initial)
        self._watchers.append(watcher)
        return watcher

    def _detach(self, watcher: Watcher) -> None:
        if watcher in self._watchers:
            self._watchers.remove(watcher)

    def emit(self, event: Event) -> None:
        if self._backlog is not None:
            self._backlog.append(event)
        for watcher in self._watchers:
            watcher._push(event)

    def snapshot(self, snap: Snapshot) -> None:
        """Emit a snapshot event if it differs from the last one emitted for that sandbox."""
        if self._last.get(snap.sandbox_id) != snap:
            self._last[snap.sandbox_id] = snap
            self.emit(SnapshotEvent(snap))

    def notices(self, sandbox_id: str, notices: Iterable[Notice]) -> None:
        """The complete set of conditions that hold for ``sandbox_id`` now (OWN-17)."""
        notices = list(notices)
        keys = frozenset(n.key for n in notices)
        before = self._active.get(sandbox_id, frozenset())
        if keys == before:
            return
        for notice in notices:
            if notice.key not in before:
                self.emit(PlatformEvent(sandbox_id, notice.type, notice.reason, notice.message,
                                        notice.metadata))
        if keys:
            self._active[sandbox_id] = keys
        else:
            self._active.pop(sandbox_id, None)

    def forget(self, sandbox_id: str) -> None:
        self._active.pop(sandbox_id, None)
        self._last.pop(sandbox_id, None)
