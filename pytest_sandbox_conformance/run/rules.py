"""Which rule a driver broke: the branch of the decision procedure its report corresponds to.

The oracle knows the branch the contract takes at an observation (its outcome: ``conflict``,
``record-intent``, ...) and the requirement behind it. When the driver's report differs, that
requirement is not always the rule the driver broke: a driver that rolls back to a container
that was never the sandbox's instance breaks OWN-13 ("a container that was never this sandbox's
instance can never be rolled back to"), though the contract's outcome there is a conflict
(OWN-7). :func:`broken_rule` reads the driver's report against the situation the oracle decided
on (the record before the observation, the candidates, the intents it has invalidated) and names
the branch the driver took, and the rule that forbids that branch here. It answers only for the
shapes below; for any other report the contract's own requirement stays the one named.

Instance reported: ``X``; the contract's: ``E`` (``X != E``); the authority before the
observation: ``A``.

* ``X`` is a retired instance: the driver rolled back where OWN-13's conditions do not hold:
  **OWN-13**.
* ``A`` is listed and not in the handoff shape (exited under a backup name), ``X`` another
  candidate: a duplicate drives the snapshot beside a present authority: **OWN-3**.
* ``X`` is the replacement of an intent the contract invalidated earlier, and no intent for it is
  recorded now: adopted after observations that were not consecutive and consistent: **OWN-8**.
* ``X``'s generation label is missing or wrong, or ``X`` is in a terminal state, or it is not under
  the canonical name, or another candidate beside it is no retired exited backup: adopted what
  OWN-7 refuses: **OWN-7**.
* ``X`` is otherwise acceptable and every other candidate is a retired instance exited under a
  backup name: a rollback to a container that was never the sandbox's: **OWN-13**.
* ``X`` is otherwise acceptable, alone (beside ``A`` in the handoff shape, or without ``A``), and
  no intent for it is recorded: adopted at first sight, without the intent's second observation:
  **OWN-4** (overlap) or **OWN-5** (gap).

Instance as the contract says (``X == E``), readiness not:

* ``A`` is exited under a backup name, the contract records an intent or reports the handoff
  pending, and the driver reports ``A``'s own state (``ContainerExited``): it did not see the
  handoff shape: **OWN-4**.
* ``A`` is authoritative beside duplicates and the driver reports a pending or conflict reason:
  the snapshot must come from ``A`` whatever else is listed: **OWN-3**.
* the driver reports the handoff pending where the contract neither records, invalidates nor
  holds an intent, beside a candidate whose intent the contract invalidated earlier: it still
  acts on the invalidated intent: **OWN-8**.

Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from reference_driver.decision import Outcome, ready_for_state
from reference_driver.naming import is_backup_name
from reference_driver.state import Record

from ..api import CONFLICT_REASONS, PENDING_REASONS, Snapshot
from ..engines.base import NON_TERMINAL_STATES, Container, ids_match

__all__ = ["RULES", "Situation", "broken_rule"]

#: Every requirement :func:`broken_rule` can name.
RULES = ("OWN-3", "OWN-4", "OWN-5", "OWN-7", "OWN-8", "OWN-13")


@dataclass(frozen=True)
class Situation:
    """What the oracle decided one sandbox's observation on."""

    record: Record
    candidates: tuple[Container, ...]
    canonical: str
    generation_label: str
    #: Replacements of intents the contract invalidated so far in the play.
    invalidated: frozenset[str] = field(default_factory=frozenset)


def _short(cid: str) -> str:
    return cid[:12]


