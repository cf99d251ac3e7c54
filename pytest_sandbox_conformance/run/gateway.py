"""A model of the control plane ("gateway") that consumes any driver's reports.

Durable state and phases belong to the control plane, not to the driver. The suite therefore holds
a small gateway that reads a driver's snapshots and events exactly as a real one would, and checks
OWN-10, OWN-11 and OWN-12 on *its* state, so they are checked the same way for every driver:

* it derives the phase from each snapshot (contract §1) and composes it with the "supervisor
  connected" signal: a connected supervisor promotes a *transient* Ready=False (``Starting``,
  ``ContainerCreated``, ``DependenciesNotReady``) to Ready, but never a pending or conflict reason
  (OWN-12);
* it keeps each sandbox's durable record (spec, metadata labels, policy version, settings) and
  drops it on Deleted, as a real gateway does; a snapshot for a sandbox it does not know
  resurrects a *skeletal* record with empty durable state (what happens after a wrongful Deleted);
* it records a :class:`Violation` for a Deleted nobody asked for (OWN-10), for durable state that
  is lost or replaced (OWN-11), and for a Ready phase while the driver's snapshot is unresolved
  (OWN-12).

Pure: no pytest, no engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Iterable, Mapping

from ..api import (
    DeletedEvent,
    Event,
    PlatformEvent,
    Snapshot,
    SnapshotEvent,
    phase_of,
)

__all__ = ["DurableState", "Gateway", "GatewaySandbox", "PROMOTABLE_REASONS", "Violation"]

#: Ready=False reasons a connected supervisor may promote to Ready.
PROMOTABLE_REASONS = frozenset({"Starting", "ContainerCreated", "DependenciesNotReady"})


@dataclass(frozen=True)
class DurableState:
    """What the gateway stores for a sandbox and must never lose while it exists (OWN-11)."""

    spec: Mapping[str, object] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    policy_version: int = 0
    settings: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "spec", MappingProxyType(dict(self.spec)))
        object.__setattr__(self, "labels", MappingProxyType(dict(self.labels)))
        object.__setattr__(self, "settings", MappingProxyType(dict(self.settings)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DurableState):
            return NotImplemented
        return (dict(self.spec), dict(self.labels), self.policy_version, dict(self.settings)) == (
            dict(other.spec), dict(other.labels), other.policy_version, dict(other.settings))

    __hash__ = None  # type: ignore[assignment]


SKELETAL = DurableState()


@dataclass(frozen=True)
class Violation:
    """A forbidden state the gateway reached, naming the requirement it breaks."""

    requirement: str
    sandbox_id: str
    message: str

    def __str__(self) -> str:
        return f"{self.requirement} ({self.sandbox_id}): {self.message}"


@dataclass(frozen=True)
class GatewaySandbox:
    """The gateway's view of one sandbox."""

    sandbox_id: str
    name: str
    durable: DurableState
    #: False when the record was resurrected from a snapshot after being dropped.
    registered: bool = True
    instance_id: str | None = None
    snapshot: Snapshot | None = None
    supervisor_connected: bool = False

    @property
    def phase(self) -> str:
        if self.snapshot is None:
            return "Provisioning"
        ready = self.snapshot.ready
        if (not ready.ready and self.supervisor_connected and ready.reason in PROMOTABLE_REASONS):
            return "Ready"
        return phase_of(ready)


