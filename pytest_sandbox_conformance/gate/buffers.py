"""The policy's part for engine event streams: what each stream's engine sent, what was let go
and written, how long an observation waits for late events, and how one observation releases
them. Mixed into :class:`~.policy.Policy` (its rules are in :mod:`.policy`'s docstring), whose
lock and log these methods use. Standard library only.
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING

from .log import GateRecord, count
from .wire import EventLine

if TYPE_CHECKING:
    from .policy import Request

__all__ = ["CLOCK_SLACK", "EVENT_QUIET", "EVENT_SETTLE", "EventBuffers", "EventStream",
           "LAG_SAMPLES", "MAX_SETTLE"]

#: How long an observation waits, from its call, for an engine's late events before it releases
#: them, by engine: Podman's file event logger polls its file (``Libpod-Api-Version`` on the
#: stream's answer), Docker sends events at once. The least wait: one and a half times the
#: longest delay of the stream's last :data:`LAG_SAMPLES` events (engine time to arrival) is
#: waited when longer, up to :data:`MAX_SETTLE`.
EVENT_SETTLE = {"podman": 0.4, "docker": 0.05}
LAG_SAMPLES = 32
MAX_SETTLE = 2.0
#: The least quiet time after an observation that released events (or no list): the driver
#: must have made no request for this long, since there is no next poll to wait for.
EVENT_QUIET = 0.1
#: Engine clocks are compared with this one to tell an event that came late from one that
#: happened after a release; this much difference is tolerated.
CLOCK_SLACK = 0.005


class _Event:
    __slots__ = ("line", "arrived", "note", "let_go", "late_for")

    def __init__(self, line: EventLine, arrived: float) -> None:
        self.line = line
        self.arrived = arrived
        self.note = ""  # why it was let go ("" while buffered)
        self.let_go = 0.0
        self.late_for = 0


class EventStream:
    """An open engine event stream: the events the engine sent, and how far they were let go
    (``delivered``) and written to the client (``written``)."""

    def __init__(self, req: Request, engine: str) -> None:
        self.req = req
        self.engine = engine
        self.events: list[_Event] = []
        self.delivered = 0
        self.written = 0
        self.last_bytes = time.monotonic()
        #: How late the engine's last events arrived (seconds from their engine time).
        self.lags: deque[float] = deque(maxlen=LAG_SAMPLES)
        self.upstream_done = False
        self.client_gone = False

    def pending(self) -> int:
        return len(self.events) - self.delivered

    def settle(self, fixed: float | None) -> float:
        """How long an observation waits for this stream's late events (module docstring)."""
        if fixed is not None:
            return fixed
        base = EVENT_SETTLE.get(self.engine, EVENT_SETTLE["docker"])
        return min(MAX_SETTLE, max([base] + [1.5 * lag for lag in self.lags]))



