"""The observation gate: a Docker Engine API proxy that holds a driver's container-list requests.

A black-box driver polls the engine on its own clock by listing containers
(``GET /v1.xx/containers/json?...``); the suite cannot make it poll. So the suite starts the driver
with ``DOCKER_HOST`` set to :attr:`ObservationGate.url`, a Unix socket where the gate forwards every
request to the real engine but *holds* each container-list request until the suite releases it.
One released list is one observation of the driver, and the gate can reorder the list it returns
(newest or oldest first), which makes list-order schedules exact for any driver::

    with ObservationGate("unix:///var/run/docker.sock") as gate:   # starts serving
        gate.set_holding(True)
        ... start the driver with DOCKER_HOST=gate.url ...
        gate.wait_held(10)
        record = gate.observe("oldest", timeout=10)   # one poll, list oldest first
        with gate.during("CreateSandbox"):
            ... send an RPC; lists the driver makes meanwhile pass at once ...
        print("\\n".join(r.describe() for r in gate.drain_log()))

Standard library only (threads, sockets, :mod:`http.client`), so it runs wherever the suite does.

**How requests travel.** One request per client connection (the gate answers every request with
``Connection: close``; Docker clients simply open another connection). The gate reads the request
head (request line and headers, at most 64 KiB; anything malformed is answered 400) and
classifies it: a *container-list request* is a ``GET`` whose path (query stripped) matches
:data:`LIST_PATH`.

- Everything else is **passed through**: a new upstream connection gets the request head with the
  hop-by-hop headers rewritten (``Connection: close``), then bytes are piped both ways until the
  engine closes: request bodies (chunked or not), responses (including endless ones such as
  ``GET /events``) and hijacked streams (``attach``, ``exec`` start) alike, with no body parsing.
  Deviation from a plain ``Connection: close``: a request that asks for a protocol upgrade
  (``Connection: Upgrade`` with an ``Upgrade`` header, as Docker clients do for ``attach`` and
  ``exec`` start) keeps those two headers, because clients such as Docker's Go client insist on the
  engine's ``101 UPGRADED`` answer, which the engine only gives when asked. When the client closes
  its sending side, the engine's is closed too (half-close), as a hijacked stdin needs. After a
  hijacking answer (``101``, or a Docker raw stream) the gate forwards the stream's first bytes
  only once the client has read the answer's head (:func:`_await_read`): the Docker SDK for
  Python reads that head through a buffer and the stream from the raw socket, so bytes that
  arrived together with the head would be lost (``exec_run`` returning no output).
- A list request is **held** while the gate is holding (:meth:`~ObservationGate.set_holding`) and
  no :meth:`~ObservationGate.during` block is open; :meth:`~ObservationGate.release` forwards the
  oldest held one *at release time* (so its answer reflects the engine then), reorders the JSON
  array if asked, and writes the answer with a correct ``Content-Length``. Deviation: list
  requests that are *not* held (gate open, or during a block) go the same buffered way (with no
  reordering) rather than through the byte pipe, so every list record carries the container IDs
  the client got. A list request is a GET without a body, so nothing is lost.
- An engine that cannot be reached is answered ``502`` with a JSON ``{"message": ...}`` body,
  which Docker clients show as the engine's error.

**Held requests and their clients.** While a request is held, its handler thread waits in
``select`` on the client's socket and a private wake-up socket, so an abandoned request (the
driver closed its connection, or its process died: the kernel closes its sockets) is noticed at
once (milliseconds), with no polling, and recorded ``"abandoned"``. Deviation from peeking
(``MSG_PEEK``): bytes a client sends after its head while held are read and discarded (a GET has
no body), so they cannot keep ``select`` spinning; a client that half-closes its sending side
while held counts as gone. A release that finds its request abandoned moves on to the next held
one. :attr:`~ObservationGate.observations` counts only answers delivered by a release (an
engine that could not be reached, or requests released by opening the gate, do not count).

**What counts as in flight.** :meth:`~ObservationGate.in_flight` counts requests being forwarded
now, except held ones and the long-lived streams a driver may keep open in the background
(:data:`STREAM_PATH`: ``/events``, ``attach``, ``wait``, ``logs?follow=1``, ``stats`` unless
``stream=0``), so that :meth:`~ObservationGate.observe` can tell when the driver is quiet again.

Threads: one accept thread, one daemon thread per client connection and one more per
pass-through (client to engine). No busy loops: waits are on conditions, events and ``select``
(the one poll is :func:`_await_read`'s, every 2 ms for at most 0.5 s after a hijacking answer).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import selectors
import shutil
import socket
import stat
import struct
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

__all__ = ["GateError", "GateRecord", "GateTimeout", "LIST_PATH", "ObservationGate",
           "STREAM_PATH"]

#: The path (query stripped) of a container-list request, with or without an API version and
#: Podman's ``/libpod`` prefix.
LIST_PATH = re.compile(r"^(/v[0-9.]+)?(/libpod)?/containers/json$")
#: Paths (query stripped) of requests that may stay open for as long as the client wants; they
#: never count as in flight. ``logs`` and ``stats`` only with a streaming query (see
#: :func:`_is_stream`).
STREAM_PATH = re.compile(
    r"^(/v[0-9.]+)?(/libpod)?(/events|/containers/[^/]+/(attach|attach/ws|wait|logs|stats))$")

#: The largest request head the gate reads (request line and headers).
MAX_HEAD = 64 * 1024
#: How long a client may take to send its request head.
HEAD_TIMEOUT = 30.0
#: How long connecting to the engine may take.
CONNECT_TIMEOUT = 10.0
#: How long the engine may take to answer a list request that is not held.
LIST_TIMEOUT = 60.0
#: How long ``close()`` waits for the connection threads, in all.
CLOSE_WAIT = 2.0
#: How long a finished connection waits for its client to close before closing itself.
LINGER = 1.0
#: How many completed records the gate keeps until :meth:`ObservationGate.drain_log`.
LOG_LIMIT = 10_000
#: The longest Unix socket path (``sun_path`` is 108 bytes on Linux, 104 on macOS; one for NUL).
MAX_SOCKET_PATH = 103 if sys.platform == "darwin" else 107

_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "te", "upgrade"})
_DROP_FROM_LIST_ANSWER = frozenset({"content-length", "transfer-encoding", "connection",
                                    "keep-alive"})
_ORDERS = (None, "newest", "oldest")
_SUPPORTED = ("unix:///path", "unix:/path", "tcp://host:port", "http://host:port")
# (also ``http+unix:///path``, the Docker SDK's spelling of unix://)


class GateError(Exception):
    """The observation gate could not do what was asked; the message says why and what to do."""


class GateTimeout(GateError):
    """Something the gate waited for did not happen in time; the message says what was seen."""


@dataclass(frozen=True)
class GateRecord:
    """One request that went through the gate, once it is complete.

    ``seq`` is the arrival order (from 1), ``at`` the :func:`time.monotonic` time its head arrived,
    ``path`` the target exactly as sent (path and query). ``kind`` is ``"list"`` (a container-list
    request) or ``"other"``. ``disposition``: ``"released"`` (held, then released), ``"passed"``
    (forwarded at once), ``"abandoned"`` (the client went away first), ``"refused"`` (answered by
    the gate itself: gate closed, malformed request) or ``"error"`` (the engine could not be
    reached). ``status`` is the HTTP status the client got (None if none), ``held_s`` the seconds
    it was held, ``duration_s`` the seconds from arrival until the answer was fully written (or
    the pipe closed), ``ids`` the container IDs of a list answer in the order the client got them.
    """

    seq: int
    at: float
    method: str
    path: str
    kind: str
    disposition: str
    status: int | None
    note: str
    held_s: float
    duration_s: float
    ids: tuple[str, ...] = ()

    def describe(self) -> str:
        """One short line for a person, e.g. ``GET /v1.41/containers/json?all=1 filters:
        label=app=x -> 200, 2 containers [ab12cd34ef56, 9f8e7d6c5b4a], released as observation 3
        (oldest first) after 0.120s held``."""
        head = f"{self.method or '?'} {_short_target(self.path)}"
        answer = "no answer" if self.status is None else str(self.status)
        line = f"{head} -> {answer}"
        if self.kind == "list" and self.status == 200:
            line += f", {_count(len(self.ids), 'container')}"
            if self.ids:
                shown = [i[:12] for i in self.ids[:4]]
                more = f", +{len(self.ids) - 4} more" if len(self.ids) > 4 else ""
                line += f" [{', '.join(shown)}{more}]"
        held = f"after {self.held_s:.3f}s held"
        if self.disposition == "released":
            if self.note.startswith("observation"):
                first, _, rest = self.note.partition(", ")
                line += f", released as {first}" + (f" ({rest})" if rest else "") + f" {held}"
            else:
                line += f", released ({self.note}) {held}"
        elif self.disposition == "passed":
            line += (f", passed ({self.note})" if self.note else "") + f" in {self.duration_s:.3f}s"
        elif self.disposition == "abandoned":
            line += ", abandoned by the client" + (f" {held}" if self.held_s else "")
            if self.note:
                line += f" ({self.note})"
        else:
            line += f", {self.disposition}" + (f": {self.note}" if self.note else "")
        return line


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _short_target(target: str, limit: int = 160) -> str:
    """A request target for people: the query URL-decoded, label filters as ``label=k=v``."""
    path, sep, query = target.partition("?")
    if not sep:
        return _cut(path, limit)
    parts: list[str] = []
    filters = ""
    for key, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
        if key == "filters":
            filters = _short_filters(value)
        else:
            parts.append(f"{key}={value}")
    text = path + ("?" + "&".join(parts) if parts else "")
    if filters:
        text += f" filters: {filters}"
    return _cut(text, limit)


def _short_filters(raw: str) -> str:
    """Docker's ``filters`` JSON (``{"label": ["k=v"]}`` or ``{"label": {"k=v": true}}``)."""
    try:
        parsed = json.loads(raw)
    except ValueError:
        return raw
    if not isinstance(parsed, dict):
        return raw
    items: list[str] = []
    for key, values in parsed.items():
        if isinstance(values, dict):
            values = [v for v, on in values.items() if on]
        elif not isinstance(values, list):
            values = [values]
        items.extend(f"{key}={v}" for v in values)
    return ", ".join(items)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- the engine's address ------------------------------------------------------------------------


