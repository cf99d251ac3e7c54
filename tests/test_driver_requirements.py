"""One or more driver-level tests per requirement OWN-1..OWN-19 (and a small OWN-20 sweep).

Every test runs the reference driver over the fake engine, usually watched by the gateway model
(``helpers.Harness``), and is written so that it fails if the requirement named in its ``# OWN-n``
comment were broken. The decision procedure itself is tested branch by branch elsewhere
(``tests/test_decision*.py``), the journal's file format and crash points in
``tests/test_journal.py``; here each rule is seen through what a driver reports.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import uuid

import pytest

from pytest_sandbox_conformance.api import (
    CONFLICT_REASONS,
    PENDING_REASONS,
    DeletedEvent,
    SandboxSpec,
)
from pytest_sandbox_conformance.engines.base import EngineError
from pytest_sandbox_conformance.engines.fake import EMPTY_ID, FakeEngine
from reference_driver import DriverError, ReferenceDriver
from reference_driver.journal import Journal
from reference_driver.naming import canonical_name
from reference_driver.state import Intent, Record

from helpers import (
    BACKUP_MS,
    DURABLE,
    GPU_STYLES,
    KEYS,
    SANDBOX,
    Harness,
    backup_first,
    comparable_state,
    first,
    has_gpu,
    replacement_first,
    snapshot_events,
    warnings_of,
)

PENDING = "ContainerReplacementPending"
MISSING = "ContainerInstanceMissing"
CONFLICT = "ContainerIdentityConflict"
UNRESOLVED = "ContainerOwnershipUnresolved"
WRONG_GEN = "00000000-0000-4000-8000-000000000000"
OTHER = SandboxSpec(id="sbx-0002", name="other")


class SimulatedCrash(BaseException):
    """The driver process dying at a point (nothing in the driver may catch it)."""


@pytest.fixture
def h(tmp_path) -> Harness:
    return Harness(tmp_path / "journal")


def created(h: Harness) -> str:
    snap = h.create()
    assert h.observe().instance_id == snap.instance_id
    return snap.instance_id


def handed_off(h: Harness, *, clone: bool = True, **clone_args) -> tuple[str, str | None, str]:
    """Create, stop A, rename it to the backup name, optionally run the clone B."""
    a = created(h)
    h.story.stop(a)
    backup = h.story.rename_to_backup(a)
    b = h.story.clone(a, **clone_args) if clone else None
    return a, b, backup


def journal_files(h: Harness) -> list[str]:
    return sorted(p.name for p in h.state_dir.iterdir()) if h.state_dir.exists() else []


def write_journal(h: Harness, record: Record) -> None:
    Journal(h.state_dir, h.namespace).write(record)


def adopted(h: Harness) -> bool:
    return bool(h.warnings("SandboxInstanceReplaced") or h.warnings("SandboxInstanceRollback"))


# == OWN-1 Authority from create ===================================================================


def test_create_reports_the_engine_id_as_authority_with_a_fresh_generation(h):
    # OWN-1: the returned ID is the authority; the container carries a fresh UUIDv4 generation.
    snap = h.create()
    [container] = h.engine.snapshot()
    assert snap.instance_id == container.id
    record = h.record()
    assert record.authority == container.id
    assert record.generation == container.labels[KEYS.generation]
    assert uuid.UUID(record.generation).version == 4
    assert h.journaled() == record
    for key, value in KEYS.identity("default", SANDBOX.id, SANDBOX.name).items():
        assert container.labels[key] == value
    assert container.name == canonical_name(SANDBOX.name, SANDBOX.id)
    h2 = Harness(h.state_dir.parent / "second", engine=h.engine, sandbox=OTHER)
    h2.create()
    assert h2.record(OTHER.id).generation != record.generation  # fresh per container


def test_create_persists_generation_before_the_container_and_authority_before_reporting(h):
    # OWN-1: generation journaled before the container exists; the ID journaled before any report.
    seen = {}

    def before_create(spec):
        seen["at_create"] = h.journaled()
        seen["label"] = spec.labels[KEYS.generation]

    def before_start(cid):
        seen["at_start"] = h.journaled()
        seen["cid"] = cid
        seen["events"] = list(h.watcher.drain())
        h.events.extend(seen["events"])
        h.gateway.consume(seen["events"])

    h.engine.before("create", before_create)
    h.engine.before("start", before_start)
    snap = h.create()
    assert seen["at_create"].authority is None
    assert seen["at_create"].generation == seen["label"]
    assert seen["at_start"].authority == seen["cid"] == snap.instance_id
    assert snapshot_events(seen["events"]) == []  # nothing reported before it was durable
    assert snapshot_events(h.events) == [snap]


def test_create_that_cannot_journal_the_authority_reports_nothing_and_leaves_nothing(h):
    # OWN-1: not persisted -> not reported; the container it made is removed.
    writes = []

    def hook(step):
        if step == "open-temp":
            writes.append(step)
            if len(writes) == 2:  # the second write journals the authority
                raise OSError(28, "No space left on device")

    h.driver.journal.crash_hook = hook
    with pytest.raises(DriverError, match="ContainerOwnershipPersistFailed"):
        h.create()
    assert h.engine.snapshot() == []
    assert h.driver.tracked() == [] and h.snap() is None
    assert journal_files(h) == []
    assert snapshot_events(h.events) == []


def test_create_with_an_empty_id_from_the_engine_is_an_error(h):
    # OWN-1: an empty ID is an error, not an unowned sandbox: no tracked sandbox, no journal.
    h.engine.faults.arm("create", EMPTY_ID)
    with pytest.raises(DriverError):
        h.create()
    assert h.driver.tracked() == [] and h.snap() is None and h.record() is None
    assert journal_files(h) == []
    assert h.engine.snapshot() == []
    assert h.observe() is None and h.driver.tracked() == []
    assert h.restart().tracked() == []
    assert snapshot_events(h.events) == []
    # The same sandbox can be created afterwards.
    snap = h.create()
    assert snap.instance_id and h.driver.tracked() == [SANDBOX.id]


def test_create_refused_by_the_engine_leaves_nothing(h):
    # OWN-1: a failed create journals nothing that survives.
    h.engine.faults.arm("create")
    with pytest.raises(DriverError):
        h.create()
    assert h.driver.tracked() == [] and journal_files(h) == [] and h.engine.snapshot() == []


# == OWN-2 Labels are discovery only ===============================================================


@pytest.mark.parametrize("state", ["created", "running", "restarting", "exited", "dead", "paused"])
def test_copied_label_container_never_drives_the_snapshot(h, state):
    # OWN-2: a container with every label (generation included) but a foreign ID is not the instance.
    a = created(h)
    h.story.stop(a)  # A exited: a label-trusting driver would prefer a running copy
    copy = h.story.clone(a, name="hand-made-copy", state=state)
    for order in (first(copy), first(a), "newest", "oldest"):
        snap = h.observe(order)
        assert snap.instance_id == a and snap.reason == "ContainerExited", snap
    assert h.record().authority == a
    h.assert_clean()


def test_hand_made_docker_run_label_container_is_not_adopted(h):
    # OWN-2: `docker run --label` with the identity labels (no generation) under the canonical name.
    a = created(h)
    h.story.stop(a)
    h.story.remove(a)
    labels = KEYS.identity("default", SANDBOX.id, SANDBOX.name)
    fake = h.story.clone(labels)
    for _ in range(4):
        snap = h.observe(first(fake))
        assert snap.instance_id == a and snap.reason == CONFLICT
    assert h.record().authority == a
    h.assert_clean()


def test_containers_of_another_namespace_or_name_are_not_candidates(h):
    # OWN-2: a candidate must match namespace, sandbox id and sandbox name labels.
    a = created(h)
    labels = h.story.labels_of(a)
    other_ns = dict(labels, **{KEYS.namespace: "elsewhere"})
    other_name = dict(labels, **{KEYS.sandbox_name: "not-demo"})
    h.story.clone(other_ns, name="copy-ns")
    h.story.clone(other_name, name="copy-name")
    snap = h.observe()
    assert snap.instance_id == a and snap.ready.ready
    assert h.warnings(CONFLICT) == []  # not even duplicates: they are not candidates
    h.story.stop(a)
    h.story.remove(a)
    assert h.observe().reason == MISSING  # and never adopted
    assert h.observe().reason == MISSING


# == OWN-3 Duplicates beside a present authority ===================================================


@pytest.mark.parametrize("dup_state", ["created", "running", "exited", "dead", "paused", "restarting"])
@pytest.mark.parametrize("order", ["dup-first", "authority-first"])
def test_authority_present_wins_over_duplicates_in_any_state_and_order(h, dup_state, order):
    # OWN-3: A drives the snapshot whatever the duplicates' state and list order; one Warning.
    a = created(h)
    d1 = h.story.clone(a, name="dup-one", state=dup_state)
    d2 = h.story.clone(a, name=h.story.backup(BACKUP_MS), generation=None, state=dup_state)
    for _ in range(5):
        snap = h.observe(first(d1) if order == "dup-first" else first(a))
        assert snap.instance_id == a and snap.ready.ready, snap
    [warning] = h.warnings(CONFLICT)
    assert warning.metadata["candidate_instance_ids"] == ",".join(sorted([d1, d2]))
    assert warning.metadata["authoritative_instance_id"] == a
    assert h.record().authority == a and h.record().intent is None
    h.assert_clean()


def test_authority_not_running_still_drives_the_snapshot_beside_a_running_duplicate(h):
    # OWN-3: A is authoritative in any state that is not the handoff shape.
    a = created(h)
    dup = h.story.clone(a, name="dup")
    for state, reason in (("paused", "ContainerPaused"), ("dead", "ContainerDead"),
                          ("exited", "ContainerExited")):
        h.engine.set_state(a, state)
        snap = h.observe(first(dup))
        assert (snap.instance_id, snap.reason) == (a, reason)
    assert len(h.warnings(CONFLICT)) == 1
    h.assert_clean()


def test_exited_authority_under_the_canonical_name_is_not_a_handoff(h):
    # OWN-3: exited A keeps its canonical name -> not handoff-shaped -> B is a duplicate.
    a = created(h)
    h.story.stop(a)
    b = h.story.clone(a, name="something-else")
    for _ in range(3):
        snap = h.observe()
        assert (snap.instance_id, snap.reason) == (a, "ContainerExited")
    assert h.record().intent is None
    assert h.warnings(CONFLICT)[0].metadata["candidate_instance_ids"] == b


# == OWN-4 Overlapping handoff =====================================================================


@pytest.mark.parametrize("order", [backup_first, replacement_first], ids=["backup-first",
                                                                          "replacement-first"])
def test_overlap_records_intent_durably_then_adopts(h, order):
    # OWN-4: intent at the first observation (durable, pending), adoption at the next one.
    a, b, backup = handed_off(h)
    snap = h.observe(order(h.story))
    assert (snap.instance_id, snap.reason, snap.ready.status) == (a, PENDING, "False")
    assert h.record().intent == Intent(a, b, backup)
    assert h.journaled().intent == Intent(a, b, backup)  # durably recorded
    [w] = h.warnings("SandboxReplacementIntentRecorded")
    assert (w.metadata["authoritative_instance_id"], w.metadata["candidate_instance_ids"],
            w.metadata["backup_name"]) == (a, b, backup)
    assert h.warnings("SandboxInstanceReplaced") == []
    snap = h.observe(order(h.story))
    assert snap.instance_id == b and snap.ready.ready
    record = h.record()
    assert (record.authority, record.retired, record.intent) == (b, (a,), None)
    assert h.journaled() == record
    [w] = h.warnings("SandboxInstanceReplaced")
    assert (w.metadata["previous_instance_id"], w.metadata["authoritative_instance_id"]) == (a, b)
    h.assert_clean()


def test_overlap_outcome_does_not_depend_on_list_order(tmp_path):
    # OWN-4: backup first, replacement first, or alternating: the same outcome.
    ends = []
    for i, orders in enumerate(((backup_first, backup_first), (replacement_first, replacement_first),
                                (backup_first, replacement_first),
                                (replacement_first, backup_first))):
        h = Harness(tmp_path / str(i))
        a, b, _ = handed_off(h)
        assert h.observe(orders[0](h.story)).reason == PENDING
        assert h.observe(orders[1](h.story)).instance_id == b
        ends.append((comparable_state(h), [s.reason for s in h.history]))
    assert all(end == ends[0] for end in ends)


@pytest.mark.parametrize("state,reason", [("created", "ContainerCreated"),
                                          ("restarting", "Starting")])
def test_overlap_adopts_a_replacement_that_is_created_or_restarting(h, state, reason):
    # OWN-4: non-terminal means created/running/restarting.
    a, b, _ = handed_off(h, start=False, state=state)
    assert h.observe().reason == PENDING
    snap = h.observe()
    assert (snap.instance_id, snap.reason) == (b, reason)
    h.assert_clean()


def test_overlap_needs_the_incumbent_exited(h):
    # OWN-4: a running incumbent under the backup name is not a handoff: A stays, B is a duplicate.
    a = created(h)
    h.story.rename_to_backup(a)
    b = h.story.clone(a)
    for _ in range(3):
        snap = h.observe()
        assert snap.instance_id == a and snap.ready.ready
    assert h.record().intent is None
    assert h.warnings(CONFLICT)[0].metadata["candidate_instance_ids"] == b


def test_overlap_with_a_successor_under_a_non_canonical_name_is_pending(h):
    # OWN-4: the successor must have the canonical name.
    a, b, _ = handed_off(h, name="not-canonical")
    for _ in range(3):
        assert h.observe().reason == PENDING
    assert h.record().authority == a and h.record().intent is None


# == OWN-5 Gap handoff =============================================================================


def test_gap_handoff_records_an_intent_without_incumbent_then_adopts(h):
    # OWN-5: A absent, one canonical non-terminal candidate with the generation: intent, then adopt.
    a = created(h)
    labels = h.story.labels_of(a)
    h.story.stop(a)
    h.story.remove(a)
    b = h.story.clone(labels)
    snap = h.observe()
    assert (snap.instance_id, snap.reason) == (a, PENDING)
    assert h.record().intent == Intent(None, b, None)
    assert h.journaled().intent == Intent(None, b, None)
    assert len(h.warnings("SandboxReplacementIntentRecorded")) == 1
    snap = h.observe()
    assert snap.instance_id == b and snap.ready.ready
    assert (h.record().authority, h.record().retired) == (b, (a,))
    h.assert_clean()


def test_gap_candidate_under_a_backup_name_is_not_adopted(h):
    # OWN-5: the candidate must be canonical.
    a = created(h)
    labels = h.story.labels_of(a)
    h.story.stop(a)
    h.story.remove(a)
    h.story.clone(labels, name=h.story.backup(42))
    for _ in range(3):
        assert h.observe().reason == CONFLICT
    assert h.record().authority == a


# == OWN-6 Missing instance ========================================================================


def test_missing_instance_keeps_the_id_and_tracking_and_never_deletes(h):
    # OWN-6: A gone, no candidate: snapshot keeps A's ID, Ready=False ContainerInstanceMissing.
    a = created(h)
    h.story.remove(a)
    for _ in range(5):
        snap = h.observe()
        assert (snap.instance_id, snap.ready.status, snap.reason) == (a, "False", MISSING)
        assert h.driver.tracked() == [SANDBOX.id]
    [w] = h.warnings(MISSING)
    assert w.metadata["authoritative_instance_id"] == a
    assert h.deleted() == []
    assert h.record().authority == a
    assert h.restart().record(SANDBOX.id).authority == a
    assert h.observe().reason == MISSING
    h.assert_clean()


# == OWN-7 Fail closed =============================================================================


def _gap_with(h: Harness, **clone_args) -> tuple[str, list[str]]:
    a = created(h)
    labels = h.story.labels_of(a)
    h.story.stop(a)
    h.story.remove(a)
    return a, [h.story.clone(labels, **clone_args)]


GAP_CASES = {
    "wrong-generation": lambda h: _gap_with(h, generation=WRONG_GEN),
    "missing-generation": lambda h: _gap_with(h, generation=None),
    "replacement-exited": lambda h: _gap_with(h, state="exited"),
    "replacement-dead": lambda h: _gap_with(h, state="dead"),
    "replacement-paused": lambda h: _gap_with(h, state="paused"),
    "replacement-removing": lambda h: _gap_with(h, state="removing"),
}


def _two_candidates(h: Harness):
    a, [b] = _gap_with(h)
    return a, [b, h.story.clone(h.story.labels_of(b), name="second-candidate")]


GAP_CASES["two-candidates"] = _two_candidates


@pytest.mark.parametrize("case", sorted(GAP_CASES))
def test_fail_closed_without_incumbent_is_an_identity_conflict(h, case):
    # OWN-7: no adoption, a ContainerIdentityConflict snapshot and exactly one Warning.
    a, others = GAP_CASES[case](h)
    for order in ("newest", "oldest", "newest", "oldest"):
        snap = h.observe(order)
        assert (snap.instance_id, snap.reason, snap.ready.status) == (a, CONFLICT, "False")
        assert h.record().authority == a and h.record().intent is None
    [w] = h.warnings(CONFLICT)
    assert w.metadata["candidate_instance_ids"] == ",".join(sorted(others))
    assert not adopted(h) and h.warnings("SandboxReplacementIntentRecorded") == []
    h.gateway.supervisor(SANDBOX.id, True)
    assert h.phase() == "Error"
    h.assert_clean()


HANDOFF_CASES = {
    "wrong-generation": dict(generation=WRONG_GEN),
    "missing-generation": dict(generation=None),
    "replacement-exited": dict(state="exited"),
    "replacement-dead": dict(state="dead"),
    "replacement-paused": dict(state="paused"),
    "replacement-removing": dict(state="removing"),
}


@pytest.mark.parametrize("case", sorted(HANDOFF_CASES) + ["two-candidates"])
def test_fail_closed_handoff_shape_reports_replacement_pending(h, case):
    # OWN-7: a handoff-shaped incumbent whose successor is not acceptable: pending, one Warning.
    if case == "two-candidates":
        a, b, _ = handed_off(h)
        others = [b, h.story.clone(a, name="another-clone")]
    else:
        a, b, _ = handed_off(h, **HANDOFF_CASES[case])
        others = [b]
    for order in (backup_first, replacement_first, backup_first, replacement_first):
        snap = h.observe(order(h.story))
        assert (snap.instance_id, snap.reason, snap.ready.status) == (a, PENDING, "False")
        assert h.record().authority == a and h.record().intent is None
    [w] = h.warnings(PENDING)
    assert w.metadata["candidate_instance_ids"] == ",".join(sorted(others))
    assert not adopted(h) and h.warnings("SandboxReplacementIntentRecorded") == []
    h.gateway.supervisor(SANDBOX.id, True)
    assert h.phase() == "Provisioning"
    h.assert_clean()


def test_fail_closed_for_a_record_without_generation(h):
    # OWN-7: a record from an older driver (no generation): nothing is ever adopted.
    a = h.story.clone(KEYS.identity("default", SANDBOX.id, SANDBOX.name), generation=None)
    write_journal(h, Record(SANDBOX.id, SANDBOX.name, "default", authority=a, generation=None))
    h.restart()
    h.gateway.register(SANDBOX.id, SANDBOX.name, DURABLE)
    assert h.observe().instance_id == a  # A present: authoritative as before
    # the handoff, clone carrying A's (absent) generation
    h.story.stop(a)
    h.story.rename_to_backup(a)
    b = h.story.clone(a)
    for _ in range(3):
        snap = h.observe()
        assert (snap.instance_id, snap.reason) == (a, PENDING)
    h.story.remove(a)
    for _ in range(3):
        snap = h.observe()
        assert (snap.instance_id, snap.reason) == (a, CONFLICT)
    assert h.record().authority == a and not adopted(h)
    assert b in h.container_ids()
    assert len(h.warnings(CONFLICT)) == 1 and len(h.warnings(PENDING)) == 1
    h.assert_clean()


def test_fail_closed_without_any_authoritative_id(h):
    # OWN-7: a journal with a generation but no authority (a crash inside create): unresolved.
    gen = str(uuid.uuid4())
    labels = dict(KEYS.identity("default", SANDBOX.id, SANDBOX.name), **{KEYS.generation: gen})
    c = h.story.clone(labels)  # the container that create made before the crash
    write_journal(h, Record(SANDBOX.id, SANDBOX.name, "default", authority=None, generation=gen))
    h.restart()
    h.gateway.register(SANDBOX.id, SANDBOX.name, DURABLE)
    for _ in range(4):
        snap = h.observe()
        assert (snap.instance_id, snap.reason, snap.ready.status) == (None, UNRESOLVED, "False")
    [w] = h.warnings(UNRESOLVED)
    assert w.metadata["candidate_instance_ids"] == c
    assert h.record().authority is None and not adopted(h)
    h.gateway.supervisor(SANDBOX.id, True)
    assert h.phase() == "Error"
    h.assert_clean()


def test_exited_replacement_after_an_intent_is_not_adopted(h):
    # OWN-7, OWN-20: once an intent names B, a B that exits before the next observation is a
    # terminal replacement: the intent is invalidated and nothing is adopted, exactly as if no
    # poll had fallen between the handoff and B's exit (docs/contract.md, "Where this project
    # decides": section 4 step 2's "or exited" is not followed).
    a, b, _ = handed_off(h)
    assert h.observe().reason == PENDING
    h.story.remove(a)
    h.story.stop(b)
    snap = h.observe()
    assert (snap.instance_id, snap.reason) == (a, PENDING)
    assert h.record().authority == a and h.record().intent is None
    snap = h.observe()
    assert (snap.instance_id, snap.reason) == (a, "ContainerIdentityConflict")
    h.assert_clean()


# == OWN-8 Interrupted or churned intent ===========================================================


def _intent_recorded(h: Harness) -> tuple[str, str, str]:
    a, b, backup = handed_off(h)
    assert h.observe().reason == PENDING
    assert h.record().intent == Intent(a, b, backup)
    return a, b, backup


def _swap_replacement(h, a, b):
    h.story.remove(b)
    return [h.story.clone(a)]


def _third_candidate(h, a, b):
    return [b, h.story.clone(a, name="third")]


def _replacement_vanished(h, a, b):
    h.story.remove(b)
    return []


def _incumbent_renamed(h, a, b):
    h.story.rename(a, h.story.backup(BACKUP_MS + 1))
    return [b]


def _incumbent_restarted(h, a, b):
    h.story.start(a)
    return [b]


CHURN = {
    "replacement-swapped": _swap_replacement,
    "third-candidate": _third_candidate,
    "replacement-vanished": _replacement_vanished,
    "incumbent-renamed": _incumbent_renamed,
    "incumbent-restarted": _incumbent_restarted,
}


@pytest.mark.parametrize("case", sorted(CHURN))
def test_intent_not_matching_the_next_observation_is_invalidated(h, case):
    # OWN-8: the intent is cleared, one SandboxReplacementIntentInvalidated, nothing adopted.
    a, b, _ = _intent_recorded(h)
    CHURN[case](h, a, b)
    snap = h.observe()
    assert snap.instance_id == a and not snap.ready.ready
    assert snap.reason == PENDING
    assert h.record().intent is None and h.journaled().intent is None
    assert h.record().authority == a and not adopted(h)
    [w] = h.warnings("SandboxReplacementIntentInvalidated")
    assert w.metadata["authoritative_instance_id"] == a
    h.assert_clean()


def test_after_invalidation_adoption_needs_a_new_pair_of_observations(h):
    # OWN-8: swapped replacement C: invalidate, then intent for C, then adopt C (three polls).
    a, b, backup = _intent_recorded(h)
    [c] = _swap_replacement(h, a, b)
    assert h.observe().reason == PENDING and h.record().intent is None
    snap = h.observe()
    assert snap.reason == PENDING and h.record().intent == Intent(a, c, backup)
    snap = h.observe()
    assert snap.instance_id == c and snap.ready.ready
    assert h.record().retired == (a,)
    h.assert_clean()


@pytest.mark.parametrize("shape", ["overlap", "gap"])
def test_endless_churn_never_adopts(h, shape):
    # OWN-8: a replacement swapped before every observation is never adopted.
    a, b, _ = handed_off(h)
    labels = h.story.labels_of(a)
    if shape == "gap":
        h.story.remove(a)
    seen = set()
    for _ in range(12):
        snap = h.observe()
        assert snap.instance_id == a and snap.reason == PENDING
        assert h.record().authority == a
        seen.add(b)
        h.story.remove(b)
        b = h.story.clone(labels)
    assert not adopted(h)
    assert len(h.warnings("SandboxReplacementIntentRecorded")) == 6
    assert len(h.warnings("SandboxReplacementIntentInvalidated")) == 6
    # Once the churn stops, the last replacement is adopted after a consistent pair.
    h.observe()
    assert h.observe().instance_id == b
    h.assert_clean()


# == OWN-9 Restart transparency ====================================================================

POINTS = ["created", "stopped", "renamed", "cloned", "intent", "adopted", "removed"]


def _play_overlap(h: Harness, restart_at: str | None) -> tuple[str, str]:
    def maybe(point):
        if point == restart_at:
            before = h.record()
            h.restart()
            assert h.record() == before  # authority, generation, retired, intent restored

    a = created(h)
    maybe("created")
    h.story.stop(a)
    h.observe()
    maybe("stopped")
    h.story.rename_to_backup(a)
    h.observe()
    maybe("renamed")
    b = h.story.clone(a, gpu="cdi")
    maybe("cloned")
    h.observe()
    maybe("intent")
    h.observe()
    maybe("adopted")
    h.story.remove(a)
    h.observe()
    maybe("removed")
    h.observe_quietly()
    return a, b


@pytest.mark.parametrize("point", POINTS)
def test_restart_at_any_point_ends_in_the_same_state(tmp_path, point):
    # OWN-9: a driver restarted at any point of the overlap story ends like a never-restarted one.
    base, restarted = Harness(tmp_path / "base"), Harness(tmp_path / "restarted")
    ids = _play_overlap(base, None)
    assert _play_overlap(restarted, point) == ids
    assert comparable_state(restarted) == comparable_state(base)
    assert [s.instance_id for s in restarted.history] == [s.instance_id for s in base.history]
    restarted.assert_clean()


def test_restart_restores_the_retired_set_for_a_rollback(h):
    # OWN-9 (with OWN-13): the retired set survives a restart, so a rollback still works.
    a, b, _ = handed_off(h)
    h.observe()
    assert h.observe().instance_id == b
    h.restart()
    assert h.record().retired == (a,)
    h.story.rollback(b, a)
    snap = h.observe()
    assert snap.instance_id == a and snap.ready.ready
    assert len(h.warnings("SandboxInstanceRollback")) == 1
    h.assert_clean()


def test_restart_restores_a_gap_intent(h):
    # OWN-9: a gap intent (no incumbent) survives a restart and is adopted at the next observation.
    a = created(h)
    labels = h.story.labels_of(a)
    h.story.remove(a)
    b = h.story.clone(labels)
    h.observe()
    h.restart()
    assert h.record().intent == Intent(None, b, None)
    assert h.observe().instance_id == b
    h.assert_clean()


def test_restart_then_churn_invalidates_like_a_never_restarted_driver(tmp_path):
    # OWN-9 (with OWN-8): the restored intent is invalidated by churn exactly as before a restart.
    results = []
    for restart in (False, True):
        h = Harness(tmp_path / str(restart))
        a, b, _ = _intent_recorded(h)
        if restart:
            h.restart()
        _swap_replacement(h, a, b)
        h.observe()
        results.append((comparable_state(h), len(h.warnings("SandboxReplacementIntentInvalidated"))))
    assert results[0] == results[1]


def test_reconcile_instance_resolves_a_lagging_stored_id_in_the_journals_favour(h):
    # OWN-9: the gateway stored A; the journal adopted B (A retired): B is the answer.
    a, b, _ = handed_off(h)
    h.observe()
    stored_before = h.gateway.sandboxes[SANDBOX.id].instance_id
    assert stored_before == a
    h.watcher.close()  # the gateway misses the adoption (its stream broke)
    h.driver.observe()
    assert h.record().authority == b
    driver = h.restart()
    assert driver.reconcile_instance(SANDBOX.id, stored_before) == b  # a retired ID: lag
    assert driver.reconcile_instance(SANDBOX.id, b) == b
    assert driver.reconcile_instance(SANDBOX.id, None) == b
    assert driver.reconcile_instance(SANDBOX.id, "f" * 64) is None  # never ours: fail closed
    assert driver.reconcile_instance("no-such-sandbox", a) is None


def test_reconcile_instance_refuses_an_untrusted_journal(h):
    # OWN-9 (with OWN-15): a corrupt journal cannot reconcile anything.
    a = created(h)
    Journal(h.state_dir, "default").path_for(SANDBOX.id).write_bytes(b'{"version": 1, ')
    driver = h.restart()
    assert driver.reconcile_instance(SANDBOX.id, a) is None


# == OWN-10 Deleted only on request ================================================================


@pytest.mark.parametrize("how", ["removed", "renamed-away", "relabelled-namespace", "list-fails"])
def test_observe_never_emits_deleted_when_the_container_vanishes(h, how):
    # OWN-10: no Deleted from any observation, whatever happened to the container.
    a = created(h)
    if how == "removed":
        h.story.remove(a)
    elif how == "renamed-away":
        h.story.stop(a)
        h.story.rename(a, "unrelated-name")
        h.observe()
        h.story.remove(a)
    elif how == "relabelled-namespace":  # replaced by a container the driver does not list
        labels = dict(h.story.labels_of(a), **{KEYS.namespace: "elsewhere"})
        h.story.remove(a)
        h.story.clone(labels)
    for _ in range(5):
        if how == "list-fails":  # a failed list is not an empty one (raising is allowed)
            h.engine.faults.arm("list")
            with contextlib.suppress(EngineError):
                h.observe()
            assert h.snap().instance_id == a and h.snap().ready.ready
        else:
            h.observe()
    assert h.deleted() == []
    assert not any(isinstance(e, DeletedEvent) for e in h.events)
    assert h.driver.tracked() == [SANDBOX.id]
    assert h.gateway.sandboxes[SANDBOX.id].registered
    h.restart()
    h.observe_quietly()
    assert h.deleted() == []
    h.assert_clean()


def test_deleted_is_emitted_exactly_once_for_an_explicit_delete(h):
    # OWN-10: an explicit delete is the only source of Deleted.
    created(h)
    assert h.delete() is True
    assert h.deleted() == [DeletedEvent(SANDBOX.id)]
    h.observe_quietly()
    assert h.deleted() == [DeletedEvent(SANDBOX.id)]
    assert h.gateway.violations == []


# == OWN-11 Durable state preserved ================================================================


def test_durable_state_survives_every_non_adopting_observation(h):
    # OWN-11: pending, missing, conflict, unresolved-free timeline: durable state never changes.
    a = created(h)
    labels = h.story.labels_of(a)
    reasons = []

    def check():
        snap = h.observe()
        reasons.append(snap.reason)
        sb = h.gateway.sandboxes[SANDBOX.id]
        assert sb.registered and sb.durable == DURABLE
        assert h.gateway.durable_violations() == []

    h.story.stop(a)
    h.story.rename_to_backup(a)
    check()                                              # pending (no successor)
    wrong = h.story.clone(a, generation=WRONG_GEN)
    check()                                              # pending (unacceptable successor)
    h.story.remove(a)
    check()                                              # conflict (A gone, wrong candidate)
    h.story.remove(wrong)
    check()                                              # missing
    h.story.clone(labels)
    check()                                              # pending (gap intent)
    assert reasons == [PENDING, PENDING, CONFLICT, MISSING, PENDING]
    h.observe_quietly()
    h.assert_clean()


# == OWN-12 No promotion while unresolved ==========================================================


def test_connected_supervisor_never_promotes_pending_or_conflict(h):
    # OWN-12: with the supervisor connected, pending/conflict/missing never become Ready.
    a = created(h)
    h.gateway.supervisor(SANDBOX.id, True)
    h.story.stop(a)
    h.story.rename_to_backup(a)
    b = h.story.clone(a, start=False)  # B "created": a promotable state if it drove the snapshot
    steps = []
    for act in (lambda: None, lambda: h.story.remove(b),
                lambda: h.story.clone(a, generation=WRONG_GEN, start=False),
                lambda: h.story.remove(a)):
        act()
        snap = h.observe()
        steps.append(snap.reason)
        assert snap.reason in PENDING_REASONS | CONFLICT_REASONS
        assert not snap.ready.ready
        assert h.phase() != "Ready"
    assert steps == [PENDING, PENDING, PENDING, CONFLICT]
    h.assert_clean()


def test_adopted_created_replacement_is_then_promotable(h):
    # OWN-12 (control): once adopted, a transient reason of B is promoted by the supervisor, which
    # shows the checks above would see a promotable reason if the driver reported one.
    a, b, _ = handed_off(h, start=False)
    h.gateway.supervisor(SANDBOX.id, True)
    assert h.observe().reason == PENDING and h.phase() == "Provisioning"
    snap = h.observe()
    assert (snap.instance_id, snap.reason) == (b, "ContainerCreated")
    assert h.phase() == "Ready"
    h.assert_clean()


# == OWN-13 Rollback ===============================================================================


def test_rollback_to_the_retired_instance(h):
    # OWN-13: the retired A under the canonical name, running again, A absent... B gone: roll back.
    a, b, backup = handed_off(h)
    h.observe()
    assert h.observe().instance_id == b
    h.story.stop(b)
    h.story.remove(b)
    h.story.rename(a, h.story.canonical)
    h.story.start(a)
    snap = h.observe()
    assert snap.instance_id == a and snap.ready.ready
    assert (h.record().authority, h.record().retired) == (a, (b,))
    [w] = h.warnings("SandboxInstanceRollback")
    assert (w.metadata["previous_instance_id"], w.metadata["authoritative_instance_id"]) == (b, a)
    h.assert_clean()


def test_rollback_beside_other_retired_exited_backups(h):
    # OWN-13: other candidates that are retired exited backups do not prevent the rollback.
    # (Two retired instances present at once cannot arise from the tool's own sequence, since a
    # leftover backup blocks the next handoff, so the journal is written as a driver would have.)
    gen = str(uuid.uuid4())
    labels = dict(KEYS.identity("default", SANDBOX.id, SANDBOX.name), **{KEYS.generation: gen})
    old = h.story.clone(labels)                                     # canonical, running
    older = h.story.clone(labels, name=h.story.backup(1), state="exited")
    gone = "c" * 64                                                 # the authority, removed
    write_journal(h, Record(SANDBOX.id, SANDBOX.name, "default", authority=gone, generation=gen,
                            retired=(older, old)))
    h.restart()
    h.gateway.register(SANDBOX.id, SANDBOX.name, DURABLE)
    snap = h.observe()
    assert snap.instance_id == old and snap.ready.ready
    assert (h.record().authority, h.record().retired) == (old, (older, gone))
    [w] = h.warnings("SandboxInstanceRollback")
    assert w.metadata["previous_instance_id"] == gone
    h.observe_quietly()
    assert h.warnings(CONFLICT) == []  # the retired backup beside it is no duplicate
    h.assert_clean()


def test_never_instance_cannot_be_rolled_back_to(h):
    # OWN-13: a canonical container that was never the instance, beside a retired backup: conflict.
    a, b, _ = handed_off(h)
    h.observe()
    assert h.observe().instance_id == b
    h.story.stop(b)
    h.story.remove(b)
    stranger = h.story.clone(a, name=h.story.canonical, generation=WRONG_GEN)
    for _ in range(3):
        snap = h.observe()
        assert (snap.instance_id, snap.reason) == (b, CONFLICT)
    assert h.warnings("SandboxInstanceRollback") == []
    assert stranger != h.record().authority
    h.assert_clean()


def test_never_instance_with_the_generation_is_a_gap_handoff_not_a_rollback(h):
    # OWN-13: a canonical clone that was never the instance is not revived at once: it can only
    # go through the two-observation gap handoff of OWN-5.
    a, b, _ = handed_off(h)
    h.observe()
    assert h.observe().instance_id == b
    labels = h.story.labels_of(b)
    h.story.remove(a)
    h.story.remove(b)
    stranger = h.story.clone(labels)
    snap = h.observe()
    assert (snap.instance_id, snap.reason) == (b, PENDING)
    assert h.observe().instance_id == stranger
    assert h.warnings("SandboxInstanceRollback") == []
    assert len(h.warnings("SandboxInstanceReplaced")) == 2
    h.assert_clean()


def test_rollback_to_a_retired_instance_left_exited(h):
    # OWN-13: the retired A renamed back but never started again (the rollback's start failed):
    # it is rolled back to as it is, exited; starting it later makes it Ready. OWN-20: every
    # schedule of this story ends on A, whether or not B was adopted first.
    a, b, _ = handed_off(h)
    h.observe()
    h.observe()
    h.story.stop(b)
    h.story.remove(b)
    h.story.rename(a, h.story.canonical)
    snap = h.observe()
    assert (snap.instance_id, snap.reason) == (a, "ContainerExited")
    assert len(h.warnings("SandboxInstanceRollback")) == 1
    h.story.start(a)
    assert h.observe().instance_id == a
    h.assert_clean()


def test_rollback_requires_the_retired_instance_to_be_running_or_exited(h):
    # OWN-13: a retired A renamed back but dead is no rollback target.
    a, b, _ = handed_off(h)
    h.observe()
    h.observe()
    h.story.stop(b)
    h.story.remove(b)
    h.story.rename(a, h.story.canonical)
    h.engine.set_state(a, "dead")
    snap = h.observe()
    assert snap.instance_id == b and snap.reason == CONFLICT
    assert h.warnings("SandboxInstanceRollback") == []


def test_rollback_refused_when_another_candidate_is_not_a_retired_backup(h):
    # OWN-13: rest of the candidates must be retired exited backups.
    a, b, _ = handed_off(h)
    h.observe()
    h.observe()
    h.story.stop(b)
    h.story.remove(b)
    h.story.rename(a, h.story.canonical)
    h.story.start(a)
    extra = h.story.clone(a, name="extra-copy", state="exited")
    for _ in range(3):
        snap = h.observe()
        assert (snap.instance_id, snap.reason) == (b, CONFLICT)
    assert h.warnings("SandboxInstanceRollback") == []
    assert extra in h.warnings(CONFLICT)[0].metadata["candidate_instance_ids"]


# == OWN-14 Delete removes every exact match =======================================================


def test_delete_removes_backups_and_duplicates_but_nothing_else(h):
    # OWN-14: exact matches only (namespace, sandbox id, name); journal forgotten; deleted=True.
    a, b, _ = handed_off(h)  # A is now an exited backup, B a clone
    dup = h.story.clone(a, name="duplicate")
    labels = h.story.labels_of(a)
    keep = [
        h.story.clone(dict(labels, **{KEYS.namespace: "elsewhere"}), name="other-namespace"),
        h.story.clone(dict(labels, **{KEYS.sandbox_name: "other-name"}), name="other-name"),
        h.story.clone(dict(labels, **{KEYS.sandbox_id: "sbx-9999"}), name="other-id"),
    ]
    # The match is on namespace, id and name only: another managed-by value is still a match.
    foreign_owner = h.story.clone(dict(labels, **{KEYS.managed_by: "someone-else"}),
                                  name="not-managed")
    assert h.delete() is True
    assert h.container_ids() == keep
    for cid in (a, b, dup, foreign_owner):
        assert cid not in h.container_ids()
    assert h.driver.tracked() == [] and h.snap() is None
    assert journal_files(h) == []
    assert h.restart().tracked() == []
    assert h.deleted() == [DeletedEvent(SANDBOX.id)]
    h.assert_clean()


def test_delete_is_idempotent_and_true_only_when_something_was_removed(h):
    # OWN-14: deleted=True iff a container was removed; a second delete is harmless.
    a = created(h)
    assert h.delete() is True
    assert h.delete() is False
    assert h.delete(name=SANDBOX.name) is False
    assert h.container_ids() == [] and journal_files(h) == []
    # a tracked sandbox whose container is already gone: forgotten, but nothing removed
    h2 = Harness(h.state_dir.parent / "two", engine=h.engine, sandbox=OTHER)
    snap = h2.create()
    h.engine.remove(snap.instance_id, force=True)
    assert h2.delete() is False
    assert h2.driver.tracked() == [] and journal_files(h2) == []
    assert h2.delete() is False
    del a


def test_delete_of_an_untracked_sandbox_removes_its_containers(h):
    # OWN-14: after a lost journal, delete by id and name still removes every exact match.
    a = created(h)
    Journal(h.state_dir, "default").forget(SANDBOX.id)
    driver = h.restart()
    assert driver.tracked() == []
    assert driver.delete(SANDBOX.id, SANDBOX.name) is True
    assert a not in h.container_ids()


@pytest.mark.parametrize("op", ["create", "start", "inspect"])
def test_delete_racing_create_leaves_neither_container_nor_journal(h, op):
    # OWN-14: a delete arriving in the middle of a create (before the engine's `op`).
    results = []
    h.engine.before(op, lambda *args: results.append(h.driver.delete(SANDBOX.id, SANDBOX.name)))
    h.gateway.request_delete(SANDBOX.id)
    with pytest.raises(DriverError):
        h.create()
    assert len(results) == 1
    assert h.engine.snapshot() == []
    assert journal_files(h) == []
    assert h.driver.tracked() == [] and h.snap() is None and h.driver.snapshots() == []
    assert h.restart().tracked() == []
    h.observe_quietly()
    assert h.engine.snapshot() == [] and h.driver.tracked() == []


def test_delete_from_another_thread_during_create_removes_what_create_made(h):
    # OWN-14: a concurrent delete waits for the create and then removes everything.
    outcome = {}

    def racer(spec):
        t = threading.Thread(target=lambda: outcome.setdefault(
            "deleted", h.driver.delete(SANDBOX.id, SANDBOX.name)))
        t.start()
        outcome["thread"] = t
        t.join(0.05)  # it blocks on the driver's lock

    h.engine.before("create", racer)
    h.gateway.request_delete(SANDBOX.id)
    try:
        h.driver.create(SANDBOX)
    except DriverError:
        pass
    outcome["thread"].join(5)
    assert not outcome["thread"].is_alive()
    assert h.engine.snapshot() == [] and journal_files(h) == []
    assert h.driver.tracked() == []


# == OWN-15 The journal (driver level; file format in test_journal.py) =============================


def test_failed_journal_write_adopts_nothing_and_reports_persist_failed(h):
    # OWN-15: a failed write: ContainerOwnershipPersistFailed, memory unchanged, no adoption.
    a, b, backup = handed_off(h)

    def fail(step):
        if step == "open-temp":
            raise OSError(28, "No space left on device")

    h.driver.journal.crash_hook = fail
    for _ in range(3):
        snap = h.observe()
        assert (snap.instance_id, snap.reason) == (a, "ContainerOwnershipPersistFailed")
        assert h.record().intent is None and h.journaled().intent is None
    assert len(h.warnings("ContainerOwnershipPersistFailed")) == 1
    h.gateway.supervisor(SANDBOX.id, True)
    assert h.phase() == "Error"
    h.driver.journal.crash_hook = lambda step: None
    assert h.observe().reason == PENDING and h.record().intent == Intent(a, b, backup)
    assert h.observe().instance_id == b
    h.assert_clean()


# == OWN-16 Crash consistency (driver level; every crash point in test_journal.py) =================


@pytest.mark.parametrize("step", ["open-temp", "write-partial", "rename", "fsync-dir"])
def test_crash_during_adoption_write_resolves_consistently_after_restart(tmp_path, step):
    # OWN-16: a crash inside the adoption's journal write; the restarted driver converges.
    base = Harness(tmp_path / "base")
    a, b, _ = handed_off(base)
    base.observe()
    base.observe()
    base.story.remove(a)
    base.observe_quietly()

    h = Harness(tmp_path / "crashed")
    handed_off(h)
    h.observe()

    def crash(current):
        if current == step:
            raise SimulatedCrash(current)

    h.driver.journal.crash_hook = crash
    with pytest.raises(SimulatedCrash):
        h.driver.observe()
    h.restart()
    assert h.record().authority in (a, b)  # the old journal or the new one, never torn
    assert h.record().untrusted == ""
    h.observe_quietly()
    h.story.remove(a)
    h.observe_quietly()
    assert comparable_state(h)[:2] == comparable_state(base)[:2]
    h.assert_clean()


# == OWN-17 Deduplicated warnings ==================================================================


def test_same_condition_over_many_observations_is_one_warning(h):
    # OWN-17: one Warning per distinct condition, not one per observation.
    a = created(h)
    d1 = h.story.clone(a, name="dup")
    h.observe_quietly(10)
    assert len(h.warnings(CONFLICT)) == 1
    d2 = h.story.clone(a, name="dup-two")
    h.observe_quietly(10)
    assert len(h.warnings(CONFLICT)) == 2  # a distinct condition: other candidates
    assert h.warnings(CONFLICT)[1].metadata["candidate_instance_ids"] == ",".join(sorted([d1, d2]))
    h.story.remove(d2)
    h.observe_quietly(10)
    assert len(h.warnings(CONFLICT)) == 3  # the first condition again, after it had cleared
    assert h.warnings(CONFLICT)[2].metadata["candidate_instance_ids"] == d1
    assert len(warnings_of(h.events)) == 3


def test_condition_cleared_and_arising_again_is_reported_again(h):
    # OWN-17: the same key arising again after it cleared is a new Warning.
    a = created(h)
    h.story.stop(a)
    for round_ in range(1, 4):
        h.story.rename_to_backup(a)
        h.observe_quietly(3)
        assert len(h.warnings(PENDING)) == round_
        h.story.rename(a, h.story.canonical)
        h.observe_quietly(3)
        assert h.snap().reason == "ContainerExited"
    assert len({w.metadata["authoritative_instance_id"] for w in h.warnings(PENDING)}) == 1


def test_notice_raised_before_any_watcher_goes_to_the_first_watcher(tmp_path):
    # OWN-17: nobody watches yet; the first watcher gets the Warning, the second does not.
    engine = FakeEngine()
    driver = ReferenceDriver(engine, tmp_path / "j")
    a = driver.create(SANDBOX).instance_id
    engine.remove(a, force=True)
    driver.observe()
    driver.observe()
    first_events = driver.watch().drain()
    second_events = driver.watch().drain()
    [w] = warnings_of(first_events, MISSING)
    assert w.sandbox_id == SANDBOX.id
    assert warnings_of(second_events) == []
    # both start with the current snapshot (as WatchSandboxes does)
    assert snapshot_events(first_events)[0] == driver.snapshot(SANDBOX.id)
    assert snapshot_events(second_events) == [driver.snapshot(SANDBOX.id)]


def test_notice_raised_after_a_restart_before_watching_reaches_the_first_watcher(h):
    # OWN-17 (with OWN-9): a restarted driver keeps notices for its first watcher too.
    a = created(h)
    h.story.remove(a)
    driver = h.driver.restart()
    driver.observe()
    assert len(warnings_of(driver.watch().drain(), MISSING)) == 1


# == OWN-18 Unowned containers =====================================================================


def test_unowned_containers_never_become_sandboxes_and_are_reported_once(h):
    # OWN-18: labels of an untracked sandbox id: ignored, one UnownedSandboxContainersIgnored.
    a = created(h)
    labels = dict(h.story.labels_of(a), **{KEYS.sandbox_id: "sbx-ghost",
                                           KEYS.sandbox_name: "ghost"})
    g1 = h.story.clone(labels, name="ghost-1")
    g2 = h.story.clone(labels, name="ghost-2", state="exited")
    for _ in range(6):
        h.observe()
    assert h.driver.tracked() == [SANDBOX.id]
    assert h.snap("sbx-ghost") is None
    assert "sbx-ghost" not in h.gateway.sandboxes
    [w] = h.warnings("UnownedSandboxContainersIgnored")
    assert w.sandbox_id == ""
    assert w.metadata["container_ids"] == ",".join(sorted([g1, g2]))
    assert h.snap().instance_id == a and h.snap().ready.ready
    assert g1 in h.container_ids() and g2 in h.container_ids()  # ignored, not removed
    h.assert_clean()


def test_unowned_after_start_up_restoration_lost_journal(h):
    # OWN-18: after a restart without the journal, the sandbox's containers are unowned.
    a = created(h)
    Journal(h.state_dir, "default").forget(SANDBOX.id)
    h.restart()
    h.observe_quietly(4)
    assert h.driver.tracked() == []
    [w] = h.warnings("UnownedSandboxContainersIgnored")
    assert w.metadata["container_ids"] == a
    assert h.deleted() == []


def test_unowned_in_another_namespace_are_not_this_drivers_concern(h):
    # OWN-18: the driver reports only its own namespace's containers.
    a = created(h)
    labels = dict(h.story.labels_of(a), **{KEYS.namespace: "elsewhere",
                                           KEYS.sandbox_id: "sbx-x"})
    h.story.clone(labels, name="foreign")
    h.observe_quietly()
    assert h.warnings("UnownedSandboxContainersIgnored") == []


# == OWN-19 Device requests do not confer ownership ================================================


@pytest.mark.parametrize("style", GPU_STYLES)
@pytest.mark.parametrize("shape", ["overlap", "gap"])
def test_gpu_replacement_is_adopted_and_becomes_the_instance(h, style, shape):
    # OWN-19: adopted by the same rules; the instance is the container with the GPU.
    a, b, _ = handed_off(h, gpu=style)
    if shape == "gap":
        h.story.remove(a)
    assert h.observe().reason == PENDING
    snap = h.observe()
    assert snap.instance_id == b
    assert has_gpu(h.engine.inspect(snap.instance_id))
    if shape == "overlap":
        assert not has_gpu(h.engine.inspect(a))  # the backup, still there, has none
    h.assert_clean()


@pytest.mark.parametrize("style", GPU_STYLES)
@pytest.mark.parametrize("flaw", ["wrong-generation", "exited", "not-canonical", "beside-authority"])
def test_gpu_container_is_refused_by_the_same_rules(h, style, flaw):
    # OWN-19: a GPU does not make an unacceptable container acceptable.
    if flaw == "beside-authority":
        a = created(h)
        gpu = h.story.clone(a, name="gpu-copy", gpu=style)
        want = {"ContainerRunning"}
    else:
        args = {"wrong-generation": dict(generation=WRONG_GEN), "exited": dict(state="exited"),
                "not-canonical": dict(name="gpu-clone")}[flaw]
        a, gpu, _ = handed_off(h, gpu=style, **args)
        want = {PENDING}
    for _ in range(4):
        snap = h.observe(first(gpu))
        assert snap.instance_id == a and snap.reason in want
    assert not adopted(h) and h.record().authority == a
    h.assert_clean()


def test_driver_created_gpu_sandbox_has_its_device_request(tmp_path):
    # OWN-19: a GPU sandbox created by the driver is itself the container with the GPU.
    h = Harness(tmp_path / "j", sandbox=SandboxSpec(id="sbx-gpu", name="g", gpu=True))
    snap = h.create()
    assert has_gpu(h.engine.inspect(snap.instance_id))


# == OWN-20 Timing independence (a small exhaustive sweep of one story) ============================


SLOTS = ("stopped", "renamed", "cloned", "removed")


@pytest.mark.parametrize("polls", [p for n in range(len(SLOTS) + 1)
                                   for p in itertools.combinations(SLOTS, n)],
                         ids=lambda p: "+".join(p) or "none")
def test_every_schedule_of_polls_orders_and_restarts_converges(tmp_path, polls):
    # OWN-20: polls after any subset of the steps, either list order, with or without a restart:
    # the same end state and never a forbidden state.
    ends = set()
    for order, restart_slot in itertools.product(("newest", "oldest"), (None,) + SLOTS):
        h = Harness(tmp_path / f"{order}-{restart_slot}")
        h.engine.list_order = order
        a = created(h)

        def between(step):
            if step in polls:
                h.observe()
            if step == restart_slot:
                h.restart()

        b = h.story.handoff(a, gpu="cdi", between=between)
        h.observe_quietly(3)
        h.assert_clean()
        for snap in h.history:
            assert snap.instance_id in (a, b)
            assert not (snap.ready.ready and snap.unresolved)
        assert h.deleted() == []
        rec = h.record()
        ends.add((rec.authority, rec.retired, rec.intent, h.snap()))
    [(authority, retired, intent, snap)] = ends
    assert (authority, retired, intent) == (b, (a,), None)
    assert snap.instance_id == b and snap.ready.ready
