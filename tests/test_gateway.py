"""The control-plane model: phases, Deleted, durable state, promotion (OWN-10, OWN-11, OWN-12)."""

from __future__ import annotations

import pytest

from pytest_sandbox_conformance.api import (
    CONFLICT_REASONS,
    PENDING_REASONS,
    TRANSIENT_REASONS,
    Condition,
    DeletedEvent,
    PlatformEvent,
    Snapshot,
    SnapshotEvent,
    phase_of,
)
from pytest_sandbox_conformance.run.gateway import (
    PROMOTABLE_REASONS,
    DurableState,
    Gateway,
    GatewaySandbox,
)

SID = "sbx-1"
NAME = "alpha"
A_ID = "a" * 64
B_ID = "b" * 64
DURABLE = DurableState(spec={"image": "busybox", "gpu": True}, labels={"team": "ml"},
                       policy_version=3, settings={"log_level": "debug"})


def snap(status: str = "True", reason: str = "ContainerRunning", instance: str | None = A_ID,
         sandbox_id: str = SID) -> SnapshotEvent:
    return SnapshotEvent(Snapshot(sandbox_id, NAME, "default", instance,
                                  Condition(status, reason, f"{status}/{reason}")))


def warning(reason: str, sandbox_id: str = SID) -> PlatformEvent:
    return PlatformEvent(sandbox_id, "Warning", reason, reason.lower())


@pytest.fixture
def gateway() -> Gateway:
    gw = Gateway()
    gw.register(SID, NAME, DURABLE)
    return gw


def requirements(gw: Gateway) -> list[str]:
    return [v.requirement for v in gw.violations]


# -- phase derivation (contract section 1) -------------------------------------------------------


PHASES = [
    ("True", "ContainerRunning", "Ready"),
    ("True", "", "Ready"),
    ("False", "Starting", "Provisioning"),
    ("False", "ContainerCreated", "Provisioning"),
    ("False", "DependenciesNotReady", "Provisioning"),
    ("False", "ContainerReplacementPending", "Provisioning"),
    ("False", "ContainerExited", "Error"),
    ("False", "ContainerDead", "Error"),
    ("False", "ContainerStartFailed", "Error"),
    ("False", "ContainerIdentityConflict", "Error"),
    ("False", "ContainerOwnershipUnresolved", "Error"),
    ("False", "ContainerOwnershipPersistFailed", "Error"),
    ("False", "ContainerInstanceMissing", "Error"),
    ("False", "", "Error"),
    # OpenShell's drivers and gateway: readiness gates still open are provisioning (its
    # is_terminal_failure_reason compares case-insensitively); an Unknown status is too.
    ("False", "HealthCheckStarting", "Provisioning"),
    ("False", "containerstarting", "Provisioning"),
    ("False", "SupervisorNotConnected", "Provisioning"),
    ("Unknown", "InspectFailed", "Provisioning"),
    ("Unknown", "", "Provisioning"),
    ("False", "ContainerRestarting", "Error"),
    ("True", "BackendReady", "Ready"),
]


@pytest.mark.parametrize("status, reason, phase", PHASES)
def test_phase_of(status, reason, phase):
    assert phase_of(Condition(status, reason)) == phase


@pytest.mark.parametrize("reason", sorted(TRANSIENT_REASONS))
def test_every_transient_reason_is_provisioning(reason):
    assert phase_of(Condition("False", reason)) == "Provisioning"


@pytest.mark.parametrize("reason", sorted(CONFLICT_REASONS))
def test_every_conflict_reason_is_an_error(reason):
    assert phase_of(Condition("False", reason)) == "Error"


@pytest.mark.parametrize("status, reason, phase", PHASES)
def test_gateway_phase_follows_the_snapshot(gateway, status, reason, phase):
    gateway.consume([snap(status, reason)])
    assert gateway.phase(SID) == phase


def test_phase_before_any_snapshot_is_provisioning(gateway):
    assert gateway.phase(SID) == "Provisioning"


def test_phase_of_an_unknown_sandbox_is_none(gateway):
    assert gateway.phase("nope") is None


