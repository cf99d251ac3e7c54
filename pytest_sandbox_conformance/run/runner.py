"""The runner: plays one scenario under one schedule against one driver, checking as it goes.

For each story step it performs the step (a driver step through the adapter, or an external step
as another client of the engine), runs the ``step`` checks, then plays the schedule's gap after
that step (restarts and observations, each observation followed by the ``observation`` checks).
Then it lets the driver settle with quiet observations and runs the ``final`` checks (OWN-20).
Every action, observation and report goes on a :class:`~.timeline.Timeline` as it happens.

A broken check is recorded where it was seen and the story goes on (a soft failure), so a driver
is reported for everything it gets wrong; the play then ends with one
:class:`~.failure.ConformanceFailure` carrying every failure, the first leading. Only what makes
the rest of the story meaningless ends it at once: the driver failing as a process
(:class:`DriverUnavailable`, check ``driver``; an adapter call that raises or never returns,
check ``driver``; one that returns a wrong type, check ``adapter``: see ``guard.py``), or a create
after which the suite cannot tell which container is the sandbox's. A story step the engine
refuses (an external step: a clone that cannot start, a rename onto a taken name, a step on a
container that is gone) ends it with a :class:`~.failure.StoryError`: the story could not be
played, which is no failure of the driver. Cleanup (the driver, the engine's containers of this
run, the state folder) always happens, in ``finally``, and never hides what ended the play.

**The engine is the suite's environment.** When the engine the suite plays on (and an in-process
driver uses) cannot be reached or stops answering, the play ends with an
:class:`~.failure.EngineOutage` (``kind = "engine"``), never a conformance failure or a story
error: a suite call that gets no answer is one at once; a driver's failure (a poll that failed,
a driver process that died, a call that never returned) is one when the engine does not answer a
``ping`` either; otherwise it stays the driver's (a driver must report a failed poll as the
contract says).

No pytest here: the plugin is a thin face over :func:`play`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

from ..adapters.base import DriverContext, DriverFactory, DriverUnavailable
from ..adapters.watchdog import Cancelled
from ..api import Snapshot
from ..engines.base import Engine, EngineError, EngineUnavailable, cause_in, unavailable_in
from ..exploration.schedule import Schedule
from ..scenario.model import Expect, Scenario
from .checks import Failure, View, checks_for
from .failure import ConformanceFailure, EngineOutage, StoryError
from .gateway import Gateway
from .guard import GuardedAdapter
from .observing import Observer
from .oracle import Oracle
from .state_audit import audit_state_folder
from .steps import Steps, _StoryEnds
from .timeline import Timeline

__all__ = ["Cancelled", "ConformanceFailure", "EngineOutage", "RunConfig", "RunResult",
           "StoryError", "Timeline", "play"]

#: Quiet observations after the story, alternating list orders: at least SETTLE_MIN, and more
#: until the contract's own state has reached its fixpoint (an observation at which no ownership
#: record changes, see ``Oracle.quiet``) and one more observation has followed it, so that the
#: last two are both at the fixpoint and must agree (OWN-20). A story can need several: an intent
#: invalidated, a new intent, its adoption, then quiet. At most SETTLE_MAX.
SETTLE_ORDERS = ("newest", "oldest")
SETTLE_MIN = 3
SETTLE_MAX = 12


@dataclass
class RunConfig:
    """How to run: the driver factory, how to get an engine, where state goes."""

    driver: DriverFactory
    engine: Callable[[], Engine]
    image: str = "sbx-busybox:local"
    state_root: Path | None = None
    namespace_prefix: str = "conformance"
    #: Builds the command that replays a (scenario, schedule): set by the plugin.
    replay: Callable[[Scenario, Schedule], str] = lambda sc, s: f"--sandbox-schedule={sc.id}@{s.id}"
    driver_options: dict[str, str] = field(default_factory=dict)
    #: Whether the engine honours list orders (the fake does; a real engine does not).
    ordered_lists: bool = True
    #: Engines that need it get every container of the run removed at the end.
    cleanup_engine: bool = False
    #: Whether sandbox ids get the run's suffix (a real engine shared by parallel runs).
    unique_sandbox_ids: bool = False
    #: Labels the suite adds to every container it creates itself (live session labels).
    extra_labels: dict[str, str] = field(default_factory=dict)
    #: One namespace for every run (a driver that is already running has one); None: a fresh
    #: ``{namespace_prefix}-{run}`` per run.
    namespace: str | None = None
    #: The longest one adapter call may take (the watchdog, ``--sandbox-step-timeout``); the
    #: factory, ``restart()`` and ``close()`` get at least ``adapters.watchdog.START_TIMEOUT``.
    step_timeout: float = 30.0
    #: Set by whoever plays several schedules at once (``run/concurrent.py``): the play ends at
    #: its next step or observation, or in the adapter call it is waiting for, with
    #: :class:`~..adapters.watchdog.Cancelled` (cleaning up as always).
    cancel: threading.Event | None = None


@dataclass
class RunResult:
    scenario: Scenario
    schedule: Schedule
    observations: int
    timeline: Timeline


class _Run:
    """The state of one play, and its course: set up, the story, the settling, the final checks,
    the failure or story error it ends with, the cleanup. Private: :func:`play` is the
    interface. What it sees is :class:`~.observing.Observer`'s (``self.observer``), the story's
    steps are :class:`~.steps.Steps`' (``self.steps``); both work on this state.
    """

    def __init__(self, scenario: Scenario, schedule: Schedule, config: RunConfig) -> None:
        self.sc = scenario
        self.schedule = schedule
        self.cfg = config
        self.tl = Timeline()
        self.expect: Expect = next((p.expect for p in scenario.pinned if p.name == schedule.name),
                                   scenario.expect)
        if config.unique_sandbox_ids:  # a shared real engine: unique across runs
            run_id = uuid.uuid4().hex[:8]
        else:  # an engine of its own: the same on every play, so a replay reads the same
            run_id = hashlib.sha256(f"{scenario.id}@{schedule.id}".encode()).hexdigest()[:8]
        self.namespace = config.namespace or f"{config.namespace_prefix}-{run_id}"
        #: The play's own folder, and the driver's state folder in it (``state_audit.py``).
        self.run_dir = Path(tempfile.mkdtemp(prefix="sbx-state-", dir=config.state_root))
        # The driver's folder starts as ``mkdir -p`` under the usual umask leaves it (0755): a
        # driver makes its folder owner-only itself (OWN-15), as it must on a real host.
        self.state_dir = self.run_dir / "state"
        self.state_dir.mkdir()
        os.chmod(self.state_dir, 0o755)
        self.engine = config.engine()
        self.adapter: GuardedAdapter | None = None
        #: Set once the engine was found gone: cleanup then leaves the engine alone.
        self.outage: EngineOutage | None = None
        self.gateway = Gateway()
        self.bindings: dict[str, str] = {}
        # On a shared real engine container names are global: make sandbox ids (and so the
        # canonical names) unique per run. On the fake engine keep them as written.
        suffix = f"-{run_id}" if config.unique_sandbox_ids else ""
        self.sandbox_ids = {key: key + suffix for key in scenario.sandboxes}
        self.name_suffix = suffix  # literal container names get it too
        self.observations = 0
        self.restarts_done = 0
        self.deleted_keys: list[str] = []
        self.gpu_containers: set[str] = set()
        self.settle: list[dict[str, Snapshot | None]] = []
        self.oracle: Oracle | None = None
        #: Every failure seen so far, once each, in the order first seen.
        self.findings: dict[Failure, Failure] = {}
        #: What the play sees (the engine, the driver's observations), and its story's steps.
        self.observer = Observer(self)
        self.steps = Steps(self)

    # -- checks and findings --------------------------------------------------------------------

    def view(self, **kw) -> View:
        return View(self.sc, self.expect, self.gateway, self.bindings, self.sandbox_ids,
                    deleted_keys=self.deleted_keys, identity_matches=self.observer.identity_matches,
                    gpu_containers=frozenset(self.gpu_containers), inspect=self.observer.inspect,
                    look_inside=self.observer.look_inside, audit_state=self.audit_state,
                    notices=self.oracle.raised if self.oracle is not None else {}, **kw)

    def audit_state(self) -> list[str]:
        """OWN-15's promises about the state folder the adapter declares (none: not audited)."""
        folder = getattr(self.adapter, "state_folder", None) if self.adapter else None
        if not folder:
            return []
        watch = getattr(self.adapter, "durability", None)
        return audit_state_folder(self.run_dir, Path(folder), getattr(watch, "foreign", ()))

    def check_cancel(self) -> None:
        if self.cfg.cancel is not None and self.cfg.cancel.is_set():
            self.tl.add("cancelled (the item ended, or Ctrl-C)", 0)
            raise Cancelled()

    def run_checks(self, when: str, view: View) -> None:
        for c in checks_for(when):
            for f in c.fn(view):
                self.found(f)

    def found(self, failure: Failure) -> None:
        """Record a broken check where it was seen (once: seen again later, it is the same)."""
        if failure in self.findings:
            return
        where = []
        if self.tl._observation is not None:
            where.append(f"observation {self.tl._observation}")
        if self.tl._step is not None:
            where.append(f"after step {self.tl._step + 1}")
        elif self.tl._observation is not None:
            where.append("settling")
        elif self.observations:
            where.append("the end of the story")
        moment = self.tl.add(f"FAILED {failure}", 1, "finding", check=failure.check,
                             requirements=list(failure.requirements), message=failure.message)
        self.findings[failure] = Failure(failure.check, failure.requirements, failure.message,
                                         ", ".join(where), moment.seq)

    def failure(self, failures: Sequence[Failure] = ()) -> ConformanceFailure:
        """The play's failure: ``failures`` (found now) after everything found before, and
        after what the state folder shows now (a driver that failed may have left it astray)."""
        if self.adapter is not None and not self.adapter.stuck:
            for problem in self.audit_state():
                self.found(Failure("state-folder-owner-only", ("OWN-15",), problem))
        for f in failures:
            self.found(f)
        if self.adapter is not None and not self.adapter.stuck:
            self.observer.adapter_notes(1, "at the failure: ")
        snaps = []
        for key in self.sc.sandboxes:
            sid = self.sandbox_ids[key]
            try:
                snap = self.adapter.snapshot(sid) if self.adapter is not None else None
            except DriverUnavailable:
                snaps.append(f"  {sid}: not known (the adapter failed)")
                continue
            snaps.append("  " + self.observer.describe_snapshot(sid, snap))
        driver = self.describe_driver()
        return ConformanceFailure(self.sc, self.schedule, list(self.findings.values()), self.tl,
                                  self.cfg.replay(self.sc, self.schedule), driver,
                                  "\n".join(snaps))

    def describe_driver(self) -> str:
        if self.adapter is None:
            return "?"
        try:
            return self.adapter.describe()
        except DriverUnavailable:
            return self.adapter.name

    # -- the play -------------------------------------------------------------------------------

    def play(self) -> RunResult:
        ctx = DriverContext(self.engine, self.state_dir, self.namespace, self.cfg.image,
                            dict(self.cfg.driver_options))
        self.adapter = GuardedAdapter(self.cfg.driver, ctx, step_timeout=self.cfg.step_timeout,
                                      name=f"{getattr(self.cfg.driver, '__name__', 'driver')} "
                                           f"({self.sc.id} [{self.schedule.label}])",
                                      cancel=self.cfg.cancel)
        self.oracle = Oracle(self.adapter.labels, self.namespace,
                             adds_restarts=not self.schedule.name and self.schedule.restarts > 0)
        self.tl.add(f"driver {self.adapter.describe()} on engine {self.engine.name}, "
                    f"namespace {self.namespace}", 0, "run", driver=self.adapter.describe(),
                    engine=self.engine.name, namespace=self.namespace)
        for step in self.sc.story:
            self.check_cancel()
            self.tl.at_step(step.index)
            self.tl.add(f"step {step.index + 1}: {step.describe()}", 0, "step", index=step.index,
                        action=step.action, target=step.target, args=dict(step.args))
            deleted = self.steps.do_step(step)
            self.observer.consume_events(2)
            self.run_checks("step", self.view(deleted=deleted))
            for kind, order in self.schedule.actions_after(step.index):
                if kind == "restart":  # a pinned schedule's restarts are its story's
                    self.observer.restart(None if self.schedule.name else step.index)
                else:
                    self.observer.observe(order or "newest", 1)
        self.tl.at_step(None)
        self.tl.add("settle: quiet observations", 0, "settle")
        fixpoint = False
        for i in range(SETTLE_MAX):
            quiet = self.observer.observe(SETTLE_ORDERS[i % len(SETTLE_ORDERS)], 1)
            self.settle.append({sid: self.adapter.snapshot(sid)
                                for sid in sorted(self.sandbox_ids.values())})
            if fixpoint and i + 1 >= SETTLE_MIN:
                break
            fixpoint = quiet
        self.tl.at_observation(None)
        self.run_checks("final", self.view(containers=self.observer.present(), settle=self.settle,
                                           warning_bounds=self.oracle.warning_bounds(),
                                           reannounced=self.oracle.reannounced(),
                                           added_restarts=tuple(self.oracle.added_restarts)))
        if self.findings:
            raise self.failure()
        return RunResult(self.sc, self.schedule, self.observations, self.tl)

    # -- the engine gone ------------------------------------------------------------------------

    def raise_if_outage(self, exc: BaseException, driver_poll: bool = False) -> None:
        """Raise :class:`EngineOutage` when ``exc`` ended the play because the suite's engine is
        gone (see the module docstring); return when it is the driver's own failure or a
        refusal. ``driver_poll``: ``exc`` is what a driver's poll raised (the engine is
        asked)."""
        gone = unavailable_in(exc)
        if gone is not None and gone is exc and not driver_poll:
            raise self.engine_outage(gone) from None  # a call of this play got no answer
        if gone is None and not isinstance(exc, DriverUnavailable):
            return
        try:
            self.engine.ping()
        except EngineUnavailable as down:
            raise self.engine_outage(down) from None
        except EngineError:
            return  # it answered

    def refusal_in(self, exc: BaseException) -> EngineError | None:
        """The engine's refusal that ``exc`` is or was caused by, during a story step (a driver's
        create or delete the engine refused raises the driver's own error): None otherwise."""
        return cause_in(exc, EngineError) if self.tl._step is not None else None

    def engine_outage(self, error: EngineUnavailable) -> EngineOutage:
        tl, where = self.tl, f"scenario {self.sc.id} [{self.schedule.label}]"
        if tl._step is not None:
            where += f", step {tl._step + 1} ({self.sc.story[tl._step].describe()})"
        elif self.adapter is None:
            where += ", starting the driver"
        elif tl._observation is not None or self.observations:
            where += ", settling"
        if tl._observation is not None:
            where += f", observation {tl._observation}"
        url = getattr(self.engine, "base_url", None)
        since = error.since or getattr(self.engine, "unavailable_since", None)
        self.tl.add(f"ENGINE UNAVAILABLE: {error}", 1)
        self.outage = EngineOutage(str(error), doing=where, since=since,
                                   engine=f"{self.engine.name}" + (f" at {url}" if url else ""),
                                   timeline=self.tl, scenario=self.sc, schedule=self.schedule)
        return self.outage

    def close(self) -> None:
        """The driver, the run's containers, the state folder; never raises over what ended the
        play (a failed cleanup is on the timeline, and the session's own cleanup retries)."""
        try:
            if self.adapter is not None:
                try:
                    self.adapter.close()
                except DriverUnavailable as exc:
                    self.tl.add(f"closing the driver failed: {exc}", 0)
            if self.cfg.cleanup_engine and self.adapter is not None and self.outage is None:
                try:
                    self.engine.remove_all([c.id for c in self.observer.present()], force=True)
                except EngineError as exc:
                    self.tl.add(f"cleanup: {exc} (the session removes what is left)", 0)
        finally:
            shutil.rmtree(self.run_dir, ignore_errors=True)


