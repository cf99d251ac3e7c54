"""The observation gate (``pytest_sandbox_conformance/gate/proxy.py``).

The first part runs the gate in front of a stub engine (``tests/gate_stub.py``: a small threaded
HTTP server on a Unix socket in ``tmp_path``). Those tests need no Docker and are deterministic:
they wait on the gate's own signals (``wait_held``, ``held_count``), never on fixed sleeps, except
where a test shows that something does *not* happen. Engine event streams are
``tests/test_gate_events.py``'s, TLS engines ``tests/test_gate_tls.py``'s.

The second part (marked ``live``) goes through the gate to the local Docker engine with the
Docker SDK; it skips without a reachable engine or the suite's image (and fails instead under
``SANDBOX_CONFORMANCE_REQUIRE_ENGINE=1``), through ``tests/test_engine_fake.py``'s
``_make_engine``. Every container it makes carries a per-test label and is removed by it.
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import socket
import stat
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from pytest_sandbox_conformance.gate import (
    GateError,
    GateRecord,
    GateTimeout,
    ObservationGate,
)

from gate_stub import (FRAME, LABEL_QUERY, LIST, Background, UnixConnection,
                       container, drain, gate, hold, ids_of, raw, raw_get, request, stub, until)

__all__ = ["gate", "stub"]  # the fixtures, imported from gate_stub
ROOT = Path(__file__).resolve().parent.parent


# -- forwarding and holding -----------------------------------------------------------------------


def test_an_open_gate_forwards_lists_at_once(stub, gate):
    engine, _ = stub
    assert not gate.holding
    status, _, body = request(gate, LABEL_QUERY)
    assert status == 200 and ids_of(body) == engine.ids("aa", "bb")
    [record] = drain(gate, 1)
    assert (record.kind, record.disposition, record.note, record.status) == (
        "list", "passed", "gate open", 200)
    assert record.path == LABEL_QUERY and record.ids == tuple(engine.ids("aa", "bb"))
    assert record.held_s == 0 and gate.observations == 0


def test_a_held_list_waits_and_answers_with_the_engine_at_release_time(stub, gate):
    engine, _ = stub
    gate.set_holding(True)
    client = hold(gate)
    assert gate.wait_held(1)
    time.sleep(0.15)
    assert client.waiting and not engine.requests, "held: not even sent to the engine"
    engine.containers = [container("cc", 30)]  # the engine changes while the request is held
    record = gate.release()
    status, headers, body = client.result()
    assert status == 200 and ids_of(body) == engine.ids("cc")
    assert headers["Content-Length"] == str(len(body)) and headers["Connection"] == "close"
    assert headers["Api-Version"] == "1.41"  # the engine's own headers are kept
    assert record.disposition == "released" and record.note == "observation 1"
    assert record.ids == tuple(engine.ids("cc")) and record.held_s >= 0.15
    assert record.duration_s >= record.held_s
    assert gate.observations == 1 and gate.held_count() == 0


def test_newest_and_oldest_reorder_by_created_with_ties_kept(stub, gate):
    engine, _ = stub
    # Upstream order (the engine's), with ties on Created: b/d at 7, a/c at 5.
    engine.containers = [container(c, t) for c, t in
                         [("a", 5), ("b", 7), ("c", 5), ("d", 7), ("e", 1)]]
    gate.set_holding(True)
    answers = {}
    for order in ("newest", "oldest", None):
        client = hold(gate)
        record = gate.release(order)
        answers[order] = ids_of(client.result()[2])
        assert record.ids == tuple(answers[order])
    assert answers["newest"] == engine.ids("b", "d", "a", "c", "e")  # stable among ties
    assert answers["oldest"] == answers["newest"][::-1]  # exactly the reverse
    assert answers[None] == engine.ids("a", "b", "c", "d", "e")  # untouched
    notes = [r.note for r in drain(gate, 3)]
    tie = ", 4 containers created in the same second as another kept in the engine's order " \
          "(inspect failed)"  # the stub has no inspect for these
    assert notes == ["observation 1, newest first" + tie, "observation 2, oldest first" + tie,
                     "observation 3"]


def test_containers_created_in_the_same_second_are_ordered_by_their_inspect(stub, gate):
    # A list's Created counts whole seconds; Podman lists oldest first: a tie must not be taken
    # for the engine's newest-first order.
    engine, _ = stub
    engine.containers = [container("a", 7, 7_000_000_100), container("b", 7, 7_000_000_900),
                         container("c", 5, 5_000_000_000)]
    gate.set_holding(True)
    answers = {}
    for order in ("newest", "oldest"):
        client = hold(gate)
        record = gate.release(order)
        answers[order] = ids_of(client.result()[2])
        assert record.ids == tuple(answers[order]) and "kept" not in record.note
    assert answers["newest"] == engine.ids("b", "a", "c")
    assert answers["oldest"] == engine.ids("c", "a", "b")
    inspected = {t for m, t, _ in engine.requests if t.endswith("/json") and "/containers/" in t
                 and not t.startswith(LIST)}
    assert inspected == {f"/v1.41/containers/{i}/json" for i in engine.ids("a", "b")}


def test_an_answer_in_the_wanted_order_is_passed_byte_for_byte(stub, gate):
    engine, _ = stub
    engine.list_body = b'[ {"Id": "x", "Created": 2},\n {"Id": "y", "Created": 1} ]'
    gate.set_holding(True)
    client = hold(gate)
    gate.release("newest")
    assert client.result()[2] == engine.list_body


@pytest.mark.parametrize("status, body, why", [
    (200, b"not json", "not JSON"),
    (200, b'{"message": "an object"}', "not a list of containers"),
    (200, b'[{"Id": "x"}]', "no numeric Created"),
    (500, b'{"message": "engine trouble"}', "the engine answered 500"),
])
def test_answers_that_cannot_be_reordered_are_passed_unchanged(stub, gate, status, body, why):
    engine, _ = stub
    engine.list_status, engine.list_body = status, body
    gate.set_holding(True)
    client = hold(gate)
    record = gate.release("oldest")
    assert client.result()[:3:2] == (status, body)
    assert record.status == status and record.disposition == "released"
    assert why in record.note and gate.observations == 1


def test_release_is_first_in_first_out(stub, gate):
    gate.set_holding(True)
    clients = [hold(gate, f"{LIST}?n={n}") for n in range(3)]
    records = [gate.release() for _ in clients]
    assert [r.path for r in records] == [f"{LIST}?n={n}" for n in range(3)]
    assert [r.seq for r in records] == sorted(r.seq for r in records)
    assert [r.note for r in records] == ["observation 1", "observation 2", "observation 3"]
    for client in clients:
        assert client.result()[0] == 200


def test_release_refuses_bad_orders_and_an_empty_gate(gate):
    with pytest.raises(ValueError, match="'newest', 'oldest' or None"):
        gate.release("sideways")
    with pytest.raises(GateError, match=r"no container-list request is held.*set_holding"):
        gate.release()
    gate.set_holding(True)
    with pytest.raises(GateError, match=r"no container-list request is held.*wait_held"):
        gate.release()
    assert not gate.wait_held(0.05)


def test_during_passes_new_lists_while_a_held_one_stays_held(stub, gate):
    gate.set_holding(True)
    held = hold(gate)
    with gate.during("CreateSandbox"):
        with gate.during("inner"):
            assert request(gate)[0] == 200
        assert request(gate, LIST + "?x=1")[0] == 200
        assert held.waiting and gate.held_count() == 1
    client = hold(gate, LIST + "?after=1")  # the block is closed: held again
    passed = [r for r in drain(gate, 2) if r.disposition == "passed"]
    assert [r.note for r in passed] == ["during inner", "during CreateSandbox"]
    assert gate.release().seq < gate.release().seq  # the first held one first
    assert held.result()[0] == client.result()[0] == 200


def test_other_requests_pass_while_holding_and_are_labelled_during_a_block(stub, gate):
    gate.set_holding(True)
    with gate.during("DeleteSandbox"):
        assert request(gate, "/_ping")[0] == 200
    assert request(gate, "/_ping")[0] == 200
    first, second = drain(gate, 2)
    assert first.kind == "other" and first.note == "during DeleteSandbox"
    assert second.note == "" and second.disposition == "passed" and second.status == 200


def test_opening_the_gate_releases_held_requests_in_order_without_reordering(stub, gate):
    engine, _ = stub
    engine.containers = [container("aa", 10), container("bb", 20)]  # not newest first
    gate.set_holding(True)
    clients = [hold(gate, f"{LIST}?n={n}") for n in range(2)]
    gate.set_holding(False)
    for client in clients:
        assert ids_of(client.result()[2]) == engine.ids("aa", "bb")
    records = drain(gate, 2)
    assert [(r.disposition, r.note) for r in records] == [("released", "gate opened")] * 2
    assert gate.observations == 0 and not gate.holding
    assert request(gate)[0] == 200  # open: at once


def test_an_abandoned_held_request_is_dropped_at_once(gate):
    gate.set_holding(True)
    sock = raw_get(gate, LIST)
    assert gate.wait_held(2)
    closed = time.monotonic()
    sock.close()
    assert until(lambda: gate.held_count() == 0, 1.0)
    dropped_after = time.monotonic() - closed
    assert dropped_after < 0.5, f"dropped after {dropped_after:.3f}s"
    with pytest.raises(GateError, match="no container-list request is held"):
        gate.release()
    [record] = drain(gate, 1)
    assert (record.kind, record.disposition, record.status) == ("list", "abandoned", None)
    assert record.held_s > 0 and gate.observations == 0


def test_release_skips_a_request_abandoned_in_the_meantime(gate):
    gate.set_holding(True)
    sock = raw_get(gate, LIST + "?gone=1")
    assert gate.wait_held(2)
    client = hold(gate, LIST + "?stays=1")
    sock.close()
    record = gate.release()
    assert record.path.endswith("?stays=1") and record.note == "observation 1"
    assert client.result()[0] == 200
    abandoned = [r for r in drain(gate, 2) if r.disposition == "abandoned"]
    assert [r.path for r in abandoned] == [LIST + "?gone=1"]
    assert abandoned[0].status is None and abandoned[0].held_s > 0


# -- start-up, stopping, what the driver is told ------------------------------------------------


def test_start_up_lists_pass_and_are_not_observations(stub, gate):
    gate.set_holding(True)
    with gate.start_up():
        assert gate.starting
        status, headers, _ = request(gate)
        assert status == 200 and headers["X-Observation-Gate"] == "start-up"
        with gate.during("GetCapabilities"):  # start-up says it first
            assert request(gate)[1]["X-Observation-Gate"] == "start-up"
    assert not gate.starting and gate.observations == 0
    client = hold(gate)  # start-up over: held again, the first observation
    record = gate.release()
    assert client.result()[1]["X-Observation-Gate"] == "observation 1"
    notes = [(r.disposition, r.note) for r in drain(gate, 3)]
    assert notes == [("passed", "start-up"), ("passed", "start-up"),
                     ("released", "observation 1")]
    assert record.note == "observation 1"


def test_list_answers_say_why_they_were_let_go(stub, gate):
    assert request(gate)[1]["X-Observation-Gate"] == "gate open"
    gate.set_holding(True)
    with gate.during("CreateSandbox"):
        assert request(gate)[1]["X-Observation-Gate"] == "during CreateSandbox"
    client = hold(gate)
    gate.release("oldest")
    assert client.result()[1]["X-Observation-Gate"] == "observation 1, oldest first"


def test_refused_lists_answer_a_stopping_driver_at_once(stub, gate):
    # close()/restart() must not SIGTERM a driver while its poll is held: answer it first.
    engine, _ = stub
    gate.set_holding(True)
    held = hold(gate)
    gate.refuse_lists("the driver is being stopped")
    status, _, body = held.result()
    assert status == 503 and json.loads(body)["message"] == (
        "observation gate: the driver is being stopped")
    status, _, _ = request(gate)  # a list made while stopping: answered the same, at once
    assert status == 503 and gate.observations == 0
    assert not any(t.startswith(LIST) for _, t, _ in engine.requests), "nothing observed"
    gate.set_holding(True)  # the next start holds again
    hold(gate)
    assert [(r.disposition, r.note) for r in drain(gate, 2)] == [
        ("refused", "the driver is being stopped")] * 2


# -- observe --------------------------------------------------------------------------------------


class PollingDriver:
    """A driver that polls in a loop: list, then one other request (``/_ping`` or ``/hang``)."""

    def __init__(self, gate: ObservationGate, then: str = "/_ping", polls: int = 3) -> None:
        self.gate, self.then, self.polls = gate, then, polls
        self.seen: list[list[str]] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        for _ in range(self.polls):
            try:
                status, _, body = request(self.gate, LIST, timeout=10)
                self.seen.append(ids_of(body) if status == 200 else [])
                request(self.gate, self.then, timeout=10)
            except OSError:
                return


def test_observe_returns_once_the_driver_is_holding_its_next_poll(stub, gate):
    engine, _ = stub
    gate.set_holding(True)
    driver = PollingDriver(gate)
    assert gate.wait_held(2)
    record = gate.observe("oldest", timeout=3)
    assert record.note == "observation 1, oldest first"
    # The driver got the list, made its other request, and is back with its next poll.
    assert driver.seen == [engine.ids("aa", "bb")]
    assert gate.held_count() == 1 and gate.in_flight() == 0
    assert any(r.path == "/_ping" and r.seq > record.seq for r in drain(gate, 2))
    gate.observe("newest", timeout=3)
    assert driver.seen[-1] == engine.ids("bb", "aa") and gate.observations == 2
    gate.set_holding(False)
    driver.thread.join(5)


def test_observe_times_out_saying_what_the_driver_is_doing(stub, gate):
    gate.set_holding(True)
    driver = PollingDriver(gate, then="/hang", polls=1)
    assert gate.wait_held(2)
    with pytest.raises(GateTimeout) as exc:
        gate.observe(None, timeout=0.3)
    message = str(exc.value)
    assert "did not come back for another container list within 0.3s" in message
    assert "1 request still in flight" in message and "GET /hang" in message
    assert "no list request arrived since the release" in message
    assert "its last request arrived" in message
    assert gate.observations == 1  # the release itself happened
    stub[0].proceed.set()
    driver.thread.join(5)


def test_observe_without_a_held_request_is_a_gate_error(gate):
    gate.set_holding(True)
    started = time.monotonic()
    with pytest.raises(GateError, match="made no container-list request and has no engine "
                                        "event stream open"):
        gate.observe(None, timeout=0.2)
    assert time.monotonic() - started < 1.5


# -- pass-through ---------------------------------------------------------------------------------


def test_request_bodies_pass_byte_for_byte(stub, gate):
    body = bytes(range(256)) * 1000 + b"\r\n\r\n0\r\n"
    assert request(gate, "/v1.41/build", "POST", body)[::2] == (201, body)

    def chunks():
        yield body[:1000]
        yield body[1000:]

    status, _, echoed = request(gate, "/v1.41/build?chunked=1", "POST", chunks(),
                                headers={"Transfer-Encoding": "chunked"})
    assert (status, echoed) == (201, body)


def test_streams_pass_chunk_by_chunk_and_byte_for_byte(stub, gate):
    engine, _ = stub
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(gate.socket_path))
        sock.sendall(b"GET /stream HTTP/1.1\r\nHost: docker\r\n\r\n")
        got = b""
        while b"first\n\r\n" not in got:  # the first chunk arrives while the stream is open
            got += sock.recv(65536)
        assert gate.in_flight() == 1  # not a known stream: it is in flight
        engine.proceed.set()
        while chunk := sock.recv(65536):
            got += chunk
    head, _, body = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"Transfer-Encoding: chunked" in head
    assert body == b"6\r\nfirst\n\r\n7\r\nsecond\n\r\n0\r\n\r\n"
    assert until(lambda: gate.in_flight() == 0)


def test_an_events_stream_is_not_in_flight(stub, gate):
    engine, _ = stub
    engine.send(b"first\n")
    conn = UnixConnection(str(gate.socket_path))
    try:
        conn.request("GET", "/v1.41/events?filters=%7B%7D")
        resp = conn.getresponse()
        assert resp.read1() == b"first\n"
        assert gate.in_flight() == 0  # a driver's open /events must not keep observe() waiting
        engine.send(b"second\n", None)
        assert resp.read() == b"second\n"
    finally:
        conn.close()
    records = drain(gate, 4)
    assert [(r.kind, r.disposition) for r in records] == [("events", "opened")] + [
        ("events", "passed")] * 3
    assert records[-1].note == "event stream ended by the engine; 2 events delivered"


def test_hop_by_hop_headers_are_rewritten_and_upgrades_kept(stub, gate):
    engine, _ = stub
    request(gate, "/_ping", headers={"Connection": "keep-alive, X-Private",
                                     "Keep-Alive": "timeout=5", "X-Private": "1", "X-Kept": "2"})
    request(gate, "/_ping?u=1", headers={"Connection": "Upgrade", "Upgrade": "tcp"})
    request(gate, LIST, headers={"Connection": "X-Private", "X-Private": "1"})
    plain, upgrade, listed = (h for _, _, h in engine.requests)
    assert plain["Connection"] == "close" and plain["X-Kept"] == "2"
    assert "Keep-Alive" not in plain and "X-Private" not in plain
    assert (upgrade["Connection"], upgrade["Upgrade"]) == ("Upgrade", "tcp")
    assert listed["Connection"] == "close" and "X-Private" not in listed


def test_a_hijacked_stream_starts_after_the_client_read_the_head(stub, gate):
    # The Docker SDK for Python reads the head through a buffered reader, then the stream from
    # the raw socket: stream bytes that came with the head would be lost in that buffer.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(gate.socket_path))
        sock.sendall(b"POST /v1.41/exec/e1/start HTTP/1.1\r\nHost: docker\r\n"
                     b"Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 2\r\n\r\n{}")
        with sock.makefile("rb") as buffered:
            head = []
            while (line := buffered.readline()) not in (b"\r\n", b""):
                head.append(line)
            assert head[0].startswith(b"HTTP/1.1 101")
            stream = b""
            while chunk := sock.recv(65536):  # the raw socket, as the SDK does
                stream += chunk
    assert stream == FRAME
    [record] = drain(gate, 1)
    assert record.status == 101 and record.disposition == "passed"


def test_an_absolute_form_target_is_accepted_and_forwarded_in_origin_form(stub, gate):
    # OpenShell's Podman driver sends them; RFC 9112 section 3.2.2: a server MUST accept them.
    engine, _ = stub
    answer = raw(gate, b"GET http://localhost/_ping HTTP/1.1\r\nHost: ignored\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"OK")
    method, target, headers = engine.requests[-1]
    assert (method, target, headers["Host"]) == ("GET", "/_ping", "localhost")
    gate.set_holding(True)
    client = threading.Thread(target=raw, args=(gate, f"GET http://d{LIST}?all=1 HTTP/1.1\r\n"
                                                      f"\r\n".encode()), daemon=True)
    client.start()
    assert gate.wait_held(2), "an absolute-form list is a list: held"
    record = gate.release()
    assert record.path == f"{LIST}?all=1" and record.kind == "list"
    client.join(5)


def test_a_pass_through_is_in_flight_from_its_arrival(stub, gate, monkeypatch):
    # Counting it only once its engine connection exists would let observe() call a driver
    # quiet while its inspect is still connecting.
    connecting = threading.Event()
    go_on = threading.Event()
    real_connect = gate._upstream.connect  # noqa: SLF001

    def slow_connect(timeout):
        connecting.set()
        go_on.wait(5)
        return real_connect(timeout)

    monkeypatch.setattr(gate._upstream, "connect", slow_connect)  # noqa: SLF001
    client = Background(gate, "/_ping")
    assert connecting.wait(2)
    assert gate.in_flight() == 1 and gate.idle_for() == 0
    go_on.set()
    assert client.result()[0] == 200
    assert until(lambda: gate.in_flight() == 0)


def test_a_bad_request_head_is_answered_400(gate):
    for head in (b"NONSENSE\r\n\r\n", b"GET /x HTTP/1.1\r\n bad fold\r\n\r\n",
                 b"GET ftp://x/ HTTP/1.1\r\n\r\n", b"GET /x HTTP/2\r\n\r\n"):
        answer = raw(gate, head)
        assert answer.startswith(b"HTTP/1.1 400 "), answer
        message = json.loads(answer.partition(b"\r\n\r\n")[2])["message"]
        assert message.startswith("observation gate: malformed request:")
    records = drain(gate, 4)
    assert [(r.disposition, r.status) for r in records] == [("refused", 400)] * 4
    assert "bad request line 'NONSENSE'" in records[0].describe()


def test_an_unreachable_engine_is_a_502_and_release_raises(tmp_path):
    url = f"unix://{tmp_path}/nobody.sock"
    with ObservationGate(url) as gate:
        for target in ("/_ping", LIST):
            status, headers, body = request(gate, target)
            assert status == 502 and headers["Content-Type"] == "application/json"
            message = json.loads(body)["message"]
            assert message.startswith(f"observation gate: cannot reach the engine at {url}: ")
        gate.set_holding(True)
        client = hold(gate)
        with pytest.raises(GateError, match="cannot reach the engine"):
            gate.release()
        assert client.result()[0] == 502
        records = drain(gate, 3)
        assert [(r.disposition, r.status) for r in records] == [("error", 502)] * 3
        assert gate.observations == 0


@pytest.mark.parametrize("url", ["ssh://user@host", "npipe:////./pipe/x",
                                 "fd://", "unix:relative.sock", "tcp://", "tcp://host:99999",
                                 "tcp://host:2375/prefix"])
def test_unsupported_engine_urls_are_refused(url):
    with pytest.raises(GateError, match="supports") as exc:
        ObservationGate(url)
    assert url in str(exc.value) or "port" in str(exc.value)


def test_tcp_with_tls_verify_is_refused(monkeypatch):
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
    with pytest.raises(GateError, match="DOCKER_TLS_VERIFY"):
        ObservationGate("tcp://host:2376")


@pytest.mark.parametrize("url", ["unix:///var/run/docker.sock", "unix:/var/run/docker.sock",
                                 "http+unix:///var/run/docker.sock",
                                 "tcp://127.0.0.1:2375", "http://localhost:2375"])
def test_supported_engine_urls(url):
    gate = ObservationGate(url)
    assert gate.upstream == url and gate.url == f"unix://{gate.socket_path}"
    folder = gate.socket_path.parent
    assert folder.name.startswith("sbx-gate-") and folder.is_dir()
    gate.close()
    assert not folder.exists()


def test_a_tcp_engine_is_reached(stub):
    engine, url = stub
    with socket.create_server(("127.0.0.1", 0)) as listener:  # a TCP front for the stub
        port = listener.getsockname()[1]

        def relay() -> None:
            conn, _ = listener.accept()
            with conn, socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as up:
                up.connect(url[len("unix://"):])
                head = b""
                while b"\r\n\r\n" not in head:  # a list request has no body
                    head += conn.recv(65536)
                up.sendall(head)
                while data := up.recv(65536):
                    conn.sendall(data)

        thread = threading.Thread(target=relay, daemon=True)
        thread.start()
        with ObservationGate(f"tcp://127.0.0.1:{port}") as gate:
            status, _, body = request(gate)
        thread.join(5)
    assert status == 200 and ids_of(body) == engine.ids("aa", "bb")


# -- life -----------------------------------------------------------------------------------------


def test_the_socket_is_0600_in_a_0700_folder(stub):
    with ObservationGate(stub[1]) as gate:
        assert gate.socket_path.name == "gate.sock"
        assert stat.S_IMODE(gate.socket_path.stat().st_mode) == 0o600
        assert stat.S_IMODE(gate.socket_path.parent.stat().st_mode) == 0o700
        assert stat.S_ISSOCK(gate.socket_path.stat().st_mode)


def test_a_given_socket_path_is_used_and_its_folder_kept(stub, tmp_path):
    path = tmp_path / "g.sock"
    path_socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    path_socket.bind(str(path))  # a stale socket nobody serves: replaced
    path_socket.close()
    with ObservationGate(stub[1], path) as gate:
        assert gate.socket_path == path and gate.url == f"unix://{path}"
        assert request(gate, "/_ping")[0] == 200
        with pytest.raises(GateError, match="already serves"):
            ObservationGate(stub[1], path).start()
    assert not path.exists() and tmp_path.is_dir()
    (tmp_path / "file").write_text("")
    with pytest.raises(GateError, match="not a socket"):
        ObservationGate(stub[1], tmp_path / "file").start()
    with pytest.raises(GateError, match="longer than a Unix socket path"):
        ObservationGate(stub[1], tmp_path / ("x" * 120))


def test_close_answers_held_requests_503_cuts_streams_and_removes_the_socket(stub):
    gate = ObservationGate(stub[1]).start()
    folder = gate.socket_path.parent
    gate.set_holding(True)
    held = hold(gate)
    stream = Background(gate, "/stream")
    assert until(lambda: gate.in_flight() == 1)
    started = time.monotonic()
    gate.close()
    assert time.monotonic() - started < 2.5
    status, headers, body = held.result()
    assert status == 503 and json.loads(body) == {"message": "observation gate closed"}
    with pytest.raises((http.client.HTTPException, OSError)):  # the stream was cut short
        stream.result()
    assert not gate.socket_path.exists() and not folder.exists()
    records = gate.drain_log()
    assert ("list", "refused", 503, "gate closed") in [
        (r.kind, r.disposition, r.status, r.note) for r in records]
    gate.close()  # again: nothing
    with pytest.raises(GateError, match="closed"):
        gate.start()


def test_drain_log_and_describe(stub, gate):
    engine, _ = stub
    engine.containers = [container(c, t) for c, t in [("a1", 1), ("b2", 2), ("c3", 3),
                                                       ("d4", 4), ("e5", 5), ("f6", 6)]]
    request(gate, "/_ping")
    gate.set_holding(True)
    client = hold(gate, LIST + "?all=1&filters=%7B%22label%22%3A%5B%22app%3Dx%22%5D%7D")
    record = gate.release("oldest")
    client.result()
    log = drain(gate, 2)
    assert log[-1] == record
    assert gate.drain_log() == []
    line = record.describe()
    assert line.startswith("GET /v1.41/containers/json?all=1 filters: label=app=x -> 200, "
                           "6 containers [a1a1a1a1a1a1, b2b2b2b2b2b2, c3c3c3c3c3c3, "
                           "d4d4d4d4d4d4, +2 more], released as observation 1 (oldest first) "
                           "after "), line
    assert line.endswith("s held") and "\n" not in line
    assert log[0].describe().startswith("GET /_ping -> 200 in ")
    made = GateRecord(seq=9, at=0.0, method="GET", path=LIST, kind="list",
                      disposition="abandoned", status=None, note="", held_s=1.5, duration_s=1.5,
                      ids=())
    assert made.describe() == f"GET {LIST} -> no answer, abandoned by the client after 1.500s held"
    long = GateRecord(seq=1, at=0.0, method="GET", path="/x?q=" + "y" * 500, kind="other",
                      disposition="passed", status=200, note="", held_s=0, duration_s=0.01)
    assert len(long.describe()) < 200


def test_the_log_keeps_the_last_ten_thousand(gate):
    from pytest_sandbox_conformance.gate import policy as gate_module

    assert gate_module.LOG_LIMIT == 10_000
    with gate._lock:  # noqa: SLF001 - filling the log directly is what makes this test fast
        for n in range(10_005):
            gate._log.append(GateRecord(n, 0.0, "GET", "/", "other", "passed", 200, "", 0, 0))
    log = gate.drain_log()
    assert len(log) == 10_000 and log[0].seq == 5


EMFILE_CHILD = """
import json, os, resource, sys, time
from pytest_sandbox_conformance.gate import ObservationGate
gate = ObservationGate(sys.argv[1], sys.argv[2]).start()
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
fillers = []
try:
    while True:
        fillers.append(os.open("/dev/null", os.O_RDONLY))