class _Upstream:
    """Where the engine is: a Unix socket path or a TCP ``(host, port)``."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.unix_path: str | None = None
        self.address: tuple[str, int] | None = None
        if url.startswith(("unix:", "http+unix:")):
            rest = url.partition(":")[2]
            path = rest[2:] if rest.startswith("//") else rest
            if path[:3].upper() == "%2F":  # requests-unixsocket's spelling
                path = urllib.parse.unquote(path)
            if not path.startswith("/"):
                raise GateError(f"the engine URL {url!r} has no absolute socket path; "
                                f"the gate supports {', '.join(_SUPPORTED)}")
            self.unix_path = path
            return
        scheme = url.partition("://")[0].lower() if "://" in url else ""
        if scheme not in ("tcp", "http"):
            raise GateError(f"the observation gate cannot forward to the engine at {url!r}: it "
                            f"supports {', '.join(_SUPPORTED)} (no TLS, ssh or named pipes); "
                            f"give it a local socket or a plain TCP address of the engine")
        if scheme == "tcp" and os.environ.get("DOCKER_TLS_VERIFY"):
            raise GateError(f"the engine at {url!r} needs TLS (DOCKER_TLS_VERIFY is set), which "
                            f"the observation gate does not speak; it supports "
                            f"{', '.join(_SUPPORTED)} without TLS")
        parts = urllib.parse.urlsplit(url)
        try:
            port = parts.port
        except ValueError as exc:
            raise GateError(f"the engine URL {url!r} has a bad port ({exc}); the gate supports "
                            f"{', '.join(_SUPPORTED)}") from None
        if not parts.hostname or parts.path not in ("", "/") or parts.query:
            raise GateError(f"the engine URL {url!r} is not of the form "
                            f"{scheme}://host:port; the gate supports {', '.join(_SUPPORTED)}")
        self.address = (parts.hostname, port or (2375 if scheme == "tcp" else 80))

    def connect(self, timeout: float) -> socket.socket:
        """A new connection to the engine (``OSError`` when it cannot be reached)."""
        if self.unix_path is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(timeout)
                sock.connect(self.unix_path)
            except BaseException:
                sock.close()
                raise
            return sock
        assert self.address is not None
        return socket.create_connection(self.address, timeout=timeout)

    def http(self, timeout: float) -> http.client.HTTPConnection:
        """An :class:`http.client.HTTPConnection` to the engine (connects on first use)."""
        upstream = self

        class _Connection(http.client.HTTPConnection):
            def connect(self) -> None:
                self.sock = upstream.connect(timeout)

        return _Connection("localhost", timeout=timeout)


# -- one request ---------------------------------------------------------------------------------


class _BadRequest(Exception):
    pass


class _Request:
    """A request inside the gate: its head, its connection, and (for a list) its hold state."""

    def __init__(self, seq: int, at: float, conn: socket.socket, method: str, target: str,
                 version: str, headers: list[tuple[str, str]], extra: bytes) -> None:
        self.seq = seq
        self.at = at
        self.conn = conn
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.extra = extra
        self.path = target.partition("?")[0]
        self.kind = "list" if method == "GET" and LIST_PATH.match(self.path) else "other"
        self.note = ""
        # Held lists: "held" -> "release" | "open" | "close" (set by the gate) or "abandoned".
        self.state = ""
        self.order: str | None = None
        self.observation = 0
        self.timeout = LIST_TIMEOUT
        self.released_at: float | None = None
        self.wake_r: socket.socket | None = None
        self.wake_w: socket.socket | None = None
        # Forwarding: counted by in_flight() while forwarding and not a stream.
        self.forwarding = False
        self.stream = _is_stream(self.path, target)
        self.upstream_sock: socket.socket | None = None
        self.seq_at_done = 0
        self.record: GateRecord | None = None
        self.done = threading.Event()

    def wake(self) -> None:
        if self.wake_w is not None:
            with contextlib.suppress(OSError):
                self.wake_w.send(b"x")

    def _connection_tokens(self) -> set[str]:
        """The headers the client's ``Connection`` header names (hop-by-hop, per RFC 9110)."""
        return {h.strip().lower() for name, value in self.headers
                if name.lower() == "connection" for h in value.split(",")}

    def forwarded_head(self) -> bytes:
        """The request head for the engine, hop-by-hop headers rewritten."""
        named = self._connection_tokens()
        upgrade = next((v for n, v in self.headers if n.lower() == "upgrade"), None)
        wants_upgrade = "upgrade" in named and upgrade is not None
        lines = [f"{self.method} {self.target} {self.version}"]
        has_host = False
        for name, value in self.headers:
            low = name.lower()
            if low in _HOP_BY_HOP or (low in named and low != "transfer-encoding"):
                continue
            has_host = has_host or low == "host"
            lines.append(f"{name}: {value}")
        if not has_host:
            lines.append("Host: docker")
        if wants_upgrade:
            lines += ["Connection: Upgrade", f"Upgrade: {upgrade}"]
        else:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def list_headers(self) -> list[tuple[str, str]]:
        """The client's headers for a buffered list request (hop-by-hop ones dropped)."""
        named = self._connection_tokens()
        kept = [(n, v) for n, v in self.headers
                if n.lower() not in _HOP_BY_HOP and n.lower() not in named]
        if not any(n.lower() == "host" for n, _ in kept):
            kept.append(("Host", "docker"))
        return kept + [("Connection", "close")]


