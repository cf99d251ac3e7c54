"""A stub Docker engine for the observation gate's tests, and clients that talk through a gate.

The stub is a small threaded HTTP server on a Unix socket that serves
``/v1.41/containers/json`` from a list the test controls (and each container's inspect, with a
nanosecond ``Created``), an engine event stream (``/v1.41/events``, Docker's; and
``/v4.0.0/libpod/events``, Podman's, with its ``Libpod-Api-Version`` header) fed from a queue the
test controls, a chunked stream, an echo for request bodies, a request that hangs until the test
lets it go, and one that takes a while. Tests wait on the gate's own signals (``wait_held``,
``held_count``), never on fixed sleeps, except where a test shows that something does *not*
happen.
"""

from __future__ import annotations

import http.client
import json
import queue
import socket
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler

import pytest

from pytest_sandbox_conformance.gate import GateRecord, ObservationGate

LIST = "/v1.41/containers/json"
EVENTS = "/v1.41/events"
LIBPOD_EVENTS = "/v4.0.0/libpod/events"
#: One frame of Docker's multiplexed stream: stdout, 6 bytes.
FRAME = b"\x01\x00\x00\x00\x00\x00\x00\x06hello\n"
LABEL_QUERY = LIST + '?all=1&filters={"label":["app.test/run=r1"]}'
#: How long ``/slow`` takes.
SLOW = 0.3