@pytest.mark.parametrize("reason, unresolved", [
    ("ContainerRunning", False), ("Starting", False), ("ContainerExited", False),
    *[(r, True) for r in sorted(PENDING_REASONS | CONFLICT_REASONS)],
])
def test_snapshot_unresolved(reason, unresolved):
    assert snap("False", reason).snapshot.unresolved is unresolved


# -- Deleted (OWN-10, OWN-11) ---------------------------------------------------------------------


def test_deleted_without_a_request_violates_own10_and_own11(gateway):  # OWN-10, OWN-11
    gateway.consume([snap(), DeletedEvent(SID)])
    assert sorted(requirements(gateway)) == ["OWN-10", "OWN-11"]
    assert gateway.phase(SID) is None
    assert [v.requirement for v in gateway.durable_violations()] == ["OWN-11"]


def test_deleted_after_a_request_is_legitimate(gateway):  # OWN-10, OWN-11
    gateway.consume([snap()])
    gateway.request_delete(SID)
    gateway.consume([DeletedEvent(SID)])
    assert gateway.violations == []
    assert gateway.durable_violations() == []
    assert SID not in gateway.sandboxes


def test_late_snapshot_after_a_requested_delete_is_ignored(gateway):  # OWN-10, OWN-11
    gateway.request_delete(SID)
    gateway.consume([DeletedEvent(SID), snap()])
    assert gateway.violations == []
    assert SID not in gateway.sandboxes


def test_unrequested_deleted_of_an_unknown_sandbox_violates_own10_only():  # OWN-10
    gw = Gateway()
    gw.consume([DeletedEvent("ghost")])
    assert requirements(gw) == ["OWN-10"]
    assert gw.durable_violations() == []


def test_snapshot_after_an_unrequested_deleted_resurrects_a_skeletal_record(gateway):  # OWN-11
    gateway.consume([snap(), DeletedEvent(SID)])
    gateway.violations.clear()
    gateway.consume([snap(instance=B_ID)])
    sb = gateway.sandboxes[SID]
    assert not sb.registered
    assert sb.durable == DurableState()
    assert sb.durable != DURABLE
    assert sb.instance_id == B_ID
    assert requirements(gateway) == ["OWN-11"]
    assert [v.requirement for v in gateway.durable_violations()] == ["OWN-11"]


def test_snapshot_of_a_never_registered_sandbox_is_skeletal_but_no_violation():
    gw = Gateway()
    gw.consume([snap(sandbox_id="stranger")])
    assert not gw.sandboxes["stranger"].registered
    assert gw.violations == [] and gw.durable_violations() == []


@pytest.mark.parametrize("reason", ["ContainerReplacementPending", "ContainerInstanceMissing",
                                    "ContainerIdentityConflict", "ContainerExited"])
def test_non_adopting_snapshots_keep_durable_state(gateway, reason):  # OWN-11
    gateway.consume([snap(), snap("False", reason), snap("False", reason, instance=None)])
    assert gateway.sandboxes[SID].durable == DURABLE
    assert gateway.sandboxes[SID].registered
    assert gateway.durable_violations() == []


def test_register_again_after_a_requested_delete_starts_clean(gateway):  # OWN-10
    gateway.request_delete(SID)
    gateway.consume([DeletedEvent(SID)])
    gateway.register(SID, NAME, DURABLE)
    gateway.consume([snap(), DeletedEvent(SID)])
    assert "OWN-10" in requirements(gateway)


def test_durable_state_equality_is_by_value():
    assert DurableState(spec={"a": 1}) == DurableState(spec={"a": 1})
    assert DurableState(spec={"a": 1}) != DurableState(spec={"a": 2})
    assert DurableState(policy_version=1) != DurableState(policy_version=2)
    assert DurableState() == DurableState(spec={}, labels={}, policy_version=0, settings={})


# -- supervisor promotion (OWN-12) ------------------------------------------------------------------


