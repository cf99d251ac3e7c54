"""``--sandbox-concurrency``: an item's schedules played several at once give exactly what they give
one by one (``run/concurrent.py``, ``plugin/items.py``).

* Through pytest (pytester, the fake engine, deliberately broken drivers): the terminal's failure
  text and the JSON report's items are identical at 1 and at 4 at once, for the catalog's overlap
  and gap scenarios explored exhaustively.
* :func:`play_schedules` itself, with a stand-in for one schedule's play whose plays end out of
  order: failures come back in schedule order; the error of the *first* schedule (in schedule
  order) ends the item, later plays are cancelled, earlier ones are played to their end; Ctrl-C
  cancels every play and returns only once each has finished its cleanup.
* The option's values and what it refuses.

The live side (real containers, the gated gRPC driver, Ctrl-C on Docker) is
``tests/test_live_concurrency.py``.
"""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

import pytest

from pytest_sandbox_conformance.exploration.schedule import enumerate_exhaustive
from pytest_sandbox_conformance.run import concurrent
from pytest_sandbox_conformance.run.checks import Failure
from pytest_sandbox_conformance.run.concurrent import EnginePool, play_schedules
from pytest_sandbox_conformance.run.failure import ConformanceFailure, StoryError
from pytest_sandbox_conformance.run.runner import Cancelled, RunConfig
from pytest_sandbox_conformance.run.timeline import Timeline
from pytest_sandbox_conformance.scenario.loader import load_text

from test_plugin import BASIC, PLUGINS, broken_drivers, scenarios, suite  # noqa: F401

TESTS = Path(__file__).resolve().parent

GAPS = """
id: gaps
title: A story with a few schedules
requirements: [OWN-1]
max_observations: 1
sandboxes:
  s1: {name: box}
story:
  - create: s1
    as: A
  - stop: A
  - start: A
  - stop: A
  - start: A
expect:
  sandboxes:
    s1: {instance: A, phase: Ready}
"""


def _failure_text(result: pytest.RunResult) -> str:
    """Everything the run printed, less what differs between any two runs (the seconds)."""
    text = result.stdout.str()
    text = re.sub(r" in [0-9.]+s( \([0-9:]+\))?", " in Xs", text)
    # pytest pads its summary lines with "=" to the terminal's width around the seconds
    text = re.sub(r"^=+ (.*?) =+$", r"\1", text, flags=re.M)
    return "\n".join(line for line in text.splitlines()
                     if not line.startswith(("report:", "rootdir:", "platform ", "cachedir:")))


def _items(path: Path) -> dict[str, dict]:
    report = json.loads(path.read_text())
    return {k: {kk: vv for kk, vv in v.items() if kk != "duration"}
            for s in report["scenarios"].values() for k, v in s["items"].items()}


@pytest.mark.parametrize("driver", ["trusts_labels_last_wins", "deleted_on_missing"])
def test_n_at_once_prints_and_reports_exactly_what_one_by_one_does(
        pytester: pytest.Pytester, sandbox_state_dir: Path, broken_drivers, driver: str) -> None:
    def run(concurrency: int) -> tuple[str, dict]:
        result = pytester.runpytest(
            *PLUGINS, f"--sandbox-state-dir={sandbox_state_dir}", "-o", f"pythonpath={TESTS}",
            f"--sandbox-driver=broken_drivers:{driver}", "--sandbox-schedules=exhaustive",
            "-k", "overlap-replacement-first or gap", f"--sandbox-concurrency={concurrency}",
            f"--sandbox-report=r{concurrency}.json", "-rA")
        assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
        return _failure_text(result), _items(pytester.path / f"r{concurrency}.json")

    text1, items1 = run(1)
    text4, items4 = run(4)
    assert "FAILED" in text1 and "timeline" in text1.lower()
    assert sum(1 for i in items1.values() if i["outcome"] == "failed") >= 2
    assert text4.replace(", 4 at once", "") == text1
    assert items4 == items1