def _is_stream(path: str, target: str) -> bool:
    match = STREAM_PATH.match(path)
    if not match:
        return False
    query = dict(urllib.parse.parse_qsl(target.partition("?")[2]))
    if path.endswith("/logs"):
        return query.get("follow", "").lower() in ("1", "true")
    if path.endswith("/stats"):
        return query.get("stream", "1").lower() not in ("0", "false")
    return True


def _parse_head(raw: bytes) -> tuple[str, str, str, list[tuple[str, str]]]:
    """``(method, target, version, headers)`` of a request head, or :class:`_BadRequest`."""
    try:
        text = raw.decode("latin-1")
    except UnicodeDecodeError as exc:  # pragma: no cover - latin-1 decodes every byte
        raise _BadRequest(str(exc)) from None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[0].isalpha() or not parts[0].isupper():
        raise _BadRequest(f"bad request line {lines[0][:80]!r}")
    method, target, version = parts
    if not re.fullmatch(r"HTTP/1\.[01]", version):
        raise _BadRequest(f"unsupported protocol {version[:20]!r} (HTTP/1.0 or 1.1 only)")
    if not target.startswith("/"):
        raise _BadRequest(f"bad request target {target[:80]!r} (a path is expected)")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip() or line[0] in " \t":
            raise _BadRequest(f"bad header line {line[:80]!r}")
        headers.append((name, value.strip()))
    return method, target, version, headers


