"""The story's steps of a play: the driver steps (``create``, ``delete``, ``restart``,
``observe``, the gateway's ``supervisor``, armed ``engine_fault`` and ``journal_fault``) and the
external ones, played as another client of the engine (``run``, ``stop``, ``start``, ``kill``,
``remove``, ``rename``, ``set_state``, ``clone``).

:class:`Steps` works on the state of one play (``runner._Run``, which owns it) and keeps what
only the steps need: the driver's canonical names, the bindings the story removed, and what a
refusal means while a container is being started. An external step the engine refuses ends the
play with a :class:`~.failure.StoryError` (:meth:`Steps.story_error`), unless the name it wanted
is held by a container the driver made on its own (:meth:`Steps.unrequested_holder`: the
driver's failure).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from reference_driver.naming import canonical_name

from ..api import SandboxSpec
from ..engines.base import (
    Container,
    ContainerSpec,
    EngineConflict,
    EngineError,
    EngineNotFound,
    MISSING_EXECUTABLE,
    ids_match,
)
from ..engines.clone import clone_spec
from ..scenario.names import is_relative, resolve
from ..scenario.model import Step
from .checks import Failure
from .edits import RUN_COMMAND, gpu_edits, label_edits, start_edits
from .failure import StoryError
from .gateway import DurableState
from .observing import _short

if TYPE_CHECKING:
    from .runner import _Run


#: A container ID in an engine's conflict message (Docker and Podman name the holder).
_CONTAINER_ID = re.compile(r"\b[0-9a-f]{12,64}\b")


class _StoryEnds(Exception):
    """Raised inside a play when the rest of the story cannot be played meaningfully."""


class Steps:
    """Plays the story's steps of one play (``run``: the play)."""

    def __init__(self, run: _Run) -> None:
        self.run = run
        #: The name the driver gave each sandbox's container (sandbox key -> name): the
        #: canonical name NemoClaw-style tools clone under and derive backup names from.
        self.canonical: dict[str, str] = {}
        #: Bindings the story removed, and the step (0-based) that did.
        self.removed: dict[str, int] = {}
        #: While a clone/run container is being started: what a refusal there means.
        self.pending_launch = ""

    def do_step(self, step: Step) -> tuple[str, bool, bool] | None:
        action = step.action
        if action == "create":
            self.create(step)
        elif action == "delete":
            return self.delete(step)
        elif action == "restart":
            self.run.observer.restart()
        elif action == "observe":
            for _ in range(step.repeat):
                self.run.observer.observe(step.target, 1)
        elif action == "supervisor":
            self.run.gateway.supervisor(self.run.sandbox_ids[step.target],
                                        step.args.get("connected", True))
        elif action == "engine_fault":
            self.run.engine.faults.arm(  # type: ignore[attr-defined]
                step.target, times=step.args.get("times", 1))
        elif action == "journal_fault":
            key = step.args.get("sandbox")
            fault = (step.target, self.run.sandbox_ids[key] if key else None, step.args.get("at"),
                     step.args.get("times", 1))
            self.run.adapter.journal_fault(*fault)
            self.run.oracle.journal_fault(*fault)
        else:
            self.external(step)
        return None

    def create(self, step: Step) -> None:
        decl = self.run.sc.sandboxes[step.target]
        sid = self.run.sandbox_ids[step.target]
        self.run.gateway.register(sid, decl.name, DurableState(**dict(decl.durable)))
        snap = self.run.adapter.create(SandboxSpec(sid, decl.name, gpu=decl.gpu,
                                                   labels=self.run.cfg.extra_labels))
        self.run.observer.adapter_notes(2)
        made = self.run.observer.identity_matches(step.target)
        if len(made) != 1:
            # Which container is the sandbox's? Nothing after this can be judged.
            self.run.found(Failure("create", ("OWN-1",),
                                   f"after create, {len(made)} container(s) carry sandbox {sid}'s "
                                   "identity labels; expected exactly one"))
            raise _StoryEnds()
        c = made[0]
        name = step.binds or f"{step.target}-instance"
        self.run.bindings[name] = c.id
        self.canonical[step.target] = c.name
        if decl.gpu:  # OWN-19: the driver's own GPU sandbox has its device request in effect
            c = self.run.observer.inspect(c.id) or c
            self.run.gpu_containers.add(c.id)
        self.run.tl.add(f"{name} = {_short(c)}", 2, "container",
                        **self.run.observer.container_data(c))
        if decl.gpu and not (any(r.is_gpu for r in c.device_requests) or c.runtime == "nvidia"):
            self.run.found(Failure("create", ("OWN-19",),
                                   f"sandbox {sid} was created with gpu: true, but the engine "
                                   "shows no GPU request in effect on its container "
                                   f"{c.short_id} (no device request, no nvidia runtime)"))
        if snap is not None and snap.instance_id and not ids_match(snap.instance_id, c.id):
            self.run.found(Failure("create", ("OWN-1",),
                                   f"create reported instance {snap.instance_id!r}, not the "
                                   f"container it created ({c.id[:12]})"))
        if not c.labels.get(self.run.adapter.labels.generation):
            self.run.found(Failure("create", ("OWN-1",),
                                   "the created container carries no generation label "
                                   f"({self.run.adapter.labels.generation})"))
        self.run.oracle.created(sid, decl.name, c)

    def delete(self, step: Step) -> tuple[str, bool, bool]:
        key = step.target
        sid, name = self.run.sandbox_ids[key], self.run.sc.sandboxes[key].name
        had_any = bool(self.run.observer.identity_matches(key))
        self.run.gateway.request_delete(sid)
        removed = self.run.adapter.delete(sid, name)
        self.run.observer.adapter_notes(2)
        self.run.oracle.deleted(sid)
        self.run.deleted_keys.append(key)
        self.run.tl.add(f"delete returned deleted={removed}", 2)
        want = step.args.get("expect_removed")
        if want is not None and removed != want:
            self.run.found(Failure("delete", ("OWN-14",),
                                   f"delete returned deleted={removed}, expected {want}"))
        return key, removed, had_any

    def external(self, step: Step) -> None:
        """An external step, as another client of the engine; a refusal ends the play with a
        :class:`StoryError`."""
        try:
            self.external_step(step)
        except EngineError as exc:
            self.run.raise_if_outage(exc)  # gone is no refusal
            made = self.unrequested_holder(exc)
            if made is not None:
                raise self.run.failure([made]) from exc
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
            listed = self.run.observer.listed()
        except EngineError:
            return None
        for c in listed:
            if self.run.observer.binding_of(c.id) is not None:
                continue
            if not any(ids_match(m, c.id) for m in mentioned):
                continue
            key = self.sandbox_of(c)
            requirements = ("OWN-6",) + (("OWN-9",) if self.run.restarts_done else ())
            self.run.tl.add(f"REFUSED by the engine ({exc.status}): {exc}", 2, "refused",
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
        e, action = self.run.engine, step.action
        if action == "run":
            self.run_container(step)
            return
        cid = self.run.bindings[step.target]
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
            self.run.tl.add(f"{step.target} is now named {new}", 2, "container",
                            **self.run.observer.container_data(e.inspect(cid)))
        elif action == "set_state":
            e.set_state(cid, step.args["state"])  # type: ignore[attr-defined]
        elif action == "clone":
            self.clone(step, e.inspect(cid))

    def story_error(self, step: Step, exc: EngineError) -> StoryError:
        """The play's end when the engine refused ``step``: the timeline so far, the engine's
        answer, and what the story knows of the container the step acted on."""
        context = ""
        target = step.target if step.action != "run" else None
        if isinstance(exc, EngineNotFound) and target in self.run.bindings:
            if target in self.removed:
                at = self.removed[target]
                context = (f"{target} was removed by step {at + 1} "
                           f"({self.run.sc.story[at].describe()})")
            else:
                context = (f"{target} ({self.run.bindings[target][:12]}) is no longer on the "
                           "engine and the story did not remove it")
        elif self.pending_launch:
            context = self.pending_launch
        self.run.tl.add(f"REFUSED by the engine ({exc.status}): {exc}", 2, "refused",
                        index=step.index, action=step.action, target=step.target,
                        status=exc.status, message=str(exc), context=context)
        if self.run.adapter is not None and not self.run.adapter.stuck:
            self.run.observer.adapter_notes(1, "at the error: ")
        driver = self.run.describe_driver()
        return StoryError(self.run.sc, self.run.schedule, step, str(exc), exc.status, self.run.tl,
                          self.run.cfg.replay(self.run.sc, self.run.schedule), driver,
                          list(self.run.findings.values()), context)

    def sandbox_of(self, c: Container) -> str:
        """The scenario's key of the sandbox whose id label ``c`` carries ("" for none)."""
        sid = c.labels.get(self.run.adapter.labels.sandbox_id, "")
        return next((k for k, v in self.run.sandbox_ids.items() if v == sid), "")

    def resolve_name(self, expr: str, key: str, index: int) -> str:
        """The container name ``expr`` means (``scenario/names.py``) for sandbox ``key``'s
        container as the driver named it; a literal name gets the run's suffix (a relative one
        is unique per run already: the canonical name holds the run's sandbox id)."""
        if not key or not is_relative(expr):
            return expr + self.run.name_suffix
        canonical = self.canonical.get(key) or canonical_name(self.run.sc.sandboxes[key].name,
                                                              self.run.sandbox_ids[key])
        return resolve(expr, canonical, index)

    def run_container(self, step: Step) -> None:
        """``run``: ``docker run`` by hand, with the sandbox's identity labels (and the
        generation the driver journaled for it), the configured image, :data:`RUN_COMMAND`, no
        network; the GPU style and generation edits of the step."""
        key = step.target
        labels = self.run.adapter.labels.identity(step.args.get("namespace", self.run.namespace),
                                                  self.run.sandbox_ids[key],
                                                  self.run.sc.sandboxes[key].name)
        rec = self.run.oracle.records.get(self.run.sandbox_ids[key])
        if rec is not None and rec.generation:
            labels[self.run.adapter.labels.generation] = rec.generation
        labels.update(self.label_edits(step, labels.get(self.run.adapter.labels.generation)))
        labels = {k: v for k, v in labels.items() if v is not None}
        extra, env = gpu_edits(step)
        extra.update(start_edits(step))
        extra.setdefault("command", RUN_COMMAND)
        name = self.resolve_name(step.args.get("name", "canonical"), key, step.index)
        spec = ContainerSpec(name=name, image=self.run.cfg.image, labels=labels, env=env,
                             **extra)
        self.launch(step, spec)

    def clone(self, step: Step, source: Container) -> None:
        """``clone``: ``docker run`` with every flag of the source (its whole inspected
        configuration, :func:`~..engines.clone.clone_spec`), under the step's name, with only
        the step's label, generation and GPU edits."""
        extra, env = gpu_edits(step)
        extra.update(start_edits(step))
        requests = extra.pop("device_requests", ())
        name = self.resolve_name(step.args.get("name", "canonical"), self.sandbox_of(source),
                                 step.index)
        edits = self.label_edits(step, source.labels.get(self.run.adapter.labels.generation))
        spec = clone_spec(source, name=name, labels=edits, env=env,
                          add_device_requests=requests, **extra)
        copied = ", ".join(sorted(spec.changed()))
        self.run.tl.add(f"clone of {step.target} ({source.short_id}) as {name}: image, labels"
                        + (f", {copied}" if copied else ""), 2)
        self.launch(step, spec)

    def label_edits(self, step: Step, generation_now: str | None) -> dict[str, str | None]:
        return label_edits(step, self.run.adapter.labels, self.run.sandbox_ids,
                           self.run.cfg.extra_labels, generation_now)

    def refused_start(self, step: Step, cid: str) -> None:
        """``fails: start``: the start the story expects the engine to refuse."""
        try:
            self.run.engine.start(cid)
        except EngineError as exc:
            self.run.raise_if_outage(exc)  # gone is no refusal
            self.run.tl.add(f"{step.binds}: the engine refused to start it, as the story says "
                            f"({exc.status}): {exc}", 2)
            return
        raise EngineError(f"the engine started {step.binds} ({cid[:12]}), whose entrypoint "
                          f"{MISSING_EXECUTABLE} no image holds: the story's fails: start "
                          "cannot be played on this engine", status=0)

    def launch(self, step: Step, spec: ContainerSpec) -> None:
        """Create ``spec``'s container, bind it, bring it to the step's ``state:``."""
        self.pending_launch = ""
        cid = self.run.engine.create(spec)
        self.run.bindings[step.binds] = cid
        if step.args.get("gpu"):
            self.run.gpu_containers.add(cid)
        fails = step.args.get("fails") == "start"
        state = "created" if fails else step.args.get("state", "running")
        self.pending_launch = (f"{step.binds} was created ({cid[:12]} {spec.name}) but did not "
                               f"reach the state {state}")
        if fails:
            self.refused_start(step, cid)
        elif state in ("running", "exited"):
            self.run.engine.start(cid)
        if state == "exited":
            self.run.engine.stop(cid)
        self.pending_launch = ""
        made = self.run.engine.inspect(cid)
        generation = step.args.get("generation", "keep")
        self.run.tl.add(f"{step.binds} = {_short(made)}"
                        + (f" generation={generation}" if generation != "keep" else ""), 2,
                        "container", **self.run.observer.container_data(made))
