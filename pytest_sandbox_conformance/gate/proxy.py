"""The observation gate: a Docker Engine API proxy that holds a driver's container-list requests
and buffers its engine event streams until the schedule releases them.

A black-box driver polls the engine on its own clock by listing containers
(``GET /v1.xx/containers/json?...``), or follows the engine's event stream (``GET /events``,
Podman's ``/libpod/events``); the suite cannot make it look. So the suite starts the driver with
``DOCKER_HOST`` set to :attr:`ObservationGate.url`, a Unix socket where the gate forwards every
request to the real engine but *holds* each container-list request, and the events of each event
stream, until the suite releases them. One release is one observation of the driver, and the
gate can reorder the list it returns (newest or oldest first), which makes list-order schedules
exact for any driver::

    with ObservationGate("unix:///var/run/docker.sock") as gate:   # starts serving
        gate.set_holding(True)
        with gate.start_up():          # lists pass, events are delivered: not observations
            ... start the driver with DOCKER_HOST=gate.url, wait until it is up ...
        gate.wait_ready(10, idle=0.25)       # its first poll held (or its event stream open)
        record = gate.observe("oldest", timeout=10)   # one poll, list oldest first
        with gate.during("CreateSandbox"):
            ... send an RPC; lists the driver makes meanwhile pass at once ...
        print("\\n".join(r.describe() for r in gate.drain_log()))

What is held and when, observations, quiet and start-up are :mod:`.policy`'s (its docstring has
the rules); engine URLs and TLS are :mod:`.upstream`'s; request heads and framing
:mod:`.wire`'s. This module serves the connections: life, accepting, each connection's head and
the pass-through is :mod:`.passthrough`'s, what it serves for a list :mod:`.lists`'s, for an
event stream :mod:`.events`'s (all three mixed into :class:`ObservationGate`). Standard library only (threads, sockets,
:mod:`http.client`, :mod:`ssl`), so it runs wherever the suite does.

**How requests travel.** One request per client connection (the gate answers every request with
``Connection: close``; Docker clients simply open another connection). The gate reads the request
head (request line and headers, at most 64 KiB; anything malformed is answered 400). A target in
absolute form (``GET http://localhost/_ping HTTP/1.1``, as OpenShell's Podman driver sends; RFC
9112 section 3.2.2 says a server must accept it) is forwarded in origin form with the target's
authority as its Host. Then, by kind:

- Everything but lists and event streams is **passed through**: a new upstream connection gets
  the request head with the hop-by-hop headers rewritten (``Connection: close``), then bytes are
  piped both ways until the engine closes: request bodies (chunked or not), responses (including
  endless ones such as ``logs?follow=1``) and hijacked streams (``attach``, ``exec`` start) alike,
  with no body parsing. Deviation from a plain ``Connection: close``: a request that asks for a
  protocol upgrade (``Connection: Upgrade`` with an ``Upgrade`` header, as Docker clients do for
  ``attach`` and ``exec`` start) keeps those two headers, because clients such as Docker's Go
  client insist on the engine's ``101 UPGRADED`` answer, which the engine only gives when asked.
  When the client closes its sending side, the engine's is closed too (half-close), as a hijacked
  stdin needs (not over TLS: see :mod:`.upstream`). After a hijacking answer (``101``, or a Docker
  raw stream) the gate forwards the stream's first bytes only once the client has read the
  answer's head (:func:`~.wire.await_read`): the Docker SDK for Python reads that head through a
  buffer and the stream from the raw socket, so bytes that arrived together with the head would
  be lost (``exec_run`` returning no output).
- A **list** request is held or forwarded at once (:mod:`.policy`); a released one is forwarded
  *at release time* (so its answer reflects the engine then), the JSON array reordered if asked,
  and the answer written whole with a correct ``Content-Length``. Deviation: lists that are not
  held go the same buffered way (with no reordering) rather than through the byte pipe, so every
  list record carries the container IDs the client got. A list request is a GET without a body,
  so nothing is lost.
- An **event stream** (``GET /events`` or ``/libpod/events`` without ``until`` or
  ``stream=false``): the engine's answer head goes to the client at once (recorded ``opened``);
  a reader thread takes the body as the engine sends it (de-chunked when chunked), one event per
  line (Docker and Podman send newline-delimited JSON; a line that is not JSON is still one
  event), and hands each to the policy, which lets it go at once or buffers it. The connection's
  thread writes the events let go, each as its own chunk (the bytes of the line unchanged; on a
  stream that was not chunked, the bytes as they are), and logs them in batches (``released 3
  events as observation 4``). When the engine ends the stream, its end follows the last event.
  A stream whose answer is not ``200`` is passed through like any answer.
- An engine that cannot be reached is answered ``502`` with a JSON ``{"message": ...}`` body,
  which Docker clients show as the engine's error.

**Held requests and their clients.** While a list is held (or an event stream open), its handler
thread waits in ``select`` on the client's socket and a private wake-up socket, so an abandoned
request (the driver closed its connection, or its process died: the kernel closes its sockets) is
noticed at once (milliseconds), with no polling, and recorded ``"abandoned"``. Deviation from
peeking (``MSG_PEEK``): bytes a client sends after its head while held are read and discarded (a
GET has no body), so they cannot keep ``select`` spinning; a client that half-closes its sending
side while held counts as gone. A release that finds its request abandoned moves on to the next
held one. :attr:`~.policy.Policy.observations` counts only observations (an engine that could
not be reached, or requests released by opening the gate, do not count).

**Accepting.** When the process runs out of file descriptors (``EMFILE``, ``ENFILE``,
``ENOBUFS``, ``ENOMEM``) the accept loop backs off (10 ms doubling to 0.5 s, logged once per
episode as an ``error`` record) instead of spinning on a listener that stays readable.

Threads: one accept thread, one daemon thread per client connection, one more per pass-through
(client to engine) and per event stream (engine to gate), one per TLS connection (the bridge).
No busy loops: waits are on conditions, events and ``select`` (the one poll is
:func:`~.wire.await_read`'s, every 2 ms for at most 0.5 s after a hijacking answer).
"""

