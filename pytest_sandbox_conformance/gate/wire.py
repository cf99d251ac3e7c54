"""HTTP/1.1 on the wire, for the observation gate: request heads (origin and absolute form),
the gate's own answers, response heads, the framing of an engine's event stream, list reordering,
and the socket helpers every connection uses. Standard library only; no state.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import struct
import time
import urllib.parse
from dataclasses import dataclass

__all__ = ["EVENTS_PATH", "LIST_PATH", "MAX_HEAD", "STREAM_PATH", "BadRequest", "ChunkedDecoder",
           "EventLine", "RequestHead", "await_read", "client_gone", "final_status", "hijacked",
           "is_event_stream", "is_stream", "json_answer", "linger", "parse_head", "pump",
           "receive", "reorder", "send", "shutdown"]

#: The path (query stripped) of a container-list request, with or without an API version and
#: Podman's ``/libpod`` prefix.
LIST_PATH = re.compile(r"^(/v[0-9.]+)?(/libpod)?/containers/json$")
#: The path (query stripped) of the engine's event stream: Docker's ``/events`` and Podman's
#: ``/libpod/events``, with or without an API version prefix.
EVENTS_PATH = re.compile(r"^(/v[0-9.]+)?(/libpod)?/events$")
#: Paths (query stripped) of requests that may stay open for as long as the client wants; they
#: never count as in flight. ``logs`` and ``stats`` only with a streaming query (see
#: :func:`is_stream`).
STREAM_PATH = re.compile(
    r"^(/v[0-9.]+)?(/libpod)?(/events|/containers/[^/]+/(attach|attach/ws|wait|logs|stats))$")

#: The largest request or response head the gate reads (start line and headers).
MAX_HEAD = 64 * 1024
#: The longest event line the gate buffers; a longer one is passed on as it comes.
MAX_EVENT_LINE = 1024 * 1024
#: How long the gate waits for a client to read a hijacking answer's head (see await_read).
AWAIT_READ_LIMIT = 0.5

_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "te", "upgrade"})


class BadRequest(Exception):
    """A request head the gate cannot forward (answered 400 with this message)."""


@dataclass(frozen=True)
class RequestHead:
    """A parsed request head. ``target`` is always in origin form (path and query): an
    absolute-form target (``GET http://localhost/_ping HTTP/1.1``, which RFC 9112 section 3.2.2
    says a server must accept) is turned into one, and its authority kept as ``authority``
    (it replaces the Host header when the request is forwarded)."""

    method: str
    target: str
    version: str
    headers: tuple[tuple[str, str], ...]
    authority: str | None = None

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]

    def query(self) -> dict[str, str]:
        return dict(urllib.parse.parse_qsl(self.target.partition("?")[2],
                                           keep_blank_values=True))

    def _connection_tokens(self) -> set[str]:
        """The headers the client's ``Connection`` header names (hop-by-hop, per RFC 9110)."""
        return {h.strip().lower() for name, value in self.headers
                if name.lower() == "connection" for h in value.split(",")}

    def _end_to_end(self) -> list[tuple[str, str]]:
        named = self._connection_tokens()
        kept = []
        for name, value in self.headers:
            low = name.lower()
            if low in _HOP_BY_HOP or (low in named and low != "transfer-encoding"):
                continue
            if low == "host" and self.authority is not None:
                continue  # RFC 9112 3.2.2: the absolute-form target's authority replaces it
            kept.append((name, value))
        if self.authority is not None:
            kept.append(("Host", self.authority))
        elif not any(n.lower() == "host" for n, _ in kept):
            kept.append(("Host", "docker"))
        return kept

    def forwarded(self) -> bytes:
        """The request head for the engine (origin form), hop-by-hop headers rewritten:
        ``Connection: close``, except that an upgrade request (``Connection: Upgrade`` with an
        ``Upgrade`` header, as Docker clients send for ``attach`` and ``exec`` start) keeps both,
        because the engine only answers ``101 UPGRADED`` when asked."""
        named = self._connection_tokens()
        upgrade = next((v for n, v in self.headers if n.lower() == "upgrade"), None)
        lines = [f"{self.method} {self.target} {self.version}"]
        lines += [f"{n}: {v}" for n, v in self._end_to_end()]
        if "upgrade" in named and upgrade is not None:
            lines += ["Connection: Upgrade", f"Upgrade: {upgrade}"]
        else:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def list_headers(self) -> list[tuple[str, str]]:
        """The client's headers for a buffered list request (hop-by-hop ones dropped)."""
        named = self._connection_tokens()
        kept = [(n, v) for n, v in self._end_to_end() if n.lower() not in named]
        return kept + [("Connection", "close")]


