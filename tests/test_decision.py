"""The pure decision procedure, branch by branch (contract section 4, reference_driver/decision.py).

Every row gives a record and the candidates one observation found, and the whole expected
decision: outcome, the record to persist, the container that drives the snapshot, the reported
instance ID, the Ready status and reason, and the notices' keys and reasons. Each group of rows
names the requirement it checks. Every row is also run in every order of its candidates.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

import pytest

from decision_helpers import (
    A, B, BACKUP, C, CANONICAL, D, E, GEN, GEN_LABEL, OTHER_BACKUP, OTHER_GEN, OTHER_NAME,
    container, decide_for, intent, record,
)
from pytest_sandbox_conformance.api import CONFLICT_REASONS, PENDING_REASONS, phase_of
from pytest_sandbox_conformance.engines.base import ALL_STATES, NON_TERMINAL_STATES, TERMINAL_STATES
from reference_driver.decision import Outcome, decide, ready_for_state, resolve_stored_instance
from reference_driver.naming import backup_name

#: Marks "the decision returns the record it was given".
SAME = object()

PENDING = ("False", "ContainerReplacementPending")
CONFLICT = ("False", "ContainerIdentityConflict")
MISSING = ("False", "ContainerInstanceMissing")
UNRESOLVED = ("False", "ContainerOwnershipUnresolved")
RUNNING = ("True", "ContainerRunning")

#: The Ready condition each state of an authoritative container gives.
READY_BY_STATE = {
    "running": RUNNING,
    "created": ("False", "ContainerCreated"),
    "restarting": ("False", "Starting"),
    "exited": ("False", "ContainerExited"),
    "dead": ("False", "ContainerDead"),
    "paused": ("False", "ContainerPaused"),
    "removing": ("False", "ContainerRemoving"),
}


@dataclass(frozen=True)
class Expected:
    outcome: str
    record: object  # a Record, or SAME
    instance: str | None  # the ID of the container that drives the snapshot
    instance_id: str | None
    ready: tuple[str, str]
    notices: tuple[tuple[str, str], ...]
    #: The first notice's ``candidate_instance_ids`` metadata, where a row cares.
    candidate_ids: str | None = None


def row(id, rec, candidates, outcome, *, new=SAME, instance, instance_id, ready, notices=(),
        candidate_ids=None):
    expected = Expected(outcome, new, instance, instance_id, ready, tuple(notices), candidate_ids)
    return pytest.param(rec, tuple(candidates), expected, id=id)


def check(decision, rec, expected: Expected) -> None:
    assert decision.outcome == expected.outcome
    assert decision.record == (rec if expected.record is SAME else expected.record)
    assert (None if decision.instance is None else decision.instance.id) == expected.instance
    assert decision.instance_id == expected.instance_id
    assert (decision.ready.status, decision.ready.reason) == expected.ready
    assert decision.ready.message  # every condition explains itself
    assert [(n.key, n.reason) for n in decision.notices] == list(expected.notices)
    assert all(n.type == "Warning" and n.message for n in decision.notices)
    if expected.candidate_ids is not None:
        assert decision.notices[0].metadata["candidate_instance_ids"] == expected.candidate_ids


def _intent_recorded(a, b):
    return (f"replacement-intent:{a}:{b}", "SandboxReplacementIntentRecorded")


def _replaced(old, new):
    return (f"replaced:{old}:{new}", "SandboxInstanceReplaced")


def _invalidated(incumbent, replacement):
    return (f"intent-invalidated:{incumbent or '-'}:{replacement}", "SandboxReplacementIntentInvalidated")


def _conflict(a, ids):
    """A present, other candidates beside it (step 3, OWN-3)."""
    return (f"identity-conflict:{a}:{ids}", "ContainerIdentityConflict")


def _authority_gone(a, ids):
    """A absent, no acceptable claim among the candidates (step 6): a key of its own, so the
    Warning is raised anew when the authority goes from beside a duplicate."""
    return (f"authority-gone:{a}:{ids}", "ContainerIdentityConflict")


def _pending(a, ids):
    return (f"replacement-pending:{a}:{ids}", "ContainerReplacementPending")


# The incumbent A as the GPU handoff leaves it: stopped and renamed to the backup name.
A_BACKUP = container(A, BACKUP, "exited")
#: The clone B under the canonical name, running, with A's (journaled) generation.
B_OK = container(B, CANONICAL, "running")
OVERLAP_INTENT = intent(A, B, BACKUP)
GAP_INTENT = intent(None, B, None)


# -- step 1: no authoritative ID -------------------------------------------------------------------

UNRESOLVED_ROWS = [
    # OWN-7: no authoritative ID at all -> ContainerOwnershipUnresolved, nothing adopted.
    row("no-authority-no-candidates", record(None), [],
        Outcome.UNRESOLVED, instance=None, instance_id=None, ready=UNRESOLVED,
        notices=[("unresolved", "ContainerOwnershipUnresolved")], candidate_ids=""),
    # OWN-2, OWN-7: labels alone never make an owner, even for a perfect-looking candidate.
    row("no-authority-acceptable-candidate", record(None), [B_OK],
        Outcome.UNRESOLVED, instance=None, instance_id=None, ready=UNRESOLVED,
        notices=[("unresolved", "ContainerOwnershipUnresolved")], candidate_ids=B),
    row("no-authority-several-candidates", record(None, retired=(C,)),
        [B_OK, container(C, CANONICAL, "exited"), A_BACKUP],
        Outcome.UNRESOLVED, instance=None, instance_id=None, ready=UNRESOLVED,
        notices=[("unresolved", "ContainerOwnershipUnresolved")], candidate_ids=f"{A},{B},{C}"),
    # OWN-7, OWN-8: an intent without authority adopts nothing either.
    row("no-authority-with-intent", record(None, intent=GAP_INTENT), [B_OK],
        Outcome.UNRESOLVED, instance=None, instance_id=None, ready=UNRESOLVED,
        notices=[("unresolved", "ContainerOwnershipUnresolved")]),
]


# -- step 3: the authority is present and not in a handoff shape ----------------------------------

AUTHORITY_ALONE_ROWS = [
    # OWN-1: the authority alone drives the snapshot; its state gives Ready.
    row(f"alone-{state}", record(), [container(A, CANONICAL, state)],
        Outcome.AUTHORITATIVE, instance=A, instance_id=A, ready=READY_BY_STATE[state])
    for state in ALL_STATES
] + [
    # OWN-2: ownership is by ID, not by labels: the authority's own labels do not matter.
    row("alone-generation-label-missing", record(), [container(A, generation=None)],
        Outcome.AUTHORITATIVE, instance=A, instance_id=A, ready=RUNNING),
    row("alone-generation-label-other", record(), [container(A, generation=OTHER_GEN)],
        Outcome.AUTHORITATIVE, instance=A, instance_id=A, ready=RUNNING),
    row("alone-record-without-generation", record(generation=None), [container(A)],
        Outcome.AUTHORITATIVE, instance=A, instance_id=A, ready=RUNNING),
    row("alone-renamed-by-hand-exited", record(), [container(A, OTHER_NAME, "exited")],
        Outcome.AUTHORITATIVE, instance=A, instance_id=A, ready=READY_BY_STATE["exited"]),
    # OWN-4: only `<canonical>-nemoclaw-gpu-backup-<digits>` is a handoff shape.
    row("alone-exited-backup-name-without-digits", record(),
        [container(A, f"{CANONICAL}-nemoclaw-gpu-backup-x1", "exited")],
        Outcome.AUTHORITATIVE, instance=A, instance_id=A, ready=READY_BY_STATE["exited"]),
    row("alone-backup-name-of-another-sandbox", record(),
        [container(A, backup_name("openshell-other-sbx-0002", 1), "exited")],
        Outcome.AUTHORITATIVE, instance=A, instance_id=A, ready=READY_BY_STATE["exited"]),
    # OWN-4: a backup-named incumbent that is not exited is not in a handoff shape.
    row("alone-running-under-backup-name", record(), [container(A, BACKUP, "running")],
        Outcome.AUTHORITATIVE, instance=A, instance_id=A, ready=RUNNING),
    row("alone-dead-under-backup-name", record(), [container(A, BACKUP, "dead")],
        Outcome.AUTHORITATIVE, instance=A, instance_id=A, ready=READY_BY_STATE["dead"]),
    # OWN-9: a record with retired IDs and no candidates for them is simply authoritative.
    row("alone-with-retired-ids", record(retired=(D, E)), [container(A)],
        Outcome.AUTHORITATIVE, instance=A, instance_id=A, ready=RUNNING),
]

DUPLICATE_ROWS = [
    # OWN-2, OWN-3: a clone with copied labels (and the journaled generation) beside a present
    # authority never drives the snapshot; one conflict warning names it.
    row("running-authority-copied-clone", record(), [container(A), B_OK],
        Outcome.AUTHORITATIVE, instance=A, instance_id=A, ready=RUNNING,
        notices=[_conflict(A, B)], candidate_ids=B),
    # OWN-3: the real incident's shape, reversed: a stopped authority under the canonical name
    # stays authoritative (ContainerExited) beside a healthy clone; no handoff shape, no adoption.
    row("exited-canonical-authority-healthy-clone", record(),
        [container(A, CANONICAL, "exited"), B_OK],
        Outcome.AUTHORITATIVE, instance=A, instance_id=A, ready=READY_BY_STATE["exited"],
        notices=[_conflict(A, B)], candidate_ids=B),
    # OWN-2: a hand-made `docker run --label` container without a generation label.
    row("hand-made-container", record(), [container(A, state="created"),
                                          container(B, OTHER_NAME, generation=None)],
        Outcome.AUTHORITATIVE, instance=A, instance_id=A, ready=READY_BY_STATE["created"],
        notices=[_conflict(A, B)], candidate_ids=B),
    # OWN-3: whatever the duplicates' states; the notice lists them sorted.
    row("several-duplicates", record(),
        [container(C, OTHER_NAME, "dead", OTHER_GEN), container(A),
         container(B, BACKUP, "paused")],
        Outcome.AUTHORITATIVE, instance=A, instance_id=A, ready=RUNNING,
        notices=[_conflict(A, f"{B},{C}")], candidate_ids=f"{B},{C}"),
    # OWN-3: an exited backup that is not a retired instance is reported.
    row("exited-backup-never-owned-is-reported", record(),
        [container(A), container(B, BACKUP, "exited")],
        Outcome.AUTHORITATIVE, instance=A, instance_id=A, ready=RUNNING,
        notices=[_conflict(A, B)], candidate_ids=B),
    # OWN-3, OWN-13: a retired exited backup (the former instance kept by the handoff) is not.
    row("retired-exited-backup-not-reported", record(retired=(B,)),
        [container(A), container(B, BACKUP, "exited")],
        Outcome.AUTHORITATIVE, instance=A, instance_id=A, ready=RUNNING),
    row("two-retired-exited-backups-not-reported", record(retired=(B, C)),
        [container(B, BACKUP, "exited"), container(A), container(C, OTHER_BACKUP, "exited")],
        Outcome.AUTHORITATIVE, instance=A, instance_id=A, ready=RUNNING),
    # OWN-3: a retired instance that runs again, or is not backup-named, is a duplicate.
    row("retired-running-is-reported", record(retired=(B,)), [container(A), container(B, BACKUP)],
        Outcome.AUTHORITATIVE, instance=A, instance_id=A, ready=RUNNING,
        notices=[_conflict(A, B)], candidate_ids=B),
    row("retired-exited-canonical-is-reported", record(retired=(B,)),
        [container(A, OTHER_NAME), container(B, CANONICAL, "exited")],
        Outcome.AUTHORITATIVE, instance=A, instance_id=A, ready=RUNNING,
        notices=[_conflict(A, B)], candidate_ids=B),
    row("retired-backup-beside-a-duplicate", record(retired=(B,)),
        [container(B, BACKUP, "exited"), container(C, CANONICAL, "created"), container(A)],
        Outcome.AUTHORITATIVE, instance=A, instance_id=A, ready=RUNNING,
        notices=[_conflict(A, C)], candidate_ids=C),
]


# -- step 3: overlapping handoff -------------------------------------------------------------------

OVERLAP_ROWS = [
    # OWN-4: first consistent observation of the handoff: record the intent, report pending.
    row("overlap-first-observation", record(), [A_BACKUP, B_OK],
        Outcome.RECORD_INTENT, new=record(intent=OVERLAP_INTENT), instance=A, instance_id=A,
        ready=PENDING, notices=[_intent_recorded(A, B)], candidate_ids=B),
    row("overlap-first-observation-created", record(), [A_BACKUP, container(B, state="created")],
        Outcome.RECORD_INTENT, new=record(intent=OVERLAP_INTENT), instance=A, instance_id=A,
        ready=PENDING, notices=[_intent_recorded(A, B)]),
    row("overlap-first-observation-restarting", record(retired=(D,)),
        [A_BACKUP, container(B, state="restarting")],
        Outcome.RECORD_INTENT, new=record(retired=(D,), intent=OVERLAP_INTENT), instance=A,
        instance_id=A, ready=PENDING, notices=[_intent_recorded(A, B)]),
    # OWN-4: the next consistent observation adopts B; A is retired; the intent is done.
    row("overlap-second-observation", record(intent=OVERLAP_INTENT), [A_BACKUP, B_OK],
        Outcome.ADOPT, new=record(B, retired=(A,)), instance=B, instance_id=B, ready=RUNNING,
        notices=[_replaced(A, B)]),
    row("overlap-second-observation-created", record(intent=OVERLAP_INTENT),
        [A_BACKUP, container(B, state="created")],
        Outcome.ADOPT, new=record(B, retired=(A,)), instance=B, instance_id=B,
        ready=READY_BY_STATE["created"], notices=[_replaced(A, B)]),
    row("overlap-second-observation-keeps-older-retired",
        record(retired=(D,), intent=OVERLAP_INTENT),
        [A_BACKUP, B_OK],
        Outcome.ADOPT, new=record(B, retired=(D, A)), instance=B, instance_id=B, ready=RUNNING,
        notices=[_replaced(A, B)]),
    # OWN-4 (section 4 step 2): the backup was removed after the intent: B alone is adopted.
    row("overlap-backup-removed-after-intent", record(intent=OVERLAP_INTENT), [B_OK],
        Outcome.ADOPT, new=record(B, retired=(A,)), instance=B, instance_id=B, ready=RUNNING,
        notices=[_replaced(A, B)]),
    # OWN-7 over section 4 step 2's "or exited" (docs/contract.md, "Where this project decides"):
    # an intended replacement that is alone but exited is terminal, so the intent is
    # invalidated; adopting it would make the outcome depend on whether a poll fell between the
    # intent and the replacement's exit (OWN-20).
    row("overlap-replacement-alone-and-exited", record(intent=OVERLAP_INTENT),
        [container(B, state="exited")],
        Outcome.INVALIDATE, new=record(), instance=None, instance_id=A, ready=PENDING,
        notices=[_invalidated(A, B)], candidate_ids=B),
]


# -- step 3: a handoff-shaped incumbent without an acceptable successor ----------------------------

PENDING_ROWS = [
    # OWN-7: no successor at all.
    row("handoff-no-successor", record(), [A_BACKUP],
        Outcome.PENDING, instance=A, instance_id=A, ready=PENDING, notices=[_pending(A, "")]),
    # OWN-7: a successor with a wrong or a missing generation.
    row("handoff-successor-wrong-generation", record(),
        [A_BACKUP, container(B, generation=OTHER_GEN)],
        Outcome.PENDING, instance=A, instance_id=A, ready=PENDING, notices=[_pending(A, B)],
        candidate_ids=B),
    row("handoff-successor-missing-generation", record(),
        [A_BACKUP, container(B, generation=None)],
        Outcome.PENDING, instance=A, instance_id=A, ready=PENDING, notices=[_pending(A, B)]),
    # OWN-7: a record without generation (an older driver's) adopts nothing.
    row("handoff-record-without-generation", record(generation=None),
        [container(A, BACKUP, "exited", None), container(B, generation=None)],
        Outcome.PENDING, instance=A, instance_id=A, ready=PENDING, notices=[_pending(A, B)]),
    row("handoff-record-without-generation-labelled-clone", record(generation=None),
        [A_BACKUP, B_OK],
        Outcome.PENDING, instance=A, instance_id=A, ready=PENDING, notices=[_pending(A, B)]),
] + [
    # OWN-7: a successor in a terminal state.
    row(f"handoff-successor-{state}", record(), [A_BACKUP, container(B, state=state)],
        Outcome.PENDING, instance=A, instance_id=A, ready=PENDING, notices=[_pending(A, B)])
    for state in sorted(TERMINAL_STATES)
] + [
    # OWN-7: two acceptable successors: nothing is adopted.
    row("handoff-two-successors", record(), [A_BACKUP, B_OK, container(C)],
        Outcome.PENDING, instance=A, instance_id=A, ready=PENDING,
        notices=[_pending(A, f"{B},{C}")], candidate_ids=f"{B},{C}"),
    # OWN-7: one acceptable successor, but something else matches too.
    row("handoff-successor-and-hand-made-container", record(),
        [A_BACKUP, B_OK, container(C, OTHER_NAME, "exited", None)],
        Outcome.PENDING, instance=A, instance_id=A, ready=PENDING,
        notices=[_pending(A, f"{B},{C}")]),
    row("handoff-successor-and-retired-backup", record(retired=(C,)),
        [A_BACKUP, B_OK, container(C, OTHER_BACKUP, "exited")],
        Outcome.PENDING, instance=A, instance_id=A, ready=PENDING,
        notices=[_pending(A, f"{B},{C}")]),
    # OWN-7: a successor that is not canonically named.
    row("handoff-successor-not-canonical", record(), [A_BACKUP, container(B, OTHER_NAME)],
        Outcome.PENDING, instance=A, instance_id=A, ready=PENDING, notices=[_pending(A, B)]),
    row("handoff-successor-backup-named", record(), [A_BACKUP, container(B, OTHER_BACKUP)],
        Outcome.PENDING, instance=A, instance_id=A, ready=PENDING, notices=[_pending(A, B)]),
    # OWN-7: generation lineage: the incumbent's own generation label is not the journaled one.
    row("handoff-incumbent-other-generation", record(),
        [container(A, BACKUP, "exited", OTHER_GEN), B_OK],
        Outcome.PENDING, instance=A, instance_id=A, ready=PENDING, notices=[_pending(A, B)]),
    row("handoff-incumbent-missing-generation", record(),
        [container(A, BACKUP, "exited", None), B_OK],
        Outcome.PENDING, instance=A, instance_id=A, ready=PENDING, notices=[_pending(A, B)]),
    row("handoff-successor-carries-incumbent-other-generation", record(),
        [container(A, BACKUP, "exited", OTHER_GEN), container(B, generation=OTHER_GEN)],
        Outcome.PENDING, instance=A, instance_id=A, ready=PENDING, notices=[_pending(A, B)]),
]


# -- step 2: an intent that the observation does not match ----------------------------------------

INVALIDATE_ROWS = [
    # OWN-8: the replacement was swapped for another container.
    row("intent-replacement-swapped", record(intent=OVERLAP_INTENT), [A_BACKUP, container(C)],
        Outcome.INVALIDATE, new=record(), instance=A, instance_id=A, ready=PENDING,
        notices=[_invalidated(A, B)], candidate_ids=f"{A},{C}"),
    row("intent-replacement-swapped-backup-gone", record(intent=OVERLAP_INTENT), [container(C)],
        Outcome.INVALIDATE, new=record(), instance=None, instance_id=A, ready=PENDING,
        notices=[_invalidated(A, B)], candidate_ids=C),
    # OWN-8: a third candidate appeared.
    row("intent-third-candidate", record(intent=OVERLAP_INTENT),
        [A_BACKUP, B_OK, container(C, OTHER_NAME, "created", None)],
        Outcome.INVALIDATE, new=record(), instance=A, instance_id=A, ready=PENDING,
        notices=[_invalidated(A, B)], candidate_ids=f"{A},{B},{C}"),
    row("intent-third-candidate-backup-gone", record(intent=OVERLAP_INTENT),
        [B_OK, container(C, OTHER_BACKUP, "exited")],
        Outcome.INVALIDATE, new=record(), instance=None, instance_id=A, ready=PENDING,
        notices=[_invalidated(A, B)]),
    # OWN-8: the replacement vanished.
    row("intent-replacement-vanished", record(intent=OVERLAP_INTENT), [A_BACKUP],
        Outcome.INVALIDATE, new=record(), instance=A, instance_id=A, ready=PENDING,
        notices=[_invalidated(A, B)], candidate_ids=A),
    row("intent-everything-vanished", record(intent=OVERLAP_INTENT), [],
        Outcome.INVALIDATE, new=record(), instance=None, instance_id=A, ready=PENDING,
        notices=[_invalidated(A, B)], candidate_ids=""),
    # OWN-8: the incumbent restarted, was renamed again, or was rolled back by the GPU tool.
    row("intent-incumbent-restarted", record(intent=OVERLAP_INTENT),
        [container(A, BACKUP, "running"), B_OK],
        Outcome.INVALIDATE, new=record(), instance=A, instance_id=A, ready=PENDING,
        notices=[_invalidated(A, B)]),
    row("intent-incumbent-renamed-to-other-backup", record(intent=OVERLAP_INTENT),
        [container(A, OTHER_BACKUP, "exited"), B_OK],
        Outcome.INVALIDATE, new=record(), instance=A, instance_id=A, ready=PENDING,
        notices=[_invalidated(A, B)]),
    row("intent-incumbent-rolled-back", record(intent=OVERLAP_INTENT), [container(A)],
        Outcome.INVALIDATE, new=record(), instance=A, instance_id=A, ready=PENDING,
        notices=[_invalidated(A, B)]),
    # OWN-8: the intent was recorded under another backup name (the incumbent was renamed
    # between the observations): not an exact match, so no adoption; a new pair starts over.
    row("intent-recorded-under-other-backup-name", record(intent=intent(A, B, OTHER_BACKUP)),
        [A_BACKUP, B_OK],
        Outcome.INVALIDATE, new=record(), instance=A, instance_id=A, ready=PENDING,
        notices=[_invalidated(A, B)]),
    # OWN-8: the incumbent's generation label is no longer the journaled one (the incumbent
    # changed: the lineage the intent was recorded under does not hold any more).
    row("intent-incumbent-generation-changed", record(intent=OVERLAP_INTENT),
        [container(A, BACKUP, "exited", OTHER_GEN), B_OK],
        Outcome.INVALIDATE, new=record(), instance=A, instance_id=A, ready=PENDING,
        notices=[_invalidated(A, B)]),
    row("intent-incumbent-generation-removed", record(intent=OVERLAP_INTENT),
        [container(A, BACKUP, "exited", None), B_OK],
        Outcome.INVALIDATE, new=record(), instance=A, instance_id=A, ready=PENDING,
        notices=[_invalidated(A, B)]),
] + [
    # OWN-7, OWN-8: the replacement went to a terminal state beside the backup.
    row(f"intent-replacement-{state}-beside-backup", record(intent=OVERLAP_INTENT),
        [A_BACKUP, container(B, state=state)],
        Outcome.INVALIDATE, new=record(), instance=A, instance_id=A, ready=PENDING,
        notices=[_invalidated(A, B)])
    for state in sorted(TERMINAL_STATES)
] + [
    # OWN-7, OWN-8: alone, the replacement is adopted only if non-terminal or exited.
    row(f"intent-replacement-alone-{state}", record(intent=OVERLAP_INTENT),
        [container(B, state=state)],
        Outcome.INVALIDATE, new=record(), instance=None, instance_id=A, ready=PENDING,
        notices=[_invalidated(A, B)])
    for state in sorted(TERMINAL_STATES - {"exited"})
] + [
    # OWN-7, OWN-8: the intended replacement is no longer acceptable in name or generation.
    row("intent-replacement-renamed", record(intent=OVERLAP_INTENT), [container(B, OTHER_NAME)],
        Outcome.INVALIDATE, new=record(), instance=None, instance_id=A, ready=PENDING,
        notices=[_invalidated(A, B)]),
    row("intent-replacement-other-generation", record(intent=OVERLAP_INTENT),
        [A_BACKUP, container(B, generation=OTHER_GEN)],
        Outcome.INVALIDATE, new=record(), instance=A, instance_id=A, ready=PENDING,
        notices=[_invalidated(A, B)]),
    row("intent-replacement-alone-missing-generation", record(intent=OVERLAP_INTENT),
        [container(B, generation=None)],
        Outcome.INVALIDATE, new=record(), instance=None, instance_id=A, ready=PENDING,
        notices=[_invalidated(A, B)]),
    # OWN-7, OWN-8: the journal lost its generation: an intent can adopt nothing.
    row("intent-record-without-generation", record(generation=None, intent=OVERLAP_INTENT),
        [B_OK],
        Outcome.INVALIDATE, new=record(generation=None), instance=None, instance_id=A,
        ready=PENDING, notices=[_invalidated(A, B)]),
    # OWN-8: a gap intent (no incumbent) meets a different container, or the authority again.
    row("gap-intent-replacement-swapped", record(intent=GAP_INTENT), [container(C)],
        Outcome.INVALIDATE, new=record(), instance=None, instance_id=A, ready=PENDING,
        notices=[_invalidated(None, B)], candidate_ids=C),
    row("gap-intent-second-candidate", record(intent=GAP_INTENT),
        [B_OK, container(C, OTHER_NAME, "exited", None)],
        Outcome.INVALIDATE, new=record(), instance=None, instance_id=A, ready=PENDING,
        notices=[_invalidated(None, B)]),
    row("gap-intent-replacement-vanished", record(intent=GAP_INTENT), [],
        Outcome.INVALIDATE, new=record(), instance=None, instance_id=A, ready=PENDING,
        notices=[_invalidated(None, B)]),
    row("gap-intent-authority-back", record(intent=GAP_INTENT), [container(A)],
        Outcome.INVALIDATE, new=record(), instance=A, instance_id=A, ready=PENDING,
        notices=[_invalidated(None, B)]),
    row("gap-intent-authority-back-as-backup", record(intent=GAP_INTENT), [A_BACKUP, B_OK],
        Outcome.INVALIDATE, new=record(), instance=A, instance_id=A, ready=PENDING,
        notices=[_invalidated(None, B)]),
    # OWN-8: an intent whose incumbent is not the authority is never the intended overlap.
    row("intent-for-another-incumbent", record(intent=intent(C, B, BACKUP)),
        [container(C, BACKUP, "exited"), B_OK],
        Outcome.INVALIDATE, new=record(), instance=None, instance_id=A, ready=PENDING,
        notices=[_invalidated(C, B)]),
]


# -- steps 5 and 2: the gap handoff ----------------------------------------------------------------

GAP_ROWS = [
    # OWN-5, OWN-10: A is gone and exactly one acceptable candidate exists: record an intent
    # without incumbent (and keep A's ID: no Deleted, no adoption yet).
    row("gap-first-observation", record(), [B_OK],
        Outcome.RECORD_INTENT, new=record(intent=GAP_INTENT), instance=None, instance_id=A,
        ready=PENDING, notices=[_intent_recorded("-", B)], candidate_ids=B),
    row("gap-first-observation-created", record(retired=(D,)), [container(B, state="created")],
        Outcome.RECORD_INTENT, new=record(retired=(D,), intent=GAP_INTENT), instance=None,
        instance_id=A, ready=PENDING, notices=[_intent_recorded("-", B)]),
    row("gap-first-observation-restarting", record(), [container(B, state="restarting")],
        Outcome.RECORD_INTENT, new=record(intent=GAP_INTENT), instance=None, instance_id=A,
        ready=PENDING, notices=[_intent_recorded("-", B)]),
    # OWN-5: the next consistent observation adopts.
    row("gap-second-observation", record(intent=GAP_INTENT), [B_OK],
        Outcome.ADOPT, new=record(B, retired=(A,)), instance=B, instance_id=B, ready=RUNNING,
        notices=[_replaced(A, B)]),
    row("gap-second-observation-restarting", record(retired=(D,), intent=GAP_INTENT),
        [container(B, state="restarting")],
        Outcome.ADOPT, new=record(B, retired=(D, A)), instance=B, instance_id=B,
        ready=READY_BY_STATE["restarting"], notices=[_replaced(A, B)]),
]


# -- step 4: rollback to a retired instance --------------------------------------------------------

ROLLBACK_ROWS = [
    # OWN-13: A (now retired) comes back under the canonical name while B, the authority, is gone.
    row("rollback-alone", record(B, retired=(A,)), [container(A)],
        Outcome.ROLLBACK, new=record(A, retired=(B,)), instance=A, instance_id=A, ready=RUNNING,
        notices=[(f"rollback:{B}:{A}", "SandboxInstanceRollback")]),
    row("rollback-alone-created", record(B, retired=(D, A)), [container(A, state="created")],
        Outcome.ROLLBACK, new=record(A, retired=(D, B)), instance=A, instance_id=A,
        ready=READY_BY_STATE["created"],
        notices=[(f"rollback:{B}:{A}", "SandboxInstanceRollback")]),
    row("rollback-alone-restarting", record(B, retired=(A,)),
        [container(A, state="restarting")],
        Outcome.ROLLBACK, new=record(A, retired=(B,)), instance=A, instance_id=A,
        ready=READY_BY_STATE["restarting"],
        notices=[(f"rollback:{B}:{A}", "SandboxInstanceRollback")]),
    # OWN-13, OWN-20 ("Where this project decides" 8): renamed back but never started again.
    row("rollback-alone-exited", record(B, retired=(A,)), [container(A, state="exited")],
        Outcome.ROLLBACK, new=record(A, retired=(B,)), instance=A, instance_id=A,
        ready=READY_BY_STATE["exited"],
        notices=[(f"rollback:{B}:{A}", "SandboxInstanceRollback")]),
    # OWN-13: other candidates being only retired exited backups.
    row("rollback-beside-retired-exited-backup", record(B, retired=(C, A)),
        [container(C, BACKUP, "exited"), container(A)],
        Outcome.ROLLBACK, new=record(A, retired=(C, B)), instance=A, instance_id=A,
        ready=RUNNING, notices=[(f"rollback:{B}:{A}", "SandboxInstanceRollback")]),
    row("rollback-beside-two-retired-exited-backups", record(B, retired=(C, D, A)),
        [container(D, OTHER_BACKUP, "exited"), container(A), container(C, BACKUP, "exited")],
        Outcome.ROLLBACK, new=record(A, retired=(C, D, B)), instance=A, instance_id=A,
        ready=RUNNING, notices=[(f"rollback:{B}:{A}", "SandboxInstanceRollback")]),
    # OWN-13: the retired instance is recognised by ID; its generation label is not required
    # (the generation check guards adoption of new containers, not the return of a former one).
    row("rollback-retired-with-other-generation", record(B, retired=(A,)),
        [container(A, generation=OTHER_GEN)],
        Outcome.ROLLBACK, new=record(A, retired=(B,)), instance=A, instance_id=A, ready=RUNNING,
        notices=[(f"rollback:{B}:{A}", "SandboxInstanceRollback")]),
    row("rollback-record-without-generation", record(B, generation=None, retired=(A,)),
        [container(A, generation=None)],
        Outcome.ROLLBACK, new=record(A, generation=None, retired=(B,)), instance=A,
        instance_id=A, ready=RUNNING,
        notices=[(f"rollback:{B}:{A}", "SandboxInstanceRollback")]),
]

REFUSED_ROLLBACK_ROWS = [
    # OWN-13, OWN-7: a container that was never this sandbox's instance cannot be rolled back
    # to: with a wrong or a missing generation it is a conflict ...
    row("never-owned-other-generation", record(B, retired=(A,)),
        [container(C, generation=OTHER_GEN)],
        Outcome.CONFLICT, instance=None, instance_id=B, ready=CONFLICT,
        notices=[_authority_gone(B, C)], candidate_ids=C),
    row("never-owned-missing-generation", record(B, retired=(A,)),
        [container(C, generation=None)],
        Outcome.CONFLICT, instance=None, instance_id=B, ready=CONFLICT,
        notices=[_authority_gone(B, C)]),
    row("never-owned-beside-retired-backup", record(B, retired=(A,)),
        [container(A, BACKUP, "exited"), container(C, generation=OTHER_GEN)],
        Outcome.CONFLICT, instance=None, instance_id=B, ready=CONFLICT,
        notices=[_authority_gone(B, f"{A},{C}")], candidate_ids=f"{A},{C}"),
    # OWN-13: ... and with the journaled generation it is a gap handoff (two observations), not
    # an immediate rollback.
    row("never-owned-journaled-generation", record(B, retired=(A,)), [container(C)],
        Outcome.RECORD_INTENT, new=record(B, retired=(A,), intent=intent(None, C, None)),
        instance=None, instance_id=B, ready=PENDING, notices=[_intent_recorded("-", C)]),
    # OWN-13: the retired instance is dead, paused or being removed, or not canonical.
    row("retired-dead-canonical", record(B, retired=(A,)), [container(A, state="dead")],
        Outcome.CONFLICT, instance=None, instance_id=B, ready=CONFLICT,
        notices=[_authority_gone(B, A)]),
    row("retired-paused-canonical", record(B, retired=(A,)), [container(A, state="paused")],
        Outcome.CONFLICT, instance=None, instance_id=B, ready=CONFLICT,
        notices=[_authority_gone(B, A)]),
    row("retired-running-under-backup-name", record(B, retired=(A,)),
        [container(A, BACKUP, "running")],
        Outcome.CONFLICT, instance=None, instance_id=B, ready=CONFLICT,
        notices=[_authority_gone(B, A)]),
    # OWN-13: other candidates that are not retired exited backups block the rollback.
    row("retired-beside-never-owned-backup", record(B, retired=(A,)),
        [container(A), container(C, BACKUP, "exited")],
        Outcome.CONFLICT, instance=None, instance_id=B, ready=CONFLICT,
        notices=[_authority_gone(B, f"{A},{C}")]),
    row("retired-beside-retired-exited-canonical", record(B, retired=(C, A)),
        [container(A), container(C, OTHER_NAME, "exited")],
        Outcome.CONFLICT, instance=None, instance_id=B, ready=CONFLICT,
        notices=[_authority_gone(B, f"{A},{C}")]),
    row("two-revivable-retired-instances", record(B, retired=(C, A)),
        [container(A), container(C, state="created")],
        Outcome.CONFLICT, instance=None, instance_id=B, ready=CONFLICT,
        notices=[_authority_gone(B, f"{A},{C}")]),
    # OWN-8, OWN-13: with an intent pending, the intent is invalidated first.
    row("rollback-waits-for-intent-invalidation",
        record(B, retired=(A,), intent=intent(None, C, None)),
        [container(A)],
        Outcome.INVALIDATE, new=record(B, retired=(A,)), instance=None, instance_id=B,
        ready=PENDING, notices=[_invalidated(None, C)]),
]


# -- step 6: missing, or a conflict ----------------------------------------------------------------

MISSING_AND_CONFLICT_ROWS = [
    # OWN-6, OWN-10: A absent and no candidate: keep A's ID, ContainerInstanceMissing, no Deleted.
    row("missing", record(), [],
        Outcome.MISSING, instance=None, instance_id=A, ready=MISSING,
        notices=[(f"missing:{A}", "ContainerInstanceMissing")]),
    row("missing-with-retired", record(retired=(D, E)), [],
        Outcome.MISSING, instance=None, instance_id=A, ready=MISSING,
        notices=[(f"missing:{A}", "ContainerInstanceMissing")]),
    row("missing-record-without-generation", record(generation=None), [],
        Outcome.MISSING, instance=None, instance_id=A, ready=MISSING,
        notices=[(f"missing:{A}", "ContainerInstanceMissing")]),
    # OWN-7: a gap candidate with a missing or a wrong generation.
    row("gap-candidate-other-generation", record(), [container(B, generation=OTHER_GEN)],
        Outcome.CONFLICT, instance=None, instance_id=A, ready=CONFLICT,
        notices=[_authority_gone(A, B)], candidate_ids=B),
    row("gap-candidate-missing-generation", record(), [container(B, generation=None)],
        Outcome.CONFLICT, instance=None, instance_id=A, ready=CONFLICT,
        notices=[_authority_gone(A, B)]),
    # OWN-7: a record without generation (created by an older driver) adopts nothing.
    row("gap-record-without-generation", record(generation=None), [B_OK],
        Outcome.CONFLICT, instance=None, instance_id=A, ready=CONFLICT,
        notices=[_authority_gone(A, B)]),
    row("gap-record-and-candidate-without-generation", record(generation=None),
        [container(B, generation=None)],
        Outcome.CONFLICT, instance=None, instance_id=A, ready=CONFLICT,
        notices=[_authority_gone(A, B)]),
    # OWN-7: a gap candidate that is not canonically named.
    row("gap-candidate-not-canonical", record(), [container(B, OTHER_NAME)],
        Outcome.CONFLICT, instance=None, instance_id=A, ready=CONFLICT,
        notices=[_authority_gone(A, B)]),
    row("gap-candidate-backup-named-exited", record(), [container(B, BACKUP, "exited")],
        Outcome.CONFLICT, instance=None, instance_id=A, ready=CONFLICT,
        notices=[_authority_gone(A, B)]),
    # OWN-7: more than one candidate.
    row("gap-two-acceptable-candidates", record(), [B_OK, container(C, state="created")],
        Outcome.CONFLICT, instance=None, instance_id=A, ready=CONFLICT,
        notices=[_authority_gone(A, f"{B},{C}")], candidate_ids=f"{B},{C}"),
    row("gap-acceptable-beside-exited-backup", record(),
        [container(C, BACKUP, "exited"), B_OK],
        Outcome.CONFLICT, instance=None, instance_id=A, ready=CONFLICT,
        notices=[_authority_gone(A, f"{B},{C}")]),
    row("gap-acceptable-beside-retired-exited-backup", record(retired=(C,)),
        [container(C, BACKUP, "exited"), B_OK],
        Outcome.CONFLICT, instance=None, instance_id=A, ready=CONFLICT,
        notices=[_authority_gone(A, f"{B},{C}")]),
] + [
    # OWN-7: a gap candidate in a terminal state.
    row(f"gap-candidate-{state}", record(), [container(B, state=state)],
        Outcome.CONFLICT, instance=None, instance_id=A, ready=CONFLICT,
        notices=[_authority_gone(A, B)])
    for state in sorted(TERMINAL_STATES)
]

ALL_ROWS = (UNRESOLVED_ROWS + AUTHORITY_ALONE_ROWS + DUPLICATE_ROWS + OVERLAP_ROWS + PENDING_ROWS
            + INVALIDATE_ROWS + GAP_ROWS + ROLLBACK_ROWS + REFUSED_ROLLBACK_ROWS
            + MISSING_AND_CONFLICT_ROWS)


# -- the tables ------------------------------------------------------------------------------------


# OWN-7, OWN-15
@pytest.mark.parametrize("rec, candidates, expected", UNRESOLVED_ROWS)
def test_no_authority_is_unresolved(rec, candidates, expected):
    check(decide_for(rec, candidates), rec, expected)


# OWN-1, OWN-2
@pytest.mark.parametrize("rec, candidates, expected", AUTHORITY_ALONE_ROWS)
def test_authority_alone_drives_the_snapshot(rec, candidates, expected):
    check(decide_for(rec, candidates), rec, expected)


# OWN-2, OWN-3
@pytest.mark.parametrize("rec, candidates, expected", DUPLICATE_ROWS)
def test_duplicates_beside_a_present_authority(rec, candidates, expected):
    check(decide_for(rec, candidates), rec, expected)


# OWN-4
@pytest.mark.parametrize("rec, candidates, expected", OVERLAP_ROWS)
def test_overlapping_handoff(rec, candidates, expected):
    check(decide_for(rec, candidates), rec, expected)


# OWN-7, OWN-12
@pytest.mark.parametrize("rec, candidates, expected", PENDING_ROWS)
def test_handoff_without_an_acceptable_successor_is_pending(rec, candidates, expected):
    decision = decide_for(rec, candidates)
    check(decision, rec, expected)
    assert decision.record.intent is None


# OWN-8
@pytest.mark.parametrize("rec, candidates, expected", INVALIDATE_ROWS)
def test_an_intent_the_observation_does_not_match_is_invalidated(rec, candidates, expected):
    decision = decide_for(rec, candidates)
    check(decision, rec, expected)
    assert decision.record.intent is None
    assert decision.record.authority == rec.authority


# OWN-5, OWN-10
@pytest.mark.parametrize("rec, candidates, expected", GAP_ROWS)
def test_gap_handoff(rec, candidates, expected):
    check(decide_for(rec, candidates), rec, expected)


# OWN-13
@pytest.mark.parametrize("rec, candidates, expected", ROLLBACK_ROWS)
def test_rollback_to_a_retired_instance(rec, candidates, expected):
    check(decide_for(rec, candidates), rec, expected)


# OWN-13, OWN-7
@pytest.mark.parametrize("rec, candidates, expected", REFUSED_ROLLBACK_ROWS)
def test_no_rollback_to_a_container_never_owned(rec, candidates, expected):
    decision = decide_for(rec, candidates)
    check(decision, rec, expected)
    assert decision.outcome != Outcome.ROLLBACK
    assert decision.record.authority == rec.authority


# OWN-6, OWN-7, OWN-10
@pytest.mark.parametrize("rec, candidates, expected", MISSING_AND_CONFLICT_ROWS)
def test_missing_or_conflict(rec, candidates, expected):
    check(decide_for(rec, candidates), rec, expected)


# OWN-4, OWN-20: the candidates' order never matters (every row, every permutation).
@pytest.mark.parametrize("rec, candidates, expected", ALL_ROWS)
def test_every_row_is_independent_of_candidate_order(rec, candidates, expected):
    first = decide_for(rec, candidates)
    for order in itertools.permutations(candidates):
        assert decide_for(rec, order) == first


# OWN-11, OWN-12: every non-adopting row leaves the authority alone; no pending or conflict
# reason is ever Ready, and what the gateway makes of it is Provisioning or Error, never Ready.
@pytest.mark.parametrize("rec, candidates, expected", ALL_ROWS)
def test_rows_never_promote_while_unresolved(rec, candidates, expected):
    decision = decide_for(rec, candidates)
    if decision.outcome not in (Outcome.ADOPT, Outcome.ROLLBACK):
        assert decision.record.authority == rec.authority
        assert decision.record.retired == rec.retired
    if decision.ready.reason in PENDING_REASONS:
        assert phase_of(decision.ready) == "Provisioning"
    if decision.ready.reason in CONFLICT_REASONS:
        assert phase_of(decision.ready) == "Error"
    assert (decision.record.sandbox_id, decision.record.name, decision.record.namespace,
            decision.record.generation) == (rec.sandbox_id, rec.name, rec.namespace,
                                            rec.generation)


# -- sequences of observations ---------------------------------------------------------------------


# OWN-4: two consistent observations of the overlap adopt B, in both list orders of each.
@pytest.mark.parametrize("first_order", ["A,B", "B,A"])
@pytest.mark.parametrize("second_order", ["A,B", "B,A"])
def test_overlap_handoff_two_observations_in_any_order(first_order, second_order):
    world = {"A": A_BACKUP, "B": B_OK}
    first = decide_for(record(), [world[k] for k in first_order.split(",")])
    assert first.outcome == Outcome.RECORD_INTENT
    assert first.record.intent == OVERLAP_INTENT
    assert first.instance_id == A and first.ready.reason == "ContainerReplacementPending"
    second = decide_for(first.record, [world[k] for k in second_order.split(",")])
    assert second.outcome == Outcome.ADOPT
    assert second.record == record(B, retired=(A,))
    assert second.instance is B_OK and second.instance_id == B
    assert second.ready.status == "True"
    # A third observation: B is authoritative; A, a retired exited backup, is not a duplicate.
    third = decide_for(second.record, [world[k] for k in first_order.split(",")])
    assert third.outcome == Outcome.AUTHORITATIVE and third.notices == ()
    assert third.instance_id == B


# OWN-5: gap handoff over two observations; then the GPU tool's rollback (OWN-13).
def test_gap_handoff_then_rollback():
    first = decide_for(record(), [B_OK])
    assert (first.outcome, first.record.intent) == (Outcome.RECORD_INTENT, GAP_INTENT)
    second = decide_for(first.record, [B_OK])
    assert second.outcome == Outcome.ADOPT and second.record == record(B, retired=(A,))
    back = decide_for(second.record, [container(A)])
    assert back.outcome == Outcome.ROLLBACK and back.record == record(A, retired=(B,))


# OWN-8: churn between observations: an intent, then a mismatch, never adopts; adoption needs
# a new pair of consistent observations.
def test_churn_needs_a_new_pair_of_consistent_observations():
    rec = decide_for(record(), [A_BACKUP, B_OK]).record
    churned = decide_for(rec, [A_BACKUP, container(C)])
    assert churned.outcome == Outcome.INVALIDATE and churned.record.intent is None
    again = decide_for(churned.record, [A_BACKUP, B_OK])
    assert again.outcome == Outcome.RECORD_INTENT  # not adopted: the pair starts over
    assert decide_for(again.record, [A_BACKUP, B_OK]).outcome == Outcome.ADOPT


# OWN-8: an observation in which the incumbent's lineage does not hold is not consistent: it
# clears the intent, so the next consistent observation records a new one instead of adopting.
def test_a_lineage_break_between_observations_restarts_the_pair():
    rec = decide_for(record(), [A_BACKUP, B_OK]).record
    broken = decide_for(rec, [container(A, BACKUP, "exited", OTHER_GEN), B_OK])
    assert broken.outcome != Outcome.ADOPT and broken.record.intent is None
    assert decide_for(broken.record, [A_BACKUP, B_OK]).outcome == Outcome.RECORD_INTENT


# OWN-8, OWN-20: endless churn of replacements never adopts anything.
def test_endless_churn_never_adopts():
    rec = record()
    for i in range(12):
        replacement = container(f"{i:064x}")
        decision = decide_for(rec, [A_BACKUP, replacement])
        assert decision.outcome in (Outcome.RECORD_INTENT, Outcome.INVALIDATE)
        assert decision.record.authority == A
        rec = decision.record


# -- smaller pieces --------------------------------------------------------------------------------


# OWN-15: an untrusted (corrupt, foreign, unreadable) journal explains itself.
def test_an_untrusted_record_reports_why():
    why = "journal /state/sbx-0001.json is corrupt or foreign: bad version"
    rec = record(None, None, untrusted=why)
    decision = decide_for(rec, [B_OK])
    assert decision.outcome == Outcome.UNRESOLVED
    assert decision.record == rec and decision.instance is None and decision.instance_id is None
    assert decision.ready.reason == "ContainerOwnershipUnresolved"
    assert decision.ready.message == why
    assert [(n.key, n.reason, n.message) for n in decision.notices] == [
        ("unresolved", "ContainerOwnershipUnresolved", why)]


# OWN-7
def test_a_record_without_authority_explains_itself():
    decision = decide_for(record(None), [])
    assert decision.ready.message == "the sandbox has no authoritative container ID"


# OWN-4, OWN-17: the notices name what they are about.
def test_notice_metadata():
    recorded = decide_for(record(), [A_BACKUP, B_OK]).notices[0]
    assert dict(recorded.metadata) == {"authoritative_instance_id": A,
                                       "candidate_instance_ids": B, "backup_name": BACKUP}
    adopted = decide_for(record(intent=OVERLAP_INTENT), [A_BACKUP, B_OK]).notices[0]
    assert dict(adopted.metadata) == {"previous_instance_id": A, "authoritative_instance_id": B}
    rolled = decide_for(record(B, retired=(A,)), [container(A)]).notices[0]
    assert dict(rolled.metadata) == {"previous_instance_id": B, "authoritative_instance_id": A}
    missing = decide_for(record(), []).notices[0]
    assert dict(missing.metadata) == {"authoritative_instance_id": A}


# OWN-1, OWN-2: the generation label key is the caller's (a driver may rename its labels).
def test_the_generation_label_key_is_a_parameter():
    renamed = "example.com/generation"

    def relabelled(c):  # the generation under the renamed key only
        return replace(c, labels={**c.labels, renamed: GEN})

    a, b = container(A, BACKUP, "exited", None), container(B, generation=None)
    # A's lineage is read under the renamed key too.
    assert decide(record(), [a, relabelled(b)], CANONICAL, renamed).outcome == Outcome.PENDING
    a, b = relabelled(a), relabelled(b)
    first = decide(record(), [a, b], CANONICAL, renamed)
    assert first.outcome == Outcome.RECORD_INTENT
    assert decide(first.record, [a, b], CANONICAL, renamed).outcome == Outcome.ADOPT
    # Under the default key, the renamed label is no generation at all.
    assert decide(record(), [a, b], CANONICAL, GEN_LABEL).outcome == Outcome.PENDING


# OWN-1: ready_for_state, for every state.
@pytest.mark.parametrize("state", ALL_STATES)
def test_ready_for_state(state):
    ready = ready_for_state(container(A, state=state))
    assert (ready.status, ready.reason) == READY_BY_STATE[state]
    assert A[:12] in ready.message and state in ready.message
    assert ready.ready == (state == "running")


def test_ready_for_an_unknown_state():
    ready = ready_for_state(container(A, state="weird"))
    assert (ready.status, ready.reason) == ("False", "ContainerStateUnknown")


def test_the_state_tables_partition_all_states():
    assert NON_TERMINAL_STATES | TERMINAL_STATES == set(ALL_STATES)
    assert not NON_TERMINAL_STATES & TERMINAL_STATES


# OWN-9: the gateway's stored instance ID against the journal.
@pytest.mark.parametrize("rec, stored, expected", [
    # Nothing stored: the journal's authority.
    pytest.param(record(B, retired=(A,)), None, B, id="nothing-stored"),
    # Journal and gateway agree.
    pytest.param(record(B, retired=(A,)), B, B, id="agree"),
    # The gateway still holds the retired instance (one replacement behind): the journal wins.
    pytest.param(record(B, retired=(A,)), A, B, id="stored-is-retired"),
    pytest.param(record(C, retired=(A, B)), A, C, id="stored-is-older-retired"),
    # An ID the journal never owned cannot be reconciled: fail closed.
    pytest.param(record(B, retired=(A,)), C, None, id="stored-unknown"),
    pytest.param(record(A), B, None, id="stored-unknown-no-retired"),
    # A record without authority (untrusted journal) has nothing to offer.
    pytest.param(record(None), A, None, id="no-authority"),
    pytest.param(record(None), None, None, id="no-authority-nothing-stored"),
    pytest.param(record(None, untrusted="corrupt"), A, None, id="untrusted"),
])
def test_resolve_stored_instance(rec, stored, expected):
    assert resolve_stored_instance(rec, stored) == expected
