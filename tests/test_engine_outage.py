"""An engine that cannot be reached or stops answering: how the Docker engine classifies it, and
how the runner reports it (an EngineOutage, never the driver's failure).

The Docker engine is pointed at a small fake of Docker's API on a unix socket of the test's own
(``FakeDockerAPI``), so no daemon is needed: refused (nothing listens), no socket, no answer (the
server reads the request and says nothing), closed without an answer. The runner is played on a
fake engine that dies when told to. The whole chain on a real dockerd that is killed or stopped
mid-run is ``tests/test_live_outage.py``.
"""

from __future__ import annotations

import gc
import json
import os
import socketserver
import threading
import time
import warnings
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from pytest_sandbox_conformance.adapters.reference import factory as reference_factory
from pytest_sandbox_conformance.engines.base import EngineError, EngineUnavailable, unavailable_in
from pytest_sandbox_conformance.engines.fake import FakeEngine
from pytest_sandbox_conformance.exploration.schedule import pinned
from pytest_sandbox_conformance.run.failure import ConformanceFailure, EngineOutage
from pytest_sandbox_conformance.run.runner import RunConfig, play
from pytest_sandbox_conformance.scenario.loader import load_text

STORY = """
id: outage
title: One sandbox, stopped, observed
requirements: [OWN-4]
sandboxes:
  s1: {name: box}
story:
  - create: s1
    as: A
  - observe: newest
  - stop: A
  - observe: newest
expect:
  sandboxes:
    s1: {instance: A}
"""


