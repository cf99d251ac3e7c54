"""Two of the project's decisions (docs/contract.md, "Where this project decides", points 10 and
11), checked on the reference driver as a whole (the pure decision is in test_decision*.py)."""

from __future__ import annotations

from helpers import Harness, warnings_of
from reference_driver.state import Intent, Record

CONFLICT = "ContainerIdentityConflict"


def test_authority_gone_beside_a_duplicate_is_warned_again(tmp_path):
    # OWN-17, OWN-3, OWN-7: a duplicate beside the authority is one condition; the authority gone
    # beside that same (unacceptable) duplicate is another, with its own key, so a Compose-style
    # recreate (A removed, the copy D left) raises a new Warning.
    h = Harness(tmp_path / "journal")
    a = h.create().instance_id
    d = h.story.clone(a, name="box-recreated")
    h.observe_quietly(3)
    assert [w.reason for w in warnings_of(h.events)] == [CONFLICT]
    h.story.remove(a)
    h.observe_quietly(3)
    conflicts = warnings_of(h.events, CONFLICT)
    assert len(conflicts) == 2
    assert conflicts[1].metadata == {"authoritative_instance_id": a, "candidate_instance_ids": d}
    snap = h.snap()
    assert (snap.instance_id, snap.ready.status, snap.reason) == (a, "False", CONFLICT)
    # The condition stays: no third Warning while nothing changes.
    h.observe_quietly(5)
    assert len(warnings_of(h.events, CONFLICT)) == 2


def test_a_create_intent_is_kept_beside_a_same_generation_copy(tmp_path):
    # OWN-1, OWN-7: a journaled record with no authority but its own create's intent (the ID
    # the engine returned) stays unresolved beside a copy with the same generation, and keeps
    # the intent: the labels, which a copy shares, never decide which container is the driver's.
    h = Harness(tmp_path / "journal")
    a = h.create().instance_id
    copy = h.story.clone(a, name="box-copy-of-a", start=False)
    rec = h.driver.record(h.sandbox.id)
    kept = Record(rec.sandbox_id, rec.name, rec.namespace, authority=None,
                  generation=rec.generation, intent=Intent(None, a, None))
    h.driver.journal.write(kept)
    h.restart()
    h.observe_quietly(3)
    assert h.driver.record(h.sandbox.id) == kept
    snap = h.snap()
    assert snap.instance_id is None and snap.reason == "ContainerOwnershipUnresolved"
    assert h.engine.inspect(copy).state == "created"  # nothing adopted, nothing touched
