"""Safety properties of the pure decision procedure over random observations (Hypothesis).

Two kinds of worlds are drawn: fully random ones (any record, any candidates from a small pool of
IDs, states, names and generations), and worlds near the handoff shapes (a consistent overlap,
gap or rollback with a few attributes changed), where the boundaries of the rules are.
"""

from __future__ import annotations

import dataclasses
import warnings

from hypothesis import example, given, settings
from hypothesis import strategies as st

from decision_helpers import (
    A, B, BACKUP, C, CANONICAL, D, E, GEN, GEN_LABEL, OTHER_BACKUP, OTHER_GEN, OTHER_NAME,
    container, decide_for, record,
)
from pytest_sandbox_conformance.api import CONFLICT_REASONS, PENDING_REASONS, Condition
from pytest_sandbox_conformance.engines.base import ALL_STATES, NON_TERMINAL_STATES, Container
from reference_driver.decision import Decision, Notice, Outcome
from reference_driver.state import Intent, Record

IDS = (A, B, C, D, E)
NAMES = (CANONICAL, BACKUP, OTHER_NAME)
GENERATIONS = (GEN, OTHER_GEN, None)  # journaled, another one, missing
BACKUP_NAMES = (BACKUP, OTHER_BACKUP, None)

SETTINGS = settings(max_examples=100, deadline=None)

# When a test fails, Hypothesis' pytest plugin imports hypothesis.extra._patching (libcst), whose
# import emits a DeprecationWarning (mypy_extensions.TypedDict) that filterwarnings=error turns
# into an INTERNALERROR hiding the failure. Import it once here with that warning silenced.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import hypothesis.extra._patching  # noqa: F401
    except ImportError:  # libcst not installed: the plugin skips the patch itself
        pass


# -- worlds ----------------------------------------------------------------------------------------


@st.composite
def candidate_sets(draw, ids=IDS):
    chosen = draw(st.lists(st.sampled_from(ids), unique=True, max_size=4))
    return [container(cid, draw(st.sampled_from(NAMES)), draw(st.sampled_from(ALL_STATES)),
                      draw(st.sampled_from(GENERATIONS))) for cid in chosen]


@st.composite
def intents(draw, authority):
    incumbent = draw(st.sampled_from((authority, None) + IDS))
    return Intent(incumbent, draw(st.sampled_from(IDS)), draw(st.sampled_from(BACKUP_NAMES)))


@st.composite
def records(draw):
    authority = draw(st.one_of(st.sampled_from(IDS), st.none()))
    retired = tuple(draw(st.lists(st.sampled_from(IDS), unique=True, max_size=3)))
    generation = draw(st.sampled_from((GEN, None)))
    intent = draw(st.one_of(st.none(), intents(authority)))
    return record(authority, generation, retired, intent)


@st.composite
def random_worlds(draw):
    return draw(records()), draw(candidate_sets())


#: What a perturbed overlap may change: (what, the values it may take).
OVERLAP_CHANGES = {
    "a-state": ALL_STATES, "a-name": NAMES + (OTHER_BACKUP,), "a-gen": GENERATIONS,
    "b-state": ALL_STATES, "b-name": NAMES, "b-gen": GENERATIONS,
    "drop-a": (True,), "drop-b": (True,), "extra": (True,),
}


@st.composite
def perturbed_overlaps(draw, max_changes=3):
    """The consistent overlap (A exited under the backup name, B canonical and running, both
    with the journaled generation) with up to ``max_changes`` attributes changed: the rules'
    boundaries are one change away."""
    changes = draw(st.lists(st.sampled_from(sorted(OVERLAP_CHANGES)), unique=True,
                            max_size=max_changes))
    v = {key: draw(st.sampled_from(OVERLAP_CHANGES[key])) for key in changes}
    a = container(A, v.get("a-name", BACKUP), v.get("a-state", "exited"), v.get("a-gen", GEN))
    b = container(B, v.get("b-name", CANONICAL), v.get("b-state", "running"), v.get("b-gen", GEN))
    found = ([] if "drop-a" in v else [a]) + ([] if "drop-b" in v else [b])
    if "extra" in v:
        found.append(container(C, draw(st.sampled_from(NAMES)), draw(st.sampled_from(ALL_STATES)),
                               draw(st.sampled_from(GENERATIONS))))
    return found