def test_the_header_says_how_many_play_at_once(suite, pytester: pytest.Pytester) -> None:
    scenarios(pytester, basic=BASIC)
    result = suite("--sandbox-driver=reference", "--sandbox-concurrency=3")
    result.stdout.fnmatch_lines(["sandbox conformance: driver *schedules pinned, 3 at once"])
    assert result.ret == pytest.ExitCode.OK
    result = suite("--sandbox-driver=reference")  # auto on the fake engine: one at a time
    assert "at once" not in result.stdout.str()


@pytest.mark.parametrize("value, message", [
    ("0", "--sandbox-concurrency=0: use auto or a whole number from 1 to 64"),
    ("65", "--sandbox-concurrency=65: use auto or a whole number from 1 to 64"),
    ("many", "--sandbox-concurrency=many: use auto or a whole number"),
    ("2.5", "--sandbox-concurrency=2.5: use auto or a whole number"),
])
def test_a_bad_concurrency_is_one_usage_error(suite, pytester: pytest.Pytester, value: str,
                                              message: str) -> None:
    scenarios(pytester, basic=BASIC)
    result = suite("--sandbox-driver=reference", f"--sandbox-concurrency={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}*"])


RUNNING_DRIVER = """
from pytest_sandbox_conformance.adapters.base import DriverProbe
from pytest_sandbox_conformance.adapters.reference import ReferenceAdapter


def factory(ctx):
    return ReferenceAdapter(ctx)


def probe(options, engine):
    return DriverProbe(frozenset(), "running", namespace="prod")


factory.probe = probe
"""


def test_a_running_driver_plays_one_at_a_time(suite, pytester: pytest.Pytester) -> None:
    scenarios(pytester, basic=BASIC)
    pytester.makepyfile(running=RUNNING_DRIVER)
    pytester.syspathinsert()
    result = suite("--sandbox-driver=running:factory", "--sandbox-concurrency=2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --sandbox-concurrency=2: a running driver works in one "
                                 "namespace (prod), so its schedules must play one at a time*"])


# -- play_schedules, with a stand-in for one play -------------------------------------------------


@pytest.fixture
def gaps():
    [sc] = load_text(GAPS, "gaps.yaml")
    schedules = list(enumerate_exhaustive(sc, restarts=False, orders="n"))
    assert len(schedules) >= 6
    return sc, schedules


class Plays:
    """A stand-in for :func:`~.runner.play`: schedule ``i`` waits ``delays[i]`` seconds (ending
    at once when cancelled, as a play does at its next step), then raises ``ends[i]`` if any."""

    def __init__(self, schedules, delays, ends=None) -> None:
        self.index = {s.id: i for i, s in enumerate(schedules)}
        self.delays = delays
        self.ends = ends or {}
        self.started: list[int] = []
        self.finished: list[int] = []
        self.cancelled: list[int] = []
        self.lock = threading.Lock()

    def __call__(self, scenario, schedule, cfg) -> None:
        i = self.index[schedule.id]
        with self.lock:
            self.started.append(i)
        try:
            if cfg.cancel is not None and cfg.cancel.wait(self.delays[i]):
                with self.lock:
                    self.cancelled.append(i)
                raise Cancelled()
            end = self.ends.get(i)
            if end is not None:
                raise end(scenario, schedule)
        finally:
            with self.lock:
                self.finished.append(i)  # its cleanup is done


def _failure(scenario, schedule):
    return ConformanceFailure(scenario, schedule, [Failure("create", ("OWN-1",), "wrong")],
                              Timeline(), "replay", "driver", "")


def _story_error(scenario, schedule):
    return StoryError(scenario, schedule, scenario.story[1], "no such container", 404,
                      Timeline(), "replay", "driver", [], "")


def _cfg() -> RunConfig:
    return RunConfig(driver=lambda ctx: None, engine=lambda: None)


def test_failures_come_back_in_schedule_order_whatever_order_plays_end(gaps, monkeypatch):
    sc, schedules = gaps
    n = len(schedules)
    plays = Plays(schedules, delays=[0.05 * (n - i) for i in range(n)],  # later ones end first
                  ends={i: _failure for i in range(n) if i % 2 == 0})
    monkeypatch.setattr(concurrent, "play", plays)
    seen = []
    failures = play_schedules(sc, schedules, _cfg(), workers=n,
                              progress=lambda done, failed: seen.append((done, failed)))
    assert [f.schedule.id for f in failures] == [s.id for s in schedules[::2]]
    assert plays.finished[0] != 0  # they did end out of order
    assert [d for d, _ in seen] == list(range(1, n + 1)) and seen[-1][1] == len(failures)


