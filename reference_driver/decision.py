"""The decision procedure (contract §4): a pure function of (tracked record, candidates).

``decide`` takes what the driver knows about one sandbox (its :class:`~.state.Record`) and the
containers one observation found for it (the *candidates*: containers whose namespace, sandbox-id
and sandbox-name labels all match) and returns a :class:`Decision`: the record to persist, which
container (if any) drives the snapshot, the Ready condition, and the notices to raise. It does no
I/O, so every branch is tested with plain values (``tests/test_decision.py``).

The steps, in order:

1. No authoritative ID: unresolved (``ContainerOwnershipUnresolved``).
2. An intent exists: the only candidate is exactly the intended replacement (canonical,
   non-terminal, journaled generation; OWN-7 wins over §4's "or exited", see docs/contract.md):
   adopt. Otherwise,
   unless the candidates are exactly the intended overlap (incumbent exited under the recorded
   backup name, its generation lineage intact, + the intended replacement), invalidate the
   intent (pending).
3. A present: an exited, backup-named incumbent with exactly one acceptable successor and nothing
   else, generation lineage intact: adopt if the intent matches exactly, else record the intent.
   An exited backup-named incumbent otherwise: handoff pending. Else A is authoritative and every
   other candidate that is not a retired backup is reported as a duplicate.
4. A absent: roll back to a retired instance if OWN-13 holds.
5. A absent: exactly one canonical non-terminal candidate with the journaled generation: record an
   intent without incumbent.
6. No candidates: missing. Anything else: conflict.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

from pytest_sandbox_conformance.api import Condition
from pytest_sandbox_conformance.engines.base import NON_TERMINAL_STATES, Container

from .naming import is_backup_name
from .state import Intent, Record

__all__ = [
    "Decision",
    "Notice",
    "Outcome",
    "candidates_for",
    "decide",
    "group_by_sandbox",
    "persist_failed",
    "ready_for_state",
    "resolve_stored_instance",
    "unowned_notices",
]


class Outcome:
    """The names of the decision's outcomes (plain strings, for timelines and tests)."""

    AUTHORITATIVE = "authoritative"
    RECORD_INTENT = "record-intent"
    ADOPT = "adopt"
    ROLLBACK = "rollback"
    INVALIDATE = "invalidate"
    PENDING = "pending"
    MISSING = "missing"
    CONFLICT = "conflict"
    UNRESOLVED = "unresolved"
    PERSIST_FAILED = "persist-failed"


@dataclass(frozen=True)
class Notice:
    """A platform event the decision asks for, deduplicated by ``key`` (OWN-17)."""

    key: str
    reason: str
    message: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    type: str = "Warning"

    def __hash__(self) -> int:
        return hash(self.key)


@dataclass(frozen=True)
class Decision:
    outcome: str
    record: Record
    #: The container that drives the snapshot (``None`` when none does).
    instance: Container | None
    #: The instance ID to report (the authority's ID even when its container is missing).
    instance_id: str | None
    ready: Condition
    notices: tuple[Notice, ...] = ()


_STATE_REASONS = {
    "created": "ContainerCreated",
    "restarting": "Starting",
    "exited": "ContainerExited",
    "dead": "ContainerDead",
    "paused": "ContainerPaused",
    "removing": "ContainerRemoving",
}


def ready_for_state(container: Container) -> Condition:
    """The Ready condition an authoritative container's state gives."""
    if container.state == "running":
        return Condition("True", "ContainerRunning", f"container {container.short_id} is running")
    reason = _STATE_REASONS.get(container.state, "ContainerStateUnknown")
    return Condition("False", reason, f"container {container.short_id} is {container.state}")


#: States a retired instance may be rolled back to in (OWN-13): a non-terminal one, or exited.
ROLLBACK_STATES = NON_TERMINAL_STATES | {"exited"}


def _ids(containers: Sequence[Container]) -> str:
    return ",".join(sorted(c.id for c in containers))


