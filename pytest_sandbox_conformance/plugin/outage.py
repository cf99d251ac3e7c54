"""An engine that stops answering: the session's side (the runner's is ``run/runner.py``).

A play the engine cut short raises :class:`~..run.failure.EngineOutage`; the item reports it as
an **error** (it plays in its setup phase, ``items.py``) with one short block, never as the
driver's failure. :class:`EngineWatch` then decides what happens next:

* the next item first waits for the engine (a ``ping`` every half second) until it has been gone
  for ``--sandbox-engine-timeout`` seconds in all; an engine that comes back (a restarted daemon)
  costs a pause, and the session goes on;
* once it has been gone that long, the item is reported as not run (one line) and the session
  stops (``session.shouldstop``, with the reason: pytest prints ``Interrupted: ...`` and exits
  with status 2); the verdict (``reports/verdict.py``) is ``incomplete (engine unavailable)``,
  and a summary line says how many items the engine kept from being judged.

Each item of an outage carries the user property ``sandbox_error=engine`` (in JUnit too), and its
exception (:class:`NotJudgedError`, also in ``call.excinfo`` of ``pytest_runtest_makereport``)
has ``kind = "engine"``, for reports to tell it from a driver's failure. A story step the engine
refused (:class:`~..run.failure.StoryError`, ``kind = "story"``) is shown the same way: an error
of the item's setup, its block and no traceback.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import pytest

from ..adapters.watchdog import LEFT_BEHIND
from ..engines.base import EngineError, EngineUnavailable
from ..run.failure import ENVIRONMENT_KINDS, EngineOutage
from .longrepr import FailureRepr

__all__ = ["ENGINE_ERROR", "EngineWatch", "NotJudgedError"]

#: The user property an item of an engine outage carries.
ENGINE_ERROR = ("sandbox_error", "engine")
#: How often a waiting session asks the engine whether it is back.
PING_EVERY = 0.5


class NotJudgedError(pytest.fail.Exception):  # type: ignore[misc,name-defined]
    """What kept an item from being judged (an :class:`EngineOutage`, a :class:`StoryError`, any
    exception whose ``kind`` is an environment's), as pytest shows an error of the item's setup:
    its block, no traceback. ``kind``, ``summary()`` and ``replay`` are the error's
    (``error``)."""

    def __init__(self, error: BaseException) -> None:
        render = getattr(error, "render", None)
        self.text = render() if callable(render) else f"{type(error).__name__}: {error}"
        super().__init__(self.text, pytrace=False)
        self.error = error
        self.kind = getattr(error, "kind", None)
        self.replay = getattr(error, "replay", None)

    def summary(self) -> str:
        summary = getattr(self.error, "summary", None)
        if callable(summary):
            return summary()
        return (self.text.strip().splitlines() or [type(self.error).__name__])[0]


class EngineWatch:
    """How long the session's engine has been gone, and when the session stops."""

    def __init__(self, engine: Any, timeout: float) -> None:
        #: The session's real engine (None with the fake: one per run, always there).
        self.engine = engine
        self.timeout = timeout
        #: Items that ended in an engine outage (reports seen: xdist workers' too).
        self.errors = 0
        self.last_error = ""
        #: Why the session stopped, once it did.
        self.stopped: str | None = None
        #: Adapter calls left behind before this session (in-process runs share the process).
        self._left_before = len(LEFT_BEHIND)
        #: Since when the engine has been gone, by the last outage: concurrent plays use clients
        #: of their own (``run/concurrent.py``), so the session's client may not have seen it.
        self.down_since: float | None = None

    def _where(self) -> str:
        url = getattr(self.engine, "base_url", None)
        return f"{self.engine.name}" + (f" at {url}" if url else "")

    def play(self, item: pytest.Item, play: Callable[[], None]) -> None:
        """Play ``item`` (``play()``), after waiting for the engine if it was gone; an outage
        becomes a :class:`NotJudgedError` and may stop the session."""
        try:
            self.wait_for_engine(item)
            play()
        except EngineOutage as outage:
            self.after(outage, item)
            item.user_properties.append(ENGINE_ERROR)
            raise NotJudgedError(outage) from None
        except Exception as error:  # a StoryError (kind "story") included
            if getattr(error, "kind", None) in ENVIRONMENT_KINDS:
                raise NotJudgedError(error) from None
            raise

    @staticmethod
    def shape_report(item: pytest.Item, call: pytest.CallInfo, report: pytest.TestReport) -> None:
        """A setup error of :class:`NotJudgedError`: its block as the text, its summary as the
        message (``-r``, JUnit)."""
        if call.when != "setup" or call.excinfo is None:
            return
        exc = call.excinfo.value
        if isinstance(exc, NotJudgedError):
            report.longrepr = FailureRepr(exc.text, exc.summary(), str(item.path),
                                          getattr(getattr(item, "scenario", None), "line", 0))

    def wait_for_engine(self, item: pytest.Item) -> None:
        """Return once the engine answers; :class:`EngineOutage` ("not run") when it has been
        gone for the whole timeout."""
        engine = self.engine
        if engine is None:
            return
        since = getattr(engine, "unavailable_since", None) or self.down_since
        if since is None:
            return
        while True:
            try:
                engine.ping()
                self.down_since = None
                return
            except EngineUnavailable as exc:
                error = exc
            except EngineError:
                self.down_since = None
                return  # it answered
            left = since + self.timeout - time.monotonic()
            if left <= 0:
                raise EngineOutage(str(error), doing=f"{item.name}: not run (waiting for the "
                                   "engine)", engine=self._where(), since=since)
            time.sleep(min(PING_EVERY, left))

    def after(self, outage: EngineOutage, item: pytest.Item) -> None:
        if self.down_since is None or outage.since < self.down_since:
            self.down_since = outage.since
        gone = time.monotonic() - outage.since
        outage.notes.append(f"gone:   the engine has not answered for {gone:.1f} s")
        if gone >= self.timeout:
            self.stopped = (f"sandbox conformance: the engine ({self._where()}) has not answered for "
                            f"{gone:.0f} s (--sandbox-engine-timeout={self.timeout:g}): "
                            "stopping the session; verdict incomplete (engine unavailable)")
            item.session.shouldstop = self.stopped
            outage.notes.append("next:   the session stops; the items left are not run")
        else:
            outage.notes.append(f"next:   the next item waits up to {self.timeout - gone:.0f} s "
                                "for the engine (--sandbox-engine-timeout)")

    def seen(self, report: pytest.TestReport) -> None:
        """A report of any item (this process's or an xdist worker's)."""
        if report.failed and ENGINE_ERROR in report.user_properties:
            self.errors += 1
            text = str(report.longrepr)
            first = next((line for line in text.splitlines() if "engine unavailable: " in line),
                         text.splitlines()[0] if text else "")
            self.last_error = first.partition("engine unavailable: ")[2] or first

    def summary(self) -> list[str]:
        lines = []
        if self.errors:
            lines.append(f"sandbox conformance: the engine did not answer: {self.errors} "
                         f"item(s) not judged (last: {self.last_error})"
                         + ("; the session stopped" if self.stopped else ""))
        left = LEFT_BEHIND[self._left_before:]
        if left:
            lines.append(f"sandbox conformance: {len(left)} adapter call(s) never "
                         "returned; their threads were left behind (daemon threads):")
            lines += [f"  {line}" for line in left]
        return lines