except OSError:
    pass
print("full", flush=True)
sys.stdin.readline()  # a client has connected: accept() now fails with EMFILE
time.sleep(0.2)
before = resource.getrusage(resource.RUSAGE_SELF)
time.sleep(1.0)
after = resource.getrusage(resource.RUSAGE_SELF)
for fd in fillers:
    os.close(fd)
cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
sys.stdin.readline()  # the client got its answer
print(json.dumps({"cpu": cpu, "log": [r.describe() for r in gate.drain_log()]}), flush=True)
gate.close()
"""


def test_the_accept_loop_backs_off_when_out_of_file_descriptors(stub, tmp_path):
    if not sys.platform.startswith("linux"):
        pytest.skip("RLIMIT_NOFILE and rusage as on Linux")
    path = tmp_path / "g.sock"
    child = subprocess.Popen([sys.executable, "-c", EMFILE_CHILD, stub[1], str(path)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        assert child.stdout.readline().strip() == "full"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(10)
            sock.connect(str(path))  # queued in the listener's backlog
            sock.sendall(b"GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n")
            child.stdin.write("\n")
            child.stdin.flush()
            answer = b""
            while chunk := sock.recv(65536):  # served once descriptors are free again
                answer += chunk
        child.stdin.write("\n")
        child.stdin.flush()
        result = json.loads(child.stdout.readline())
    finally:
        child.stdin.close()
        child.wait(10)
        child.stdout.close()
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert result["cpu"] < 0.1, f"the accept loop spun: {result['cpu']:.2f}s of CPU in 1s"
    assert any("cannot accept connections: [Errno 24]" in line for line in result["log"]), \
        result["log"]


# -- live: the local Docker engine through the gate ---------------------------------------------

LIVE_LABEL = "sandbox-conformance.test/gate"


@pytest.fixture
def live():
    """``(DockerEngine on the real engine, a started gate in front of it, an SDK client through
    the gate, this test's label value)``; everything labelled is removed afterwards."""
    docker = pytest.importorskip("docker", reason="the Docker SDK is not installed ([live] extra)")
    from test_engine_fake import _make_engine

    engine = _make_engine("docker")
    run = uuid.uuid4().hex[:12]
    try:
        with ObservationGate(engine.base_url) as gate:
            client = docker.DockerClient(base_url=gate.url, timeout=20)
            try:
                yield engine, gate, client, run
            finally:
                client.close()
    finally:
        engine.remove_all([c.id for c in engine.list({LIVE_LABEL: run})], force=True)
        engine.close()


def _run(client, run: str, name: str):
    return client.containers.run("sbx-busybox:local", ["sleep", "300"], detach=True,
                                 network_mode="none", labels={LIVE_LABEL: run},
                                 name=f"sbx-gate-{run}-{name}")


@pytest.mark.live
def test_live_engine_calls_pass_through(live):
    _, gate, client, run = live
    assert client.ping() is True
    assert client.version()["ApiVersion"] and client.info()["ID"]
    container = _run(client, run, "one")
    container.reload()
    assert container.status == "running" and container.labels[LIVE_LABEL] == run
    code, output = container.exec_run(["echo", "through the gate"])  # a hijacked stream
    assert (code, output) == (0, b"through the gate\n")
    container.stop(timeout=0)
    container.reload()
    assert container.status == "exited"
    container.remove()
    assert client.api.containers(all=True, filters={"label": f"{LIVE_LABEL}={run}"}) == []
    records = gate.drain_log()
    assert all(r.status is not None and r.status < 500 for r in records), [
        r.describe() for r in records]
    assert {r.disposition for r in records} == {"passed"}


@pytest.mark.live
def test_live_lists_are_held_and_reordered(live):
    _, gate, client, run = live
    first = _run(client, run, "first")
    second = _run(client, run, "second")
    gate.set_holding(True)
    answers = {}
    for order in ("oldest", "newest"):
        out: queue.Queue = queue.Queue()
        thread = threading.Thread(target=lambda: out.put(client.api.containers(
            all=True, filters={"label": f"{LIVE_LABEL}={run}"})), daemon=True)
        thread.start()
        assert gate.wait_held(10)
        time.sleep(0.05)
        assert out.empty(), "the list was not held"
        record = gate.release(order)
        answers[order] = [c["Id"] for c in out.get(timeout=10)]
        assert record.ids == tuple(answers[order])
        thread.join(5)
    assert answers["oldest"] == [first.id, second.id]
    assert answers["newest"] == [second.id, first.id]
    assert gate.observations == 2


@pytest.mark.live
def test_live_events_stream_through_the_gate(live):
    _, gate, client, run = live
    stream = client.events(decode=True, filters={"label": f"{LIVE_LABEL}={run}"})
    got: queue.Queue = queue.Queue()

    def read() -> None:
        try:
            for event in stream:
                got.put(event)
        except Exception as exc:  # noqa: BLE001 - closing the stream ends it
            got.put(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        container = client.api.create_container("sbx-busybox:local", ["sleep", "300"],
                                                labels={LIVE_LABEL: run},
                                                name=f"sbx-gate-{run}-ev",
                                                host_config=client.api.create_host_config(
                                                    network_mode="none"))
        event = got.get(timeout=10)
        assert event["Action"] == "create" and event["id"] == container["Id"]
        # The create is done (its record a moment after the answer); the open stream is not
        # counted as in flight.
        assert until(lambda: gate.in_flight() == 0) and reader.is_alive()
    finally:
        stream.close()
        reader.join(5)