def parse_head(raw: bytes) -> RequestHead:
    """A request head (without its final blank line), or :class:`BadRequest`."""
    text = raw.decode("latin-1")
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[0].isalpha() or not parts[0].isupper():
        raise BadRequest(f"bad request line {lines[0][:80]!r}")
    method, target, version = parts
    if not re.fullmatch(r"HTTP/1\.[01]", version):
        raise BadRequest(f"unsupported protocol {version[:20]!r} (HTTP/1.0 or 1.1 only)")
    authority = None
    if not target.startswith("/"):
        target, authority = _origin_form(target)
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip() or line[0] in " \t":
            raise BadRequest(f"bad header line {line[:80]!r}")
        headers.append((name, value.strip()))
    return RequestHead(method, target, version, tuple(headers), authority)


def _origin_form(target: str) -> tuple[str, str]:
    """``(origin-form target, authority)`` of an absolute-form target (``http://host/path?q``)."""
    scheme, sep, _ = target.partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        raise BadRequest(f"bad request target {target[:80]!r} (a path, or an absolute http URL "
                         "as RFC 9112 section 3.2.2 allows, is expected)")
    parts = urllib.parse.urlsplit(target)
    if not parts.netloc or parts.fragment or "@" in parts.netloc:
        raise BadRequest(f"bad request target {target[:80]!r} (an absolute URL needs a host "
                         "and no user info or fragment)")
    origin = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return origin, parts.netloc


def is_stream(head: RequestHead) -> bool:
    """Whether a request may stay open as long as its client wants (:data:`STREAM_PATH`)."""
    if not STREAM_PATH.match(head.path):
        return False
    query = head.query()
    if head.path.endswith("/logs"):
        return query.get("follow", "").lower() in ("1", "true")
    if head.path.endswith("/stats"):
        return query.get("stream", "1").lower() not in ("0", "false")
    return True


def is_event_stream(head: RequestHead) -> bool:
    """Whether a request opens the engine's endless event stream (which the gate holds): a
    ``GET`` of :data:`EVENTS_PATH` without ``until`` (a bounded history) or ``stream=false``
    (Podman's one-shot form)."""
    if head.method != "GET" or not EVENTS_PATH.match(head.path):
        return False
    query = head.query()
    return "until" not in query and query.get("stream", "1").lower() not in ("0", "false")


def json_answer(status: int, reason: str, message: str) -> bytes:
    """A whole answer of the gate's own: ``{"message": ...}``, as Docker clients show errors."""
    body = (json.dumps({"message": message}) + "\n").encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    return head.encode("latin-1") + body


def final_status(buf: bytes) -> tuple[int | None, bytes, bytes]:
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


def header(head: bytes, name: str) -> str | None:
    """The value of a response head's header ``name`` (the first one), or None."""
    match = re.search(rb"(?im)^" + re.escape(name.encode()) + rb":[ \t]*(.*?)[ \t]*$", head)
    return match.group(1).decode("latin-1") if match else None


_RAW_STREAM = re.compile(
    rb"(?im)^content-type:\s*application/vnd\.docker\.(raw|multiplexed)-stream")


def hijacked(status: int, head: bytes) -> bool:
    """Whether an answer turns the connection into a raw stream (``attach``, ``exec`` start)."""
    return status == 101 or (status == 200 and _RAW_STREAM.search(head) is not None)


def tied(body: bytes) -> list[str]:
    """The IDs of a list answer's containers whose ``Created`` (whole seconds) another shares:
    their order needs the engine's finer creation time."""
    try:
        items = json.loads(body)
    except ValueError:
        return []
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        return []
    seconds: dict[object, int] = {}
    for item in items:
        seconds[item.get("Created")] = seconds.get(item.get("Created"), 0) + 1
    return [str(i.get("Id", "")) for i in items if seconds[i.get("Created")] > 1]


_RFC3339 = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)?$")


def created_ns(value: object) -> int | None:
    """An inspect's ``Created`` (RFC 3339 with up to nanoseconds) as Unix nanoseconds, or None."""
    import datetime as dt  # noqa: PLC0415

    match = _RFC3339.match(str(value).strip())
    if not match:
        return None
    whole, frac, zone = match.groups()
    tz = dt.timezone.utc
    if zone and zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        tz = dt.timezone(sign * dt.timedelta(hours=int(zone[1:3]), minutes=int(zone[-2:])))
    seconds = int(dt.datetime.fromisoformat(whole).replace(tzinfo=tz).timestamp())
    return seconds * 1_000_000_000 + int((frac or "0")[:9].ljust(9, "0"))


def reorder(body: bytes, order: str | None, finer: dict[str, int] | None = None
            ) -> tuple[bytes, tuple[str, ...], str]:
    """``(body, ids, why not reordered)`` of a list answer; the body is untouched unless it is a
    JSON array of objects with a numeric ``Created`` and the order changes. ``finer`` orders
    containers created in the same second (IDs to nanoseconds, :func:`tied`); without it such
    ties keep the engine's order (newest first: as if the engine were Docker)."""
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
    finer = finer or {}
    newest = sorted(items, key=lambda i: (i["Created"], finer.get(str(i.get("Id", "")), 0)),
                    reverse=True)  # stable: remaining ties keep the engine's order
    wanted = newest if order == "newest" else newest[::-1]
    new_ids = tuple(str(i.get("Id", "")) for i in wanted)
    if new_ids == ids and wanted == items:
        return body, ids, ""
    return (json.dumps(wanted) + "\n").encode(), new_ids, ""


