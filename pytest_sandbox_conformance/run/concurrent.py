"""Playing the schedules of one item: one after the other, or up to N at once.

A black-box driver's schedule mostly *waits* (for the driver process to start, for its next poll
behind the observation gate, for the engine), so an item's schedules can be played on threads:
:func:`play_schedules` with ``workers=N`` plays up to N of them at once, each isolated exactly as
when played alone (its own namespace, state folder, driver, gate and driver process: all made by
:func:`~.runner.play`). What it returns, and what it raises, is exactly what the one-by-one loop
(``workers=1``) returns and raises:

* the conformance failures, in schedule order (the caller picks the smallest);
* the error that ends the item (an engine outage, a story error, any other exception): that of
  the *first* schedule, in schedule order, that raised one. Schedules are started in order, so
  when schedule *i* raises, every schedule before it has started; those are played to their end
  (one of them may raise too, and come first), and those after it are cancelled
  (:attr:`RunConfig.cancel`: they stop at their next step or observation, cleaning up as always)
  or never started;
* Ctrl-C (``KeyboardInterrupt`` in the calling thread) cancels every play, waits until each has
  cleaned up (its driver process stopped, its containers removed), then is raised again.

A real engine's client is not shared between threads: an :class:`EnginePool` lends each
concurrent play a client of its own (made by the pool's ``opener``, closed by
:meth:`EnginePool.close`). With ``workers=1`` nothing changes: the schedules are played in the
calling thread on ``cfg``'s engine, as before.

What plays at once share, and why that is safe: nothing of a play's own (its timeline, oracle,
gateway, guarded adapter and its thread, gate, driver process, state folder, namespace: all made
by ``play``); a real engine's client is borrowed by one play at a time (the Docker SDK's client
and its call counters are not shared between threads); the session's state folder
(``live/state.py``) is made before the plays start, and each play makes its own folder in it
with ``mkdtemp``; the watchdog's list of calls left behind is only appended to. A driver
process is started by its adapter's own thread, which lives as long as the adapter, so the
process's parent-death signal (``adapters/grpc_process.py``) is not sent when a pool thread
ends. Without ``engines``, a factory that returns one engine for every play would be shared:
the plugin passes a pool whenever the engine is real.

No pytest here.
"""

from __future__ import annotations

import dataclasses
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Callable, Sequence

from ..engines.base import Engine, EngineUnavailable
from ..exploration.schedule import Schedule
from ..scenario.model import Scenario
from .failure import ConformanceFailure, EngineOutage
from .runner import Cancelled, RunConfig, play

__all__ = ["EXTRA_PER_PLAY", "EnginePool", "play_schedules", "step_timeout_at_once"]

#: How long the calling thread waits at a time (so Ctrl-C is seen promptly).
POLL = 0.2
#: Seconds a driver process's default step timeout grows per play beyond the first: plays at once
#: share the engine and the CPUs, so one engine call takes longer (measured: at 16 at once on a
#: loaded 2-core machine a CreateSandbox took over 5 s, a container's create and start 3 s).
EXTRA_PER_PLAY = 0.75


def step_timeout_at_once(poll_interval: float, workers: int) -> float:
    """The default step timeout of a driver process when ``workers`` plays run at once: the
    one-at-a-time default (``poll_interval + 3``) plus :data:`EXTRA_PER_PLAY` per play beyond
    the first."""
    return poll_interval + 3.0 + EXTRA_PER_PLAY * max(0, workers - 1)


class EnginePool:
    """Clients of one real engine, lent to concurrent plays: each play borrows one for its whole
    play and returns it (at most as many clients as plays at once). ``opener()`` makes a new
    client; ``first``, if given, is lent first (the session's own client, not closed here);
    ``where`` names the engine in errors."""

    def __init__(self, opener: Callable[[], Engine], first: Engine | None = None,
                 where: str = "the engine") -> None:
        self._opener = opener
        self.where = where
        self._lock = threading.Lock()
        self._idle: list[Engine] = [first] if first is not None else []
        self._own: list[Engine] = []
        self._first = first

    def borrow(self) -> Engine:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        engine = self._opener()
        with self._lock:
            self._own.append(engine)
        return engine

    def give_back(self, engine: Engine) -> None:
        with self._lock:
            self._idle.append(engine)

    @property
    def opened(self) -> int:
        """How many clients the pool made itself."""
        return len(self._own)

    def clients(self) -> list[Engine]:
        """Every client lent so far (the first one included)."""
        with self._lock:
            return ([self._first] if self._first is not None else []) + list(self._own)

    def close(self) -> None:
        with self._lock:
            own, self._own = self._own, []
            self._idle = [self._first] if self._first is not None else []
        for engine in own:
            try:
                engine.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass


def play_schedules(scenario: Scenario, schedules: Sequence[Schedule], cfg: RunConfig, *,
                   workers: int = 1, engines: EnginePool | None = None,
                   progress: Callable[[int, int], None] | None = None
                   ) -> list[ConformanceFailure]:
    """Play every schedule of ``schedules``; return their conformance failures in schedule
    order; raise what ended the item (see the module docstring). ``progress(done, failed)``
    after each schedule, from the calling thread. ``engines``: where concurrent plays get
    their engine client (None: ``cfg.engine``, as one play would; right for engines made per
    play, such as the fake)."""
    if workers <= 1 or len(schedules) <= 1:
        failures: list[ConformanceFailure] = []
        for done, sched in enumerate(schedules, 1):
            try:
                play(scenario, sched, cfg)
            except ConformanceFailure as exc:
                failures.append(exc)
            if progress is not None:
                progress(done, len(failures))
        return failures
    return _Concurrent(scenario, schedules, cfg, workers, engines, progress).run()


class _Concurrent:
    """One item's schedules on up to ``workers`` threads."""

    def __init__(self, scenario: Scenario, schedules: Sequence[Schedule], cfg: RunConfig,
                 workers: int, engines: EnginePool | None,
                 progress: Callable[[int, int], None] | None) -> None:
        self.scenario = scenario
        self.schedules = list(schedules)
        self.cfg = cfg
        self.workers = min(workers, len(self.schedules))
        self.engines = engines
        self.progress = progress
        self.cancels = [threading.Event() for _ in self.schedules]
        #: index -> what the play ended in (None: it passed)
        self.outcomes: dict[int, BaseException | None] = {}
        #: The lowest index whose play raised something that ends the item.
        self.ended_at: int | None = None

    def one(self, index: int) -> None:
        cfg = dataclasses.replace(self.cfg, cancel=self.cancels[index])
        if self.engines is None:
            play(self.scenario, self.schedules[index], cfg)
            return
        try:
            engine = self.engines.borrow()
        except EngineUnavailable as exc:  # a new client could not reach the engine
            sched = self.schedules[index]
            raise EngineOutage(str(exc), doing=f"scenario {self.scenario.id} [{sched.label}], "
                               "opening a client of the engine", engine=self.engines.where,
                               since=exc.since, scenario=self.scenario, schedule=sched) from None
        try:
            play(self.scenario, self.schedules[index], dataclasses.replace(cfg,
                                                                           engine=lambda: engine))
        finally:
            self.engines.give_back(engine)

    def run(self) -> list[ConformanceFailure]:
        pool = ThreadPoolExecutor(max_workers=self.workers,
                                  thread_name_prefix=f"sbx-play {self.scenario.id}")
        running: dict[Future, int] = {}
        following = 0  # the next schedule to start
        failed = 0
        try:
            while True:
                while (following < len(self.schedules) and len(running) < self.workers
                       and self.ended_at is None):
                    running[pool.submit(self.one, following)] = following
                    following += 1
                if not running:
                    break
                done, _ = wait(list(running), timeout=POLL, return_when=FIRST_COMPLETED)
                for future in done:
                    index = running.pop(future)
                    error = future.exception()
                    self.outcomes[index] = error
                    if isinstance(error, ConformanceFailure):
                        failed += 1
                    elif error is not None and not isinstance(error, Cancelled):
                        self.end_at(index)
                    if self.progress is not None:
                        self.progress(len(self.outcomes), failed)
        except BaseException:  # Ctrl-C (or a bug here): stop every play, let each clean up
            for event in self.cancels:
                event.set()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        if self.ended_at is not None:
            raise self.outcomes[self.ended_at]  # type: ignore[misc]
        return [e for _, e in sorted(self.outcomes.items())
                if isinstance(e, ConformanceFailure)]

    def end_at(self, index: int) -> None:
        """Schedule ``index`` ended the item: cancel the plays after it (those before it play
        on: one of them may end the item first, as it would one by one)."""
        if self.ended_at is not None and self.ended_at < index:
            return
        self.ended_at = index
        for later in range(index + 1, len(self.schedules)):
            self.cancels[later].set()