def container(cid: str, created: int, created_ns: int | None = None) -> dict:
    """A list entry (``Created`` in whole seconds); ``created_ns`` is what its inspect says."""
    entry = {"Id": cid * (64 // len(cid)), "Names": [f"/{cid}"], "Created": created,
             "State": "running"}
    if created_ns is not None:
        entry["_ns"] = created_ns
    return entry


def event(action: str, cid: str = "aa", engine_time: float | None = None) -> dict:
    """A Docker-shaped container event."""
    when = time.time() if engine_time is None else engine_time
    return {"Type": "container", "Action": action, "status": action,
            "Actor": {"ID": cid * (64 // len(cid)), "Attributes": {}},
            "id": cid * (64 // len(cid)), "time": int(when), "timeNano": int(when * 1e9)}


class StubEngine:
    """What the stub answers (the test changes it at will) and what it was asked."""

    def __init__(self) -> None:
        self.containers: list[dict] = [container("aa", 10), container("bb", 20)]
        self.list_status = 200
        self.list_body: bytes | None = None  # raw answer instead of the JSON of ``containers``
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # method, target, headers
        self.proceed = threading.Event()  # lets /stream and /hang go on
        self.lock = threading.Lock()
        #: What the event streams send: a dict (one JSON line), bytes (sent as one chunk as
        #: they are) or None (the stream ends).
        self.events: queue.Queue = queue.Queue()
        self.events_status = 200

    def ids(self, *short: str) -> list[str]:
        return [s * (64 // len(s)) for s in short]

    def send(self, *items: object) -> None:
        for item in items:
            self.events.put(item)


def _rfc3339(ns: int) -> str:
    seconds, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{frac:09d}Z"


class _StubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_StubServer"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base's name
        pass

    def _reply(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Api-Version", "1.41")
        self.end_headers()
        self.wfile.write(body)

    def _seen(self) -> None:
        with self.server.stub.lock:
            self.server.stub.requests.append((self.command, self.path, dict(self.headers)))

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self._seen()
        stub = self.server.stub
        path = self.path.partition("?")[0]
        if path == LIST:
            with stub.lock:
                listed = [{k: v for k, v in c.items() if k != "_ns"} for c in stub.containers]
                body = stub.list_body if stub.list_body is not None else json.dumps(
                    listed).encode()
                status = stub.list_status
            self._reply(status, body)
        elif path.startswith("/v1.41/containers/") and path.endswith("/json"):
            cid = path.split("/")[3]
            with stub.lock:
                found = [c for c in stub.containers if c["Id"] == cid and "_ns" in c]
            if found:
                self._reply(200, json.dumps({"Id": cid, "Created": _rfc3339(found[0]["_ns"])})
                            .encode())
            else:
                self._reply(404, b'{"message": "no such container"}')
        elif path in (EVENTS, LIBPOD_EVENTS) and not any(
                bounded in self.path for bounded in ("until=", "stream=false", "stream=0")):
            self._events(libpod=path == LIBPOD_EVENTS)
        elif path == "/stream":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"6\r\nfirst\n\r\n")
            stub.proceed.wait(10)
            try:
                self.wfile.write(b"7\r\nsecond\n\r\n0\r\n\r\n")
            except OSError:  # the test cut the stream
                self.close_connection = True
        elif path == "/hang":
            stub.proceed.wait(10)
            self._reply(200, b"{}")
        elif path == "/slow":
            time.sleep(SLOW)
            self._reply(200, b"{}")
        elif path in ("/_ping", EVENTS, LIBPOD_EVENTS):  # a bounded event query: nothing
            self._reply(200, b"OK", "text/plain")
        else:
            self._reply(404, b'{"message": "page not found"}')

    def _events(self, libpod: bool) -> None:
        if self.server.stub.events_status != 200:
            self._reply(self.server.stub.events_status, b'{"message": "events are broken"}')
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        if libpod:
            self.send_header("Libpod-Api-Version", "4.3.1")
        self.end_headers()
        self.wfile.flush()
        while True:
            try:
                item = self.server.stub.events.get(timeout=10)
            except queue.Empty:
                item = None
            try:
                if item is None:
                    self.wfile.write(b"0\r\n\r\n")
                    return
                data = item if isinstance(item, bytes) else (json.dumps(item) + "\n").encode()
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()
            except OSError:  # the gate closed the stream
                self.close_connection = True
                return

    def do_POST(self) -> None:  # noqa: N802
        self._seen()
        if self.path.endswith("/start") and self.headers.get("Upgrade") == "tcp":
            # Docker's hijack: the 101 head and the stream's first frame in one write.
            self.wfile.write(b"HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
                             b"Content-Type: application/vnd.docker.raw-stream\r\n\r\n"
                             + FRAME)
            self.close_connection = True
            return
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().strip(), 16)
                chunk = self.rfile.read(size + 2)[:size]
                if not size:
                    break
                body += chunk
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self._reply(201, body, "application/octet-stream")


class _StubServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, path: str, stub: StubEngine) -> None:
        self.stub = stub
        super().__init__(path, _StubHandler)


@pytest.fixture
def stub(tmp_path):
    """A stub engine serving on ``tmp_path/engine.sock``; yields ``(StubEngine, its URL)``."""
    path = tmp_path / "engine.sock"
    engine = StubEngine()
    server = _StubServer(str(path), engine)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield engine, f"unix://{path}"
    engine.proceed.set()
    for _ in range(8):
        engine.events.put(None)
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def gate(stub):
    """A started gate in front of the stub (open, as a new gate is)."""
    with ObservationGate(stub[1]) as g:
        yield g


# -- clients --------------------------------------------------------------------------------------


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 5.0) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def request(gate: ObservationGate, target: str = LIST, method: str = "GET",
            body: object = None, headers: dict[str, str] | None = None, timeout: float = 5.0
            ) -> tuple[int, dict[str, str], bytes]:
    """One request through the gate: ``(status, headers, body)``."""
    conn = UnixConnection(str(gate.socket_path), timeout)
    try:
        headers = headers or {}
        conn.request(method, target, body=body, headers=headers,
                     encode_chunked=headers.get("Transfer-Encoding") == "chunked")
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def raw(gate: ObservationGate, data: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes, read everything until the gate closes."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(gate.socket_path))
        sock.sendall(data)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
        return out


def raw_get(gate: ObservationGate, target: str) -> socket.socket:
    """A client that sent ``GET target`` on its own socket and reads nothing (yet)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(gate.socket_path))
    sock.sendall(f"GET {target} HTTP/1.1\r\nHost: docker\r\n\r\n".encode())
    return sock


class Background:
    """A request made in a thread; ``result()`` waits for ``(status, headers, body)``."""

    def __init__(self, gate: ObservationGate, target: str = LIST, **kwargs: object) -> None:
        self._out: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._run, args=(gate, target), kwargs=kwargs,
                                       daemon=True)
        self.thread.start()

    def _run(self, gate: ObservationGate, target: str, **kwargs: object) -> None:
        try:
            self._out.put(request(gate, target, **kwargs))
        except Exception as exc:  # noqa: BLE001 - handed to the test
            self._out.put(exc)

    def result(self, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
        got = self._out.get(timeout=timeout)
        if isinstance(got, Exception):
            raise got
        self.thread.join(timeout)
        return got

    @property
    def waiting(self) -> bool:
        return self.thread.is_alive()


class EventClient:
    """A client of an engine event stream through the gate, on a raw socket: the answer's head,
    then the body's bytes as they come (de-chunked), split into lines."""

    def __init__(self, gate: ObservationGate, target: str = EVENTS) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(5)
        self.sock.connect(str(gate.socket_path))
        self.sock.sendall(f"GET {target} HTTP/1.1\r\nHost: docker\r\n\r\n".encode())
        self._buf = b""
        while b"\r\n\r\n" not in self._buf:
            data = self.sock.recv(65536)
            assert data, "the gate closed before the stream's head"
            self._buf += data
        self.head, _, self._buf = self._buf.partition(b"\r\n\r\n")
        self.body = b""  # de-chunked so far
        self.ended = False

    def _pump(self, timeout: float) -> bool:
        """Read what arrives within ``timeout``; False when nothing did."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except (socket.timeout, BlockingIOError):
            return False
        if not data:
            self.ended = True
            return False
        self._buf += data
        while True:
            line, sep, rest = self._buf.partition(b"\r\n")
            if not sep:
                break
            size = int(line, 16)
            if len(rest) < size + 2:
                break
            self.body += rest[:size]
            self._buf = rest[size + 2:]
            if size == 0:
                self.ended = True
        return True

    def lines(self) -> list[bytes]:
        return self.body.splitlines(keepends=True)

    def wait_lines(self, n: int, timeout: float = 3.0) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while len(self.lines()) < n and time.monotonic() < deadline and not self.ended:
            self._pump(max(0.01, deadline - time.monotonic()))
        return self.lines()

    def nothing_for(self, seconds: float) -> bool:
        """True when no event arrives within ``seconds`` (for what must *not* happen)."""
        before = len(self.body)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._pump(max(0.01, deadline - time.monotonic()))
        return len(self.body) == before

    def close(self) -> None:
        self.sock.close()


def until(predicate, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def drain(gate: ObservationGate, n: int, timeout: float = 3.0) -> list[GateRecord]:
    """The gate's log once it holds ``n`` records: a record is added just after its answer is
    written, so a client can have the answer a moment before the log shows it."""
    records: list[GateRecord] = []

    def enough() -> bool:
        records.extend(gate.drain_log())
        return len(records) >= n

    assert until(enough, timeout), [r.describe() for r in records]
    assert len(records) == n, [r.describe() for r in records]
    return sorted(records, key=lambda r: (r.seq, r.at))


def ids_of(body: bytes) -> list[str]:
    return [c["Id"] for c in json.loads(body)]


def hold(gate: ObservationGate, target: str = LIST) -> Background:
    """A list request in the background, held at the gate before this returns."""
    before = gate.held_count()
    client = Background(gate, target)
    assert until(lambda: gate.held_count() > before), "the list request was not held"
    return client
