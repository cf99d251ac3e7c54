"""The suite's stories, played step by step against the reference driver and the fake engine.

Each test is one story of the NemoClaw Docker GPU patch (contract section 2) or of copied labels:
the test acts as another engine client (stop, rename, clone with all labels, remove), places
``observe()`` calls between the actions, and feeds everything the driver reports to a gateway
model that holds the sandbox's durable state. Every story ends with no gateway violation and the
durable state intact (OWN-10, OWN-11, OWN-12), and the replacement stories all end in the same
state: the clone B is the authority, A is retired, no intent is left.
"""

from __future__ import annotations

import pytest

from pytest_sandbox_conformance.api import CONFLICT_REASONS, PENDING_REASONS
from reference_driver.state import Intent

from helpers import (
    BACKUP_MS,
    DURABLE,
    GPU_STYLES,
    KEYS,
    Harness,
    backup_first,
    comparable_state,
    first,
    has_gpu,
    recording,
    replacement_first,
)

PENDING = "ContainerReplacementPending"
MISSING = "ContainerInstanceMissing"
CONFLICT = "ContainerIdentityConflict"
WRONG_GEN = "00000000-0000-4000-8000-000000000000"


@pytest.fixture
def h(tmp_path) -> Harness:
    return Harness(tmp_path / "journal")


def created(h: Harness) -> str:
    """Create the sandbox and check the first snapshot; return A's ID."""
    snap = h.create()
    assert snap.instance_id is not None and snap.ready.ready
    assert h.observe().instance_id == snap.instance_id
    assert h.phase() == "Ready"
    return snap.instance_id


def assert_adopted(h: Harness, a: str, b: str) -> None:
    """The end of every replacement story: B authoritative and Ready, A retired, nothing left."""
    snap = h.observe_quietly()
    assert snap.instance_id == b and snap.ready.ready, snap
    record = h.record()
    assert (record.authority, record.retired, record.intent) == (b, (a,), None)
    assert h.journaled() == record
    assert h.gateway.sandboxes[h.sid].instance_id == b
    assert h.phase() == "Ready"
    assert len(h.warnings("SandboxInstanceReplaced")) == 1
    assert h.deleted() == []
    assert h.driver.tracked() == [h.sid]
    h.assert_clean()


def assert_never_deleted_nor_foreign(h: Harness, a: str, b: str | None = None) -> None:
    """No snapshot of the timeline was driven by anything but A (or B once adopted)."""
    adopted = False
    for snap in h.history:
        assert snap is not None, "the driver stopped tracking the sandbox"
        if snap.instance_id == b and b is not None:
            adopted = True
        assert snap.instance_id == (b if adopted else a), snap
        if snap.unresolved:
            assert not snap.ready.ready
    assert h.deleted() == []


# -- (a), (b): the overlapping handoff, in both list orders -------------------------------------


def play_overlap(h: Harness, order_of) -> tuple[str, str, list[list[str]]]:
    """stop A; rename A -> backup; run B; (observe twice while both exist); rm backup."""
    listed: list[list[str]] = []
    a = created(h)
    h.story.stop(a)
    backup = h.story.rename_to_backup(a)
    snap = h.observe(recording(order_of(h.story), listed))
    assert (snap.instance_id, snap.reason) == (a, PENDING)  # handed off, no successor yet
    assert h.phase() == "Provisioning"

    b = h.story.clone(a, gpu="cdi")
    snap = h.observe(recording(order_of(h.story), listed))
    assert (snap.instance_id, snap.reason) == (a, PENDING)  # intent recorded, not adopted
    assert h.record().intent == Intent(a, b, backup)
    assert h.journaled().intent == Intent(a, b, backup)
    assert len(h.warnings("SandboxReplacementIntentRecorded")) == 1

    snap = h.observe(recording(order_of(h.story), listed))
    assert snap.instance_id == b and snap.ready.ready  # adopted at the next consistent one
    assert h.record().retired == (a,)

    h.story.remove(a)
    assert h.observe().instance_id == b
    assert_adopted(h, a, b)
    assert_never_deleted_nor_foreign(h, a, b)
    assert h.warnings(CONFLICT) == []
    return a, b, listed


def test_a_overlap_with_the_backup_listed_first(h):
    # OWN-4, OWN-20: the overlapping handoff, backup listed first.
    a, b, listed = play_overlap(h, backup_first)
    assert listed[1:] == [[a, b], [a, b]]  # the order really put the backup first