def test_the_first_schedules_error_ends_the_item_as_one_by_one(gaps, monkeypatch):
    sc, schedules = gaps
    n = len(schedules)
    # Schedule 3 errs first (at 0.05 s); schedule 1 errs later (at 0.3 s): one by one, schedule 1
    # would have ended the item, so it must here too; 2 plays to its end; those after 3 stop.
    delays = [0.0, 0.3, 0.2, 0.05] + [2.0] * (n - 4)
    plays = Plays(schedules, delays, ends={1: _story_error, 3: _story_error, 2: _failure})
    monkeypatch.setattr(concurrent, "play", plays)
    started = time.monotonic()
    with pytest.raises(StoryError) as info:
        play_schedules(sc, schedules, _cfg(), workers=n)
    assert info.value.schedule.id == schedules[1].id
    assert time.monotonic() - started < 1.5  # the 2 s plays were cancelled
    assert set(plays.cancelled) == set(range(4, n))
    assert sorted(plays.finished) == sorted(plays.started)  # every play started has ended
    # One by one: the same error.
    plays = Plays(schedules, [0.0] * n, ends={1: _story_error, 3: _story_error, 2: _failure})
    monkeypatch.setattr(concurrent, "play", plays)
    with pytest.raises(StoryError) as info:
        play_schedules(sc, schedules, _cfg(), workers=1)
    assert info.value.schedule.id == schedules[1].id
    assert plays.started == [0, 1]


def test_schedules_start_in_order_and_never_more_than_workers(gaps, monkeypatch):
    sc, schedules = gaps
    active, most = [0], [0]
    lock = threading.Lock()

    def play(scenario, schedule, cfg):
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        time.sleep(0.02)
        with lock:
            active[0] -= 1

    order = []
    real = Plays(schedules, [0.0] * len(schedules))
    monkeypatch.setattr(concurrent, "play",
                        lambda s, sched, cfg: (order.append(real.index[sched.id]),
                                               play(s, sched, cfg)))
    assert play_schedules(sc, schedules, _cfg(), workers=3) == []
    assert most[0] == 3 and order == sorted(order)


def test_ctrl_c_cancels_every_play_and_waits_for_their_cleanup(gaps, monkeypatch):
    sc, schedules = gaps
    n = len(schedules)
    plays = Plays(schedules, [0.01] + [30.0] * (n - 1))
    monkeypatch.setattr(concurrent, "play", plays)

    def progress(done, failed):  # runs in the calling thread, where Ctrl-C lands
        raise KeyboardInterrupt()

    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        play_schedules(sc, schedules, _cfg(), workers=4, progress=progress)
    assert time.monotonic() - started < 5
    # Every play that started finished its cleanup; none beyond the first four (the workers)
    # started; each but the quick first was cancelled. On a loaded machine the last worker may
    # not have begun its play before the Ctrl-C: then it never does, which is right too.
    assert sorted(plays.finished) == sorted(plays.started), (plays.started, plays.finished)
    assert 0 in plays.started and set(plays.started) <= {0, 1, 2, 3}, plays.started
    assert set(plays.cancelled) == set(plays.started) - {0}, (plays.started, plays.cancelled)


class Client:
    def __init__(self, name: str) -> None:
        self.name = name
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_the_engine_pool_lends_each_concurrent_play_a_client_of_its_own(gaps, monkeypatch):
    sc, schedules = gaps
    made: list[Client] = []
    first = Client("session")

    def opener():
        made.append(Client(f"c{len(made)}"))
        return made[-1]

    pool = EnginePool(opener, first=first)
    holders: dict[str, int] = {}
    lock = threading.Lock()

    def play(scenario, schedule, cfg):
        engine = cfg.engine()
        with lock:
            assert engine.name not in holders, "one client lent to two plays at once"
            holders[engine.name] = 1
        time.sleep(0.03)
        with lock:
            del holders[engine.name]

    monkeypatch.setattr(concurrent, "play", play)
    play_schedules(sc, schedules, _cfg(), workers=3, engines=pool)
    assert 1 <= len(made) <= 2  # the session's client is one of the three
    assert pool.clients()[0] is first
    pool.close()
    assert all(c.closed for c in made) and not first.closed