def play(scenario: Scenario, schedule: Schedule, config: RunConfig) -> RunResult:
    """Play ``scenario`` under ``schedule``; raise :class:`ConformanceFailure` when checks broke
    (all of them, the first leading), :class:`StoryError` when the engine refused a story step,
    :class:`EngineOutage` when the engine stopped answering. Always cleans up."""
    run = _Run(scenario, schedule, config)
    try:
        return run.play()
    except (EngineOutage, StoryError, ConformanceFailure):
        raise
    except DriverUnavailable as exc:
        # The driver process crashed, hung or refused (or the adapter broke the protocol): a
        # failure of this scenario, with the timeline so far and the driver's output; the
        # session goes on with the next one. Unless the engine itself is gone.
        run.raise_if_outage(exc)
        raise run.failure([Failure(getattr(exc, "check", "driver"), (), str(exc))]) from None
    except _StoryEnds:
        raise run.failure() from None
    except Exception as exc:  # an engine error, or one caused by an engine error
        run.raise_if_outage(exc)
        refusal = run.refusal_in(exc)
        if refusal is not None:  # a driver step the engine refused (an armed fault): no verdict
            raise run.steps.story_error(run.sc.story[run.tl._step], refusal) from exc
        raise
    finally:
        run.close()


def memory_base() -> Path:
    """A memory-backed folder (/dev/shm) when there is one, else the system's temporary folder:
    journals fsync on every change, which costs nothing there."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        return shm
    return Path(tempfile.gettempdir())


@contextmanager
def reference_config(prefix: str) -> Iterator[RunConfig]:
    """A :class:`RunConfig` for the reference driver on the fake engine, its state under a
    folder of its own in :func:`memory_base` (``prefix`` names it), removed afterwards: how
    lint's rehearsal, ``reaches:`` and generated stories ask what the contract computes."""
    from ..adapters.reference import factory
    from ..engines.fake import FakeEngine

    root = tempfile.mkdtemp(prefix=prefix, dir=memory_base())
    try:
        yield RunConfig(driver=factory, engine=FakeEngine, state_root=Path(root))
    finally:
        shutil.rmtree(root, ignore_errors=True)