def _json_answer(status: int, reason: str, message: str) -> bytes:
    body = (json.dumps({"message": message}) + "\n").encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    return head.encode("latin-1") + body


def _reorder(body: bytes, order: str | None) -> tuple[bytes, tuple[str, ...], str]:
    """``(body, ids, why not reordered)`` of a list answer; the body is untouched unless it is a
    JSON array of objects with a numeric ``Created`` and the order changes."""
    try:
        items = json.loads(body)
    except ValueError:
        return body, (), "not reordered: the answer is not JSON" if order else ""
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        return body, (), "not reordered: the answer is not a list of containers" if order else ""
    ids = tuple(str(i.get("Id", "")) for i in items)
    if order is None:
        return body, ids, ""
    created = [i.get("Created") for i in items]
    if not all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in created):
        return body, ids, "not reordered: a container has no numeric Created"
    newest = sorted(items, key=lambda i: i["Created"], reverse=True)  # stable: ties keep order
    wanted = newest if order == "newest" else newest[::-1]
    new_ids = tuple(str(i.get("Id", "")) for i in wanted)
    if new_ids == ids and wanted == items:
        return body, ids, ""
    return (json.dumps(wanted) + "\n").encode(), new_ids, ""


# -- the gate ------------------------------------------------------------------------------------


