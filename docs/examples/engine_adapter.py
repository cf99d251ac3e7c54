"""A first driver written straight against the suite's Engine, inside its adapter
(docs/adapters.md, "Writing an adapter, step by step").

It shows what an adapter for a new driver calls and builds: the ``Engine`` (``create``, ``start``,
``list`` with a label filter, ``remove``), the report types (``Snapshot``, ``Condition``,
``SnapshotEvent``, ``DeletedEvent``, ``PlatformEvent``) and the identity labels. The driver
takes its authority from create (OWN-1), reports its container's state, keeps a missing one
(OWN-6), fails closed on anything else (OWN-7) and never hands off: the suite passes it on the
simple scenarios and fails it, with a timeline, on every handoff (OWN-4, OWN-5).

    PYTHONPATH=docs/examples pytest --sandbox-driver=engine_adapter:factory scenarios
"""

from __future__ import annotations

from pytest_sandbox_conformance.adapters import DriverAdapter, DriverContext
from pytest_sandbox_conformance.api import (
    Condition,
    DeletedEvent,
    Event,
    PlatformEvent,
    SandboxSpec,
    Snapshot,
    SnapshotEvent,
)
from pytest_sandbox_conformance.engines.base import ContainerSpec
from reference_driver.naming import canonical_name

COMMAND = ("sleep", "2147483647")
STATE_REASONS = {"created": "ContainerCreated", "restarting": "Starting",
                 "exited": "ContainerExited", "dead": "ContainerDead",
                 "paused": "ContainerPaused", "removing": "ContainerRemoving"}


class EngineAdapter(DriverAdapter):
    name = "engine-example"
    version = "0.1"
    capabilities = frozenset()   # no restart: the authority lives in memory only

    def __init__(self, ctx: DriverContext) -> None:
        self.ctx = ctx
        self.engine = ctx.engine          # the suite's engine: the one to run containers on
        self.authority: dict[str, str] = {}   # sandbox id -> the container ID create returned
        self.names: dict[str, str] = {}
        self.snapshots: dict[str, Snapshot] = {}
        self.warned: dict[str, str] = {}      # sandbox id -> the condition last warned about
        self.pending: list[Event] = []

    # -- the six operations ----------------------------------------------------------------------

    def create(self, spec: SandboxSpec) -> Snapshot:
        labels = dict(spec.labels)
        labels.update(self.labels.identity(self.ctx.namespace, spec.id, spec.name))
        labels[self.labels.generation] = f"{spec.id}-1"
        cid = self.engine.create(ContainerSpec(
            name=canonical_name(spec.name, spec.id), image=spec.image or self.ctx.image,
            labels=labels, command=spec.command or COMMAND, env=dict(spec.env)))
        self.engine.start(cid)
        self.authority[spec.id], self.names[spec.id] = cid, spec.name  # OWN-1: from create
        return self._report(spec.id, cid, self._ready(self.engine.inspect(cid)))

    def delete(self, sandbox_id: str, name: str) -> bool:
        exact = self.labels.exact(self.ctx.namespace, sandbox_id, name)
        removed = self.engine.remove_all([c.id for c in self.engine.list(exact)], force=True)
        tracked = self.authority.pop(sandbox_id, None) is not None
        self.snapshots.pop(sandbox_id, None)
        self.warned.pop(sandbox_id, None)
        if tracked or removed:
            self.pending.append(DeletedEvent(sandbox_id))   # Deleted only on request (OWN-10)
        return bool(removed)

    def observe(self) -> None:
        listed = self.engine.list({self.labels.namespace: self.ctx.namespace})  # one poll
        for sid, a_id in sorted(self.authority.items()):
            mine = [c for c in listed if self.labels.matches(c.labels, self.ctx.namespace, sid,
                                                             self.names[sid])]
            a = next((c for c in mine if c.id == a_id), None)
            others = sorted(c.id for c in mine if c.id != a_id)
            if a is not None:
                ready, why = self._ready(a), ("duplicate", others) if others else None
            elif not mine:
                ready = Condition("False", "ContainerInstanceMissing", f"{a_id[:12]} is gone")
                why = ("missing", [])
            else:   # fail closed: labels never make an owner (OWN-2, OWN-7)
                ready = Condition("False", "ContainerIdentityConflict",
                                  f"{a_id[:12]} is gone; {len(others)} other(s) carry its labels")
                why = ("gone", others)
            self._warn(sid, a_id, why, ready)
            self._report(sid, a_id, ready)

    def snapshot(self, sandbox_id: str) -> Snapshot | None:
        return self.snapshots.get(sandbox_id)

    def events(self) -> list[Event]:
        events, self.pending = self.pending, []
        return events

    # -- reports ---------------------------------------------------------------------------------

    def _ready(self, container) -> Condition:
        """The Ready condition a container's state gives (docs/contract.md, section 6)."""
        if container.state == "running":
            return Condition("True", "ContainerRunning", f"{container.short_id} is running")
        return Condition("False", STATE_REASONS.get(container.state, "ContainerStateUnknown"),
                         f"{container.short_id} is {container.state}")

    def _report(self, sid: str, instance: str, ready: Condition) -> Snapshot:
        snap = Snapshot(sid, self.names[sid], self.ctx.namespace, instance, ready)
        if self.snapshots.get(sid) != snap:   # a snapshot event on change only
            self.snapshots[sid] = snap
            self.pending.append(SnapshotEvent(snap))
        return snap

    def _warn(self, sid: str, a_id: str, why, ready: Condition) -> None:
        key = None if why is None else f"{why[0]}:{a_id}:{','.join(why[1])}"
        if key is not None and self.warned.get(sid) != key:   # one Warning per condition
            reason = ("ContainerIdentityConflict" if why[0] != "missing"
                      else "ContainerInstanceMissing")
            metadata = {"authoritative_instance_id": a_id}
            if why[1]:   # a Warning names the other candidates (OWN-3, contract section 6)
                metadata["candidate_instance_ids"] = ",".join(why[1])
            self.pending.append(PlatformEvent(sid, "Warning", reason, ready.message, metadata))
        if key is None:
            self.warned.pop(sid, None)
        else:
            self.warned[sid] = key


def factory(ctx: DriverContext) -> EngineAdapter:
    return EngineAdapter(ctx)
