"""What a driver reports to its control plane: snapshots, platform events and Deleted events.

These are the observables of the ownership contract (``docs/contract.md``), modelled on the
OpenShell compute-driver messages (``DriverSandbox``, ``DriverCondition``, ``WatchSandboxesEvent``,
``DriverPlatformEvent``). Every driver adapter translates its driver's reports into these types;
the gateway model and the checks consume nothing else. Pure data: no pytest, no engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping, Union

__all__ = [
    "CONFLICT_REASONS",
    "PENDING_REASONS",
    "READINESS_GATE_REASONS",
    "TRANSIENT_REASONS",
    "Condition",
    "DeletedEvent",
    "Event",
    "PlatformEvent",
    "SandboxRef",
    "SandboxSpec",
    "Snapshot",
    "SnapshotEvent",
    "gate_open",
    "phase_of",
]

#: Ready=False reasons the gateway treats as "still provisioning" (contract section 1): the
#: contract's own, and those OpenShell's gateway treats so (its ``is_terminal_failure_reason``:
#: drivers of that family report them while a container starts or a readiness gate such as a
#: health check or the supervisor's connection is still open). Compared case-insensitively, as
#: OpenShell's gateway does.
TRANSIENT_REASONS = frozenset({
    "Starting", "ContainerCreated", "DependenciesNotReady", "ContainerReplacementPending",
    "ContainerStarting", "HealthCheckStarting", "SupervisorNotConnected", "ReconcilerError",
    "InspectFailed",
})
_TRANSIENT_FOLDED = frozenset(r.lower() for r in TRANSIENT_REASONS)
#: Ready=False reasons that say a readiness gate beyond the container's state is still open (a
#: health check, the in-sandbox supervisor's connection): a driver may report one for a running
#: instance where the contract says Ready (contract section 5, "Where this project decides").
READINESS_GATE_REASONS = frozenset(
    {"DependenciesNotReady", "SupervisorNotConnected", "HealthCheckStarting", "ContainerStarting"})
#: Reasons meaning "a handoff is in progress": never promoted to Ready (OWN-12).
PENDING_REASONS = frozenset({"ContainerReplacementPending"})
#: Reasons meaning "ownership is not resolved": never promoted to Ready (OWN-12).
CONFLICT_REASONS = frozenset({
    "ContainerIdentityConflict",
    "ContainerOwnershipUnresolved",
    "ContainerOwnershipPersistFailed",
    "ContainerInstanceMissing",
})


@dataclass(frozen=True)
class SandboxRef:
    """A sandbox's identity, as the control plane names it."""

    id: str
    name: str
    namespace: str = "default"


@dataclass(frozen=True)
class SandboxSpec:
    """What a control plane asks a driver to create.

    ``labels`` are the sandbox's metadata labels, applied to the container beside the driver's
    identity labels; ``gpu`` asks for GPU access (the driver chooses the device-request style).
    """

    id: str
    name: str
    image: str | None = None
    command: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    gpu: bool = False

    def __post_init__(self) -> None:
        if not self.id or not self.name:
            raise ValueError("a sandbox needs a non-empty id and name")
        object.__setattr__(self, "command", tuple(self.command))
        object.__setattr__(self, "env", MappingProxyType(dict(self.env)))
        object.__setattr__(self, "labels", MappingProxyType(dict(self.labels)))

    def __hash__(self) -> int:
        return hash((self.id, self.name))


@dataclass(frozen=True)
class Condition:
    """The ``Ready`` condition: status ``"True"``/``"False"``/``"Unknown"``, reason, message."""

    status: str
    reason: str = ""
    message: str = ""

    @property
    def ready(self) -> bool:
        return self.status == "True"


@dataclass(frozen=True)
class Snapshot:
    """One sandbox as the driver sees it now: which container is its instance, and Ready."""

    sandbox_id: str
    name: str
    namespace: str
    instance_id: str | None
    ready: Condition

    @property
    def reason(self) -> str:
        return self.ready.reason

    @property
    def unresolved(self) -> bool:
        """True while the snapshot carries a pending or conflict reason (OWN-12)."""
        return self.ready.reason in PENDING_REASONS or self.ready.reason in CONFLICT_REASONS


def gate_open(ready: Condition) -> bool:
    """Whether ``ready`` says "not Ready yet: a readiness gate is still open" (a health check
    starting, the supervisor not connected): never an error, never unresolved."""
    return ready.status == "False" and ready.reason in READINESS_GATE_REASONS


def phase_of(ready: Condition) -> str:
    """The gateway's public phase for a Ready condition (contract section 1): ``Ready`` for
    status True, ``Provisioning`` for a transient reason (case-insensitive) or a status that is
    neither True nor False (``Unknown``), ``Error`` otherwise."""
    if ready.ready:
        return "Ready"
    if ready.status != "False" or ready.reason.lower() in _TRANSIENT_FOLDED:
        return "Provisioning"
    return "Error"


@dataclass(frozen=True)
class SnapshotEvent:
    """A sandbox's snapshot changed (or the watch stream opened)."""

    snapshot: Snapshot

    @property
    def sandbox_id(self) -> str:
        return self.snapshot.sandbox_id


@dataclass(frozen=True)
class DeletedEvent:
    """The driver says the sandbox is gone: the gateway forgets its durable state."""

    sandbox_id: str


@dataclass(frozen=True)
class PlatformEvent:
    """A Normal/Warning event about a sandbox (``sandbox_id`` is "" for driver-wide notices)."""

    sandbox_id: str
    type: str
    reason: str
    message: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))

    def __hash__(self) -> int:
        return hash((self.sandbox_id, self.type, self.reason, self.message,
                     tuple(sorted(self.metadata.items()))))


Event = Union[SnapshotEvent, DeletedEvent, PlatformEvent]