from __future__ import annotations

import contextlib
import errno
import os
import selectors
import shutil
import socket
import stat
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Mapping

from .errors import GateError, GateTimeout
from .events import EventServing
from .lists import GATE_HEADER, ListServing, _selector
from .log import GateRecord
from .passthrough import CLOSE_WAIT, LINGER, PassThrough
from .policy import LIST_TIMEOUT, Request
from .upstream import Upstream
from .wire import MAX_HEAD, BadRequest, json_answer, linger, parse_head, send, shutdown

__all__ = ["GATE_HEADER", "GateError", "GateRecord", "GateTimeout", "ObservationGate"]

#: How long a client may take to send its request head.
HEAD_TIMEOUT = 30.0
#: The longest Unix socket path (``sun_path`` is 108 bytes on Linux, 104 on macOS; one for NUL).
MAX_SOCKET_PATH = 103 if sys.platform == "darwin" else 107
#: The accept loop's back-off when the process is out of file descriptors (first, last).
ACCEPT_BACKOFF = (0.01, 0.5)
_OUT_OF_FDS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


class ObservationGate(ListServing, EventServing, PassThrough):
    """A Docker Engine API proxy on a Unix socket that holds container-list requests and
    buffers engine events (the rules: :mod:`.policy`).

    ``upstream`` is the engine (:mod:`.upstream`: ``unix://``, ``tcp://``, ``http://``,
    ``https://``, TLS as ``DOCKER_TLS_VERIFY``/``DOCKER_CERT_PATH`` say, read from ``env``,
    default :data:`os.environ`; others raise :class:`GateError`). ``socket_path`` is where the
    gate listens; None makes a fresh private (0700) folder with :func:`tempfile.mkdtemp` holding
    ``gate.sock`` (made here, so :attr:`url` is known before :meth:`start`), removed again by
    :meth:`close`. The socket is made 0600.

    The gate starts **open** (:attr:`holding` is False: lists are forwarded at once); call
    :meth:`set_holding` to hold them. Every method is thread-safe. Point a driver at it with
    ``DOCKER_HOST=gate.url``.
    """

    def __init__(self, upstream: str, socket_path: str | os.PathLike[str] | None = None, *,
                 env: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self.upstream = upstream
        self._threads: set[threading.Thread] = set()
        self._upstream = Upstream(upstream, env, spawn=self._spawn)
        self._own_folder: Path | None = None
        if socket_path is None:
            base = tempfile.gettempdir()
            if len(os.fsencode(base)) + 30 > MAX_SOCKET_PATH:
                base = "/tmp"
            self._own_folder = Path(tempfile.mkdtemp(prefix="sbx-gate-", dir=base))
            path = self._own_folder / "gate.sock"
        else:
            path = Path(os.path.abspath(os.fspath(socket_path)))
        if len(os.fsencode(str(path))) > MAX_SOCKET_PATH:
            self._remove_own_folder()
            raise GateError(f"the gate's socket path {str(path)!r} is {len(os.fsencode(str(path)))}"
                            f" bytes, longer than a Unix socket path may be ({MAX_SOCKET_PATH}); "
                            f"pass a shorter socket_path (or none, for a fresh folder in /tmp)")
        self.socket_path: Path = path
        self._client_socks: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._started = False

    def __repr__(self) -> str:
        return f"ObservationGate({self.upstream!r}, socket_path={str(self.socket_path)!r})"

    # -- life --------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``unix://`` and the gate's absolute socket path: the driver's ``DOCKER_HOST``."""
        return f"unix://{self.socket_path}"

    def start(self) -> ObservationGate:
        """Bind the socket (mode 0600) and serve in daemon threads; return the gate."""
        with self._lock:
            if self._closed:
                raise GateError(f"{self!r} is closed; make a new gate")
            if self._started:
                return self
            self._started = True
        try:
            self._clear_stale_socket()
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                listener.bind(str(self.socket_path))
                # Nobody can connect before listen(), so the mode is set before anyone could.
                os.chmod(self.socket_path, 0o600)
                listener.listen(128)
            except BaseException:
                listener.close()
                raise
        except OSError as exc:
            with self._lock:
                self._started = False
            raise GateError(f"the observation gate cannot listen on {self.socket_path}: "
                            f"{exc}") from exc
        self._listener = listener
        self._wake_r, self._wake_w = socket.socketpair()
        self._spawn(self._accept_loop, "sbx-gate-accept")
        return self

    def _clear_stale_socket(self) -> None:
        path = self.socket_path
        try:
            mode = path.lstat().st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(mode):
            raise GateError(f"{path} exists and is not a socket; choose another socket_path")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.settimeout(1.0)
            probe.connect(str(path))
        except OSError:
            path.unlink(missing_ok=True)  # a socket nobody serves: left by a dead process
            return
        finally:
            probe.close()
        raise GateError(f"another process already serves {path}; choose another socket_path")

    def __enter__(self) -> ObservationGate:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop: held requests are answered 503, streams are cut, the socket (and the folder the
        gate made) is removed. Waits about two seconds at most; calling it again does nothing."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            held = list(self._held)
            self._held.clear()
            for req in held:
                req.state = "close"
            active = list(self._active)
            streams = list(self._streams)
            self._cond.notify_all()
        for req in held + [s.req for s in streams]:
            req.wake()
        if self._wake_w is not None:
            with contextlib.suppress(OSError):
                self._wake_w.send(b"x")
        for req in active:  # pass-throughs and streams: cut both ends, their threads end
            for sock in (req.conn, req.upstream_sock):
                shutdown(sock)
        deadline = time.monotonic() + CLOSE_WAIT
        with self._lock:
            threads = [t for t in self._threads if t is not threading.current_thread()]
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:  # still running: a client still sending its head, or lingering
            late = [t for t in self._threads if t is not threading.current_thread()]
            socks = list(self._client_socks)
            socks += [r.upstream_sock for r in self._active if r.upstream_sock is not None]
        for sock in socks if late else ():
            shutdown(sock)
        for thread in late:
            thread.join(max(0.1, deadline + 0.5 - time.monotonic()))
        for sock in (self._listener, self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self.socket_path.unlink()
        self._remove_own_folder()

    def _remove_own_folder(self) -> None:
        if self._own_folder is not None:
            shutil.rmtree(self._own_folder, ignore_errors=True)

    # -- threads and accepting ---------------------------------------------------------------

    def _spawn(self, target: Callable[..., None], name: str, *args: object) -> threading.Thread:
        thread = threading.Thread(target=self._run_thread, args=(target, *args), name=name,
                                  daemon=True)
        with self._lock:  # started under the lock: close() never joins one not yet started
            self._threads.add(thread)
            thread.start()
        return thread

    def _run_thread(self, target: Callable[..., None], *args: object) -> None:
        try:
            target(*args)
        finally:
            with self._lock:
                self._threads.discard(threading.current_thread())

    def _accept_loop(self) -> None:
        assert self._listener is not None and self._wake_r is not None
        backoff = 0.0
        with _selector() as sel:
            sel.register(self._listener, selectors.EVENT_READ)
            sel.register(self._wake_r, selectors.EVENT_READ)
            while not self._closed:
                ready = {key.fileobj for key, _ in sel.select()}
                if self._wake_r in ready or self._closed:
                    return
                try:
                    conn, _ = self._listener.accept()
                except OSError as exc:
                    if exc.errno in _OUT_OF_FDS:
                        # The listener stays readable while accept() fails: back off, or spin.
                        if not backoff:
                            self._log_record(0, time.monotonic(), "", "", "other", "error",
                                             None, f"cannot accept connections: {exc} (backing "
                                             "off until file descriptors are free)")
                        backoff = min(max(backoff * 2, ACCEPT_BACKOFF[0]), ACCEPT_BACKOFF[1])
                        self._pause(backoff)
                    continue
                backoff = 0.0
                with self._lock:
                    if self._closed:
                        conn.close()
                        return
                    self._client_socks.add(conn)
                self._spawn(self._serve, "sbx-gate-conn", conn)

    def _pause(self, seconds: float) -> None:
        """Sleep ``seconds``, or less when the gate is closed."""
        with self._cond:
            self._cond.wait_for(lambda: self._closed, seconds)

    # -- one connection ----------------------------------------------------------------------

    def _serve(self, conn: socket.socket) -> None:
        try:
            self._serve_request(conn)
        finally:
            with self._lock:
                self._client_socks.discard(conn)
            conn.close()

    def _serve_request(self, conn: socket.socket) -> None:
        raw, extra, problem = self._read_head(conn)
        if raw is None and problem is None:
            return  # connected and closed without a byte: nothing to record
        at = time.monotonic()
        head = None
        if problem is None:
            try:
                head = parse_head(raw or b"")
            except BadRequest as exc:
                problem = str(exc)
        seq = self._arrived(at)
        if problem is not None or head is None:
            first = (raw or b"").split(b"\r\n", 1)[0].decode("latin-1").split(" ")
            method, target = (first + ["", ""])[:2] if len(first) >= 2 else ("", "")
            if problem == "":  # the client closed mid-head
                self._log_record(seq, at, method, target, "other", "abandoned", None,
                                 "the client closed before its request head was complete")
                return
            sent = send(conn, json_answer(400, "Bad Request",
                                          f"observation gate: malformed request: {problem}"))
            self._log_record(seq, at, method, target, "other", "refused",
                             400 if sent else None, f"malformed request: {problem}")
            self._linger(conn)
            return
        req = Request(seq, at, conn, head, extra)
        action = self._admit(req)
        try:
            if action == "refuse":
                self._refuse(req, 0.0, req.note if req.kind == "list" and req.note
                             and not self._closed else "gate closed")
            elif action == "pass":
                self._pass_through(req)
            elif action == "pass-list":
                self._forward_list(req, None, "passed", req.note, 0.0, LIST_TIMEOUT)
            elif action == "events":
                self._serve_events(req)
            else:
                self._hold(req)
        finally:
            self._forwarding_done(req)
            for sock in (req.wake_r, req.wake_w):
                if sock is not None:
                    sock.close()

    def _read_head(self, conn: socket.socket) -> tuple[bytes | None, bytes, str | None]:
        """``(head, bytes after it, problem)``; problem ``""``: the client closed mid-head."""
        buf = b""
        conn.settimeout(HEAD_TIMEOUT)
        try:
            while True:
                end = buf.find(b"\r\n\r\n")
                if end >= 0:
                    if end > MAX_HEAD:
                        return buf, b"", f"request head larger than {MAX_HEAD} bytes"
                    conn.settimeout(None)
                    return buf[:end], buf[end + 4:], None
                if len(buf) > MAX_HEAD:
                    return buf, b"", f"request head larger than {MAX_HEAD} bytes"
                chunk_ = conn.recv(65536)
                if not chunk_:
                    return (None, b"", None) if not buf else (buf, b"", "")
                buf += chunk_
        except socket.timeout:
            return buf, b"", f"no complete request head within {HEAD_TIMEOUT:g}s"
        except OSError:
            return (None, b"", None) if not buf else (buf, b"", "")

    def _refuse(self, req: Request, held_s: float, why: str = "gate closed") -> None:
        sent = send(req.conn, json_answer(503, "Service Unavailable",
                                          "observation gate closed" if why == "gate closed"
                                          else f"observation gate: {why}"))
        self._finish(req, "refused", 503 if sent else None, why, held_s)
        self._linger(req.conn)

    def _unreachable(self, exc: BaseException) -> str:
        reason = str(exc) or type(exc).__name__
        if isinstance(exc, socket.timeout):
            reason = f"timed out ({reason})"
        return f"observation gate: cannot reach the engine at {self._upstream.describe()}: {reason}"

    def _bad_gateway(self, req: Request, error: str) -> None:
        """Answer 502 with ``error`` (if the client is still there) and record it."""
        sent = send(req.conn, json_answer(502, "Bad Gateway", error))
        self._finish(req, "error", 502 if sent else None, error, 0.0)

    def _linger(self, sock: socket.socket) -> None:
        linger(sock, 0.1 if self._closed else LINGER)