class EventBuffers:
    """The event-stream half of the policy (mixed into :class:`~.policy.Policy`)."""

    def event_streams(self) -> int:
        """How many engine event streams are open now (their events held while holding)."""
        with self._lock:
            return sum(1 for s in self._streams if not s.client_gone)

    def buffered_events(self) -> int:
        """How many events wait for an observation now."""
        with self._lock:
            return sum(s.pending() for s in self._streams)

    def _held_streams(self) -> list[EventStream]:
        return [s for s in self._streams if not s.client_gone]

    def _settle(self, streams: list[EventStream], called: float, deadline: float) -> None:
        """Wait (under the lock) the streams' settle time from ``called``: the engine's events
        of what happened before the observation have then arrived."""
        until = called + max(s.settle(self.event_settle) for s in streams)
        while not self._closed:
            now = time.monotonic()
            if now >= until or now >= deadline:
                return
            self._cond.wait(min(until, deadline) - now)

    def _release_events(self, number: int) -> GateRecord:
        """Let go of every buffered event as observation ``number`` (under the lock); a summary
        record (the per-stream batches are logged as they are written)."""
        released = 0
        ids: list[str] = []
        now = time.monotonic()
        for stream in self._streams:
            if stream.client_gone:
                continue
            if not stream.pending():  # said, so a timeline shows the observation happened
                req = stream.req
                self._log.append(GateRecord(seq=req.seq, at=now, method=req.method,
                                            path=req.target, kind="events",
                                            disposition="released", status=200,
                                            note=f"observation {number}", held_s=0.0,
                                            duration_s=0.0))
            released += stream.pending()
            ids += [e.line.container for e in stream.events[stream.delivered:]]
            self._let_go(stream, f"observation {number}")
        self._cond.notify_all()
        first = next(iter(self._streams), None)
        return GateRecord(seq=first.req.seq if first else 0, at=now,
                          method=first.req.method if first else "GET",
                          path=first.req.target if first else "", kind="events",
                          disposition="released", status=200 if first else None,
                          note=f"observation {number}: {count(released, 'event')} released",
                          held_s=0.0, duration_s=0.0, ids=tuple(ids))

    def _let_go(self, stream: EventStream, note: str) -> None:
        """Mark every buffered event of ``stream`` to be written (under the lock)."""
        if not stream.pending():
            return
        now = time.monotonic()
        for event in stream.events[stream.delivered:]:
            late = f", late for observation {event.late_for}" if event.late_for else ""
            event.note = note + (late if note.startswith("observation") else "")
            event.let_go = now
        stream.delivered = len(stream.events)
        self._last_activity = now
        stream.req.wake()

    def _stream_opened(self, req: Request, engine: str) -> EventStream:
        stream = EventStream(req, engine)
        with self._cond:
            self._streams.append(stream)
            self._cond.notify_all()
        return stream

    def _event_arrived(self, stream: EventStream, line: EventLine) -> None:
        """An event the engine sent on ``stream``: let it go now, or buffer it."""
        now = time.monotonic()
        with self._cond:
            event = _Event(line, now)
            stream.events.append(event)
            stream.last_bytes = now
            if line.engine_time is not None and 0 <= time.time() - line.engine_time < 10:
                stream.lags.append(time.time() - line.engine_time)
            why = self._pass_note()
            quiet = self._quiet_for
            if why is not None:
                self._let_go(stream, why)
            elif (quiet is not None and line.engine_time is not None
                  and line.engine_time <= quiet[1] + CLOCK_SLACK):
                self._let_go(stream, f"observation {quiet[0]}, late")
            elif (self._last_release is not None and line.engine_time is not None
                  and line.engine_time <= self._last_release[1] + CLOCK_SLACK):
                event.late_for = self._last_release[0]
            self._cond.notify_all()

    def _stream_bytes(self, stream: EventStream) -> None:
        with self._cond:
            stream.last_bytes = time.monotonic()
            self._cond.notify_all()

    def _take_deliverable(self, stream: EventStream) -> list[_Event]:
        with self._lock:
            return stream.events[stream.written:stream.delivered]

    def _written(self, stream: EventStream, events: list[_Event]) -> None:
        """``events`` (from :meth:`_take_deliverable`) reached the client: log them in batches
        of one reason each."""
        now = time.monotonic()
        batches: list[list[_Event]] = []
        for event in events:
            if batches and batches[-1][0].note == event.note:
                batches[-1].append(event)
            else:
                batches.append([event])
        req = stream.req
        with self._cond:
            stream.written += len(events)
            self._last_activity = now
            for batch in batches:
                note = batch[0].note
                self._log.append(GateRecord(
                    seq=req.seq, at=batch[0].let_go, method=req.method, path=req.target,
                    kind="events", disposition="released" if note.startswith("observation")
                    else "passed", status=200, note=note,
                    held_s=round(max(0.0, batch[0].let_go - batch[0].arrived), 6),
                    duration_s=now - batch[0].let_go,
                    ids=tuple(e.line.container for e in batch),
                    events=tuple(e.line.describe() for e in batch)))
            self._cond.notify_all()

    def _stream_closed(self, stream: EventStream) -> None:
        with self._cond:
            stream.client_gone = True
            if stream in self._streams:
                self._streams.remove(stream)
            self._cond.notify_all()

