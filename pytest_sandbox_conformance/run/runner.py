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
import re
import shutil
import tempfile
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from reference_driver.naming import backup_name, canonical_name

from ..adapters.base import DriverContext, DriverFactory, DriverUnavailable
from ..adapters.watchdog import Cancelled
from ..api import DeletedEvent, Event, PlatformEvent, SandboxSpec, Snapshot, phase_of
from ..engines.base import (
    Container,
    ContainerSpec,
    DeviceRequest,
    Engine,
    EngineConflict,
    EngineError,
    EngineUnavailable,
    EngineNotFound,
    ids_match,
    unavailable_in,
)
from ..engines.clone import clone_spec
from ..exploration.schedule import Schedule
from ..scenario.meaning import CANONICAL_PLACEHOLDER
from ..scenario.model import Expect, Scenario, Step
from .checks import Failure, View, checks_for
from .failure import ConformanceFailure, EngineOutage, StoryError
from .gateway import DurableState, Gateway
from .guard import AdapterFault, GuardedAdapter
from .oracle import Oracle
from .state_audit import audit_state_folder
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
#: The fixed "milliseconds" of backup names, plus the step index, so names are reproducible.
BACKUP_EPOCH_MS = 1_760_000_000_000
#: What the containers of ``run`` steps execute (images made by ``docker import`` have none).
RUN_COMMAND = ("sleep", "2147483647")
#: A generation value no driver ever makes.
WRONG_GENERATION = "00000000-0000-4000-8000-000000000000"

GPU_STYLES = {
    "gpus": dict(device_requests=(DeviceRequest(count=-1, capabilities=(("gpu",),)),)),
    "cdi": dict(device_requests=(DeviceRequest(driver="cdi", device_ids=("nvidia.com/gpu=all",)),)),
    "runtime": dict(runtime="nvidia", env={"NVIDIA_VISIBLE_DEVICES": "all"}),
}


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


class _StoryEnds(Exception):
    """Raised inside a play when the rest of the story cannot be played meaningfully."""


def _short(c: Container) -> str:
    extra = ""
    if c.device_requests or c.runtime:
        extra = " gpu"
    return f"{c.short_id} {c.name} {c.state}{extra}"


#: Where an out-of-process driver's diagnostic lines come from (their first words).
_DIAGNOSTIC_SOURCES = ("docker API", "grpc", "driver output")
#: A container ID in an engine's conflict message (Docker and Podman name the holder).
_CONTAINER_ID = re.compile(r"\b[0-9a-f]{12,64}\b")


def _gpu(c: Container) -> bool:
    return bool(c.device_requests or c.runtime)


