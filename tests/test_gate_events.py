"""The observation gate and engine event streams (``pytest_sandbox_conformance/gate/``).

An event-driven driver (OpenShell's Podman driver) makes no container list to hold: it follows
the engine's event stream. The gate holds that stream's *events*: the head goes to the client at
once, events wait until an observation releases them. Against the stub engine of
``tests/gate_stub.py``, whose event streams send what the test puts in ``StubEngine.events``.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from gate_stub import (EVENTS, LIBPOD_EVENTS, EventClient, drain, event, gate, hold, request,
                       stub, until)
from pytest_sandbox_conformance.gate import GateError, GateTimeout, ObservationGate
from pytest_sandbox_conformance.gate.policy import EVENT_SETTLE

__all__ = ["gate", "stub"]  # the fixtures, imported from gate_stub


def line(payload: dict) -> bytes:
    return (json.dumps(payload) + "\n").encode()


def opened(gate: ObservationGate, target: str = EVENTS) -> EventClient:
    client = EventClient(gate, target)
    assert client.head.startswith(b"HTTP/1.1 200 "), client.head
    assert until(lambda: gate.event_streams() == 1)
    return client


def test_the_head_goes_out_at_once_and_events_wait_for_an_observation(stub, gate):
    engine, _ = stub
    gate.set_holding(True)
    client = opened(gate)  # the head: at once, though the gate holds
    assert b"Transfer-Encoding: chunked" in client.head
    died = event("die", "aa")
    engine.send(died)
    assert until(lambda: gate.buffered_events() == 1)
    assert client.nothing_for(0.2), "a held event reached the driver"
    record = gate.observe(None, timeout=3)
    assert client.wait_lines(1) == [line(died)]  # byte for byte
    assert gate.observations == 1 and record.kind == "events"
    released = [r for r in gate.drain_log() if r.disposition == "released"]
    assert [r.describe().split(" -> ")[1] for r in released] == [
        f"1 event [die {'aa' * 6}], released as observation 1 after "
        f"{released[0].held_s:.3f}s held"]
    client.close()


def test_events_pass_during_start_up_during_rpcs_and_with_the_gate_open(stub, gate):
    engine, _ = stub
    client = opened(gate)
    engine.send(event("create"))
    assert len(client.wait_lines(1)) == 1  # gate open
    gate.set_holding(True)
    with gate.start_up():
        engine.send(event("start"))
        assert len(client.wait_lines(2)) == 2
    with gate.during("CreateSandbox"):
        engine.send(event("rename"))
        assert len(client.wait_lines(3)) == 3
    engine.send(event("stop"))
    assert client.nothing_for(0.15)
    with gate.during("DeleteSandbox"):  # what was buffered goes when a block opens
        assert len(client.wait_lines(4)) == 4
    batches = [r for r in drain(gate, 5) if r.events]
    assert [(r.disposition, r.note, r.events[0].split()[0]) for r in batches] == [
        ("passed", "gate open", "create"), ("passed", "start-up", "start"),
        ("passed", "during CreateSandbox", "rename"), ("passed", "during DeleteSandbox", "stop")]
    assert gate.observations == 0
    client.close()


def test_one_observation_releases_a_held_list_and_the_buffered_events(stub, gate):
    engine, _ = stub
    gate.set_holding(True)
    client = opened(gate)
    poll = hold(gate)
    engine.send(event("die"), event("destroy"))
    assert until(lambda: gate.buffered_events() == 2)
    after = threading.Thread(target=lambda: (poll.result(), hold(gate)), daemon=True)
    after.start()  # the driver's next poll, once its first is answered
    record = gate.observe("oldest", timeout=3)
    assert record.kind == "list" and record.note == "observation 1, oldest first"
    assert len(client.wait_lines(2)) == 2 and gate.observations == 1
    released = [r for r in drain(gate, 3) if r.disposition == "released"]
    assert {r.note for r in released} == {"observation 1, oldest first", "observation 1"}
    after.join(5)
    client.close()


def test_quiet_waits_for_the_requests_the_driver_makes_after_its_events(stub, gate):
    engine, _ = stub
    gate.set_holding(True)
    client = opened(gate)
    inspected: list[float] = []

    def driver() -> None:  # inspects (slowly) after each event, as an event-driven driver does
        if client.wait_lines(1, timeout=5):
            request(gate, "/slow")
            inspected.append(time.monotonic())

    thread = threading.Thread(target=driver, daemon=True)
    thread.start()
    engine.send(event("die"))
    assert until(lambda: gate.buffered_events() == 1)
    gate.observe(None, timeout=3, quiet=0.2)
    returned = time.monotonic()
    assert inspected and inspected[0] <= returned, "observe() returned before the inspect"
    thread.join(5)
    client.close()


def test_an_event_only_observation_times_out_saying_what_was_seen(stub, gate):
    engine, _ = stub
    gate.set_holding(True)
    client = opened(gate)

    answers: list[int] = []

    def busy_driver() -> None:
        if client.wait_lines(1, timeout=5):
            answers.append(request(gate, "/hang", timeout=10)[0])

    thread = threading.Thread(target=busy_driver, daemon=True)
    thread.start()
    engine.send(event("die"))
    assert until(lambda: gate.buffered_events() == 1)
    with pytest.raises(GateTimeout) as exc:
        gate.observe(None, timeout=0.5, quiet=0.2)
    message = str(exc.value)
    assert "did not come back for quiet" in message and "GET /hang" in message
    engine.proceed.set()
    thread.join(10)
    assert answers == [200]
    client.close()


def test_events_the_engine_sends_a_moment_later_belong_to_the_observation(stub, gate):
    # Podman's file event logger sends an event up to ~0.25 s after the action: the
    # observation waits for the stream to be silent a while (event_settle) before it releases.
    engine, _ = stub
    gate.event_settle = 0.3
    gate.set_holding(True)
    client = opened(gate)
    timer = threading.Timer(0.15, engine.send, args=(event("die"),))
    timer.start()
    started = time.monotonic()
    gate.observe(None, timeout=3)
    assert time.monotonic() - started >= 0.3
    assert len(client.wait_lines(1)) == 1, "the late event was left for the next observation"
    timer.join()
    client.close()


def test_the_wait_for_late_events_grows_with_the_delays_seen(stub, gate):
    # An engine under load sends events later: an observation waits 1.5 times the longest
    # recent delay (engine time to arrival) when that is longer than the engine's usual wait.
    engine, _ = stub
    gate.set_holding(True)
    client = opened(gate)
    engine.send(event("die", engine_time=time.time() - 0.3))  # 0.3 s late
    assert until(lambda: gate.buffered_events() == 1)
    started = time.monotonic()
    gate.observe(None, timeout=3)
    assert time.monotonic() - started >= 0.45 > EVENT_SETTLE["docker"]
    assert len(client.wait_lines(1)) == 1
    client.close()


def test_late_events_are_delivered_with_their_observation_or_marked(stub, gate):
    engine, _ = stub
    gate.event_settle = 0.0
    gate.set_holding(True)
    client = opened(gate)
    before_release = time.time()

    def driver() -> None:  # reacts to the first event slowly: the observation is still open
        if client.wait_lines(1, timeout=5):
            engine.send(event("stop", engine_time=before_release))  # timestamped before it
            request(gate, "/slow")

    threading.Thread(target=driver, daemon=True).start()
    engine.send(event("die", engine_time=before_release))
    assert until(lambda: gate.buffered_events() == 1)
    gate.observe(None, timeout=3)
    assert len(client.wait_lines(2)) == 2  # the late one went with observation 1
    engine.send(event("kill", engine_time=before_release))  # after the observation: too late
    assert until(lambda: gate.buffered_events() == 1)
    gate.observe(None, timeout=3)
    notes = [r.note for r in gate.drain_log() if r.events]
    assert notes == ["observation 1", "observation 1, late",
                     "observation 2, late for observation 1"]
    client.close()


def test_lines_split_across_chunks_reach_the_client_byte_for_byte(stub, gate):
    engine, _ = stub
    gate.set_holding(True)
    client = opened(gate)
    first = b'{"Action": "start", "id": "a", "timeNano": 1}\n'
    second = b'{"Action": "die", "id": "b"}\n'
    engine.send(first + second[:9], second[9:], b"not json, still one event\n")
    assert until(lambda: gate.buffered_events() == 3)
    gate.observe(None, timeout=3)
    assert client.wait_lines(3) == [first, second, b"not json, still one event\n"]
    [batch] = [r for r in gate.drain_log() if r.events]
    assert batch.events == ("start a", "die b", "? -")
    client.close()


def test_the_engine_ending_a_stream_ends_it_after_its_last_released_event(stub, gate):
    engine, _ = stub
    gate.set_holding(True)
    client = opened(gate)
    engine.send(event("die"), None)  # one event, then the engine ends the stream
    assert until(lambda: gate.buffered_events() == 1)
    assert client.nothing_for(0.1) and not client.ended
    gate.observe(None, timeout=3)
    client.wait_lines(2)
    assert client.ended and len(client.lines()) == 1
    assert until(lambda: gate.event_streams() == 0)
    end = [r for r in drain(gate, 3) if not r.events and r.disposition == "passed"]
    assert end[0].note == "event stream ended by the engine; 1 event delivered"
    client.close()


def test_a_client_that_closes_its_stream_is_noticed(stub, gate):
    engine, _ = stub
    gate.set_holding(True)
    client = opened(gate)
    engine.send(event("die"))
    assert until(lambda: gate.buffered_events() == 1)
    client.close()
    assert until(lambda: gate.event_streams() == 0)
    with pytest.raises(GateError, match="made no container-list request and has no engine "
                                        "event stream open"):
        gate.observe(None, timeout=0.2)
    records = drain(gate, 2)
    assert (records[-1].disposition, records[-1].note) == (
        "abandoned", "event stream closed by the client; 0 events delivered, 1 never released")


def test_libpod_streams_in_absolute_form_are_held_and_settle_for_podman(stub, gate):
    engine, _ = stub
    gate.set_holding(True)
    target = f"http://localhost{LIBPOD_EVENTS}?stream=true"  # as OpenShell's Podman driver asks
    client = opened(gate, target)
    assert b"Libpod-Api-Version" in client.head
    assert engine.requests[-1][1] == f"{LIBPOD_EVENTS}?stream=true"
    assert engine.requests[-1][2]["Host"] == "localhost"
    engine.send(event("remove"))
    assert until(lambda: gate.buffered_events() == 1)
    started = time.monotonic()
    gate.observe(None, timeout=3)
    assert time.monotonic() - started >= EVENT_SETTLE["podman"]
    assert len(client.wait_lines(1)) == 1
    client.close()


@pytest.mark.parametrize("query", ["?until=1700000000", "?stream=false", "?stream=0"])
def test_bounded_event_queries_pass_through(stub, gate, query):
    engine, _ = stub
    gate.set_holding(True)
    status, _, _ = request(gate, EVENTS + query)
    assert status == 200 and gate.event_streams() == 0
    [record] = drain(gate, 1)
    assert (record.kind, record.disposition) == ("other", "passed")


def test_an_observation_with_nothing_buffered_is_on_the_log(stub, gate):
    gate.set_holding(True)
    client = opened(gate)
    gate.observe(None, timeout=3)
    records = drain(gate, 2)
    assert records[-1].describe().endswith("-> no events to release as observation 1")
    client.close()


def test_wait_ready_says_how_a_driver_can_be_observed(stub, gate):
    gate.set_holding(True)
    assert gate.wait_ready(0.1, idle=0.05) is None
    client = opened(gate)
    assert gate.wait_ready(2, idle=0.05) == "events"
    poll = hold(gate)
    assert gate.wait_ready(0.1, idle=0.05) == "list"
    gate.set_holding(False)
    poll.result()
    client.close()


def test_close_cuts_open_streams(stub):
    engine, url = stub
    gate = ObservationGate(url).start()
    gate.set_holding(True)
    client = opened(gate)
    engine.send(event("die"))
    assert until(lambda: gate.buffered_events() == 1)
    started = time.monotonic()
    gate.close()
    assert time.monotonic() - started < 2.5
    client.wait_lines(1, timeout=1)
    assert client.ended and client.lines() == []
    client.close()


def test_a_stream_the_engine_refuses_is_an_ordinary_answer(stub, gate):
    engine, _ = stub
    engine.events_status = 500
    gate.set_holding(True)
    status, _, body = request(gate, EVENTS)
    assert status == 500 and json.loads(body) == {"message": "events are broken"}
    assert gate.event_streams() == 0
    [record] = drain(gate, 1)
    assert (record.kind, record.disposition, record.status) == ("events", "passed", 500)