class ObservationGate:
    """A Docker Engine API proxy on a Unix socket that holds container-list requests.

    ``upstream`` is the engine: ``unix:///path``, ``unix:/path`` (or ``http+unix://``),
    ``tcp://host:port`` or ``http://host:port`` (no TLS: ``https://``, ``ssh://``, ``npipe://``
    and ``tcp://`` while ``DOCKER_TLS_VERIFY`` is set raise :class:`GateError`). ``socket_path``
    is where the gate listens; None makes a fresh private (0700) folder with
    :func:`tempfile.mkdtemp` holding ``gate.sock`` (made here, so :attr:`url` is known before
    :meth:`start`), removed again by :meth:`close`. The socket is made 0600.

    The gate starts **open** (:attr:`holding` is False: lists are forwarded at once); call
    :meth:`set_holding` to hold them. Every method is thread-safe. Point a driver at it with
    ``DOCKER_HOST=gate.url``.
    """

    def __init__(self, upstream: str, socket_path: str | os.PathLike[str] | None = None) -> None:
        self.upstream = upstream
        self._upstream = _Upstream(upstream)
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
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._release_lock = threading.Lock()
        self._holding = False
        self._during: list[tuple[object, str]] = []
        self._held: deque[_Request] = deque()
        self._active: set[_Request] = set()
        self._client_socks: set[socket.socket] = set()
        self._threads: set[threading.Thread] = set()
        self._log: deque[GateRecord] = deque(maxlen=LOG_LIMIT)
        self._seq = 0
        self._observations = 0
        self._last_arrival: tuple[float, str] | None = None
        self._listener: socket.socket | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._started = False
        self._closed = False

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
            self._cond.notify_all()
        for req in held:
            req.wake()
        if self._wake_w is not None:
            with contextlib.suppress(OSError):
                self._wake_w.send(b"x")
        for req in active:  # pass-throughs and streams: cut both ends, their threads end
            for sock in (req.conn, req.upstream_sock):
                _shutdown(sock)
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
            _shutdown(sock)
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

    # -- holding -----------------------------------------------------------------------------

    @property
    def holding(self) -> bool:
        """Whether container-list requests are held (False at first: the gate is open)."""
        return self._holding

    @property
    def observations(self) -> int:
        """How many list requests were released (as observations) so far."""
        return self._observations

    def set_holding(self, on: bool) -> None:
        """Hold every list request that arrives from now on (``on``), or forward them at once.

        Opening the gate releases the requests held at that moment in arrival order, unreordered
        (disposition ``"released"``, note ``"gate opened"``); they are not observations.
        """
        with self._cond:
            self._holding = bool(on)
            opened: list[_Request] = []
            if not on:
                opened = list(self._held)
                self._held.clear()
                for req in opened:
                    req.state = "open"
                self._cond.notify_all()
        for req in opened:
            req.wake()

    @contextlib.contextmanager
    def during(self, label: str) -> Iterator[None]:
        """While the block is open, list requests that arrive are forwarded at once (note
        ``during {label}``); requests already held stay held. Nestable and thread-safe."""
        token = object()
        with self._cond:
            self._during.append((token, label))
        try:
            yield
        finally:
            with self._cond:
                self._during = [entry for entry in self._during if entry[0] is not token]
                self._cond.notify_all()

    def held_count(self) -> int:
        """How many list requests are held now (abandoned ones are dropped at once)."""
        with self._lock:
            return len(self._held)

    def in_flight(self) -> int:
        """How many requests are being forwarded now, held ones and long-lived streams
        (:data:`STREAM_PATH`) not counted."""
        with self._lock:
            return self._in_flight()

    def _in_flight(self) -> int:
        return sum(1 for r in self._active if r.forwarding and not r.stream)

    def wait_held(self, timeout: float) -> bool:
        """Wait until at least one list request is held; False when ``timeout`` passes first."""
        with self._cond:
            return self._cond.wait_for(lambda: bool(self._held) or self._closed, timeout) \
                and bool(self._held)

    def release(self, order: str | None = None, timeout: float = 5.0) -> GateRecord:
        """Forward the oldest held list request now and return its record once the client has
        the answer (one observation).

        ``order``: ``"newest"`` sorts the engine's list by ``Created`` descending (stable: ties
        keep the engine's order), ``"oldest"`` is exactly the reverse of that, None leaves it
        untouched. An answer that is not a JSON list, or not 200, is passed on unchanged. Raises
        :class:`GateError` when nothing is held or the engine cannot be reached (the client then
        got 502), :class:`GateTimeout` when the answer is not written within ``timeout`` seconds.
        """
        return self._release(order, timeout)[0]

    def _release(self, order: str | None, timeout: float) -> tuple[GateRecord, int]:
        """:meth:`release`, and the last arrival's ``seq`` when the client got the answer."""
        if order not in _ORDERS:
            raise ValueError(f"order must be 'newest', 'oldest' or None, not {order!r}")
        deadline = time.monotonic() + timeout
        abandoned: list[GateRecord] = []
        with self._release_lock:
            while True:
                with self._cond:
                    if not self._held:
                        raise GateError(self._nothing_held(abandoned))
                    req = self._held.popleft()
                    req.state = "release"
                    req.order = order
                    req.observation = self._observations + 1
                    req.timeout = max(0.1, deadline - time.monotonic())
                    req.released_at = time.monotonic()
                    self._cond.notify_all()
                req.wake()
                if not req.done.wait(max(0.0, deadline - time.monotonic()) + 1.0):
                    raise GateTimeout(
                        f"the released list request #{req.seq} ({req.method} {req.target}) was "
                        f"not answered within {timeout:g}s: the engine at {self.upstream} is slow "
                        f"or stuck; give release() a longer timeout or check the engine")
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
        return (f"no container-list request is held: the driver has not asked for a container "
                f"list since the last release; wait_held() first, and check that the driver "
                f"uses DOCKER_HOST={self.url}")

    def observe(self, order: str | None, timeout: float) -> GateRecord:
        """One observation of a polling driver: :meth:`release` (``order``), then wait until the
        driver is quiet again (a new list request is held and nothing else is in flight).

        Returns the released record; :class:`GateTimeout` (saying what was seen) when the driver
        is not quiet within ``timeout`` seconds of the call.
        """
        deadline = time.monotonic() + timeout
        record, after = self._release(order, timeout)
        with self._cond:
            quiet = self._cond.wait_for(
                lambda: self._closed or (self._in_flight() == 0
                                         and any(r.seq > after for r in self._held)),
                max(0.0, deadline - time.monotonic()))
            if quiet and not self._closed:
                return record
            raise GateTimeout(self._not_quiet(record, after, timeout))

    def _not_quiet(self, record: GateRecord, after: int, timeout: float) -> str:
        """Why the driver is not quiet (called under the lock)."""
        if self._closed:
            return f"the gate was closed while waiting for the driver after {record.note}"
        busy = [r for r in self._active if r.forwarding and not r.stream]
        streams = [r for r in self._active if r.forwarding and r.stream]
        lists_since = sum(1 for r in self._held if r.seq > after) + sum(
            1 for r in self._active if r.kind == "list" and r.seq > after)
        now = time.monotonic()
        parts = [f"the driver did not come back for another container list within {timeout:g}s "
                 f"after {record.note} (request #{record.seq})"]
        if busy:
            parts.append(f"{_count(len(busy), 'request')} still in flight: "
                         + "; ".join(f"#{r.seq} {r.method} {_short_target(r.target, 80)} "
                                     f"({now - r.at:.1f}s)" for r in busy))
        else:
            parts.append("nothing in flight")
        if streams:
            parts.append(f"{_count(len(streams), 'stream')} open (not counted)")
        if self._last_arrival is None:
            parts.append("no request from the driver yet")
        else:
            at, what = self._last_arrival
            parts.append(f"its last request arrived {now - at:.1f}s ago ({what})")
        parts.append(f"{lists_since} list request(s) arrived since the release"
                     if lists_since else "no list request arrived since the release")
        if not self._holding:
            parts.append("the gate is open (lists are not held)")
        elif self._during:
            parts.append(f"a during() block is open ({self._during[-1][1]}), so lists pass")
        return "; ".join(parts)

    def drain_log(self) -> list[GateRecord]:
        """The records completed since the last call, in arrival order (at most the last
        :data:`LOG_LIMIT`).

        A record is added just after its answer was written, so a client can have its answer a
        moment before the log shows it; :meth:`release` and :meth:`observe` return only after
        theirs is in.
        """
        with self._lock:
            records = sorted(self._log, key=lambda r: r.seq)
            self._log.clear()
        return records

    # -- serving -----------------------------------------------------------------------------

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
        with selectors.DefaultSelector() as sel:
            sel.register(self._listener, selectors.EVENT_READ)
            sel.register(self._wake_r, selectors.EVENT_READ)
            while not self._closed:
                ready = {key.fileobj for key, _ in sel.select()}
                if self._wake_r in ready or self._closed:
                    return
                try:
                    conn, _ = self._listener.accept()
                except OSError:
                    continue
                with self._lock:
                    if self._closed:
                        conn.close()
                        return
                    self._client_socks.add(conn)
                self._spawn(self._serve, "sbx-gate-conn", conn)

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
        method = target = ""
        if problem is None:
            try:
                method, target, version, headers = _parse_head(raw or b"")
            except _BadRequest as exc:
                problem = str(exc)
        with self._cond:
            self._seq += 1
            seq = self._seq
        if problem is not None:
            if problem == "":  # the client closed mid-head
                self._log_record(seq, at, method, target, "other", "abandoned", None,
                                 "the client closed before its request head was complete")
                return
            sent = _send(conn, _json_answer(400, "Bad Request",
                                            f"observation gate: malformed request: {problem}"))
            self._log_record(seq, at, method, target, "other", "refused",
                             400 if sent else None, f"malformed request: {problem}")
            self._linger(conn)
            return
        req = _Request(seq, at, conn, method, target, version, headers, extra)
        self._admit(req)

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
                chunk = conn.recv(65536)
                if not chunk:
                    return (None, b"", None) if not buf else (buf, b"", "")
                buf += chunk
        except socket.timeout:
            return buf, b"", f"no complete request head within {HEAD_TIMEOUT:g}s"
        except OSError:
            return (None, b"", None) if not buf else (buf, b"", "")

    def _admit(self, req: _Request) -> None:
        """Classify an arrived request and serve it."""
        with self._cond:
            self._last_arrival = (req.at, f"{req.method} {_short_target(req.target, 80)}")
            if self._during:
                req.note = f"during {self._during[-1][1]}"
            if self._closed:
                action = "refuse"
            elif req.kind != "list":
                action = "pass"
            elif self._during:
                action = "pass-list"
            elif not self._holding:
                action, req.note = "pass-list", "gate open"
            else:
                action = "hold"
                req.state = "held"
                req.wake_r, req.wake_w = socket.socketpair()
                self._held.append(req)
            self._cond.notify_all()
        if action == "refuse":
            self._refuse(req, 0.0)
        elif action == "pass":
            self._pass_through(req)
        elif action == "pass-list":
            self._forward_list(req, None, "passed", req.note, 0.0, LIST_TIMEOUT)
        else:
            try:
                self._hold(req)
            finally:
                for sock in (req.wake_r, req.wake_w):
                    if sock is not None:
                        sock.close()

    def _refuse(self, req: _Request, held_s: float) -> None:
        sent = _send(req.conn, _json_answer(503, "Service Unavailable",
                                            "observation gate closed"))
        self._finish(req, "refused", 503 if sent else None, "gate closed", held_s)
        self._linger(req.conn)

    def _hold(self, req: _Request) -> None:
        """Wait until the request is released, the gate opens or closes, or the client leaves."""
        assert req.wake_r is not None
        gone = False
        with selectors.DefaultSelector() as sel:
            sel.register(req.conn, selectors.EVENT_READ)
            sel.register(req.wake_r, selectors.EVENT_READ)
            while True:
                with self._lock:
                    if req.state != "held":
                        break
                ready = {key.fileobj for key, _ in sel.select()}
                if req.conn in ready and _client_gone(req.conn):
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
        if gone or _client_gone(req.conn):
            self._finish(req, "abandoned", None,
                         f"observation {req.observation} not delivered" if req.state == "release"
                         else "", held_s)
            return
        if req.state == "open":
            self._forward_list(req, None, "released", "gate opened", held_s, LIST_TIMEOUT)
            return
        note = f"observation {req.observation}"
        if req.order is not None:
            note += f", {req.order} first"
        held_s = (req.released_at or time.monotonic()) - req.at
        self._forward_list(req, req.order, "released", note, held_s, req.timeout)

    def _forward_list(self, req: _Request, order: str | None, disposition: str, note: str,
                      held_s: float, timeout: float) -> None:
        """Ask the engine for the list now, reorder it, write the whole answer."""
        with self._cond:
            req.forwarding = True
            self._active.add(req)
            self._cond.notify_all()
        try:
            answer, status, ids, extra_note, error = self._ask_engine(req, order, timeout)
            if error is not None:
                sent = _send(req.conn, answer)
                self._finish(req, "error", 502 if sent else None, error, held_s)
                return
            with self._lock:
                # Arrivals from now on came after the answer went out. Taken before sending: the
                # driver's next poll may arrive before this thread runs again after the send.
                seq_before_answer = self._seq
            if not _send(req.conn, answer):
                self._finish(req, "abandoned", None, f"{note} not delivered", held_s)
                return
            _shutdown(req.conn, socket.SHUT_WR)
            with self._lock:
                req.seq_at_done = seq_before_answer
                if disposition == "released" and note.startswith("observation"):
                    self._observations += 1
            self._finish(req, disposition, status, note + (f", {extra_note}" if extra_note
                                                           else ""), held_s, ids)
        finally:
            with self._cond:
                req.forwarding = False
                self._active.discard(req)
                self._cond.notify_all()
        self._linger(req.conn)

    def _ask_engine(self, req: _Request, order: str | None, timeout: float
                    ) -> tuple[bytes, int | None, tuple[str, ...], str, str | None]:
        """``(answer bytes, status, ids, note, error)`` of one buffered list request."""
        conn = self._upstream.http(timeout)
        try:
            conn.putrequest(req.method, req.target, skip_host=True, skip_accept_encoding=True)
            for name, value in req.list_headers():
                conn.putheader(name, value)
            conn.endheaders()
            resp = conn.getresponse()
            body = resp.read()
            status, reason, headers = resp.status, resp.reason, resp.getheaders()
        except (OSError, http.client.HTTPException) as exc:
            error = self._unreachable(exc)
            return _json_answer(502, "Bad Gateway", error), None, (), "", error
        finally:
            conn.close()
        ids: tuple[str, ...] = ()
        why = ""
        if status == 200:
            body, ids, why = _reorder(body, order)
        elif order is not None:
            why = f"not reordered: the engine answered {status}"
        lines = [f"HTTP/1.1 {status} {reason}"]
        lines += [f"{n}: {v}" for n, v in headers if n.lower() not in _DROP_FROM_LIST_ANSWER]
        lines += [f"Content-Length: {len(body)}", "Connection: close"]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return head + body, status, ids, why, None

    def _unreachable(self, exc: BaseException) -> str:
        reason = str(exc) or type(exc).__name__
        if isinstance(exc, socket.timeout):
            reason = f"timed out ({reason})"
        return f"observation gate: cannot reach the engine at {self.upstream}: {reason}"

    def _bad_gateway(self, req: _Request, error: str) -> None:
        """Answer 502 with ``error`` (if the client is still there) and record it."""
        sent = _send(req.conn, _json_answer(502, "Bad Gateway", error))
        self._finish(req, "error", 502 if sent else None, error, 0.0)

    def _pass_through(self, req: _Request) -> None:
        """Pipe the request to a new engine connection and everything back, until it closes."""
        try:
            upstream = self._upstream.connect(CONNECT_TIMEOUT)
            upstream.settimeout(None)
        except OSError as exc:
            self._bad_gateway(req, self._unreachable(exc))
            self._linger(req.conn)
            return
        with self._cond:
            if self._closed:
                upstream.close()
                closed = True
            else:
                closed = False
                req.upstream_sock = upstream
                req.forwarding = True
                self._active.add(req)
                self._cond.notify_all()
        if closed:
            self._refuse(req, 0.0)
            return
        pump: threading.Thread | None = None
        status: int | None = None
        got_any = False
        note = req.note
        try:
            try:
                upstream.sendall(req.forwarded_head() + req.extra)
            except OSError as exc:
                self._bad_gateway(req, self._unreachable(exc))
                return
            pump = self._spawn(_pump, "sbx-gate-pump", req.conn, upstream)
            parse = b""
            while True:
                try:
                    data = upstream.recv(65536)
                except OSError:
                    break
                if not data:
                    break
                got_any = True
                if status is None and len(parse) < MAX_HEAD:
                    parse += data
                    status, head, rest = _final_status(parse)
                    parse = rest if status is None else b""
                    if status is not None and _hijacked(status, head):
                        # Let the client read the head alone before the stream's first bytes.
                        split = len(data) - len(rest)
                        if not _send(req.conn, data[:split]):
                            note = (note + "; " if note else "") + "the client went away"
                            break
                        _await_read(req.conn)
                        data = data[split:]
                        if not data:
                            continue
                if not _send(req.conn, data):
                    note = (note + "; " if note else "") + "the client went away"
                    break
            if not got_any:
                self._bad_gateway(req, f"observation gate: the engine at {self.upstream} "
                                       "closed the connection without answering")
                return
            _shutdown(req.conn, socket.SHUT_WR)
            self._finish(req, "passed", status, note, 0.0)
        finally:
            with self._cond:
                req.forwarding = False
                self._active.discard(req)
                self._cond.notify_all()
            if pump is not None:
                pump.join(LINGER)  # the client closes after reading the answer
                if pump.is_alive():
                    _shutdown(req.conn, socket.SHUT_RD)
                    _shutdown(upstream)
                    pump.join(CLOSE_WAIT)
            upstream.close()

    def _linger(self, sock: socket.socket) -> None:
        _linger(sock, 0.1 if self._closed else LINGER)

    def _finish(self, req: _Request, disposition: str, status: int | None, note: str,
                held_s: float, ids: tuple[str, ...] = ()) -> None:
        record = self._log_record(req.seq, req.at, req.method, req.target, req.kind, disposition,
                                  status, note, held_s, ids, req=req)
        req.record = record
        req.done.set()

    def _log_record(self, seq: int, at: float, method: str, target: str, kind: str,
                    disposition: str, status: int | None, note: str, held_s: float = 0.0,
                    ids: tuple[str, ...] = (), req: _Request | None = None) -> GateRecord:
        record = GateRecord(seq=seq, at=at, method=method, path=target, kind=kind,
                            disposition=disposition, status=status, note=note,
                            held_s=round(held_s, 6), duration_s=time.monotonic() - at, ids=ids)
        with self._cond:
            self._log.append(record)
            self._cond.notify_all()
        return record