def test_b_overlap_with_the_replacement_listed_first(h):
    # OWN-4, OWN-20: the overlapping handoff, replacement listed first.
    a, b, listed = play_overlap(h, replacement_first)
    assert listed[1:] == [[b, a], [b, a]]  # the order really put the replacement first


def test_a_and_b_end_in_the_same_state(tmp_path):
    one, two = Harness(tmp_path / "one"), Harness(tmp_path / "two")
    play_overlap(one, backup_first)
    play_overlap(two, replacement_first)
    assert comparable_state(one) == comparable_state(two)
    assert [s.reason for s in one.history] == [s.reason for s in two.history]


# -- (c): a poll falls in the gap -----------------------------------------------------------------


def test_c_observed_gap_in_the_nemoclaw_sequence(h):
    """A poll after every step of stop; rename; run B; rm backup."""
    # OWN-4, OWN-6, OWN-10: every intermediate snapshot is A's (exited, then pending), never Deleted.
    a = created(h)
    h.story.stop(a)
    snap = h.observe()
    assert (snap.instance_id, snap.reason) == (a, "ContainerExited")  # A is still A
    backup = h.story.rename_to_backup(a)
    snap = h.observe()
    assert (snap.instance_id, snap.reason) == (a, PENDING)  # the canonical name is empty now
    b = h.story.clone(a)
    snap = h.observe()
    assert (snap.instance_id, snap.reason) == (a, PENDING)
    assert h.record().intent == Intent(a, b, backup)
    h.story.remove(a)
    snap = h.observe()
    assert snap.instance_id == b and snap.ready.ready
    assert_adopted(h, a, b)
    assert_never_deleted_nor_foreign(h, a, b)


def test_c_observed_gap_backup_removed_before_the_clone_runs(h):
    """stop; rename; rm backup; (polls: A missing); run B from the labels the tool kept."""
    # OWN-5, OWN-6, OWN-10, OWN-11
    a = created(h)
    labels = h.story.labels_of(a)
    h.story.stop(a)
    h.story.rename_to_backup(a)
    assert h.observe().reason == PENDING
    h.story.remove(a)
    for _ in range(3):
        snap = h.observe()
        assert (snap.instance_id, snap.reason) == (a, MISSING)
        assert h.phase() == "Error" and h.driver.tracked() == [h.sid]
    assert len(h.warnings(MISSING)) == 1
    b = h.story.clone(labels)
    snap = h.observe()
    assert (snap.instance_id, snap.reason) == (a, PENDING)
    assert h.record().intent == Intent(None, b, None)
    assert h.observe().instance_id == b
    assert_adopted(h, a, b)
    assert_never_deleted_nor_foreign(h, a, b)


def test_c_observed_gap_a_removed_before_b_is_created(h):
    """stop A; rm A; (polls: A missing, never Deleted); run B; B adopted after two polls."""
    # OWN-5, OWN-6, OWN-10
    a = created(h)
    labels = h.story.labels_of(a)
    h.story.stop(a)
    h.story.remove(a)
    snap = h.observe()
    assert (snap.instance_id, snap.reason, snap.ready.status) == (a, MISSING, "False")
    assert h.gateway.sandboxes[h.sid].durable == DURABLE
    b = h.story.clone(labels, gpu="gpus")
    snap = h.observe()
    assert (snap.instance_id, snap.reason) == (a, PENDING)
    snap = h.observe()
    assert snap.instance_id == b
    assert_adopted(h, a, b)
    assert_never_deleted_nor_foreign(h, a, b)


# -- (d): no poll in the gap ------------------------------------------------------------------------


def test_d_missed_gap_whole_handoff_between_two_polls(h):
    # OWN-5: no poll saw the gap; B is adopted after two consistent observations.
    a = created(h)
    b = h.story.handoff(a, gpu="cdi")
    snap = h.observe()
    assert (snap.instance_id, snap.reason) == (a, PENDING)  # first sight of B: intent only
    assert h.record().intent == Intent(None, b, None)
    assert h.observe().instance_id == b
    assert_adopted(h, a, b)
    assert_never_deleted_nor_foreign(h, a, b)


def test_d_missed_gap_a_removed_and_b_created_between_two_polls(h):
    a = created(h)
    labels = h.story.labels_of(a)
    h.story.stop(a)
    h.story.remove(a)
    b = h.story.clone(labels)
    assert h.observe().reason == PENDING
    assert h.observe().instance_id == b
    assert_adopted(h, a, b)
    assert h.warnings(MISSING) == []


