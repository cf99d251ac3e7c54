"""The oracle: what a conforming driver must report after each observation.

It replays the contract's decision procedure (``reference_driver.decision.decide``, the
executable §4) on the containers the engine really holds at each observation, keeping its own
ownership records, so that every observation of every schedule has an exact expectation: which
container is the sandbox's instance, the Ready condition's status and (for pending and conflict
states) reason, and which Warning conditions became active. The driver under test is compared
with it in ``checks.py``. The oracle models the journal too: injected write failures and crashes
change what it expects exactly as OWN-15 and OWN-16 say they must.

Pure: no pytest, no engine calls (the runner passes in the containers it listed).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from reference_driver.decision import (
    Notice,
    Outcome,
    candidates_for,
    decide,
    group_by_sandbox,
    persist_failed,
    unowned_notices,
)
from reference_driver.naming import LabelKeys, canonical_name
from reference_driver.state import Record

from ..api import Condition
from ..engines.base import Container
from .rules import Situation

__all__ = ["EXPECTATION_REQUIREMENTS", "Expected", "Oracle", "REQUIREMENTS_BY_OUTCOME"]

#: The requirement an outcome exercises, for naming what broke.
REQUIREMENTS_BY_OUTCOME = {
    Outcome.AUTHORITATIVE: "OWN-2",
    Outcome.RECORD_INTENT: "OWN-4",
    Outcome.ADOPT: "OWN-4",
    Outcome.ROLLBACK: "OWN-13",
    Outcome.INVALIDATE: "OWN-8",
    Outcome.PENDING: "OWN-7",
    Outcome.MISSING: "OWN-6",
    Outcome.CONFLICT: "OWN-7",
    Outcome.UNRESOLVED: "OWN-7",
    Outcome.PERSIST_FAILED: "OWN-15",
}


#: Every requirement an expectation can name: its outcome's, and those ``observe`` adds (OWN-5
#: for a gap handoff, OWN-3 for duplicates, OWN-15 for an untrusted journal, OWN-19 for a GPU
#: candidate, OWN-9 after a restart, OWN-16 after a crash).
EXPECTATION_REQUIREMENTS = tuple(sorted(
    set(REQUIREMENTS_BY_OUTCOME.values()) | {"OWN-3", "OWN-5", "OWN-9", "OWN-15", "OWN-16",
                                             "OWN-19"}, key=lambda r: int(r.split("-")[1])))


@dataclass(frozen=True)
class Expected:
    """The oracle's expectation for one sandbox after one observation."""

    sandbox_id: str
    outcome: str
    instance_id: str | None
    ready: Condition
    requirements: tuple[str, ...]
    candidates: tuple[str, ...]
    #: What the outcome was decided on (to tell which rule a differing report broke).
    situation: Situation | None = field(default=None, compare=False, repr=False)


class _Dedupe:
    """Counts Warning activations per reason the way OWN-17 defines them."""

    def __init__(self) -> None:
        self.active: dict[str, frozenset[str]] = {}
        self.counts: Counter[str] = Counter()

    def update(self, sandbox_id: str, notices: Iterable[Notice]) -> None:
        notices = list(notices)
        before = self.active.get(sandbox_id, frozenset())
        for n in notices:
            if n.key not in before and n.type == "Warning":
                self.counts[n.reason] += 1
        self.active[sandbox_id] = frozenset(n.key for n in notices)


