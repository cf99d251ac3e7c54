"""The observation gate's pass-through: every request that is neither a list nor an event
stream is piped to a new engine connection and everything back until the engine closes
(request bodies, endless answers, hijacked streams alike, with no body parsing; the rules and
their deviations are :mod:`.proxy`'s docstring, *How requests travel*). A part of
:class:`~.proxy.ObservationGate`. Standard library only.
"""

from __future__ import annotations

import socket
import threading

from .policy import Policy, Request
from .wire import MAX_HEAD, await_read, final_status, hijacked, pump, receive, send, shutdown

__all__ = ["CLOSE_WAIT", "CONNECT_TIMEOUT", "LINGER", "PassThrough"]

#: How long connecting to the engine may take.
CONNECT_TIMEOUT = 10.0
#: How long ``close()`` waits for the connection threads, in all.
CLOSE_WAIT = 2.0
#: How long a finished connection waits for its client to close before closing itself.
LINGER = 1.0


class PassThrough(Policy):
    """Piping requests through (mixed into :class:`~.proxy.ObservationGate`, which provides the
    engine, ``_spawn``, ``_bad_gateway``, ``_refuse``, ``_unreachable`` and ``_linger``)."""

    def _connect_upstream(self, req: Request) -> socket.socket | None:
        """A connection to the engine for ``req`` (registered for close()), or None (answered
        502 or 503 already)."""
        try:
            upstream = self._upstream.connect(CONNECT_TIMEOUT)
            upstream.settimeout(None)
        except OSError as exc:
            self._bad_gateway(req, self._unreachable(exc))
            self._linger(req.conn)
            return None
        with self._cond:
            closed = self._closed
            if not closed:
                req.upstream_sock = upstream
        if closed:
            upstream.close()
            self._refuse(req, 0.0)
            return None
        return upstream

    def _pass_through(self, req: Request, upstream: socket.socket | None = None,
                      first: bytes = b"") -> None:
        """Pipe the request to a new engine connection (or ``upstream``, after the answer's
        first bytes ``first`` were read from it) and everything back, until it closes."""
        if upstream is None:
            upstream = self._connect_upstream(req)
            if upstream is None:
                return
            try:
                upstream.sendall(req.head.forwarded() + req.extra)
            except OSError as exc:
                self._bad_gateway(req, self._unreachable(exc))
                upstream.close()
                return
        pump_thread: threading.Thread | None = None
        status: int | None = None
        got_any = False
        note = req.note
        try:
            pump_thread = self._spawn(pump, "sbx-gate-pump", req.conn, upstream)
            parse = b""
            pending = first
            while True:
                if pending:
                    data, pending = pending, b""
                else:
                    data = receive(upstream)
                if not data:
                    break
                got_any = True
                if status is None and len(parse) < MAX_HEAD:
                    parse += data
                    status, head, rest = final_status(parse)
                    parse = rest if status is None else b""
                    if status is not None and hijacked(status, head):
                        # Let the client read the head alone before the stream's first bytes.
                        split = len(data) - len(rest)
                        if not send(req.conn, data[:split]):
                            note = (note + "; " if note else "") + "the client went away"
                            break
                        await_read(req.conn)
                        data = data[split:]
                        if not data:
                            continue
                if not send(req.conn, data):
                    note = (note + "; " if note else "") + "the client went away"
                    break
            if not got_any:
                self._bad_gateway(req, f"observation gate: the engine at {self.upstream} "
                                       "closed the connection without answering")
                return
            shutdown(req.conn, socket.SHUT_WR)
            self._finish(req, "passed", status, note, 0.0)
        finally:
            self._forwarding_done(req)
            if pump_thread is not None:
                pump_thread.join(LINGER)  # the client closes after reading the answer
                if pump_thread.is_alive():
                    shutdown(req.conn, socket.SHUT_RD)
                    shutdown(upstream)
                    pump_thread.join(CLOSE_WAIT)
            upstream.close()