NEAR_INTENTS = {"none": None, "overlap": Intent(A, B, BACKUP), "gap": Intent(None, B, None),
                "other-backup": Intent(A, B, OTHER_BACKUP), "swapped": Intent(A, C, BACKUP)}


@st.composite
def near_handoff_worlds(draw):
    """A perturbed overlap, seen by A's record (or, for a rollback, by B's record with A
    retired), with no intent, the overlap's intent or a slightly different one."""
    found = draw(perturbed_overlaps())
    intent = NEAR_INTENTS[draw(st.sampled_from(sorted(NEAR_INTENTS)))]
    generation = draw(st.sampled_from((GEN, GEN, GEN, None)))
    if draw(st.sampled_from((False, False, True))):  # a rollback world
        return record(B, generation, (D, A), intent), found
    return record(A, generation, (D,), intent), found


worlds = st.one_of(random_worlds(), near_handoff_worlds())


# -- helpers ---------------------------------------------------------------------------------------


def acceptable_successors(rec: Record, candidates: list[Container]) -> list[Container]:
    """Candidates that each qualify as a successor: canonical, non-terminal, the journaled
    generation, not the authority itself (the contract's words, independent of the code)."""
    return [c for c in candidates if c.id != rec.authority and c.name == CANONICAL
            and c.state in NON_TERMINAL_STATES and rec.generation is not None
            and c.labels.get(GEN_LABEL) == rec.generation]


def projection(decision: Decision):
    return (decision.outcome, decision.record, decision.instance_id,
            None if decision.instance is None else decision.instance.id,
            decision.ready, tuple(n.key for n in decision.notices))


# -- properties ------------------------------------------------------------------------------------


# OWN-7, OWN-2, OWN-13: adoption only of a container with the journaled generation; the one
# exception is the rollback to a former (retired) instance of this very sandbox.
@SETTINGS
@given(worlds)
def test_never_adopts_a_wrong_or_missing_generation(world):
    rec, candidates = world
    decision = decide_for(rec, candidates)
    new_authority = decision.record.authority
    changed = new_authority != rec.authority
    if decision.outcome in (Outcome.ADOPT, Outcome.ROLLBACK) or changed:
        assert decision.outcome in (Outcome.ADOPT, Outcome.ROLLBACK)
        adopted = {c.id: c for c in candidates}[new_authority]
        if decision.outcome == Outcome.ROLLBACK:
            assert new_authority in rec.retired
            # OWN-13: canonical, and non-terminal or exited (the project's decision 8c: the state
            # a rollback that never got to start its backup leaves).
            assert adopted.name == CANONICAL and adopted.state in NON_TERMINAL_STATES | {"exited"}
        else:
            assert rec.generation is not None
            assert adopted.labels.get(GEN_LABEL) == rec.generation
            assert adopted.name == CANONICAL


#: What Hypothesis found (docs/contract.md, "Where this project decides", point 10): a record
#: with no authority but the intent of its own create (the ID the create returned), and a
#: same-generation copy beside that container, both still ``created``.
CREATE_INTENT_WITH_A_COPY = (record(None, GEN, (), Intent(None, A, None)),
                             [container(A, CANONICAL, "created"), container(B, CANONICAL, "created")])