class Gateway:
    """The control-plane model. Feed it with :meth:`consume`; read :attr:`violations`."""

    def __init__(self) -> None:
        self.sandboxes: dict[str, GatewaySandbox] = {}
        self.violations: list[Violation] = []
        self.events: list[Event] = []
        self._delete_requested: set[str] = set()
        self._expected: dict[str, DurableState] = {}

    # -- the control plane's own actions -------------------------------------------------------

    def register(self, sandbox_id: str, name: str, durable: DurableState) -> None:
        """A user created the sandbox: store its durable state (before the driver's create)."""
        self.sandboxes[sandbox_id] = GatewaySandbox(sandbox_id, name, durable)
        self._expected[sandbox_id] = durable
        self._delete_requested.discard(sandbox_id)

    def request_delete(self, sandbox_id: str) -> None:
        """A user asked to delete the sandbox: a Deleted for it is now legitimate."""
        self._delete_requested.add(sandbox_id)

    def supervisor(self, sandbox_id: str, connected: bool) -> None:
        """The in-sandbox supervisor connected (or disconnected)."""
        sb = self.sandboxes.get(sandbox_id)
        if sb is not None:
            self._set(replace(sb, supervisor_connected=connected))

    # -- the driver's reports ------------------------------------------------------------------

    def consume(self, events: Iterable[Event]) -> None:
        for event in events:
            self.events.append(event)
            if isinstance(event, SnapshotEvent):
                self._on_snapshot(event.snapshot)
            elif isinstance(event, DeletedEvent):
                self._on_deleted(event.sandbox_id)
            elif not isinstance(event, PlatformEvent):
                raise TypeError(f"not a driver event: {event!r}")

    def _on_snapshot(self, snap: Snapshot) -> None:
        sb = self.sandboxes.get(snap.sandbox_id)
        if sb is None:
            if snap.sandbox_id in self._delete_requested:
                return  # a late snapshot of a sandbox the user deleted
            # A real gateway resurrects a skeletal record from a snapshot it cannot place.
            sb = GatewaySandbox(snap.sandbox_id, snap.name, SKELETAL, registered=False)
            if snap.sandbox_id in self._expected:
                self._violate("OWN-11", snap.sandbox_id,
                              "a snapshot resurrected the sandbox as a skeletal record after its "
                              "durable state was dropped")
        self._set(replace(sb, snapshot=snap, instance_id=snap.instance_id))

    def _on_deleted(self, sandbox_id: str) -> None:
        if sandbox_id not in self._delete_requested:
            self._violate("OWN-10", sandbox_id,
                          "the driver emitted Deleted although nobody asked to delete the sandbox")
            if sandbox_id in self.sandboxes:
                self._violate("OWN-11", sandbox_id,
                              "the gateway dropped the sandbox's durable state on that Deleted")
        self.sandboxes.pop(sandbox_id, None)
        if sandbox_id in self._delete_requested:
            self._expected.pop(sandbox_id, None)

    def _set(self, sb: GatewaySandbox) -> None:
        self.sandboxes[sb.sandbox_id] = sb
        snap = sb.snapshot
        if sb.phase == "Ready" and snap is not None and snap.unresolved:
            if snap.ready.ready:
                why = f"the driver reported Ready=True with unresolved reason {snap.reason!r}"
            else:
                why = f"phase Ready while the driver reports {snap.reason!r}"
            self._violate("OWN-12", sb.sandbox_id, why)

    def _violate(self, requirement: str, sandbox_id: str, message: str) -> None:
        self.violations.append(Violation(requirement, sandbox_id, message))

    # -- reading -------------------------------------------------------------------------------

    def phase(self, sandbox_id: str) -> str | None:
        sb = self.sandboxes.get(sandbox_id)
        return sb.phase if sb is not None else None

    def durable_violations(self) -> list[Violation]:
        """OWN-11: every registered sandbox that is gone or whose durable state changed."""
        found = []
        for sandbox_id, expected in sorted(self._expected.items()):
            sb = self.sandboxes.get(sandbox_id)
            if sb is None:
                found.append(Violation("OWN-11", sandbox_id, "the sandbox's durable record is gone"))
            elif not sb.registered or sb.durable != expected:
                found.append(Violation("OWN-11", sandbox_id,
                                       "the sandbox's durable state is not what the user stored"))
        return found

    def warnings(self, sandbox_id: str | None = None, reason: str | None = None) -> list[PlatformEvent]:
        return [e for e in self.events if isinstance(e, PlatformEvent) and e.type == "Warning"
                and (sandbox_id is None or e.sandbox_id == sandbox_id)
                and (reason is None or e.reason == reason)]
