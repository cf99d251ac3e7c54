"""The ``WatchSandboxes`` stream of a black-box driver, read by a background thread: the
snapshots and events it delivered, when it sent its headers and messages, and the waits on it.

The reader first waits for the stream's headers (grpcio's ``initial_metadata()``; a tonic server
sends them when its handler returns the stream, a grpcio server with its first message unless
the handler sends them earlier), then takes every message: ``sandbox`` becomes a
:class:`~pytest_sandbox_conformance.api.SnapshotEvent` (and the sandbox's current snapshot),
``deleted`` a :class:`~pytest_sandbox_conformance.api.DeletedEvent`, ``platform_event`` a
:class:`~pytest_sandbox_conformance.api.PlatformEvent`; unknown payloads are ignored. Each
message is also a timeline note.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any, Callable

import grpc

from ..api import Condition, DeletedEvent, Event, PlatformEvent, Snapshot, SnapshotEvent
from ..grpc import compute_driver_pb2 as pb

__all__ = ["Watch", "describe_message", "snapshot_from_pb"]


def snapshot_from_pb(sandbox: pb.DriverSandbox, namespace: str = "") -> Snapshot:
    """A ``DriverSandbox`` as the contract's snapshot: instance ID and the ``Ready`` condition."""
    status = sandbox.status
    ready = next((c for c in status.conditions if c.type == "Ready"), None)
    condition = (Condition(ready.status or "Unknown", ready.reason, ready.message)
                 if ready is not None else Condition("Unknown", "NoReadyCondition",
                                                     "the driver reported no Ready condition"))
    return Snapshot(sandbox.id, sandbox.name or status.sandbox_name,
                    sandbox.namespace or namespace, status.instance_id or None, condition)


def describe_message(message: pb.WatchSandboxesEvent) -> str:
    kind = message.WhichOneof("payload")
    if kind == "sandbox":
        snap = snapshot_from_pb(message.sandbox.sandbox)
        return (f"sandbox {snap.sandbox_id} instance={(snap.instance_id or '-')[:12]} "
                f"Ready={snap.ready.status} {snap.ready.reason}")
    if kind == "deleted":
        return f"deleted {message.deleted.sandbox_id}"
    if kind == "platform_event":
        e = message.platform_event.event
        return f"platform_event {message.platform_event.sandbox_id or '-'} {e.type} {e.reason}"
    return f"unknown payload {kind!r} (ignored)"


class Watch:
    """One ``WatchSandboxes`` stream at a time (:meth:`open` replaces the last); the snapshots
    survive a reopen unless :meth:`forget` clears them. ``note(at, line)`` gets a timeline line
    for every message."""

    def __init__(self, namespace: str, note: Callable[[float, str], None]) -> None:
        self.namespace = namespace
        self._note = note
        self.cond = threading.Condition()
        self.snaps: dict[str, Snapshot] = {}
        self.events: queue.Queue[Event] = queue.Queue()
        self._call: Any = None
        self._reader: threading.Thread | None = None
        self.error: str | None = None
        self.opened_at = 0.0
        self.headers_at: float | None = None
        self.messages = 0
        self.last_message = 0.0
        #: Sandbox ids the current stream sent a message about.
        self.seen: set[str] = set()
        self.closing = False

    # -- life ----------------------------------------------------------------------------------

    def open(self, stub: Any) -> None:
        with self.cond:
            self.error = None
            self.headers_at = None
            self.messages = 0
            self.seen = set()
            self.opened_at = time.monotonic()
        call = stub.WatchSandboxes(pb.WatchSandboxesRequest())  # long-lived: no deadline
        self._call = call
        self._reader = threading.Thread(target=self._read, args=(call,), daemon=True,
                                        name="grpc-watch")
        self._reader.start()

    def close(self) -> None:
        call, self._call = self._call, None
        if call is not None:
            call.cancel()
        if self._reader is not None:
            self._reader.join(timeout=5)
            self._reader = None

    def forget(self) -> None:
        """Drop the snapshots (a new driver process reports them all again)."""
        with self.cond:
            self.snaps.clear()

    def _read(self, call: Any) -> None:
        try:
            call.initial_metadata()  # returns when the headers came (or the call ended)
            with self.cond:
                if self._call is call and self.headers_at is None:
                    self.headers_at = time.monotonic()
                self.cond.notify_all()
            for message in call:
                self._accept(message)
            if not self.closing and self._call is call:
                with self.cond:
                    self.error = "the driver closed the WatchSandboxes stream"
                    self.cond.notify_all()
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED or not self.closing:
                if self._call is call:
                    with self.cond:
                        self.error = f"WatchSandboxes failed: {exc.code().name} {exc.details()}"
                        self.cond.notify_all()

    def _accept(self, message: pb.WatchSandboxesEvent) -> None:
        kind = message.WhichOneof("payload")
        event: Event | None = None
        with self.cond:
            now = time.monotonic()
            self.last_message = now
            self.messages += 1
            if self.headers_at is None:
                self.headers_at = now
            self._note(now, f"grpc WatchSandboxes <- {describe_message(message)}")
            if kind == "sandbox":
                snap = snapshot_from_pb(message.sandbox.sandbox, self.namespace)
                self.snaps[snap.sandbox_id] = snap
                self.seen.add(snap.sandbox_id)
                event = SnapshotEvent(snap)
            elif kind == "deleted":
                self.snaps.pop(message.deleted.sandbox_id, None)
                self.seen.add(message.deleted.sandbox_id)
                event = DeletedEvent(message.deleted.sandbox_id)
            elif kind == "platform_event":
                e = message.platform_event.event
                event = PlatformEvent(message.platform_event.sandbox_id, e.type, e.reason,
                                      e.message, dict(e.metadata))
            if event is not None:  # an unknown payload from a newer driver is ignored
                self.events.put(event)
            self.cond.notify_all()

    # -- reading -------------------------------------------------------------------------------

    def snapshot(self, sandbox_id: str) -> Snapshot | None:
        with self.cond:
            return self.snaps.get(sandbox_id)

    def drain(self) -> list[Event]:
        out: list[Event] = []
        while True:
            try:
                out.append(self.events.get_nowait())
            except queue.Empty:
                return out

    def silent_for(self) -> float:
        """Seconds since the stream's last message (or its opening)."""
        with self.cond:
            return time.monotonic() - max(self.last_message, self.opened_at)

    # -- waits -----------------------------------------------------------------------------------

    def wait_for(self, predicate: Callable[[], bool], timeout: float,
                 dead: Callable[[], bool] = lambda: False, tick: float = 0.1) -> bool:
        """Until ``predicate()`` (called under :attr:`cond`) holds; False when ``timeout``
        passes, the stream broke or ``dead()`` (checked every ``tick`` seconds)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0 or self.error:
                    return predicate()
                self.cond.wait(min(left, tick))
                if dead():
                    return predicate()
        return True

    def wait_quiet(self, quiet: float, timeout: float, since: float = 0.0) -> bool:
        """Until the stream has said nothing for ``quiet`` seconds (counted from ``since`` at
        the earliest: messages the driver sent just before may still be on their way); False
        after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                now = time.monotonic()
                left = max(self.last_message, self.opened_at, since) + quiet - now
                if left <= 0:
                    return True
                if now >= deadline or self.error:
                    return False
                self.cond.wait(min(left, deadline - now))