# OWN-7: more than one acceptable successor: nothing is adopted, and an intent the labels gave
# is dropped. A record without authority keeps its create's intent (point 10 of "Where this
# project decides"): the create's answer, not the labels, says which container is the driver's,
# so a copy beside it makes nothing ambiguous.
@SETTINGS
@example(CREATE_INTENT_WITH_A_COPY)
@given(worlds)
def test_never_adopts_among_several_acceptable_successors(world):
    rec, candidates = world
    decision = decide_for(rec, candidates)
    if len(acceptable_successors(rec, candidates)) >= 2:
        assert decision.outcome not in (Outcome.ADOPT, Outcome.ROLLBACK, Outcome.RECORD_INTENT)
        assert decision.record.authority == rec.authority
        if rec.authority is None:
            assert decision.outcome == Outcome.UNRESOLVED
            assert decision.record == rec  # the create's intent, kept as it was
        else:
            assert decision.record.intent is None


# OWN-1, OWN-7: Hypothesis' example, explicitly: unresolved, nothing adopted, the intent kept.
def test_a_create_intent_survives_a_same_generation_copy():
    rec, candidates = CREATE_INTENT_WITH_A_COPY
    decision = decide_for(rec, candidates)
    assert decision.outcome == Outcome.UNRESOLVED
    assert decision.record == rec and decision.record.intent == Intent(None, A, None)
    assert decision.instance is None and decision.instance_id is None
    assert (decision.ready.status, decision.ready.reason) == ("False",
                                                              "ContainerOwnershipUnresolved")
    assert [n.key for n in decision.notices] == ["unresolved"]
    # Either order of the engine's list decides the same (OWN-20).
    assert decide_for(rec, list(reversed(candidates))) == decision


# OWN-4, OWN-20: the engine's list order never matters.
@SETTINGS
@given(worlds.flatmap(lambda w: st.tuples(st.just(w), st.permutations(w[1]))))
def test_decision_is_independent_of_candidate_order(pair):
    (rec, candidates), shuffled = pair
    assert projection(decide_for(rec, shuffled)) == projection(decide_for(rec, candidates))
    assert decide_for(rec, shuffled) == decide_for(rec, candidates)


# OWN-9, OWN-20: decide is a function: the same inputs give the same decision.
@SETTINGS
@given(worlds)
def test_decide_is_deterministic(world):
    rec, candidates = world
    first = decide_for(rec, candidates)
    assert decide_for(rec, list(candidates)) == first
    assert projection(decide_for(rec, candidates)) == projection(first)


# OWN-9, OWN-13: a former instance is never forgotten (it may become the authority again).
@SETTINGS
@given(worlds)
def test_the_record_never_loses_retired_ids(world):
    rec, candidates = world
    new = decide_for(rec, candidates).record
    assert set(rec.retired) <= set(new.retired) | {new.authority}
    assert list(new.retired) == list(dict.fromkeys(new.retired))  # no duplicates
    if new.authority != rec.authority:
        assert rec.authority in new.retired
    # OWN-11: identity and generation are never changed by an observation.
    assert (new.sandbox_id, new.name, new.namespace, new.generation, new.untrusted) == (
        rec.sandbox_id, rec.name, rec.namespace, rec.generation, rec.untrusted)


# OWN-6, OWN-10, OWN-2: an instance ID is always reported, except without authority; it is the
# (new) authority's, and the container that drives the snapshot is that authority.
@SETTINGS
@given(worlds)
def test_instance_id_is_the_authority(world):
    rec, candidates = world
    decision = decide_for(rec, candidates)
    assert (decision.instance_id is None) == (rec.authority is None)
    assert decision.instance_id == decision.record.authority
    if decision.instance is not None:
        assert decision.instance.id == decision.record.authority
        assert decision.instance in candidates
    if rec.authority is None:
        assert decision.outcome == Outcome.UNRESOLVED and decision.record == rec