# -- socket helpers ------------------------------------------------------------------------------


def _send(sock: socket.socket, data: bytes) -> bool:
    try:
        sock.sendall(data)
    except OSError:
        return False
    return True


def _shutdown(sock: socket.socket | None, how: int = socket.SHUT_RDWR) -> None:
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.shutdown(how)


def _client_gone(sock: socket.socket) -> bool:
    """Whether the client closed (EOF or reset), without blocking. Bytes it sent are read and
    dropped (a held request is a GET without a body)."""
    try:
        sock.setblocking(False)
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    return True
        except (BlockingIOError, InterruptedError):
            return False
        finally:
            sock.setblocking(True)
    except OSError:
        return True


def _linger(sock: socket.socket, seconds: float = LINGER) -> None:
    """Close gently: stop sending, then read what the client still sends until it closes (at most
    ``seconds``), so a close never resets an answer the client has not read yet."""
    _shutdown(sock, socket.SHUT_WR)
    try:
        sock.settimeout(seconds)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if not sock.recv(65536):
                return
    except OSError:
        return


def _pump(client: socket.socket, upstream: socket.socket) -> None:
    """Client to engine: request bodies and hijacked input; the client's EOF half-closes."""
    while True:
        try:
            data = client.recv(65536)
        except OSError:
            data = b""
        if not data:
            _shutdown(upstream, socket.SHUT_WR)
            return
        if not _send(upstream, data):
            return