class _Run:
    """The state of one play. Private: :func:`play` is the interface."""

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
        #: The name the driver gave each sandbox's container (sandbox key -> name): the
        #: canonical name NemoClaw-style tools clone under and derive backup names from.
        self.canonical: dict[str, str] = {}
        #: Bindings the story removed, and the step (0-based) that did.
        self.removed: dict[str, int] = {}
        #: While a clone/run container is being started: what a refusal there means.
        self.pending_launch = ""

    # -- helpers --------------------------------------------------------------------------------

    def names(self, cid: str | None) -> str:
        if cid is None:
            return "none"
        return self.binding_of(cid) or cid[:12]

    def binding_of(self, cid: str | None) -> str | None:
        for n, i in self.bindings.items():
            if ids_match(cid, i):
                return n
        return None

    def container_data(self, c: Container) -> dict:
        return {"binding": self.binding_of(c.id), "id": c.id, "name": c.name, "state": c.state,
                "gpu": _gpu(c)}

    def listed(self) -> list[Container]:
        """The run's containers, without going through the driver's view (no faults consumed)."""
        snap = getattr(self.engine, "snapshot", None)
        if snap is not None:
            all_containers = snap()  # oldest first
        else:  # oldest first, as the fake's snapshot: by creation (Docker lists newest first,
            # Podman oldest first); a list's Created counts whole seconds, so containers made in
            # the same second are ordered by their inspect's nanoseconds
            all_containers = self.engine.list({self.adapter.labels.namespace: self.namespace})
            per_second = Counter(c.created for c in all_containers)
            precise: dict[str, int] = {}
            for c in all_containers:
                if per_second[c.created] > 1:
                    try:
                        precise[c.id] = self.engine.inspect(c.id).created
                    except EngineError:
                        pass  # gone meanwhile: its second decides
            all_containers.sort(key=lambda c: (c.created, precise.get(c.id, 0)))
        ns_key = self.adapter.labels.namespace
        return [c for c in all_containers if c.labels.get(ns_key) == self.namespace]

    def present(self) -> list[Container]:
        """The run's containers plus the bound ones outside its namespace (``run:`` with
        ``namespace:``), which the final ``containers`` expectation and the cleanup must see."""
        found = self.listed()
        seen = {c.id for c in found}
        for cid in self.bindings.values():
            if cid not in seen:
                try:
                    found.append(self.engine.inspect(cid))
                except EngineUnavailable:
                    raise
                except EngineError:
                    continue  # gone
                seen.add(cid)
        return found

    def identity_matches(self, key: str) -> list[Container]:
        labels = self.adapter.labels
        sid, name = self.sandbox_ids[key], self.sc.sandboxes[key].name
        return [c for c in self.listed() if labels.matches(c.labels, self.namespace, sid, name)]

    def view(self, **kw) -> View:
        return View(self.sc, self.expect, self.gateway, self.bindings, self.sandbox_ids,
                    deleted_keys=self.deleted_keys, identity_matches=self.identity_matches,
                    gpu_containers=frozenset(self.gpu_containers), inspect=self.inspect,
                    look_inside=self.look_inside, state_problems=self.audit_state(),
                    notices=self.oracle.raised if self.oracle is not None else {}, **kw)

    def audit_state(self) -> list[str]:
        """OWN-15's promises about the state folder the adapter declares (none: not audited)."""
        folder = getattr(self.adapter, "state_folder", None) if self.adapter else None
        if not folder:
            return []
        watch = getattr(self.adapter, "durability", None)
        return audit_state_folder(self.run_dir, Path(folder), getattr(watch, "foreign", ()))

    def look_inside(self, cid: str) -> str | None:
        """What a GPU container's main process sees (OWN-19), where the engine can exec."""
        from ..live.gpu import LOOK_INSIDE

        try:
            code, output = self.engine.exec(cid, LOOK_INSIDE)
        except NotImplementedError:
            return None
        except EngineUnavailable:
            raise
        except EngineError as exc:
            return f"(cannot run a command inside: {exc})"
        self.tl.add(f"inside {self.names(cid)}: " + " | ".join(
            line.strip() for line in output.splitlines() if line.strip()), 1)
        return output

    def inspect(self, cid: str) -> Container | None:
        try:
            return self.engine.inspect(cid)
        except EngineUnavailable:
            raise
        except EngineError:
            return None

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
            self.adapter_notes(1, "at the failure: ")
        snaps = []
        for key in self.sc.sandboxes:
            sid = self.sandbox_ids[key]
            try:
                snap = self.adapter.snapshot(sid) if self.adapter is not None else None
            except DriverUnavailable:
                snaps.append(f"  {sid}: not known (the adapter failed)")
                continue
            snaps.append("  " + self.describe_snapshot(sid, snap))
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

    def describe_snapshot(self, sid: str, snap: Snapshot | None) -> str:
        if snap is None:
            return f"{sid}: not tracked"
        r = snap.ready
        return f"{sid}: instance={self.names(snap.instance_id)} Ready={r.status} {r.reason}"

    def adapter_notes(self, indent: int, prefix: str = "") -> None:
        """What crossed an out-of-process driver's boundary (its Docker API requests, RPCs,
        output), on the timeline where it happened."""
        try:
            notes = self.adapter.diagnostics()
        except AdapterFault as exc:  # recorded, and the story goes on
            self.found(Failure(exc.check, (), str(exc)))
            notes = []
        except Exception as exc:  # diagnostics must never hide the failure being reported
            notes = [f"(diagnostics failed: {exc})"]
        for line in notes:
            source = next((s for s in _DIAGNOSTIC_SOURCES if line.startswith(s)), "")
            self.tl.add(prefix + line, indent, "diagnostic", source=source)

    def consume_events(self, indent: int) -> list[Event]:
        self.adapter_notes(indent)
        events = self.adapter.events()
        self.gateway.consume(events)
        for e in events:
            if isinstance(e, PlatformEvent):
                meta = ""
                if e.metadata:
                    meta = " {" + ", ".join(f"{k}={self.names(v) if len(v) == 64 else v}"
                                            for k, v in sorted(e.metadata.items())) + "}"
                self.tl.add(f"event: {e.type} {e.reason} ({e.sandbox_id or 'driver'}){meta}",
                            indent, "event", type=e.type, reason=e.reason,
                            sandbox=e.sandbox_id, metadata=dict(e.metadata))
            elif isinstance(e, DeletedEvent):
                self.tl.add(f"event: Deleted {e.sandbox_id}", indent, "event", type="Deleted",
                            reason="", sandbox=e.sandbox_id, metadata={})
        return events

    # -- the play -------------------------------------------------------------------------------

    def play(self) -> RunResult:
        ctx = DriverContext(self.engine, self.state_dir, self.namespace, self.cfg.image,
                            dict(self.cfg.driver_options))
        self.adapter = GuardedAdapter(self.cfg.driver, ctx, step_timeout=self.cfg.step_timeout,
                                      name=f"{getattr(self.cfg.driver, '__name__', 'driver')} "
                                           f"({self.sc.id} [{self.schedule.label}])",
                                      cancel=self.cfg.cancel)
        self.oracle = Oracle(self.adapter.labels, self.namespace)
        self.tl.add(f"driver {self.adapter.describe()} on engine {self.engine.name}, "
                    f"namespace {self.namespace}", 0, "run", driver=self.adapter.describe(),
                    engine=self.engine.name, namespace=self.namespace)
        for step in self.sc.story:
            self.check_cancel()
            self.tl.at_step(step.index)
            self.tl.add(f"step {step.index + 1}: {step.describe()}", 0, "step", index=step.index,
                        action=step.action, target=step.target, args=dict(step.args))
            deleted = self.do_step(step)
            self.consume_events(2)
            self.run_checks("step", self.view(deleted=deleted))
            for kind, order in self.schedule.actions_after(step.index):
                if kind == "restart":
                    self.restart()
                else:
                    self.observe(order or "newest", 1)
        self.tl.at_step(None)
        self.tl.add("settle: quiet observations", 0, "settle")
        fixpoint = False
        for i in range(SETTLE_MAX):
            quiet = self.observe(SETTLE_ORDERS[i % len(SETTLE_ORDERS)], 1)
            self.settle.append({sid: self.adapter.snapshot(sid)
                                for sid in sorted(self.sandbox_ids.values())})
            if fixpoint and i + 1 >= SETTLE_MIN:
                break
            fixpoint = quiet
        self.tl.at_observation(None)
        self.run_checks("final", self.view(containers=self.present(), settle=self.settle,
                                           warning_bounds=self.oracle.warning_bounds()))
        if self.findings:
            raise self.failure()
        return RunResult(self.sc, self.schedule, self.observations, self.tl)

    def restart(self) -> None:
        self.tl.at_observation(None)
        self.tl.add("restart the driver", 1, "restart")
        self.adapter.restart()
        self.restarts_done += 1
        self.oracle.restarted()
        self.consume_events(2)

    def observe(self, order: str, indent: int) -> bool:
        """One observation, then the observation checks. True iff it was a fixpoint of the
        contract's state (the poll worked, nothing crashed, no ownership record changed)."""
        self.check_cancel()
        self.observations += 1
        self.tl.at_observation(self.observations)
        engine = self.engine
        previous = getattr(engine, "list_order", None)
        if self.cfg.ordered_lists and previous is not None:
            engine.list_order = order  # type: ignore[attr-defined]
        try:
            self.adapter.observe(order=order)
        except EngineError as exc:
            self.raise_if_outage(exc, driver_poll=True)
            self.tl.add(f"observe ({order}): the driver's poll failed: {exc}", indent)
            self.consume_events(indent + 1)
            self.run_checks("step", self.view())
            return False
        finally:
            if self.cfg.ordered_lists and previous is not None:
                engine.list_order = previous  # type: ignore[attr-defined]
        listed = self.listed()
        shown = listed if order == "oldest" else list(reversed(listed))
        self.tl.add(f"observe ({order}): engine lists "
                    + ("; ".join(f"{self.names(c.id)}={_short(c)}" for c in shown) or "nothing"),
                    indent, "observe", number=self.observations, order=order,
                    containers=[self.container_data(c) for c in shown])
        expected, crashed = self.oracle.observe(listed)
        self.consume_events(indent + 1)
        if crashed:
            self.tl.add("the driver crashed during a journal write (injected) and restarted",
                        indent + 1)
            self.oracle.restarted()
            self.consume_events(indent + 1)
            self.run_checks("step", self.view())
            return False
        snaps = {sid: self.adapter.snapshot(sid) for sid in expected}
        for sid in sorted(expected):
            exp = expected[sid]
            snap = snaps[sid]
            reported = None if snap is None else {
                "instance": self.names(snap.instance_id), "instance_id": snap.instance_id,
                "status": snap.ready.status, "reason": snap.ready.reason,
                "phase": phase_of(snap.ready)}
            contract = {"outcome": exp.outcome, "instance": self.names(exp.instance_id),
                        "instance_id": exp.instance_id, "status": exp.ready.status,
                        "reason": exp.ready.reason, "phase": phase_of(exp.ready),
                        "requirements": list(exp.requirements)}
            agrees = (reported is not None and ids_match(snap.instance_id, exp.instance_id)
                      and snap.ready.status == exp.ready.status
                      and phase_of(snap.ready) == phase_of(exp.ready))
            self.tl.add(f"driver: {self.describe_snapshot(sid, snap)}"
                        f"   [contract: {exp.outcome}, instance={self.names(exp.instance_id)}, "
                        f"Ready={exp.ready.status} {exp.ready.reason}]", indent + 1, "report",
                        sandbox=sid, driver=reported, contract=contract, agrees=agrees)
        self.run_checks("observation", self.view(expected=expected, snapshots=snaps))
        return self.oracle.quiet

    # -- steps ----------------------------------------------------------------------------------

    def do_step(self, step: Step) -> tuple[str, bool, bool] | None:
        action = step.action
        if action == "create":
            self.create(step)
        elif action == "delete":
            return self.delete(step)
        elif action == "restart":
            self.restart()
        elif action == "observe":
            self.observe(step.target, 1)
        elif action == "supervisor":
            self.gateway.supervisor(self.sandbox_ids[step.target], step.args.get("connected", True))
        elif action == "engine_fault":
            self.engine.faults.arm(step.target, times=step.args.get("times", 1))  # type: ignore[attr-defined]
        elif action == "journal_fault":
            key = step.args.get("sandbox")
            fault = (step.target, self.sandbox_ids[key] if key else None, step.args.get("at"),
                     step.args.get("times", 1))
            self.adapter.journal_fault(*fault)
            self.oracle.journal_fault(*fault)
        else:
            self.external(step)
        return None

    def create(self, step: Step) -> None:
        decl = self.sc.sandboxes[step.target]
        sid = self.sandbox_ids[step.target]
        self.gateway.register(sid, decl.name, DurableState(**dict(decl.durable)))
        snap = self.adapter.create(SandboxSpec(sid, decl.name, gpu=decl.gpu,
                                               labels=self.cfg.extra_labels))
        self.adapter_notes(2)
        made = self.identity_matches(step.target)
        if len(made) != 1:
            # Which container is the sandbox's? Nothing after this can be judged.
            self.found(Failure("create", ("OWN-1",),
                               f"after create, {len(made)} container(s) carry sandbox {sid}'s "
                               "identity labels; expected exactly one"))
            raise _StoryEnds()
        c = made[0]
        name = step.binds or f"{step.target}-instance"
        self.bindings[name] = c.id
        self.canonical[step.target] = c.name
        if decl.gpu:  # OWN-19: the driver's own GPU sandbox has its device request in effect
            c = self.inspect(c.id) or c
            self.gpu_containers.add(c.id)
        self.tl.add(f"{name} = {_short(c)}", 2, "container", **self.container_data(c))
        if decl.gpu and not (any(r.is_gpu for r in c.device_requests) or c.runtime == "nvidia"):
            self.found(Failure("create", ("OWN-19",),
                               f"sandbox {sid} was created with gpu: true, but the engine shows "
                               f"no GPU request in effect on its container {c.short_id} (no "
                               "device request, no nvidia runtime)"))
        if snap is not None and snap.instance_id and not ids_match(snap.instance_id, c.id):
            self.found(Failure("create", ("OWN-1",),
                               f"create reported instance {snap.instance_id!r}, not the container "
                               f"it created ({c.id[:12]})"))
        if not c.labels.get(self.adapter.labels.generation):
            self.found(Failure("create", ("OWN-1",),
                               "the created container carries no generation label "
                               f"({self.adapter.labels.generation})"))
        self.oracle.created(sid, decl.name, c)

    def delete(self, step: Step) -> tuple[str, bool, bool]:
        key = step.target
        sid, name = self.sandbox_ids[key], self.sc.sandboxes[key].name
        had_any = bool(self.identity_matches(key))
        self.gateway.request_delete(sid)
        removed = self.adapter.delete(sid, name)
        self.adapter_notes(2)
        self.oracle.deleted(sid)
        self.deleted_keys.append(key)
        self.tl.add(f"delete returned deleted={removed}", 2)
        want = step.args.get("expect_removed")
        if want is not None and removed != want:
            self.found(Failure("delete", ("OWN-14",),
                               f"delete returned deleted={removed}, expected {want}"))
        return key, removed, had_any

    def external(self, step: Step) -> None:
        """An external step, as another client of the engine; a refusal ends the play with a
        :class:`StoryError`."""
        try:
            self.external_step(step)
        except EngineError as exc:
            self.raise_if_outage(exc)  # gone is no refusal
            made = self.unrequested_holder(exc)
            if made is not None:
                raise self.failure([made]) from exc
            raise self.story_error(step, exc) from exc

    def unrequested_holder(self, exc: EngineError) -> Failure | None:
        """The driver's failure when ``exc`` is a name conflict with a container of the run's
        namespace that neither the story nor a requested create made: the driver made a
        container on its own (recreated a missing or exited instance, say), and the story step
        that wanted the name could not run because of it. None for any other refusal (then the
        story itself is at fault: a :class:`StoryError`)."""
        if not isinstance(exc, EngineConflict):
            return None
        mentioned = set(_CONTAINER_ID.findall(str(exc)))
        try:
            listed = self.listed()
        except EngineError:
            return None
        for c in listed:
            if self.binding_of(c.id) is not None:
                continue
            if not any(ids_match(m, c.id) for m in mentioned):
                continue
            key = self.sandbox_of(c)
            requirements = ("OWN-6",) + (("OWN-9",) if self.restarts_done else ())
            self.tl.add(f"REFUSED by the engine ({exc.status}): {exc}", 2, "refused",
                        status=exc.status, message=str(exc),
                        context=f"{c.name} ({c.id[:12]}) was made by the driver")
            return Failure("containers-only-on-request", requirements,
                           f"the driver made container {c.id[:12]} ({c.name}, {c.state}"
                           + (f", labelled for sandbox {key}" if key else "")
                           + ") that no create asked for; the story's next step needed its "
                           "name. The contract keeps a missing or terminal instance as it is "
                           "(reported missing or in conflict), never replaced by the driver")
        return None

    def external_step(self, step: Step) -> None:
        e, action = self.engine, step.action
        if action == "run":
            self.run_container(step)
            return
        cid = self.bindings[step.target]
        if action == "stop":
            e.stop(cid)
        elif action == "start":
            e.start(cid)
        elif action == "kill":
            e.kill(cid)
        elif action == "remove":
            e.remove(cid, force=True)
            self.removed[step.target] = step.index
        elif action == "rename":
            new = self.resolve_name(step.args["to"], self.sandbox_of(e.inspect(cid)),
                                    step.index)
            e.rename(cid, new)
            self.tl.add(f"{step.target} is now named {new}", 2, "container",
                        **self.container_data(e.inspect(cid)))
        elif action == "set_state":
            e.set_state(cid, step.args["state"])  # type: ignore[attr-defined]
        elif action == "clone":
            self.clone(step, e.inspect(cid))

    def story_error(self, step: Step, exc: EngineError) -> StoryError:
        """The play's end when the engine refused ``step``: the timeline so far, the engine's
        answer, and what the story knows of the container the step acted on."""
        context = ""
        target = step.target if step.action != "run" else None
        if isinstance(exc, EngineNotFound) and target in self.bindings:
            if target in self.removed:
                at = self.removed[target]
                context = (f"{target} was removed by step {at + 1} "
                           f"({self.sc.story[at].describe()})")
            else:
                context = (f"{target} ({self.bindings[target][:12]}) is no longer on the engine "
                           "and the story did not remove it")
        elif self.pending_launch:
            context = self.pending_launch
        self.tl.add(f"REFUSED by the engine ({exc.status}): {exc}", 2, "refused",
                    index=step.index, action=step.action, target=step.target,
                    status=exc.status, message=str(exc), context=context)
        if self.adapter is not None and not self.adapter.stuck:
            self.adapter_notes(1, "at the error: ")
        driver = self.describe_driver()
        return StoryError(self.sc, self.schedule, step, str(exc), exc.status, self.tl,
                          self.cfg.replay(self.sc, self.schedule), driver,
                          list(self.findings.values()), context)

    def sandbox_of(self, c: Container) -> str:
        """The scenario's key of the sandbox whose id label ``c`` carries ("" for none)."""
        sid = c.labels.get(self.adapter.labels.sandbox_id, "")
        return next((k for k, v in self.sandbox_ids.items() if v == sid), "")

    def resolve_name(self, expr: str, key: str, index: int) -> str:
        if not key:
            return expr + self.name_suffix
        canonical = self.canonical.get(key) or canonical_name(self.sc.sandboxes[key].name,
                                                              self.sandbox_ids[key])
        if expr == "canonical":
            return canonical
        if expr == "backup":
            return backup_name(canonical, BACKUP_EPOCH_MS + index)
        if CANONICAL_PLACEHOLDER in expr:  # relative to the canonical name, unique per run already
            return expr.replace(CANONICAL_PLACEHOLDER, canonical)
        return expr + self.name_suffix

    def run_container(self, step: Step) -> None:
        """``run``: ``docker run`` by hand, with the sandbox's identity labels (and the
        generation the driver journaled for it), the configured image, :data:`RUN_COMMAND`, no
        network; the GPU style and generation edits of the step."""
        key = step.target
        labels = self.adapter.labels.identity(step.args.get("namespace", self.namespace),
                                              self.sandbox_ids[key], self.sc.sandboxes[key].name)
        rec = self.oracle.records.get(self.sandbox_ids[key])
        if rec is not None and rec.generation:
            labels[self.adapter.labels.generation] = rec.generation
        labels.update(self.label_edits(step))
        labels = {k: v for k, v in labels.items() if v is not None}
        extra, env = self.gpu_edits(step)
        name = self.resolve_name(step.args.get("name", "canonical"), key, step.index)
        spec = ContainerSpec(name=name, image=self.cfg.image, labels=labels,
                             command=RUN_COMMAND, env=env, **extra)
        self.launch(step, spec)

    def clone(self, step: Step, source: Container) -> None:
        """``clone``: ``docker run`` with every flag of the source (its whole inspected
        configuration, :func:`~..engines.clone.clone_spec`), under the step's name, with only
        the step's label, generation and GPU edits."""
        extra, env = self.gpu_edits(step)
        requests = extra.pop("device_requests", ())
        name = self.resolve_name(step.args.get("name", "canonical"), self.sandbox_of(source),
                                 step.index)
        spec = clone_spec(source, name=name, labels=self.label_edits(step), env=env,
                          add_device_requests=requests, **extra)
        copied = ", ".join(sorted(spec.changed()))
        self.tl.add(f"clone of {step.target} ({source.short_id}) as {name}: image, labels"
                    + (f", {copied}" if copied else ""), 2)
        self.launch(step, spec)

    def label_edits(self, step: Step) -> dict[str, str | None]:
        """The labels a ``clone`` or ``run`` step changes: its generation (``wrong``: a value no
        driver makes; ``missing``: removed) and the session's own labels."""
        edits: dict[str, str | None] = {}
        generation = step.args.get("generation", "keep")
        if generation == "wrong":
            edits[self.adapter.labels.generation] = WRONG_GENERATION
        elif generation == "missing":
            edits[self.adapter.labels.generation] = None
        edits.update(self.cfg.extra_labels)
        return edits

    def gpu_edits(self, step: Step) -> tuple[dict, dict[str, str]]:
        """The spec fields and environment the step's ``gpu:`` style adds."""
        style = step.args.get("gpu")
        if not style:
            return {}, {}
        extra = dict(GPU_STYLES[style])
        return extra, dict(extra.pop("env", {}))

    def launch(self, step: Step, spec: ContainerSpec) -> None:
        """Create ``spec``'s container, bind it, bring it to the step's ``state:``."""
        self.pending_launch = ""
        cid = self.engine.create(spec)
        self.bindings[step.binds] = cid
        if step.args.get("gpu"):
            self.gpu_containers.add(cid)
        self.pending_launch = (f"{step.binds} was created ({cid[:12]} {spec.name}) but did not "
                               f"reach the state {step.args.get('state', 'running')}")
        state = step.args.get("state", "running")
        if state in ("running", "exited"):
            self.engine.start(cid)
        if state == "exited":
            self.engine.stop(cid)
        self.pending_launch = ""
        made = self.engine.inspect(cid)
        generation = step.args.get("generation", "keep")
        self.tl.add(f"{step.binds} = {_short(made)}"
                    + (f" generation={generation}" if generation != "keep" else ""), 2,
                    "container", **self.container_data(made))

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
        if self.tl._step is None:
            return None
        seen: set[int] = set()
        e: BaseException | None = exc
        while e is not None and id(e) not in seen:
            if isinstance(e, EngineError):
                return e
            seen.add(id(e))
            e = e.__cause__ or e.__context__
        return None

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
                    self.engine.remove_all([c.id for c in self.present()], force=True)
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
            raise run.story_error(run.sc.story[run.tl._step], refusal) from exc
        raise
    finally:
        run.close()