# -- a fake Docker API ------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        mode = self.server.mode  # type: ignore[attr-defined]
        if mode == "hang":
            self.server.hung.wait()  # type: ignore[attr-defined]
            return
        if mode == "close":
            self.close_connection = True
            return
        path = self.path.split("?")[0]
        if path.endswith("/_ping"):
            body, ctype = b"OK", "text/plain"
        elif path.endswith("/version"):
            body, ctype = json.dumps({"ApiVersion": "1.41", "Version": "20.10"}).encode(), \
                "application/json"
        elif path.endswith("/containers/json"):
            body, ctype = b"[]", "application/json"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class FakeDockerAPI(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """``mode``: ``ok`` answers /version, /_ping and /containers/json; ``hang`` reads a request
    and never answers; ``close`` closes the connection without answering."""

    daemon_threads = True

    def __init__(self, path: Path) -> None:
        self.mode = "ok"
        self.hung = threading.Event()
        super().__init__(str(path), _Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Nothing listens any more; the socket file stays (a daemon that was killed)."""
        self.hung.set()
        self.shutdown()
        self.server_close()


@pytest.fixture
def api(tmp_path: Path):
    pytest.importorskip("docker", reason="the Docker SDK is not installed ([live] extra)")
    server = FakeDockerAPI(tmp_path / "d.sock")
    yield server
    server.stop()


def _engine(api, timeout: float = 0.5):
    from pytest_sandbox_conformance.engines.docker import DockerEngine

    return DockerEngine(f"unix://{api.server_address}", timeout=timeout)


def _fails(engine, op=lambda e: e.list()) -> tuple[EngineUnavailable, float]:
    started = time.monotonic()
    with pytest.raises(EngineUnavailable) as exc:
        op(engine)
    return exc.value, time.monotonic() - started


# -- the Docker engine's classification -------------------------------------------------------------


def test_an_engine_that_answers_is_available(api):
    with _engine(api) as engine:
        assert engine.list() == [] and engine.unavailable_since is None
        engine.ping()


def test_a_dead_engine_is_refused_at_once_with_one_short_reason(api):
    with _engine(api) as engine:
        api.stop()
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            error, took = _fails(engine)
            again, took_again = _fails(engine)
            ping, _ = _fails(engine, lambda e: e.ping())
            gc.collect()
        assert str(error) == (f"cannot reach the docker engine at unix://{api.server_address} "
                              "(from base_url): connection refused")
        assert error.status == 503 and took < 1 and took_again < 0.1
        # One streak: since the first failed call, for every later one.
        assert error.since == again.since == ping.since == engine.unavailable_since
        # The SDK's unix transport leaks a socket per failed connection: closed here.
        assert not [w for w in seen if issubclass(w.category, ResourceWarning)], seen


def test_a_missing_socket_says_so(api, tmp_path):
    with _engine(api) as engine:
        api.stop()
        os.unlink(api.server_address)
        for _ in range(2):  # the SDK's connect, then the engine's own check: the same words
            error, _ = _fails(engine)
            assert str(error) == (f"cannot reach the docker engine at unix://{api.server_address}"
                                  " (from base_url): no such file or directory")


def test_an_engine_that_stops_answering_costs_the_per_call_timeout_not_60_s(api):
    with _engine(api, timeout=0.5) as engine:
        api.mode = "hang"
        error, took = _fails(engine)
        assert str(error).endswith("no answer within 0.5 s (the per-call timeout)")
        assert 0.4 < took < 5
        api.mode = "ok"
        api.hung.set()
        assert engine.list() == [] and engine.unavailable_since is None  # back: streak over


def test_an_engine_that_closes_without_answering_is_unavailable(api):
    with _engine(api) as engine:
        api.mode = "close"
        error, _ = _fails(engine)
        assert "closed the connection without answering" in str(error)


def test_an_engine_that_never_answers_fails_at_connect_too(api):
    api.mode = "hang"
    error, took = _fails(None, lambda _: _engine(api, timeout=0.5))
    assert "no answer within 0.5 s" in str(error) and took < 5


def test_a_refusal_is_no_outage():
    assert unavailable_in(EngineError("No such container", status=404)) is None
    try:
        try:
            raise EngineUnavailable("gone")
        except EngineUnavailable as inner:
            raise RuntimeError("the driver's own error") from inner
    except RuntimeError as outer:
        assert isinstance(unavailable_in(outer), EngineUnavailable)


# -- the runner --------------------------------------------------------------------------------------


class DyingEngine(FakeEngine):
    """A fake engine that stops answering after ``answers`` calls (ping included); or, with
    ``lists_answered``, whose ``list`` alone fails after that many lists (the driver's polls:
    the suite's own view is ``snapshot``), while the engine still answers a ping."""

    def __init__(self, answers: int = 10**9, lists_answered: int | None = None) -> None:
        super().__init__()
        self.answers = answers
        self.lists_answered = lists_answered
        self.unavailable_since = None

    def _gone(self) -> None:
        self.answers -= 1
        if self.answers < 0:
            if self.unavailable_since is None:
                self.unavailable_since = time.monotonic()
            raise EngineUnavailable("cannot reach the fake engine: connection refused",
                                    since=self.unavailable_since)

    def ping(self) -> None:
        self._gone()

    def list(self, labels=None):
        if self.lists_answered is not None:
            self.lists_answered -= 1
            if self.lists_answered < 0:
                raise EngineUnavailable("the driver's own way to the engine is gone")
        self._gone()
        return super().list(labels)

    for _op in ("create", "start", "stop", "kill", "rename", "remove", "inspect", "snapshot"):
        def _wrap(self, *args, _name=_op, **kwargs):
            self._gone()
            return getattr(FakeEngine, _name)(self, *args, **kwargs)
        locals()[_op] = _wrap
    del _op, _wrap


def _play(engine: FakeEngine, tmp_path: Path):
    scenario = load_text(STORY, "outage.yaml")[0]
    cfg = RunConfig(driver=reference_factory, engine=lambda: engine, state_root=tmp_path)
    return play(scenario, pinned(scenario)[0], cfg)


@pytest.mark.parametrize("answers", [0, 3, 8])
def test_an_engine_that_dies_mid_play_is_an_outage_not_a_failure(tmp_path, answers):
    with pytest.raises(EngineOutage) as exc:
        _play(DyingEngine(answers=answers), tmp_path)
    outage = exc.value
    assert outage.kind == "engine"
    assert outage.error == "cannot reach the fake engine: connection refused"
    assert outage.doing.startswith("scenario outage [every-step]")
    assert outage.engine == "fake"
    assert outage.timeline is not None and "ENGINE UNAVAILABLE" in outage.timeline.render()
    text = outage.render()
    assert len(text.splitlines()) <= 8 and "not judged" in text and "Traceback" not in text
    assert not list(tmp_path.iterdir())  # the state folder is gone all the same


def test_a_driver_whose_own_polls_fail_keeps_its_path(tmp_path):
    """The engine answers the suite (a ping, its own view) while the driver's polls fail: the
    contract says what the driver must report then, so the play is judged, not an outage."""
    lists_in_create = 2  # the reference driver's create lists its candidates, then settles
    try:
        result = _play(DyingEngine(lists_answered=lists_in_create), tmp_path)
        timeline = result.timeline
    except ConformanceFailure as failure:
        timeline = failure.timeline
    polls = [line for line in timeline.lines if "the driver's poll failed" in line]
    assert polls and all("the driver's own way to the engine is gone" in p for p in polls)


# -- the option ----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["0", "-1", "inf", "nan", "1e308", "601", "soon"])
def test_a_bad_engine_timeout_is_a_usage_error(pytester: pytest.Pytester, value: str) -> None:
    # Checked before any engine is asked (the docker engine here need not be there).
    result = pytester.runpytest("-p", "sandbox_conformance", "--sandbox-driver=reference",
                                "--sandbox-engine=docker", f"--sandbox-engine-timeout={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: --sandbox-engine-timeout={value}: give a number of "
                                 "seconds above 0 and at most 600 *"])


def test_an_engine_timeout_with_the_fake_engine_is_refused(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("-p", "sandbox_conformance", "--sandbox-driver=reference",
                                "--sandbox-engine-timeout=10")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --sandbox-engine-timeout applies to a real engine *"])


def test_the_per_call_timeout_is_a_third_of_the_engine_timeout():
    from pytest_sandbox_conformance.plugin.options import Settings

    def per_call(engine_timeout: float) -> float:
        settings = Settings.__new__(Settings)
        object.__setattr__(settings, "engine_timeout", engine_timeout)
        return settings.engine_call_timeout

    assert (per_call(30), per_call(6), per_call(1), per_call(600)) == (10, 2, 1, 60)


def test_a_driver_step_the_engine_refuses_is_a_story_error_not_a_failure(tmp_path):
    """An armed create fault: the reference driver rightly refuses the create (its own error,
    caused by the engine's 500); the story cannot go on, and nothing is judged. (Lint refuses
    this story before it runs, so it is loaded without the story's-meaning stage: the runtime
    answer is for a refusal no reading of the file foresees.)"""
    from pytest_sandbox_conformance.run.failure import StoryError

    scenario = load_text("""
id: create-fault
title: The engine refuses the driver's create
requirements: [OWN-1]
sandboxes:
  s1: {name: box}
story:
  - engine_fault: create
  - create: s1
    as: A
expect:
  sandboxes:
    s1: {tracked: false}
""", "create-fault.yaml", story=False)[0]
    cfg = RunConfig(driver=reference_factory, engine=FakeEngine, state_root=tmp_path)
    with pytest.raises(StoryError) as exc:
        play(scenario, pinned(scenario)[0], cfg)
    assert exc.value.kind == "story" and exc.value.step.action == "create"
    assert (exc.value.status, exc.value.message) == (500, "injected failure of create")
    assert "REFUSED by the engine (500)" in exc.value.timeline.render()