def _final_status(buf: bytes) -> tuple[int | None, bytes, bytes]:
    """``(status, head, rest)`` of a response whose first bytes are ``buf``: the final status
    (interim 1xx answers skipped, but not 101), its head, and the bytes after it; status None
    (and ``rest`` the bytes still to parse) until a whole head is there, 0 if it is not HTTP."""
    while True:
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return None, b"", buf
        match = re.match(rb"HTTP/\d\.\d (\d{3})", buf)
        if not match:
            return 0, b"", b""
        status = int(match.group(1))
        if 100 <= status < 200 and status != 101:
            buf = buf[end + 4:]
            continue
        return status, buf[:end], buf[end + 4:]


_RAW_STREAM = re.compile(
    rb"(?im)^content-type:\s*application/vnd\.docker\.(raw|multiplexed)-stream")


def _hijacked(status: int, head: bytes) -> bool:
    """Whether an answer turns the connection into a raw stream (``attach``, ``exec`` start)."""
    return status == 101 or (status == 200 and _RAW_STREAM.search(head) is not None)


def _await_read(sock: socket.socket, limit: float = 0.5) -> None:
    """Wait (at most ``limit`` seconds) until the client has read what was sent to it.

    After a hijacking answer, some clients (the Docker SDK for Python) parse the head through a
    buffered reader but then read the stream from the raw socket: stream bytes that arrive with
    the head vanish into that buffer. The engine avoids it by timing (the stream starts later);
    the gate adds a hop that can bunch them together, so it waits until the head is read. On
    Linux the socket's unread byte count (``TIOCOUTQ``) says when; elsewhere a short pause.
    """
    try:
        import fcntl  # noqa: PLC0415 - Unix only
        import termios  # noqa: PLC0415

        request = termios.TIOCOUTQ
    except (ImportError, AttributeError):
        time.sleep(0.02)
        return
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            unread = struct.unpack("i", fcntl.ioctl(sock.fileno(), request, b"\0\0\0\0"))[0]
        except OSError:
            time.sleep(0.02)
            return
        if unread <= 0:
            return
        time.sleep(0.002)