class Oracle:
    """Expected ownership state of every sandbox of one run."""

    def __init__(self, labels: LabelKeys, namespace: str, adds_restarts: bool = False) -> None:
        self.labels = labels
        self.namespace = namespace
        self.records: dict[str, Record] = {}
        #: The name the driver gave each sandbox's container at create: its canonical name.
        self.canonical: dict[str, str] = {}
        self._strict = _Dedupe()   # never forgets active conditions
        self._lenient = _Dedupe()  # forgets them at restarts (a restarted driver may re-warn)
        #: With ``adds_restarts`` (a schedule that adds restarts the story does not have): the
        #: oracle of the story as written, fed the same steps and lists but none of the added
        #: restarts, whose Warning counts are what the scenario's ``expect.warnings`` states.
        self.shadow = Oracle(labels, namespace) if adds_restarts else None
        #: The gaps (0-based) of the restarts the schedule added.
        self.added_restarts: list[int] = []
        self._fail_writes = 0
        self._crash_at: str | None = None
        #: Whether the armed crash is a power loss (nothing the folder's fsync did not make
        #: durable survives it: a crash at fsync-dir keeps the old journal too).
        self._crash_power = False
        #: Sandboxes whose journal file was replaced (torn or foreign), and how: the next
        #: restart reads it, unless the driver wrote the journal again in between.
        self._corrupt: dict[str, str] = {}
        self.restarts = 0
        #: Per (sandbox id, reason): every Warning notice the contract raised so far, in order
        #: (what each Warning the driver emits must name: ``warnings-name-their-containers``).
        self.raised: dict[tuple[str, str], list[Notice]] = {}
        #: Replacements of the intents the contract invalidated so far.
        self.invalidated: set[str] = set()
        #: Injected crashes so far: expectations after one also check OWN-16.
        self.crashes = 0
        #: Whether the last observation was a fixpoint: no decision wanted to change an ownership
        #: record and nothing crashed, so further observations of the same containers decide the
        #: same (the decision is a pure function of the record and the candidates, whatever the
        #: list order). The runner's settle phase observes until it reaches one.
        self.quiet = True

    # -- what happened -------------------------------------------------------------------------

    def created(self, sandbox_id: str, name: str, container: Container) -> None:
        if self.shadow is not None:
            self.shadow.created(sandbox_id, name, container)
        self.records[sandbox_id] = Record(sandbox_id, name, self.namespace, container.id,
                                          container.labels.get(self.labels.generation))
        self.canonical[sandbox_id] = container.name

    def deleted(self, sandbox_id: str) -> None:
        if self.shadow is not None:
            self.shadow.deleted(sandbox_id)
        self.records.pop(sandbox_id, None)
        for d in (self._strict, self._lenient):
            d.active.pop(sandbox_id, None)

    def journal_fault(self, kind: str, sandbox_id: str | None, at: str | None, times: int) -> None:
        if self.shadow is not None:
            self.shadow.journal_fault(kind, sandbox_id, at, times)
        if kind == "write-fail":
            self._fail_writes += times
        elif kind == "crash":
            self._crash_at, self._crash_power = at, False
        elif kind == "power-loss" and at is not None:
            self._crash_at, self._crash_power = at, True
        elif kind == "power-loss":
            # The power goes between steps: a conforming driver made every change durable
            # before it acted on it (OWN-15), so it restarts from exactly what it had.
            self.crashes += 1
            self._restart()  # the shadow restarts at its own power loss
        elif (kind == "corrupt" or kind.startswith("foreign-")) and sandbox_id is not None:
            self._corrupt[sandbox_id] = ("its journal is corrupt" if kind == "corrupt" else
                                         "its journal is foreign (" + kind + ")")

    def restarted(self, added_at: int | None = None) -> None:
        """The driver restarted: it knows what its journal holds, nothing more. ``added_at``:
        the gap of a restart the schedule added (the story as written, ``shadow``, has none)."""
        if added_at is not None:
            self.added_restarts.append(added_at)
        elif self.shadow is not None:
            self.shadow.restarted()
        self._restart()

    def restarted_after_crash(self) -> None:
        """The driver restarted after :meth:`observe` said it crashed (the shadow restarted at
        its own crash already)."""
        self._restart()

    def _restart(self) -> None:
        self.restarts += 1
        for sid, why in sorted(self._corrupt.items()):
            rec = self.records.get(sid)
            if rec is not None:
                self.records[sid] = Record(sid, rec.name, self.namespace, untrusted=why)
        self._corrupt.clear()
        self._lenient.active.clear()

    # -- one observation -------------------------------------------------------------------------

    def observe(self, listed: Sequence[Container]) -> tuple[dict[str, Expected], bool]:
        """Expectations after one observation of ``listed`` (every container of the namespace).

        Returns the expectations and whether the driver is expected to have crashed during the
        observation (an armed journal crash hit a write); after a crash nothing is expected of
        the observation itself, only of the restarted driver.
        """
        if self.shadow is not None:
            _, shadow_crashed = self.shadow.observe(listed)
            if shadow_crashed:
                self.shadow.restarted()  # as the runner restarts the driver after a crash
        keys = self.labels
        groups = group_by_sandbox(
            [c for c in listed if c.labels.get(keys.namespace) == self.namespace], keys.sandbox_id)
        out: dict[str, Expected] = {}
        crashed = False
        self.quiet = True
        for sid in sorted(self.records):
            record = self.records[sid]
            candidates = candidates_for(record, groups, keys.sandbox_name)
            canonical = self.canonical.get(sid) or canonical_name(record.name, sid)
            decision = decide(record, candidates, canonical, keys.generation)
            situation = Situation(record, tuple(candidates), canonical, keys.generation,
                                  frozenset(self.invalidated))
            outcome = decision.outcome
            instance_id, ready, notices = decision.instance_id, decision.ready, decision.notices
            reqs = [REQUIREMENTS_BY_OUTCOME[outcome]]
            if outcome in (Outcome.RECORD_INTENT, Outcome.ADOPT) and (
                    record.intent is not None and record.intent.incumbent is None
                    or decision.record.intent is not None
                    and decision.record.intent.incumbent is None):
                reqs = ["OWN-5"]
            if outcome == Outcome.AUTHORITATIVE and decision.notices:
                reqs.append("OWN-3")
            if record.untrusted:
                reqs.append("OWN-15")
            if any(c.device_requests or c.runtime for c in candidates):
                reqs.append("OWN-19")
            if self.restarts:
                reqs.append("OWN-9")
            if self.crashes:
                reqs.append("OWN-16")
            if decision.record != record:
                self.quiet = False
                if self._crash_at is not None:
                    at, self._crash_at = self._crash_at, None
                    if at == "fsync-dir" and not self._crash_power:
                        # the rename happened: the new journal stands (a power loss undoes it)
                        self.records[sid] = decision.record
                        self._corrupt.pop(sid, None)
                    crashed = True
                    self.crashes += 1
                    break
                if self._fail_writes:
                    self._fail_writes -= 1
                    decision = persist_failed(decision, record, "(injected)")
                    instance_id, ready, notices = (decision.instance_id, decision.ready,
                                                   decision.notices)
                    outcome, reqs = decision.outcome, ["OWN-15"]
                else:
                    self.records[sid] = decision.record
                    if outcome == Outcome.INVALIDATE and record.intent is not None:
                        self.invalidated.add(record.intent.replacement)
                    # A new journal replaced the corrupt one: the next restart reads it.
                    self._corrupt.pop(sid, None)
            exp = Expected(sid, outcome, instance_id, ready, tuple(dict.fromkeys(reqs)),
                           tuple(sorted(c.id for c in candidates)), situation)
            out[sid] = exp
            self._remember(sid, notices)
            for d in (self._strict, self._lenient):
                d.update(sid, notices)
        if crashed:
            return out, True
        notices = unowned_notices(groups, self.records)
        self._remember("", notices)
        for d in (self._strict, self._lenient):
            d.update("", notices)
        return out, False

    def _remember(self, sandbox_id: str, notices: Iterable[Notice]) -> None:
        for n in notices:
            if n.type == "Warning":
                seen = self.raised.setdefault((sandbox_id, n.reason), [])
                if n not in seen:
                    seen.append(n)

    def warning_bounds(self) -> dict[str, tuple[int, int]]:
        """Per Warning reason: the fewest and the most a conforming driver may have emitted."""
        reasons = set(self._strict.counts) | set(self._lenient.counts)
        return {r: (self._strict.counts[r], max(self._strict.counts[r], self._lenient.counts[r]))
                for r in sorted(reasons)}

    def reannounced(self) -> dict[str, int]:
        """Per Warning reason: how many more Warnings a conforming driver may emit because of the
        restarts the schedule added than in the story as written: a restarted driver forgets
        which conditions it announced and announces those still active again (OWN-17, contract
        decision 6). The most a driver that forgets at every restart emits (the lenient count),
        less the same for the story without the added restarts (``shadow``). Empty without
        added restarts, so the scenario's counts stay exact there."""
        if self.shadow is None or not self.added_restarts:
            return {}
        story = self.shadow._lenient.counts
        return {r: n - story[r] for r, n in sorted(self._lenient.counts.items()) if n > story[r]}