def broken_rule(outcome: str, situation: Situation | None,
                snapshot: Snapshot | None) -> tuple[str, str] | None:
    """``(requirement, what the driver did)`` for a report that differs from the contract's
    ``outcome``, when the report is one of the module docstring's shapes; else ``None``."""
    if situation is None or snapshot is None or snapshot.instance_id is None:
        return None
    rec, cands = situation.record, situation.candidates
    if rec.authority is None or rec.untrusted:
        return None
    x = next((c for c in cands if ids_match(snapshot.instance_id, c.id)), None)
    a = next((c for c in cands if c.id == rec.authority), None)
    handoff = (a is not None and a.state == "exited"
               and is_backup_name(a.name, situation.canonical))
    if x is not None and x.id != rec.authority:
        return _other_instance(outcome, situation, x, a, handoff)
    if ids_match(snapshot.instance_id, rec.authority):
        reason = snapshot.ready.reason
        if reason in PENDING_REASONS and outcome not in (
                Outcome.RECORD_INTENT, Outcome.INVALIDATE, Outcome.PENDING) and any(
                c.id in situation.invalidated for c in cands):
            return ("OWN-8", "it reports the handoff pending after the intent for "
                             f"{', '.join(_short(c.id) for c in cands if c.id in situation.invalidated)}"
                             " was invalidated: an invalidated intent is dropped")
        if a is None:
            return None
        if handoff and outcome in (Outcome.RECORD_INTENT, Outcome.PENDING) \
                and reason == ready_for_state(a).reason:
            return ("OWN-4", f"it reports the backup {_short(a.id)} ({a.name}) as a plain "
                             f"instance ({reason}): exited under the backup name it is the "
                             "handoff shape")
        if outcome == Outcome.AUTHORITATIVE and (reason in PENDING_REASONS
                                                 or reason in CONFLICT_REASONS):
            return ("OWN-3", f"it reports {reason} beside a present authority: the snapshot "
                             "comes from the authority whatever else is listed")
    return None


def _other_instance(outcome: str, s: Situation, x: Container, a: Container | None,
                    handoff: bool) -> tuple[str, str] | None:
    rec = s.record
    if x.id in rec.retired:
        return ("OWN-13", f"it rolled back to the former instance {_short(x.id)} where the "
                          "rollback's conditions do not hold")
    if a is not None and not handoff:
        return ("OWN-3", f"the duplicate {_short(x.id)} drives the snapshot beside the present "
                         f"authority {_short(a.id)}")
    intended = rec.intent is not None and rec.intent.replacement == x.id
    gen = x.labels.get(s.generation_label)
    others = [c for c in s.candidates if c.id != x.id and (a is None or c.id != a.id)]
    retired_backups = all(c.id in rec.retired and c.state == "exited"
                          and is_backup_name(c.name, s.canonical) for c in others)
    if rec.generation is None:
        return ("OWN-7", f"it adopted {_short(x.id)}, though the sandbox's record has no "
                         "generation (nothing can be adopted)")
    if gen != rec.generation:
        return ("OWN-7", f"it adopted {_short(x.id)}, whose generation label is "
                         f"{'missing' if gen is None else 'not the journaled one'}")
    if x.state not in NON_TERMINAL_STATES:
        return ("OWN-7", f"it adopted {_short(x.id)}, which is {x.state} (a terminal state)")
    if x.name != s.canonical:
        return ("OWN-7", f"it adopted {_short(x.id)}, which is not under the canonical name "
                         f"({x.name})")
    if outcome == Outcome.INVALIDATE:
        return ("OWN-8", f"it adopted {_short(x.id)} although the observation does not match "
                         "the recorded intent")
    if x.id in s.invalidated and not intended:
        return ("OWN-8", f"it adopted {_short(x.id)}, the replacement of an intent that was "
                         "invalidated, without a fresh pair of consistent observations")
    if not retired_backups:
        return ("OWN-7", f"it adopted {_short(x.id)} among several candidates")
    if others and a is None:
        return ("OWN-13", f"it rolled back to {_short(x.id)}, a container that was never this "
                          "sandbox's instance")
    if not intended and outcome != Outcome.ADOPT:
        return (("OWN-4", f"it adopted {_short(x.id)} at first sight, beside the backup, "
                          "without recording an intent")
                if a is not None else
                ("OWN-5", f"it adopted {_short(x.id)} at first sight, without recording an "
                          "intent"))
    return None