def decide(record: Record, candidates: Sequence[Container], canonical: str,
           generation_label: str) -> Decision:
    """Resolve one sandbox for one observation. Pure: the same inputs give the same decision."""
    a_id = record.authority
    by_id = {c.id: c for c in candidates}

    def gen(c: Container) -> str | None:
        return c.labels.get(generation_label)

    def lineage(c: Container) -> bool:
        """The incumbent still carries the journaled generation (OWN-4, OWN-8)."""
        return gen(c) == record.generation

    def acceptable(c: Container) -> bool:
        """A successor: canonical name, non-terminal, carrying the journaled generation."""
        return (c.id != a_id and c.name == canonical and c.state in NON_TERMINAL_STATES
                and record.generation is not None and gen(c) == record.generation)

    def conflict(reason: str, message: str, key: str, **metadata: str) -> Decision:
        notice = Notice(key, reason, message, dict(metadata))
        return Decision(Outcome.CONFLICT, record, None, a_id, Condition("False", reason, message),
                        (notice,))

    # 1. No authoritative ID at all.
    if a_id is None:
        why = record.untrusted or "the sandbox has no authoritative container ID"
        notice = Notice("unresolved", "ContainerOwnershipUnresolved", why,
                        {"candidate_instance_ids": _ids(candidates)})
        return Decision(Outcome.UNRESOLVED, record, None, None,
                        Condition("False", "ContainerOwnershipUnresolved", why), (notice,))

    a = by_id.get(a_id)
    intent = record.intent

    # 2. An intent exists.
    if intent is not None:
        only = candidates[0] if len(candidates) == 1 else None
        if (only is not None and only.id == intent.replacement and only.name == canonical
                and only.state in NON_TERMINAL_STATES
                and record.generation is not None and gen(only) == record.generation):
            return _adopt(record, only, a_id)
        if not _is_intended_overlap(intent, candidates, a_id, canonical, acceptable, lineage):
            cleared = record.with_intent(None)
            incumbent = intent.incumbent or "-"
            message = (f"replacement intent {incumbent[:12]} -> {intent.replacement[:12]} no "
                       "longer matches what the engine shows; nothing adopted")
            notice = Notice(f"intent-invalidated:{incumbent}:{intent.replacement}",
                            "SandboxReplacementIntentInvalidated", message,
                            {"authoritative_instance_id": a_id,
                             "candidate_instance_ids": _ids(candidates)})
            return Decision(Outcome.INVALIDATE, cleared, a, a_id,
                            Condition("False", "ContainerReplacementPending", message), (notice,))
        # The intended overlap: step 3 adopts it.

    # 3. The authority is present.
    if a is not None:
        others = [c for c in candidates if c.id != a_id]
        if a.state == "exited" and is_backup_name(a.name, canonical):
            successor = others[0] if len(others) == 1 else None
            if successor is not None and acceptable(successor) and lineage(a):
                wanted = Intent(a_id, successor.id, a.name)
                if intent == wanted:
                    return _adopt(record, successor, a_id)
                message = (f"recorded replacement intent {a.short_id} -> {successor.short_id}; "
                           "adopting at the next consistent observation")
                notice = Notice(f"replacement-intent:{a_id}:{successor.id}",
                                "SandboxReplacementIntentRecorded", message,
                                {"authoritative_instance_id": a_id,
                                 "candidate_instance_ids": successor.id,
                                 "backup_name": a.name})
                return Decision(Outcome.RECORD_INTENT, record.with_intent(wanted), a, a_id,
                                Condition("False", "ContainerReplacementPending", message),
                                (notice,))
            message = (f"instance {a.short_id} was handed off ({a.name}) but no single acceptable "
                       "successor exists")
            notice = Notice(f"replacement-pending:{a_id}:{_ids(others)}",
                            "ContainerReplacementPending", message,
                            {"authoritative_instance_id": a_id,
                             "candidate_instance_ids": _ids(others)})
            return Decision(Outcome.PENDING, record, a, a_id,
                            Condition("False", "ContainerReplacementPending", message), (notice,))
        retired = set(record.retired)
        duplicates = [c for c in others
                      if not (c.id in retired and c.state == "exited"
                              and is_backup_name(c.name, canonical))]
        notices: tuple[Notice, ...] = ()
        if duplicates:
            notices = (Notice(
                f"identity-conflict:{a_id}:{_ids(duplicates)}", "ContainerIdentityConflict",
                f"{len(duplicates)} other container(s) carry this sandbox's labels; "
                f"{a.short_id} stays authoritative",
                {"authoritative_instance_id": a_id, "candidate_instance_ids": _ids(duplicates)}),)
        return Decision(Outcome.AUTHORITATIVE, record, a, a_id, ready_for_state(a), notices)

    # 4. A absent: roll back to a retired instance (OWN-13), running or not: "exited" is the
    # state a rollback that never got to start its backup leaves ("Where this project decides" 8).
    retired = set(record.retired)
    revivable = [c for c in candidates if c.id in retired and c.name == canonical
                 and c.state in ROLLBACK_STATES]
    if len(revivable) == 1:
        back = revivable[0]
        rest_ok = all(c.id in retired and c.state == "exited" and is_backup_name(c.name, canonical)
                      for c in candidates if c.id != back.id)
        if rest_ok:
            new_record = record.adopt(back.id)
            message = f"instance {a_id[:12]} is gone; rolled back to former instance {back.short_id}"
            notice = Notice(f"rollback:{a_id}:{back.id}", "SandboxInstanceRollback", message,
                            {"previous_instance_id": a_id, "authoritative_instance_id": back.id})
            return Decision(Outcome.ROLLBACK, new_record, back, back.id, ready_for_state(back),
                            (notice,))

    # 5. A absent: a gap handoff to exactly one acceptable candidate (OWN-5).
    if len(candidates) == 1 and acceptable(candidates[0]):
        b = candidates[0]
        message = (f"instance {a_id[:12]} is gone; recorded replacement intent for "
                   f"{b.short_id}; adopting at the next consistent observation")
        notice = Notice(f"replacement-intent:-:{b.id}", "SandboxReplacementIntentRecorded", message,
                        {"authoritative_instance_id": a_id, "candidate_instance_ids": b.id})
        return Decision(Outcome.RECORD_INTENT, record.with_intent(Intent(None, b.id, None)), None,
                        a_id, Condition("False", "ContainerReplacementPending", message), (notice,))

    # 6. Missing, or a conflict.
    if not candidates:
        message = f"instance {a_id[:12]} is missing and no replacement exists"
        notice = Notice(f"missing:{a_id}", "ContainerInstanceMissing", message,
                        {"authoritative_instance_id": a_id})
        return Decision(Outcome.MISSING, record, None, a_id,
                        Condition("False", "ContainerInstanceMissing", message), (notice,))
    # The key differs from step 3's duplicate key (``identity-conflict:A:<ids>``): when the
    # authority goes from beside a duplicate (a Compose-style recreate removes A and leaves B),
    # the condition is a new one and its Warning is raised anew (docs/contract.md, "Where this
    # project decides").
    return conflict("ContainerIdentityConflict",
                    f"instance {a_id[:12]} is gone and {len(candidates)} candidate(s) carry this "
                    "sandbox's labels without an acceptable claim; nothing adopted",
                    f"authority-gone:{a_id}:{_ids(candidates)}",
                    authoritative_instance_id=a_id, candidate_instance_ids=_ids(candidates))


