"""The observation gate's container-list requests: held until released (or let go), then
asked of the engine at that moment, reordered if asked (same-second ties by each container's
inspect), and answered whole with the gate's ``X-Observation-Gate`` header. A part of
:class:`~.proxy.ObservationGate` (what it serves for a list); the rules are :mod:`.policy`'s.
Standard library only.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import selectors
import socket
import time

from .log import count
from .policy import LIST_TIMEOUT, Policy, Request
from .wire import client_gone, created_ns, json_answer, reorder, send, shutdown, tied

__all__ = ["GATE_HEADER", "ListServing"]

#: The header the gate adds to every list answer it writes: why the list was let go
#: (``observation 3, oldest first``, ``start-up``, ``during CreateSandbox``, ``gate open``).
GATE_HEADER = "X-Observation-Gate"
_DROP_FROM_LIST_ANSWER = frozenset({"content-length", "transfer-encoding", "connection",
                                    "keep-alive"})


def _selector() -> selectors.BaseSelector:
    """A selector that needs no file descriptor of its own (``poll``, not ``epoll``): waits go
    on working while the process is out of descriptors."""
    return selectors.PollSelector() if hasattr(selectors, "PollSelector") \
        else selectors.DefaultSelector()


class ListServing(Policy):
    """Serving list requests (mixed into :class:`~.proxy.ObservationGate`, which provides the
    engine, ``_refuse``, ``_unreachable`` and ``_linger``)."""

    def _hold(self, req: Request) -> None:
        """Wait until the request is released, the gate opens or closes, or the client leaves."""
        assert req.wake_r is not None
        gone = False
        with _selector() as sel:
            sel.register(req.conn, selectors.EVENT_READ)
            sel.register(req.wake_r, selectors.EVENT_READ)
            while True:
                with self._lock:
                    if req.state != "held":
                        break
                ready = {key.fileobj for key, _ in sel.select()}
                if req.conn in ready and client_gone(req.conn):
                    with self._cond:
                        if req.state == "held":
                            req.state = "abandoned"
                            self._held.remove(req)
                            self._cond.notify_all()
                    gone = True
                    break
                if req.wake_r in ready:
                    with contextlib.suppress(OSError):
                        req.wake_r.recv(64)
        held_s = time.monotonic() - req.at
        if req.state == "close":
            self._refuse(req, held_s)
            return
        if req.state == "refuse":
            self._refuse(req, held_s, req.note)
            return
        if gone or client_gone(req.conn):
            self._finish(req, "abandoned", None,
                         f"observation {req.observation} not delivered" if req.state == "release"
                         else "", held_s)
            return
        if req.state == "open":
            self._forward_list(req, None, "released", req.note or "gate opened", held_s,
                               LIST_TIMEOUT)
            return
        note = f"observation {req.observation}"
        if req.order is not None:
            note += f", {req.order} first"
        held_s = (req.released_at or time.monotonic()) - req.at
        self._forward_list(req, req.order, "released", note, held_s, req.timeout)

    def _forward_list(self, req: Request, order: str | None, disposition: str, note: str,
                      held_s: float, timeout: float) -> None:
        """Ask the engine for the list now, reorder it, write the whole answer."""
        with self._cond:
            req.forwarding = True
            self._active.add(req)
            self._cond.notify_all()
        answer, status, ids, extra_note, error = self._ask_engine(req, order, timeout, note)
        if error is not None:
            sent = send(req.conn, answer)
            self._finish(req, "error", 502 if sent else None, error, held_s)
            return
        with self._lock:
            # Arrivals from now on came after the answer went out. Taken before sending: the
            # driver's next poll may arrive before this thread runs again after the send.
            seq_before_answer = self._seq
        if not send(req.conn, answer):
            self._finish(req, "abandoned", None, f"{note} not delivered", held_s)
            return
        shutdown(req.conn, socket.SHUT_WR)
        with self._lock:
            req.seq_at_done = seq_before_answer
            if disposition == "released" and note.startswith("observation"):
                self._observations = max(self._observations, req.observation)
        self._finish(req, disposition, status,
                     note + (f", {extra_note}" if extra_note else ""), held_s, ids)
        self._forwarding_done(req)
        self._linger(req.conn)

    def _ask_engine(self, req: Request, order: str | None, timeout: float, note: str
                    ) -> tuple[bytes, int | None, tuple[str, ...], str, str | None]:
        """``(answer bytes, status, ids, note, error)`` of one buffered list request; the
        answer carries :data:`GATE_HEADER` with ``note`` (why it was let go)."""
        conn = self._upstream.http(timeout)
        try:
            conn.putrequest(req.method, req.target, skip_host=True, skip_accept_encoding=True)
            for name, value in req.head.list_headers():
                conn.putheader(name, value)
            conn.endheaders()
            resp = conn.getresponse()
            body = resp.read()
            status, reason, headers = resp.status, resp.reason, resp.getheaders()
        except (OSError, http.client.HTTPException) as exc:
            error = self._unreachable(exc)
            return json_answer(502, "Bad Gateway", error), None, (), "", error
        finally:
            conn.close()
        ids: tuple[str, ...] = ()
        why = ""
        if status == 200:
            finer, unknown = self._creation_times(req, tied(body) if order else [], timeout)
            body, ids, why = reorder(body, order, finer)
            if unknown and not why:
                why = (f"{count(len(unknown), 'container')} created in the same second as "
                       "another kept in the engine's order (inspect failed)")
        elif order is not None:
            why = f"not reordered: the engine answered {status}"
        lines = [f"HTTP/1.1 {status} {reason}"]
        lines += [f"{n}: {v}" for n, v in headers if n.lower() not in _DROP_FROM_LIST_ANSWER]
        lines += [f"{GATE_HEADER}: {note or 'gate open'}", f"Content-Length: {len(body)}",
                  "Connection: close"]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return head + body, status, ids, why, None

    def _creation_times(self, req: Request, ids: list[str], timeout: float
                        ) -> tuple[dict[str, int], list[str]]:
        """The engine's creation time (nanoseconds) of each of ``ids``, from an inspect each
        (a list counts whole seconds); and the IDs it could not tell."""
        prefix = req.head.path[: -len("/containers/json")]
        finer: dict[str, int] = {}
        unknown: list[str] = []
        for cid in ids:
            conn = self._upstream.http(timeout)
            try:
                conn.request("GET", f"{prefix}/containers/{cid}/json",
                             headers={"Host": "docker", "Connection": "close"})
                resp = conn.getresponse()
                data = resp.read()
                value = json.loads(data).get("Created") if resp.status == 200 else None
            except (OSError, http.client.HTTPException, ValueError, AttributeError):
                value = None
            finally:
                conn.close()
            when = created_ns(value)
            if when is None:
                unknown.append(cid)
            else:
                finer[cid] = when
        return finer, unknown