def test_every_replacement_story_ends_in_the_same_state(tmp_path):
    """(a), (b), (c) and (d) differ only in poll timing and list order: same end state."""

    def overlap(h):
        play_overlap(h, backup_first)

    def gap(h):
        a = created(h)
        h.story.stop(a)
        h.observe()
        h.story.rename_to_backup(a)
        h.observe()
        h.story.clone(a, gpu="cdi")
        h.observe()
        h.story.remove(a)

    def missed(h):
        a = created(h)
        h.story.handoff(a, gpu="cdi")

    ends = []
    for i, play in enumerate((overlap, gap, missed)):
        h = Harness(tmp_path / str(i))
        play(h)
        h.observe_quietly(4)
        h.assert_clean()
        ends.append(comparable_state(h))
    assert ends[0] == ends[1] == ends[2]


# -- (e): restart between intent and adoption -----------------------------------------------------


@pytest.mark.parametrize("shape", ["overlap", "gap"])
def test_e_restart_between_intent_and_adoption(tmp_path, shape):
    # OWN-9: the restarted driver adopts at the next consistent observation, like the other.
    def play(h: Harness, restart: bool) -> tuple[str, str]:
        a = created(h)
        h.story.stop(a)
        h.story.rename_to_backup(a)
        b = h.story.clone(a)
        if shape == "gap":
            h.story.remove(a)
        snap = h.observe()
        assert (snap.instance_id, snap.reason) == (a, PENDING)
        before = h.record()
        assert before.intent is not None and before.intent.replacement == b
        if restart:
            old = h.driver
            new = h.restart()
            assert new is not old
            assert new.record(h.sid) == before  # authority, generation, retired, intent
        snap = h.observe()
        assert snap.instance_id == b and snap.ready.ready  # adopts at the next consistent one
        if shape == "overlap":
            h.story.remove(a)
        h.observe_quietly()
        return a, b

    base, restarted = Harness(tmp_path / "base"), Harness(tmp_path / "restarted")
    a, b = play(base, restart=False)
    assert play(restarted, restart=True) == (a, b)
    assert comparable_state(restarted) == comparable_state(base)
    assert len(restarted.warnings("SandboxInstanceReplaced")) == 1
    base.assert_clean()
    restarted.assert_clean()
    assert_never_deleted_nor_foreign(restarted, a, b)


# -- (f): copied labels ----------------------------------------------------------------------------


def test_f_running_copy_beside_a_present_authority(h):
    """A copy with all of A's labels (generation included) runs beside A: A stays."""
    # OWN-2, OWN-3, OWN-17: one ContainerIdentityConflict however many observations.
    a = created(h)
    copy = h.story.clone(a, name="hand-made-copy")
    for i in range(12):
        order = (first(copy), first(a), "newest", "oldest")[i % 4]
        snap = h.observe(order)
        assert snap.instance_id == a and snap.ready.ready, snap
        assert h.record().authority == a and h.record().intent is None
    conflicts = h.warnings(CONFLICT)
    assert len(conflicts) == 1
    assert conflicts[0].metadata["candidate_instance_ids"] == copy
    assert conflicts[0].metadata["authoritative_instance_id"] == a
    assert h.phase() == "Ready"
    h.assert_clean()


def test_f_stopped_authority_and_a_running_copy(h):
    """A is stopped (not handed off); a running copy under another name never drives Ready."""
    a = created(h)
    copy = h.story.clone(a, name="hand-made-copy")
    h.story.stop(a)
    for order in ("newest", "oldest", "newest"):
        snap = h.observe(order)
        assert (snap.instance_id, snap.reason) == (a, "ContainerExited")
    assert len(h.warnings(CONFLICT)) == 1
    assert h.warnings(CONFLICT)[0].metadata["candidate_instance_ids"] == copy
    h.assert_clean()


@pytest.mark.parametrize("generation", [WRONG_GEN, None], ids=["wrong-generation", "no-generation"])
def test_f_copy_after_the_authority_vanished_is_not_adopted(h, generation):
    # OWN-2, OWN-7: a copy without A's generation is a conflict, never adopted.
    a = created(h)
    labels = h.story.labels_of(a)
    h.story.stop(a)
    h.story.remove(a)
    copy = h.story.clone(labels, generation=generation)
    assert (KEYS.generation in h.engine.inspect(copy).labels) == (generation is not None)
    for _ in range(5):
        snap = h.observe()
        assert (snap.instance_id, snap.reason) == (a, CONFLICT), snap
        assert snap.reason in CONFLICT_REASONS and not snap.ready.ready
        assert h.record().authority == a and h.record().intent is None
    assert len(h.warnings(CONFLICT)) == 1
    assert h.warnings("SandboxInstanceReplaced") == []
    assert h.warnings("SandboxReplacementIntentRecorded") == []
    h.gateway.supervisor(h.sid, True)
    assert h.phase() == "Error"
    assert_never_deleted_nor_foreign(h, a)
    h.assert_clean()