# -- an engine's event stream ---------------------------------------------------------------------


class ChunkedDecoder:
    """Incremental decoder of a ``Transfer-Encoding: chunked`` body: :meth:`feed` bytes as they
    come, get the body bytes decoded so far; :attr:`done` once the last chunk (and its trailers)
    went by. A framing error raises ``ValueError``."""

    def __init__(self) -> None:
        self._buf = b""
        self._left = 0  # bytes of the current chunk still to come (+2 for its CRLF: see _crlf)
        self._crlf = False
        self._trailers = False
        self.done = False

    def feed(self, data: bytes) -> bytes:
        self._buf += data
        out = bytearray()
        while not self.done:
            if self._left:
                take = self._buf[: self._left]
                out += take
                self._buf = self._buf[len(take):]
                self._left -= len(take)
                if self._left:
                    break
                self._crlf = True
            if self._crlf:
                if len(self._buf) < 2:
                    break
                if self._buf[:2] != b"\r\n":
                    raise ValueError("a chunk does not end with CRLF")
                self._buf = self._buf[2:]
                self._crlf = False
            end = self._buf.find(b"\r\n")
            if end < 0:
                if len(self._buf) > MAX_HEAD:
                    raise ValueError("a chunk-size line is too long")
                break
            line, self._buf = self._buf[:end], self._buf[end + 2:]
            if self._trailers:
                if not line:
                    self.done = True
                continue
            size_text = line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise ValueError(f"bad chunk size {size_text[:20]!r}") from None
            if size == 0:
                self._trailers = True
                continue
            self._left = size
        return bytes(out)


@dataclass(frozen=True)
class EventLine:
    """One event of an engine's event stream: the exact bytes of its line (newline included),
    and what the gate read from it (all optional: a line that is not a JSON object is still one
    event, passed on unchanged). ``engine_time`` is the engine's own clock (seconds since the
    epoch, from ``timeNano`` or ``time``)."""

    raw: bytes
    action: str = ""
    container: str = ""
    engine_time: float | None = None

    @staticmethod
    def parse(raw: bytes) -> "EventLine":
        try:
            value = json.loads(raw)
        except ValueError:
            return EventLine(raw)
        if not isinstance(value, dict):
            return EventLine(raw)
        action = value.get("Action") or value.get("status") or value.get("Status") or ""
        actor = value.get("Actor") if isinstance(value.get("Actor"), dict) else {}
        container = actor.get("ID") or value.get("id") or value.get("ID") or ""
        when: float | None = None
        if isinstance(value.get("timeNano"), int):
            when = value["timeNano"] / 1e9
        elif isinstance(value.get("time"), (int, float)) and not isinstance(value["time"], bool):
            when = float(value["time"])
        return EventLine(raw, str(action), str(container), when)

    def describe(self) -> str:
        return f"{self.action or '?'} {self.container[:12] or '-'}"


def split_lines(buf: bytes) -> tuple[list[bytes], bytes]:
    """``(complete lines with their newline, the rest)``; a line longer than
    :data:`MAX_EVENT_LINE` without a newline counts as complete."""
    lines = []
    while True:
        end = buf.find(b"\n")
        if end < 0:
            if len(buf) > MAX_EVENT_LINE:
                lines.append(buf)
                buf = b""
            return lines, buf
        lines.append(buf[: end + 1])
        buf = buf[end + 1:]


def chunk(data: bytes) -> bytes:
    """``data`` as one HTTP chunk."""
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


# -- sockets --------------------------------------------------------------------------------------


def receive(sock: socket.socket) -> bytes:
    """The next bytes from ``sock``; ``b""`` at its end or when it fails (a reset, a close)."""
    try:
        return sock.recv(65536)
    except OSError:
        return b""


def send(sock: socket.socket, data: bytes) -> bool:
    try:
        sock.sendall(data)
    except OSError:
        return False
    return True


def shutdown(sock: socket.socket | None, how: int = socket.SHUT_RDWR) -> None:
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.shutdown(how)


def client_gone(sock: socket.socket) -> bool:
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


def linger(sock: socket.socket, seconds: float) -> None:
    """Close gently: stop sending, then read what the client still sends until it closes (at most
    ``seconds``), so a close never resets an answer the client has not read yet."""
    shutdown(sock, socket.SHUT_WR)
    try:
        sock.settimeout(seconds)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if not sock.recv(65536):
                return
    except OSError:
        return


def pump(client: socket.socket, upstream: socket.socket) -> None:
    """Client to engine: request bodies and hijacked input; the client's EOF half-closes."""
    while True:
        data = receive(client)
        if not data:
            shutdown(upstream, socket.SHUT_WR)
            return
        if not send(upstream, data):
            return


def await_read(sock: socket.socket, limit: float = AWAIT_READ_LIMIT) -> None:
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