def _is_intended_overlap(intent: Intent, candidates: Sequence[Container], a_id: str,
                         canonical: str, acceptable, lineage) -> bool:
    if len(candidates) != 2 or intent.incumbent != a_id:
        return False
    by_id = {c.id: c for c in candidates}
    inc, rep = by_id.get(intent.incumbent), by_id.get(intent.replacement)
    return (inc is not None and rep is not None and inc.state == "exited"
            and inc.name == intent.backup_name and is_backup_name(inc.name, canonical)
            and lineage(inc) and acceptable(rep))


def _adopt(record: Record, new: Container, old_id: str) -> Decision:
    message = f"instance {old_id[:12]} replaced by {new.short_id}"
    notice = Notice(f"replaced:{old_id}:{new.id}", "SandboxInstanceReplaced", message,
                    {"previous_instance_id": old_id, "authoritative_instance_id": new.id})
    return Decision(Outcome.ADOPT, record.adopt(new.id), new, new.id, ready_for_state(new),
                    (notice,))


# -- around the decision: one observation's grouping, and what a failed write turns it into -------


def group_by_sandbox(containers: Sequence[Container],
                     sandbox_id_label: str) -> dict[str, list[Container]]:
    """One observation's containers by the sandbox id they are labelled with (in list order)."""
    groups: dict[str, list[Container]] = {}
    for c in containers:
        groups.setdefault(c.labels.get(sandbox_id_label, ""), []).append(c)
    return groups


def candidates_for(record: Record, groups: Mapping[str, list[Container]],
                   sandbox_name_label: str) -> list[Container]:
    """The record's candidates: its sandbox id's containers that also carry its name."""
    return [c for c in groups.get(record.sandbox_id, ())
            if c.labels.get(sandbox_name_label) == record.name]


def unowned_notices(groups: Mapping[str, list[Container]],
                    tracked: Mapping[str, object]) -> tuple[Notice, ...]:
    """OWN-18: the notice for containers whose sandbox id is not tracked (none if there are none)."""
    unowned = sorted(c.id for sid, group in groups.items() if sid not in tracked for c in group)
    if not unowned:
        return ()
    ids = ",".join(unowned)
    return (Notice("unowned:" + ids, "UnownedSandboxContainersIgnored",
                   f"{len(unowned)} container(s) carry this driver's labels but belong to no "
                   "tracked sandbox; ignored", {"container_ids": ids}),)


def persist_failed(decision: Decision, record: Record, why: str) -> Decision:
    """OWN-15: what ``decision`` becomes when its new record cannot be persisted: nothing
    changes (``record`` stays), the authority is still reported, and the failure is the reason."""
    message = f"cannot persist the ownership journal; nothing adopted: {why}"
    notice = Notice(f"persist-failed:{decision.outcome}", "ContainerOwnershipPersistFailed",
                    message, {"authoritative_instance_id": record.authority or ""})
    return Decision(Outcome.PERSIST_FAILED, record, None, record.authority,
                    Condition("False", "ContainerOwnershipPersistFailed", message), (notice,))


def resolve_stored_instance(record: Record, stored_instance_id: str | None) -> str | None:
    """OWN-9: the instance to report when the gateway's stored ID and the journal disagree.

    A journal that lags or leads the gateway by one replacement is resolved in the journal's
    favour when the stored ID is the journal's authority or one of its retired IDs: the journal's
    authority is returned. Any other stored ID cannot be reconciled: ``None`` (fail closed).
    """
    if stored_instance_id is None or record.authority is None:
        return record.authority
    if stored_instance_id == record.authority or stored_instance_id in record.retired:
        return record.authority
    return None