@pytest.mark.parametrize("generation", [WRONG_GEN, None], ids=["wrong-generation", "no-generation"])
def test_f_copy_in_a_handoff_shape_without_the_generation_stays_pending(h, generation):
    """The handoff shape with a clone that lacks A's generation: pending for ever, no adoption."""
    a = created(h)
    h.story.stop(a)
    h.story.rename_to_backup(a)
    b = h.story.clone(a, generation=generation)
    for _ in range(5):
        snap = h.observe()
        assert (snap.instance_id, snap.reason) == (a, PENDING)
        assert snap.reason in PENDING_REASONS
        assert h.record().intent is None
    assert h.record().authority == a
    assert len(h.warnings(PENDING)) == 1
    assert b in h.warnings(PENDING)[0].metadata["candidate_instance_ids"]
    h.gateway.supervisor(h.sid, True)
    assert h.phase() == "Provisioning"
    h.assert_clean()


# -- the GPU replacement (OWN-19) -------------------------------------------------------------------


@pytest.mark.parametrize("style", GPU_STYLES)
def test_gpu_replacement_is_adopted_like_any_other(tmp_path, style):
    # OWN-19: same timeline as a plain clone; the adopted instance is the one with the GPU.
    plain, gpu = Harness(tmp_path / "plain"), Harness(tmp_path / "gpu")
    for h, how in ((plain, None), (gpu, style)):
        a = created(h)
        h.story.stop(a)
        h.story.rename_to_backup(a)
        h.observe()
        b = h.story.clone(a, gpu=how)
        h.observe()
        h.observe()
        h.story.remove(a)
        assert_adopted(h, a, b)
    # Exactly the same rules: the same timeline of reasons and the same end state.
    assert [s.reason for s in gpu.history] == [s.reason for s in plain.history]
    assert comparable_state(gpu)[:2] == comparable_state(plain)[:2]
    instance = gpu.engine.inspect(gpu.snap().instance_id)
    assert has_gpu(instance)  # the instance is the container that really has the GPU
    assert not has_gpu(plain.engine.inspect(plain.snap().instance_id))
    if style == "gpus":
        assert instance.device_requests[0].capabilities == (("gpu",),)
        assert instance.device_requests[0].count == -1
    elif style == "cdi":
        assert instance.device_requests[0].device_ids == ("nvidia.com/gpu=all",)
    else:
        assert instance.runtime == "nvidia" and instance.env["NVIDIA_VISIBLE_DEVICES"] == "all"


@pytest.mark.parametrize("style", GPU_STYLES)
def test_gpu_clone_with_a_wrong_generation_is_refused(h, style):
    a = created(h)
    h.story.stop(a)
    h.story.rename_to_backup(a)
    h.story.clone(a, gpu=style, generation=WRONG_GEN)
    for _ in range(4):
        snap = h.observe()
        assert (snap.instance_id, snap.reason) == (a, PENDING)
    assert h.record().authority == a
    assert not has_gpu(h.engine.inspect(h.snap().instance_id))
    h.assert_clean()


def test_gpu_rollback_after_a_failed_handoff(h):
    """The tool's rollback after B was adopted: stop B; rm B; rename backup back; start A."""
    # OWN-13
    a = created(h)
    h.story.stop(a)
    h.story.rename_to_backup(a, BACKUP_MS)
    b = h.story.clone(a, gpu="runtime")
    h.observe()
    assert h.observe().instance_id == b
    h.story.rollback(b, a)
    snap = h.observe()
    assert snap.instance_id == a and snap.ready.ready
    assert h.record().authority == a and h.record().retired == (b,)
    assert len(h.warnings("SandboxInstanceRollback")) == 1
    h.observe_quietly()
    # A drove the snapshot until B was adopted, B until the rollback, A after it.
    assert [s.instance_id for s in h.history] == [a, a, b, a, a, a, a]
    assert h.deleted() == []
    h.assert_clean()