# OWN-12: Ready=True only from a running authoritative container; pending and conflict reasons
# never come with Ready=True.
@SETTINGS
@given(worlds)
def test_ready_only_from_a_running_authority(world):
    rec, candidates = world
    decision = decide_for(rec, candidates)
    if decision.ready.status == "True":
        assert decision.instance is not None and decision.instance.state == "running"
        assert decision.outcome in (Outcome.AUTHORITATIVE, Outcome.ADOPT, Outcome.ROLLBACK)
    if decision.outcome not in (Outcome.AUTHORITATIVE, Outcome.ADOPT, Outcome.ROLLBACK):
        assert decision.ready.status == "False"
        assert decision.ready.reason in PENDING_REASONS | CONFLICT_REASONS


# OWN-4, OWN-5, OWN-8: adoption needs a recorded intent for exactly that container, and an
# intent survives only an observation that matches it exactly (the one that records it).
@SETTINGS
@given(worlds)
def test_intents_are_recorded_then_adopted_or_cleared(world):
    rec, candidates = world
    decision = decide_for(rec, candidates)
    if decision.outcome == Outcome.ADOPT:
        assert rec.intent is not None and rec.intent.replacement == decision.record.authority
        assert decision.record.intent is None
    if rec.authority is None:
        return  # unresolved: the record is returned as it came (checked above)
    if decision.record.intent is not None:
        assert decision.outcome == Outcome.RECORD_INTENT
        assert decision.record.intent.replacement in {
            c.id for c in acceptable_successors(rec, candidates)}
    if decision.outcome == Outcome.RECORD_INTENT:
        assert len(acceptable_successors(rec, candidates)) == 1


def _matches_overlap_intent(found: list[Container]) -> bool:
    """The contract's "the observation matches the intent {A -> B, BACKUP} exactly": the same
    overlap (A exited under BACKUP with its lineage, B acceptable), or B alone (section 4
    step 2: canonical, non-terminal, the journaled generation; OWN-7 over §4's "or exited")."""
    by_id = {c.id: c for c in found}
    b = by_id.get(B)

    def b_ok(states) -> bool:
        return (b is not None and b.name == CANONICAL and b.state in states
                and b.labels.get(GEN_LABEL) == GEN)

    if set(by_id) == {B}:
        return b_ok(NON_TERMINAL_STATES)
    if set(by_id) == {A, B}:
        a = by_id[A]
        return (a.state == "exited" and a.name == BACKUP and a.labels.get(GEN_LABEL) == GEN
                and b_ok(NON_TERMINAL_STATES))
    return False


# OWN-4, OWN-8: the observation after an intent adopts exactly when it matches the intent;
# anything else clears the intent and adopts nothing (a new pair of observations is needed).
@settings(max_examples=200, deadline=None)
@given(perturbed_overlaps(max_changes=2))
def test_the_observation_after_an_intent_adopts_or_clears_it(found):
    rec = record(A, GEN, (D,), Intent(A, B, BACKUP))
    decision = decide_for(rec, found)
    if _matches_overlap_intent(found):
        assert decision.outcome == Outcome.ADOPT
        assert decision.record == record(B, GEN, (D, A))
    else:
        assert decision.outcome == Outcome.INVALIDATE
        assert decision.record == record(A, GEN, (D,))
        assert decision.ready.reason == "ContainerReplacementPending"


# OWN-10, OWN-17: decide produces no Deleted event: a decision carries only a record, a
# container, an ID, a Ready condition and Warning notices (at most one, with a key).
def test_a_decision_cannot_carry_a_deleted_event():
    assert [f.name for f in dataclasses.fields(Decision)] == [
        "outcome", "record", "instance", "instance_id", "ready", "notices"]


@SETTINGS
@given(worlds)
def test_notices_are_single_keyed_warnings(world):
    rec, candidates = world
    decision = decide_for(rec, candidates)
    assert isinstance(decision.ready, Condition)
    assert len(decision.notices) <= 1
    for notice in decision.notices:
        assert type(notice) is Notice
        assert notice.type == "Warning" and notice.key and notice.reason != "Deleted"
    if decision.outcome != Outcome.AUTHORITATIVE:
        assert len(decision.notices) == 1
