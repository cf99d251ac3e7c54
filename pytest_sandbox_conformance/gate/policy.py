"""Hold and release: what the observation gate does with each request, and the waits its user
makes (one observation, quiet, start-up). Standard library only; no socket I/O here but the
wake-ups of the threads that serve connections (``proxy.py``), which do the I/O. The events of
engine event streams are kept by :mod:`.buffers` (mixed into :class:`Policy`).

**What is held.** While the gate is *holding* (:meth:`Policy.set_holding`) and neither a
:meth:`~Policy.during` block nor :meth:`~Policy.start_up` is open:

- a **container-list request** (a ``GET`` of :data:`~.wire.LIST_PATH`) waits, unanswered and
  not even sent to the engine, until :meth:`~Policy.release` or :meth:`~Policy.observe` lets it
  go (then the engine is asked, so the answer reflects the engine at release time);
- the **events** of an open engine event stream (:func:`~.wire.is_event_stream`: Docker's
  ``/events``, Podman's ``/libpod/events``) are buffered as the engine sends them; the stream's
  head went to the client at once. An observation delivers every event buffered so far.

Otherwise lists are forwarded at once and events delivered as they come; each record says why
(note ``start-up``, ``during <label>`` or ``gate open``).

**One observation** (:meth:`~Policy.observe`): first, when an event stream is held, the gate
waits the stream's settle time from the call (an engine may send an event a moment after the
action that caused it: Podman's file event logger a quarter of a second later or more under
load, Docker at once; :data:`EVENT_SETTLE`, longer when the stream's recent events came later,
or :attr:`~Policy.event_settle` when set); then it releases the
held list (if one is held) and every buffered event, as the same observation number; then it
waits until the driver is *quiet*: its next list is held (when a list was released), every
released event was written, nothing it sent is in flight, and (when events were released, or no
list was) no request arrived for ``quiet`` seconds (at least :data:`EVENT_QUIET`). An event that
arrives during that wait and
that the engine timestamped at or before the release belongs to this observation and is
delivered at once (``observation N, late``); one that arrives after the wait is buffered for the
next observation and marked ``late for observation N``.

**Start-up** (:meth:`~Policy.start_up`): from the start of a driver process until its user says
the driver is up (it has answered ``GetCapabilities``, its watch stream has sent its headers and
its initial snapshot), lists pass and events are delivered (``start-up``): a driver lists the
engine to seed its state and to build its stream's first snapshot, and must not wait for a
schedule that has not begun. Those lists are not observations. When start-up ends the gate
holds again, and the driver's first held list is its first observation.

**In flight** (:meth:`~Policy.in_flight`): a request counts from its arrival (its head read)
until its answer is written, except held lists and long-lived streams (:data:`~.wire.STREAM_PATH`:
``/events``, ``attach``, ``wait``, ``logs?follow=1``, ``stats`` unless ``stream=0``).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import deque
from typing import Iterator

from .errors import GateError, GateTimeout
from .log import GateRecord, count, short_target
from .buffers import EVENT_QUIET, EVENT_SETTLE, EventBuffers, EventStream
from .wire import LIST_PATH, RequestHead, is_event_stream, is_stream

__all__ = ["EVENT_QUIET", "EVENT_SETTLE", "LIST_TIMEOUT", "LOG_LIMIT", "EventStream", "Policy",
           "Request"]

#: How long the engine may take to answer a list request that is not held.
LIST_TIMEOUT = 60.0
#: How many completed records the gate keeps until :meth:`Policy.drain_log`.
LOG_LIMIT = 10_000
_ORDERS = (None, "newest", "oldest")


class Request:
    """A request inside the gate: its head, its connection, and its state in the policy."""

    def __init__(self, seq: int, at: float, conn: socket.socket, head: RequestHead,
                 extra: bytes) -> None:
        self.seq = seq
        self.at = at
        self.conn = conn
        self.head = head
        self.extra = extra
        self.method = head.method
        self.target = head.target
        if head.method == "GET" and LIST_PATH.match(head.path):
            self.kind = "list"
        elif is_event_stream(head):
            self.kind = "events"
        else:
            self.kind = "other"
        self.note = ""
        # Held lists: "held" -> "release" | "open" | "close" (set by the gate) or "abandoned".
        self.state = ""
        self.order: str | None = None
        self.observation = 0
        self.timeout = LIST_TIMEOUT
        self.released_at: float | None = None
        self.wake_r: socket.socket | None = None
        self.wake_w: socket.socket | None = None
        # In flight while forwarding, unless a long-lived stream.
        self.forwarding = False
        self.stream = is_stream(head)
        self.upstream_sock: socket.socket | None = None
        self.seq_at_done = 0
        self.record: GateRecord | None = None
        self.done = threading.Event()

    def wake(self) -> None:
        if self.wake_w is not None:
            try:
                self.wake_w.send(b"x")
            except OSError:
                pass


def _wake_pair() -> tuple[socket.socket, socket.socket]:
    """A wake-up pair: the writing end never blocks (a full buffer already means "wake up")."""
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    return reader, writer


class Policy(EventBuffers):
    """The state of an observation gate and every decision and wait on it; thread-safe.

    The serving side (:class:`~.proxy.ObservationGate`, a subclass) calls :meth:`_admit` for
    each arrived request, :meth:`_event_arrived` for each event an engine stream sends, and
    :meth:`_finish` when a request is complete.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._release_lock = threading.Lock()
        self._holding = False
        self._refusing: str | None = None
        self._during: list[tuple[object, str]] = []
        self._starting: list[tuple[object, str]] = []
        self._held: deque[Request] = deque()
        self._streams: list[EventStream] = []
        self._active: set[Request] = set()
        self._log: deque[GateRecord] = deque(maxlen=LOG_LIMIT)
        self._seq = 0
        self._observations = 0
        self._last_arrival: tuple[float, str] | None = None
        self._last_activity = time.monotonic()
        self._last_release: tuple[int, float] | None = None  # (observation, wall clock)
        self._quiet_for: tuple[int, float] | None = None
        self._closed = False
        #: Seconds an observation waits for late events on held event streams; None: by engine
        #: and by the delays seen (:data:`EVENT_SETTLE`).
        self.event_settle: float | None = None

    # -- what the user sets ----------------------------------------------------------------

    @property
    def holding(self) -> bool:
        """Whether lists are held and events buffered (False at first: the gate is open)."""
        return self._holding

    @property
    def observations(self) -> int:
        """How many observations were released so far."""
        return self._observations

    @property
    def starting(self) -> bool:
        """Whether a :meth:`start_up` is open."""
        return bool(self._starting)

    def set_holding(self, on: bool, note: str = "gate opened") -> None:
        """Hold every list request that arrives from now on, and buffer events (``on``), or
        forward and deliver at once.

        Opening the gate lets go of what is held at that moment, in arrival order, unreordered
        (disposition ``"released"``, ``note``); none of it is an observation.
        """
        with self._cond:
            self._holding = bool(on)
            self._refusing = None
            opened: list[Request] = []
            if not on:
                opened = list(self._held)
                self._held.clear()
                for req in opened:
                    req.state = "open"
                    req.note = note
                for stream in self._streams:
                    self._let_go(stream, note)
            self._cond.notify_all()
        for req in opened:
            req.wake()

    def refuse_lists(self, why: str) -> None:
        """Answer every held list, and every list that arrives until :meth:`set_holding` or
        :meth:`start_up`, with ``503`` and ``why`` (recorded ``refused``): a driver about to be
        stopped is not left waiting for a poll, and observes nothing more. Buffered events stay
        buffered."""
        with self._cond:
            self._refusing = why
            refused = list(self._held)
            self._held.clear()
            for req in refused:
                req.state = "refuse"
                req.note = why
            self._cond.notify_all()
        for req in refused:
            req.wake()

    @contextlib.contextmanager
    def during(self, label: str) -> Iterator[None]:
        """While the block is open, list requests that arrive are forwarded at once and events
        delivered as they come (note ``during {label}``); requests already held stay held.
        Nestable and thread-safe."""
        with self._opened(self._during, label):
            yield

    @contextlib.contextmanager
    def start_up(self, label: str = "start-up") -> Iterator[None]:
        """A driver's start-up: lists pass and events are delivered (note ``start-up``), they
        are not observations; when the block ends the gate holds again (if holding)."""
        with self._opened(self._starting, label):
            yield

    @contextlib.contextmanager
    def _opened(self, blocks: list[tuple[object, str]], label: str) -> Iterator[None]:
        token = object()
        with self._cond:
            if blocks is self._starting:
                self._refusing = None
            blocks.append((token, label))
            for stream in self._streams:  # what is buffered now goes too
                self._let_go(stream, self._pass_note() or "")
            self._cond.notify_all()
        try:
            yield
        finally:
            with self._cond:
                blocks[:] = [entry for entry in blocks if entry[0] is not token]
                self._cond.notify_all()

    def _pass_note(self) -> str | None:
        """Why something arriving now is let go at once, or None: it is held (under the lock)."""
        if self._starting:
            return "start-up"
        if self._during:
            return f"during {self._during[-1][1]}"
        if not self._holding:
            return "gate open"
        return None

    # -- what the user reads ---------------------------------------------------------------

    def held_count(self) -> int:
        """How many list requests are held now (abandoned ones are dropped at once)."""
        with self._lock:
            return len(self._held)

    def in_flight(self) -> int:
        """How many requests are being forwarded now (from their arrival until their answer is
        written), held ones and long-lived streams (:data:`~.wire.STREAM_PATH`) not counted."""
        with self._lock:
            return self._in_flight()

    def _in_flight(self) -> int:
        return sum(1 for r in self._active if r.forwarding and not r.stream)

    def requests_seen(self) -> int:
        """How many requests arrived so far (the sequence number of the last one)."""
        with self._lock:
            return self._seq

    def idle_for(self) -> float:
        """Seconds since the last request arrived, finished or got events; 0 while one is in
        flight."""
        with self._lock:
            return 0.0 if self._in_flight() else time.monotonic() - self._last_activity

    def wait_held(self, timeout: float) -> bool:
        """Wait until at least one list request is held; False when ``timeout`` passes first."""
        with self._cond:
            return self._cond.wait_for(lambda: bool(self._held) or self._closed, timeout) \
                and bool(self._held)

    def wait_ready(self, timeout: float, idle: float) -> str | None:
        """After a start-up: wait until the driver can be observed. ``"list"`` as soon as a list
        request is held; ``"events"`` when an event stream is open and the driver has been idle
        at the gate for ``idle`` seconds (a driver that follows events may still poll too);
        None when ``timeout`` passes with neither."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if self._held:
                    return "list"
                if self._closed:
                    return None
                now = time.monotonic()
                streams = any(not s.client_gone for s in self._streams)
                quiet = not self._in_flight() and now - self._last_activity >= idle
                if streams and quiet:
                    return "events"
                if now >= deadline:
                    return "events" if streams else None
                wake_at = self._last_activity + idle if streams else deadline
                self._cond.wait(max(0.001, min(deadline, wake_at) - now))

    # -- release -----------------------------------------------------------------------------

    def release(self, order: str | None = None, timeout: float = 5.0) -> GateRecord:
        """Forward the oldest held list request now and return its record once the client has
        the answer (one observation; buffered events are not touched).

        ``order``: ``"newest"`` sorts the engine's list by ``Created`` descending (stable: ties
        keep the engine's order), ``"oldest"`` is exactly the reverse of that, None leaves it
        untouched. An answer that is not a JSON list, or not 200, is passed on unchanged. Raises
        :class:`GateError` when nothing is held or the engine cannot be reached (the client then
        got 502), :class:`GateTimeout` when the answer is not written within ``timeout`` seconds.
        """
        if order not in _ORDERS:
            raise ValueError(f"order must be 'newest', 'oldest' or None, not {order!r}")
        with self._release_lock:
            record, _ = self._release_list(order, timeout, self._observations + 1)
            return record

    def _release_list(self, order: str | None, timeout: float, number: int
                      ) -> tuple[GateRecord, int]:
        """Release the oldest held list as observation ``number``: its record, and the last
        arrival's ``seq`` when the client got the answer."""
        deadline = time.monotonic() + timeout
        abandoned: list[GateRecord] = []
        while True:
            with self._cond:
                if not self._held:
                    raise GateError(self._nothing_held(abandoned))
                req = self._held.popleft()
                req.state = "release"
                req.order = order
                req.observation = number
                req.timeout = max(0.1, deadline - time.monotonic())
                req.released_at = time.monotonic()
                self._cond.notify_all()
            req.wake()
            if not req.done.wait(max(0.0, deadline - time.monotonic()) + 1.0):
                raise GateTimeout(
                    f"the released list request #{req.seq} ({req.method} {req.target}) was "
                    f"not answered within {timeout:g}s: the engine is slow or stuck; give "
                    "release() a longer timeout or check the engine")
            record = req.record
            assert record is not None
            if record.disposition == "released":
                return record, req.seq_at_done
            if record.disposition == "abandoned":
                abandoned.append(record)
                continue
            raise GateError(f"releasing list request #{req.seq} failed: {record.note}")

    def _nothing_held(self, abandoned: list[GateRecord]) -> str:
        if self._closed:
            return "no container-list request is held: the gate is closed"
        if abandoned:
            gone = ", ".join(f"#{r.seq}" for r in abandoned)
            return (f"no container-list request is held: the held one(s) ({gone}) were abandoned "
                    f"by their client before the answer reached it (did the driver die or time "
                    f"out?); wait_held() for the next one")
        if not self._holding:
            return ("no container-list request is held: the gate is open (call "
                    "set_holding(True) first, then wait_held())")
        return ("no container-list request is held: the driver has not asked for a container "
                "list since the last release; wait_held() first, and check that the driver "
                "uses this gate as its DOCKER_HOST")

    def observe(self, order: str | None, timeout: float, quiet: float = 0.05) -> GateRecord:
        """One observation: let the engine's late events arrive (:attr:`event_settle`), release
        the held list (in ``order``) and every buffered event as one observation, then wait
        until the driver is quiet again (see the module docstring).

        Returns the released list's record, or (a driver that follows events only) the record of
        the events released. :class:`GateError` when there is neither a held list nor an open
        event stream (after waiting ``timeout`` for one); :class:`GateTimeout` (saying what was
        seen) when the driver is not quiet within ``timeout`` seconds of the call.
        """
        if order not in _ORDERS:
            raise ValueError(f"order must be 'newest', 'oldest' or None, not {order!r}")
        called = time.monotonic()
        deadline = called + timeout
        with self._release_lock:
            with self._cond:
                self._cond.wait_for(lambda: self._closed or bool(self._held)
                                    or self._held_streams(), timeout)
                if self._closed or (not self._held and not self._held_streams()):
                    raise GateError(self._nothing_to_observe(timeout))
                streams = self._held_streams()
                if streams:
                    self._settle(streams, called, deadline)
            number = self._observations + 1
            record: GateRecord | None = None
            after = 0
            if self._held_now():
                record, after = self._release_list(order, max(0.1, deadline - time.monotonic()),
                                                   number)
            with self._cond:
                self._observations = number
                released_wall = time.time()
                self._last_release = (number, released_wall)
                events_record = self._release_events(number)
                self._quiet_for = (number, released_wall) if streams else None
                by_time = bool(streams) or record is None
                try:
                    quiet_ok = self._wait_quiet(record is not None, after, by_time,
                                                max(quiet, EVENT_QUIET) if by_time else quiet,
                                                deadline)
                finally:
                    self._quiet_for = None
                if not quiet_ok:
                    raise GateTimeout(self._not_quiet(record or events_record, after, timeout))
        return record or events_record

    def _held_now(self) -> bool:
        with self._lock:
            return bool(self._held)

    def _wait_quiet(self, listed: bool, after: int, by_time: bool, quiet: float,
                    deadline: float) -> bool:
        """Under the lock: until the driver is quiet after an observation (module docstring)."""
        while not self._closed:
            now = time.monotonic()
            written = all(s.written >= s.delivered or s.client_gone for s in self._streams)
            next_list = not listed or any(r.seq > after for r in self._held)
            calm = not by_time or now - self._last_activity >= quiet
            if written and next_list and calm and self._in_flight() == 0:
                return True
            if now >= deadline:
                return False
            wait = deadline - now
            if by_time and written and next_list and not self._in_flight():
                wait = min(wait, max(0.001, self._last_activity + quiet - now))
            self._cond.wait(wait)
        return False

    def _nothing_to_observe(self, timeout: float) -> str:
        if self._closed:
            return "nothing to observe: the gate is closed"
        return (f"nothing to observe: the driver made no container-list request and has no "
                f"engine event stream open (waited {timeout:g}s); a gated driver must list "
                "containers or follow the engine's events at this gate (its DOCKER_HOST)")

    def _not_quiet(self, record: GateRecord, after: int, timeout: float) -> str:
        """Why the driver is not quiet (called under the lock)."""
        if self._closed:
            return f"the gate was closed while waiting for the driver after {record.note}"
        busy = [r for r in self._active if r.forwarding and not r.stream]
        streams = [r for r in self._active if r.forwarding and r.stream]
        lists_since = sum(1 for r in self._held if r.seq > after) + sum(
            1 for r in self._active if r.kind == "list" and r.seq > after)
        now = time.monotonic()
        what = ("another container list" if record.kind == "list"
                else "quiet (nothing in flight, nothing new)")
        parts = [f"the driver did not come back for {what} within {timeout:g}s after "
                 f"{record.note} (request #{record.seq})"]
        if busy:
            parts.append(f"{count(len(busy), 'request')} still in flight: "
                         + "; ".join(f"#{r.seq} {r.method} {short_target(r.target, 80)} "
                                     f"({now - r.at:.1f}s)" for r in busy))
        else:
            parts.append("nothing in flight")
        if streams:
            parts.append(f"{count(len(streams), 'stream')} open (not counted)")
        unwritten = sum(s.delivered - s.written for s in self._streams if not s.client_gone)
        if unwritten:
            parts.append(f"{count(unwritten, 'released event')} not yet written to the driver")
        if self._last_arrival is None:
            parts.append("no request from the driver yet")
        else:
            at, last = self._last_arrival
            parts.append(f"its last request arrived {now - at:.1f}s ago ({last})")
        if record.kind == "list":
            parts.append(f"{lists_since} list request(s) arrived since the release"
                         if lists_since else "no list request arrived since the release")
        if not self._holding:
            parts.append("the gate is open (lists are not held)")
        elif self._during:
            parts.append(f"a during() block is open ({self._during[-1][1]}), so lists pass")
        return "; ".join(parts)

    def drain_log(self) -> list[GateRecord]:
        """The records completed since the last call, in arrival order (an event stream's
        records in time order at its place), at most the last :data:`LOG_LIMIT`.

        A record is added just after its answer was written, so a client can have its answer a
        moment before the log shows it; :meth:`release` and :meth:`observe` return only after
        theirs is in.
        """
        with self._lock:
            records = sorted(self._log, key=lambda r: (r.seq, r.at))
            self._log.clear()
        return records

    # -- the serving side's calls ------------------------------------------------------------

    def _arrived(self, at: float) -> int:
        with self._cond:
            self._seq += 1
            self._last_activity = max(self._last_activity, at)
            return self._seq

    def _admit(self, req: Request) -> str:
        """Classify an arrived request: ``"refuse"``, ``"pass"``, ``"pass-list"``, ``"events"``
        or ``"hold"`` (the request is then in :attr:`_held`, with its wake-up pair)."""
        with self._cond:
            self._last_arrival = (req.at, f"{req.method} {short_target(req.target, 80)}")
            why = self._pass_note()
            if why and why != "gate open":
                req.note = why
            if self._closed:
                action = "refuse"
            elif req.kind == "list" and self._refusing is not None and not self._starting:
                action, req.note = "refuse", self._refusing
            elif req.kind == "other":
                action = "pass"
            elif req.kind == "events":
                action = "events"
            elif why is not None:
                action, req.note = "pass-list", why
            else:
                action = "hold"
                req.state = "held"
                req.wake_r, req.wake_w = _wake_pair()
                self._held.append(req)
            if action in ("pass", "pass-list", "events"):
                req.forwarding = True
                req.stream = req.stream or action == "events"
                self._active.add(req)
            if action == "events":
                req.wake_r, req.wake_w = _wake_pair()
            self._cond.notify_all()
        return action

    def _forwarding_done(self, req: Request) -> None:
        with self._cond:
            req.forwarding = False
            self._active.discard(req)
            self._last_activity = time.monotonic()
            self._cond.notify_all()

    def _finish(self, req: Request, disposition: str, status: int | None, note: str,
                held_s: float, ids: tuple[str, ...] = (), at: float | None = None) -> None:
        record = self._log_record(req.seq, req.at if at is None else at, req.method, req.target,
                                  req.kind, disposition, status, note, held_s, ids)
        req.record = record
        req.done.set()

    def _log_record(self, seq: int, at: float, method: str, target: str, kind: str,
                    disposition: str, status: int | None, note: str, held_s: float = 0.0,
                    ids: tuple[str, ...] = ()) -> GateRecord:
        record = GateRecord(seq=seq, at=at, method=method, path=target, kind=kind,
                            disposition=disposition, status=status, note=note,
                            held_s=round(held_s, 6), duration_s=time.monotonic() - at, ids=ids)
        with self._cond:
            self._log.append(record)
            self._last_activity = time.monotonic()
            self._cond.notify_all()
        return record