def test_a_real_play_ends_with_cancelled_at_its_next_step(gaps, tmp_path):
    from pytest_sandbox_conformance.adapters.reference import factory
    from pytest_sandbox_conformance.engines.fake import FakeEngine
    from pytest_sandbox_conformance.run.runner import play

    sc, schedules = gaps
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        play(sc, schedules[0], RunConfig(driver=factory, engine=FakeEngine, state_root=tmp_path,
                                         cancel=cancel))
    assert list(tmp_path.iterdir()) == []  # its state folder went, as after any play


OPTIONS_ADAPTER = """
import json
import os

from pytest_sandbox_conformance.adapters.reference import ReferenceAdapter


def factory(ctx):
    with open(os.environ["SCT_OPTIONS_FILE"], "a") as f:
        f.write(json.dumps(ctx.options) + "\\n")
    return ReferenceAdapter(ctx)
"""


def test_driver_processes_at_once_get_a_step_timeout_for_the_shared_engine(
        suite, pytester: pytest.Pytester, monkeypatch) -> None:
    from pytest_sandbox_conformance.run.concurrent import step_timeout_at_once

    assert step_timeout_at_once(2.0, 1) == 5.0  # one at a time: the adapter's own default
    assert step_timeout_at_once(2.0, 16) == 16.25
    scenarios(pytester, basic=BASIC)
    pytester.makepyfile(options_adapter=OPTIONS_ADAPTER)
    pytester.syspathinsert()
    seen = pytester.path / "options.jsonl"
    monkeypatch.setenv("SCT_OPTIONS_FILE", str(seen))

    def options(*args: str) -> list[dict]:
        seen.write_text("")
        result = suite("--sandbox-driver=options_adapter:factory",
                       "--sandbox-driver-option=cmd=true {socket}", *args)
        assert result.ret == pytest.ExitCode.OK, result.stdout.str()
        return [json.loads(line) for line in seen.read_text().splitlines()][-2:]

    # A driver command is a driver process per play (the fake engine's auto is 1: give N).
    at_once = ("--sandbox-concurrency=4", "--sandbox-poll-interval=1")
    assert {o.get("step_timeout") for o in options(*at_once)} == {"6.25"}
    assert {o.get("step_timeout") for o in options("--sandbox-poll-interval=1")} == {None}
    assert {o.get("step_timeout") for o in options(*at_once, "--sandbox-step-timeout=4")} \
        == {"4"}


def test_a_cancelled_play_abandons_the_adapter_call_it_waits_for(gaps, tmp_path):
    """Ctrl-C lands in the calling thread only: a play waiting for a slow driver call must still
    end at once when cancelled (and still clean up), not when the call returns."""
    from pytest_sandbox_conformance.adapters.reference import ReferenceAdapter
    from pytest_sandbox_conformance.adapters.watchdog import LEFT_BEHIND
    from pytest_sandbox_conformance.engines.fake import FakeEngine
    from pytest_sandbox_conformance.run.runner import play

    closed = threading.Event()

    class Slow(ReferenceAdapter):
        def observe(self, order=None):
            time.sleep(30)

        def close(self):
            closed.set()
            super().close()

    sc, schedules = gaps
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    left = len(LEFT_BEHIND)
    started = time.monotonic()
    with pytest.raises(Cancelled):
        play(sc, schedules[-1], RunConfig(driver=Slow, engine=FakeEngine, state_root=tmp_path,
                                          cancel=cancel))
    assert time.monotonic() - started < 5
    assert closed.wait(5)  # close() ran (on a helper thread: the adapter's is still busy)
    assert list(tmp_path.iterdir()) == []
    assert len(LEFT_BEHIND) == left  # a cancel is no call "that never returned"
