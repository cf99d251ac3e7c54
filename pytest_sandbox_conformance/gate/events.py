"""The observation gate's engine event streams: the engine's answer head at once, the events
as the policy lets them go (see :mod:`.proxy` for the framing, :mod:`.policy` for the rules). A
part of :class:`~.proxy.ObservationGate` (what it serves for an event stream). Standard library
only.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import time

from .lists import _selector
from .log import count
from .buffers import EventStream
from .policy import Policy, Request
from .wire import (MAX_HEAD, ChunkedDecoder, EventLine, chunk, client_gone, final_status, header,
                   receive, send, shutdown, split_lines)

__all__ = ["EventServing"]

#: How long a finished stream waits for its reader thread (the engine's side is shut down).
READER_JOIN = 2.0


class EventServing(Policy):
    """Serving event streams (mixed into :class:`~.proxy.ObservationGate`, which provides the
    engine connection, ``_pass_through``, ``_bad_gateway``, ``_spawn`` and ``_linger``)."""

    def _serve_events(self, req: Request) -> None:
        """An engine event stream: the answer's head at once, the events as the policy lets
        them go (see the module docstring)."""
        upstream = self._connect_upstream(req)
        if upstream is None:
            return
        try:
            upstream.sendall(req.head.forwarded())
        except OSError as exc:
            self._bad_gateway(req, self._unreachable(exc))
            upstream.close()
            return
        buf = b""
        status = None
        head = rest = b""
        while status is None:
            data = receive(upstream)
            if not data:
                break
            buf += data
            status, head, rest = final_status(buf)
            if status is None and len(buf) > MAX_HEAD:
                status = 0
        if status != 200:  # an error, or not HTTP: an ordinary answer
            if not buf:
                self._bad_gateway(req, f"observation gate: the engine at {self.upstream} "
                                       "closed the connection without answering")
                upstream.close()
                return
            self._pass_through(req, upstream, buf)
            return
        chunked = "chunked" in (header(head, "Transfer-Encoding") or "").lower()
        engine = "podman" if (header(head, "Libpod-Api-Version")
                              or "libpod" in (header(head, "Server") or "").lower()) else "docker"
        if not send(req.conn, head + b"\r\n\r\n"):
            upstream.close()
            self._finish(req, "abandoned", None, "the client went away before the stream "
                                                 "opened", 0.0)
            return
        stream = self._stream_opened(req, engine)
        self._log_record(req.seq, req.at, req.method, req.target, "events", "opened", 200,
                         req.note or "")
        reader = self._spawn(self._read_events, "sbx-gate-events", stream, upstream, rest,
                             chunked)
        ended = self._write_events(stream, chunked)
        self._stream_closed(stream)
        shutdown(upstream)
        reader.join(READER_JOIN)
        upstream.close()
        left = stream.pending()
        if ended == "engine":
            self._linger(req.conn)
        how = {"engine": "ended by the engine", "client": "closed by the client",
               "closed": "cut: the gate closed"}[ended]
        note = (f"event stream {how}; {count(stream.written, 'event')} delivered"
                + (f", {left} never released" if left else ""))
        self._finish(req, "abandoned" if ended == "client" else "passed", 200, note, 0.0,
                     at=time.monotonic())

    def _read_events(self, stream: EventStream, upstream: socket.socket, first: bytes,
                     chunked: bool) -> None:
        """Engine to gate: split the body into event lines and hand each to the policy."""
        decoder = ChunkedDecoder() if chunked else None
        pending = b""
        data = first
        try:
            while True:
                if data:
                    self._stream_bytes(stream)
                    try:
                        body = decoder.feed(data) if decoder is not None else data
                    except ValueError:
                        body, decoder = data, None  # not chunked after all: pass bytes on
                    lines, pending = split_lines(pending + body)
                    for line in lines:
                        self._event_arrived(stream, EventLine.parse(line))
                    if decoder is not None and decoder.done:
                        break
                data = receive(upstream)
                if not data:
                    break
        finally:
            if pending:
                self._event_arrived(stream, EventLine.parse(pending))
            with self._cond:
                stream.upstream_done = True
                self._cond.notify_all()
            stream.req.wake()

    def _write_events(self, stream: EventStream, chunked: bool) -> str:
        """Gate to client: write what the policy let go; ``"engine"`` (the stream ended and
        everything was written), ``"client"`` (it went away) or ``"closed"`` (the gate)."""
        req = stream.req
        assert req.wake_r is not None
        with _selector() as sel:
            sel.register(req.conn, selectors.EVENT_READ)
            sel.register(req.wake_r, selectors.EVENT_READ)
            while True:
                events = self._take_deliverable(stream)
                if events:
                    data = b"".join(chunk(e.line.raw) if chunked else e.line.raw for e in events)
                    if not send(req.conn, data):
                        return "client"
                    self._written(stream, events)
                    continue
                with self._lock:
                    if self._closed:
                        return "closed"
                    if stream.upstream_done and stream.written >= len(stream.events):
                        if chunked:
                            send(req.conn, b"0\r\n\r\n")
                        shutdown(req.conn, socket.SHUT_WR)
                        return "engine"
                ready = {key.fileobj for key, _ in sel.select()}
                if req.conn in ready and client_gone(req.conn):
                    return "client"
                if req.wake_r in ready:
                    with contextlib.suppress(OSError):
                        req.wake_r.recv(64)