@pytest.mark.parametrize("reason", sorted(PROMOTABLE_REASONS))
def test_connected_supervisor_promotes_transient_reasons(gateway, reason):  # OWN-12
    gateway.consume([snap("False", reason)])
    assert gateway.phase(SID) == "Provisioning"
    gateway.supervisor(SID, True)
    assert gateway.phase(SID) == "Ready"
    assert gateway.violations == []
    gateway.supervisor(SID, False)
    assert gateway.phase(SID) == "Provisioning"


@pytest.mark.parametrize("reason", sorted(PENDING_REASONS | CONFLICT_REASONS))
def test_connected_supervisor_never_promotes_pending_or_conflict(gateway, reason):  # OWN-12
    gateway.supervisor(SID, True)
    gateway.consume([snap("False", reason)])
    assert gateway.phase(SID) == phase_of(Condition("False", reason))
    assert gateway.phase(SID) != "Ready"
    assert gateway.violations == []


@pytest.mark.parametrize("reason", ["ContainerExited", "ContainerDead", "ContainerStartFailed"])
def test_connected_supervisor_does_not_promote_errors(gateway, reason):
    gateway.supervisor(SID, True)
    gateway.consume([snap("False", reason)])
    assert gateway.phase(SID) == "Error"


def test_supervisor_state_survives_snapshots(gateway):  # OWN-12
    gateway.supervisor(SID, True)
    gateway.consume([snap("False", "Starting")])
    assert gateway.phase(SID) == "Ready"
    gateway.consume([snap("False", "ContainerReplacementPending")])
    assert gateway.phase(SID) == "Provisioning"
    gateway.consume([snap("False", "DependenciesNotReady")])
    assert gateway.phase(SID) == "Ready"
    assert gateway.violations == []


def test_supervisor_for_an_unknown_sandbox_is_ignored(gateway):
    gateway.supervisor("nope", True)
    assert "nope" not in gateway.sandboxes


def test_sandbox_phase_without_snapshot_ignores_the_supervisor():
    sb = GatewaySandbox(SID, NAME, DURABLE, supervisor_connected=True)
    assert sb.phase == "Provisioning"


@pytest.mark.parametrize("reason", sorted(PENDING_REASONS | CONFLICT_REASONS))
def test_ready_true_with_an_unresolved_reason_violates_own12(gateway, reason):  # OWN-12
    gateway.consume([snap("True", reason)])
    assert requirements(gateway)
    assert set(requirements(gateway)) == {"OWN-12"}
    assert reason in str(gateway.violations[0])


def test_ready_true_with_a_resolved_reason_is_fine(gateway):  # OWN-12
    gateway.supervisor(SID, True)
    gateway.consume([snap("True", "ContainerRunning"), snap("True", "SandboxInstanceReplaced")])
    assert gateway.violations == []


# -- events and warnings ----------------------------------------------------------------------------


def test_consume_refuses_what_is_not_a_driver_event(gateway):
    with pytest.raises(TypeError):
        gateway.consume(["not an event"])


def test_consume_records_every_event_in_order(gateway):
    events = [snap(), warning("ContainerIdentityConflict"), snap("False", "Starting")]
    gateway.consume(events)
    assert gateway.events == events


def test_warnings_filtering(gateway):
    w1 = warning("ContainerIdentityConflict")
    w2 = warning("SandboxInstanceReplaced")
    w3 = warning("ContainerIdentityConflict", sandbox_id="sbx-2")
    notice = warning("UnownedSandboxContainersIgnored", sandbox_id="")
    normal = PlatformEvent(SID, "Normal", "ContainerIdentityConflict")
    gateway.consume([snap(), w1, normal, w2, w3, notice])
    assert gateway.warnings() == [w1, w2, w3, notice]
    assert gateway.warnings(SID) == [w1, w2]
    assert gateway.warnings(reason="ContainerIdentityConflict") == [w1, w3]
    assert gateway.warnings(SID, "ContainerIdentityConflict") == [w1]
    assert gateway.warnings("") == [notice]
    assert gateway.warnings(reason="Nope") == []


def test_violation_str_names_requirement_and_sandbox(gateway):
    gateway.consume([DeletedEvent(SID)])
    assert str(gateway.violations[0]).startswith(f"OWN-10 ({SID}): ")
