"""Deliberately broken drivers: small variations of the reference driver, one bug each.

The suite must catch every one of them (``tests/test_broken_drivers.py``; the matrix of which
scenario catches which is ``docs/broken-drivers.md``). Each class subclasses
:class:`reference_driver.ReferenceDriver` and overrides as little as it can; its docstring says
what it gets wrong and which requirement that breaks. Each has a factory of the same name as the
``--sandbox-driver=broken_drivers:<name>`` value that runs it (with ``tests/`` on ``sys.path``)::

    PYTHONPATH=tests pytest --sandbox-driver=broken_drivers:trusts_labels_last_wins

Nothing here patches module globals or touches the reference driver's private state: every
variation is a subclass that overrides one of its documented seams (``decide``,
``delete_targets``, ``emit``, ``journal_class``, ``hub_class``).
"""

from __future__ import annotations

import errno
import os
from dataclasses import replace
from typing import Iterator

from pytest_sandbox_conformance.adapters.base import DriverContext
from pytest_sandbox_conformance.adapters.reference import ReferenceAdapter
from pytest_sandbox_conformance.api import PENDING_REASONS, Condition, DeletedEvent, PlatformEvent
from reference_driver import ReferenceDriver
from reference_driver.decision import Decision, Outcome, ready_for_state
from reference_driver.events import EventHub
from reference_driver.journal import Journal, JournalWriteError
from reference_driver.state import Record

__all__ = ["BROKEN", "DRIVERS"]


# -- identity --------------------------------------------------------------------------------------


class TrustsLabelsLastWins(ReferenceDriver):
    """Trusts identity labels: whichever matching container the engine lists **last** drives the
    snapshot (the real incident's bug: a dict keyed by sandbox id, filled in list order).

    Breaks OWN-2 (a copied-label container drives the snapshot) and OWN-3 (a duplicate beside a
    present authority wins when listed last); in a handoff it reports the replacement at once
    (OWN-4, OWN-12) or the exited backup (OWN-4), depending on list order (OWN-20).
    """

    def decide(self, record: Record, candidates, canonical: str) -> Decision:
        if not candidates or record.authority is None:
            return super().decide(record, candidates, canonical)
        winner = self._winner(candidates)
        return Decision(Outcome.AUTHORITATIVE, record, winner, winner.id, ready_for_state(winner))

    def _winner(self, candidates):
        return candidates[-1]


class TrustsLabelsFirstWins(TrustsLabelsLastWins):
    """Trusts identity labels: whichever matching container the engine lists **first** drives the
    snapshot (Docker lists newest first, so a fresh copy-labelled container wins).

    Breaks OWN-2 and OWN-3 like :class:`TrustsLabelsLastWins`, with the opposite list order, and
    OWN-4 / OWN-20 in a handoff.
    """

    def _winner(self, candidates):
        return candidates[0]


# -- lifecycle ---------------------------------------------------------------------------------------


class DeletedOnMissing(ReferenceDriver):
    """Emits **Deleted** when an observation does not list the sandbox's authoritative container
    (OpenShell's Docker driver: "Deleted on disappearance between polls"), once per disappearance;
    otherwise resolves like the reference driver.

    Breaks OWN-10 (Deleted without a delete request), hence OWN-11 (the gateway drops the durable
    state and a later snapshot resurrects a skeletal record) and OWN-6 (a missing instance must be
    reported as ``ContainerInstanceMissing``, not deleted).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._reported_gone: set[str] = set()

    def decide(self, record: Record, candidates, canonical: str) -> Decision:
        sid = record.sandbox_id
        if record.authority is None or any(c.id == record.authority for c in candidates):
            self._reported_gone.discard(sid)
        elif sid not in self._reported_gone:
            self._reported_gone.add(sid)
            self.emit(DeletedEvent(sid))
        return super().decide(record, candidates, canonical)


class AdoptsOnFirstSight(ReferenceDriver):
    """Adopts a replacement at the **first** observation that shows an acceptable one, instead of
    recording an intent and adopting at the next consistent observation.

    Breaks OWN-4 and OWN-5 (two-observation adoption), and with it OWN-8 (a replacement that is
    swapped or vanishes right after being seen has already been adopted).
    """

    def decide(self, record: Record, candidates, canonical: str) -> Decision:
        decision = super().decide(record, candidates, canonical)
        if decision.outcome == Outcome.RECORD_INTENT:  # adopt the intent it has just recorded
            return super().decide(decision.record, candidates, canonical)
        return decision


class IgnoresGeneration(ReferenceDriver):
    """Ignores the generation label: every candidate is treated as if it carried the journaled
    generation (a hand-made ``docker run --label ...`` or a clone with a wrong or missing
    generation is accepted as a successor). A record with no generation still fails closed.

    Breaks OWN-7 (a candidate with a missing or wrong generation must not be adopted), and so
    OWN-2 (a non-authoritative container ends up driving the snapshot).
    """

    def decide(self, record: Record, candidates, canonical: str) -> Decision:
        if record.generation is not None:
            key = self.labels.generation
            candidates = [replace(c, labels={**c.labels, key: record.generation})
                          for c in candidates]
        return super().decide(record, candidates, canonical)


class PromotesWhilePending(ReferenceDriver):
    """Reports the sandbox **Ready** while a handoff is pending: wherever the reference driver
    says Ready=False ``ContainerReplacementPending``, this one says Ready=True
    ``ContainerRunning`` (the replacement is up, so why wait?).

    Breaks OWN-12 (nothing promotes a sandbox to Ready while its ownership is unresolved), and the
    pending snapshot of OWN-4 / OWN-5 / OWN-7 / OWN-8.
    """

    def decide(self, record: Record, candidates, canonical: str) -> Decision:
        decision = super().decide(record, candidates, canonical)
        if decision.ready.reason in PENDING_REASONS:
            return replace(decision, ready=Condition("True", "ContainerRunning",
                                                     "promoted while a handoff is pending"))
        return decision


class DeletesOnlyOne(ReferenceDriver):
    """An explicit delete stops and removes **one** container: the authoritative one if the
    engine lists it, else the first exact match. Backups and duplicates with the sandbox's
    labels are left behind; the journal is forgotten and Deleted emitted as usual.

    Breaks OWN-14 (delete removes every exact match, backups and duplicates included).
    """

    def delete_targets(self, matches):
        record = self.record(matches[0].labels[self.labels.sandbox_id]) if matches else None
        authority = [c for c in matches if record is not None and c.id == record.authority]
        return (authority or matches)[:1]


# -- the journal -----------------------------------------------------------------------------------


class _NoJournal(Journal):
    """Persists nothing, remembers nothing."""

    def write(self, record: Record) -> None:
        self.writes += 1

    def load_all(self) -> Iterator[Record]:
        return iter(())

    def forget(self, sandbox_id: str) -> None:
        pass


class NoJournal(ReferenceDriver):
    """Keeps **no journal**: ownership records live in memory only, so a restarted driver has
    forgotten every sandbox (it tracks nothing and reports every container as unowned).

    Breaks OWN-9 (restart transparency) and OWN-15 (the journal), and with them OWN-18 (the
    sandbox's own containers are reported as unowned after the restart).
    """

    journal_class = _NoJournal


class _InPlaceJournal(Journal):
    """Writes the journal in place: truncate, write, fsync. No temporary file, no rename."""

    def write(self, record: Record) -> None:
        if record.untrusted:
            raise JournalWriteError(errno.EPERM, "refusing to overwrite an untrusted journal")
        final = self.path_for(record.sandbox_id)
        data = self.encode(record)
        hook = self.crash_hook
        try:
            fd = os.open(final, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                hook("open-temp")          # the old journal is already truncated
                half = len(data) // 2
                os.write(fd, data[:half])
                hook("write-partial")      # half a JSON document on disk
                os.write(fd, data[half:])
                hook("fsync-temp")
                os.fsync(fd)
            finally:
                os.close(fd)
            hook("rename")
            hook("fsync-dir")
        except OSError as exc:
            raise JournalWriteError(exc.errno, f"cannot persist journal {final}: "
                                               f"{exc.strerror or exc}") from exc
        self.writes += 1


class TornJournal(ReferenceDriver):
    """Writes its journal **non-atomically**: it truncates the journal file and writes the new
    one in place, so a crash (or a failed write) part-way leaves an empty or half-written file,
    which the restarted driver cannot trust (``ContainerOwnershipUnresolved``).

    Breaks OWN-16 (a crash at any point of a write leaves the old or the new journal) and OWN-15
    (written atomically; a failed write must not lose the old journal), and so OWN-9.
    """

    journal_class = _InPlaceJournal


# -- events ----------------------------------------------------------------------------------------


class _EveryTimeHub(EventHub):
    """Emits every notice at every observation: no deduplication by condition key."""

    def notices(self, sandbox_id: str, notices) -> None:
        for notice in notices:
            self.emit(PlatformEvent(sandbox_id, notice.type, notice.reason, notice.message,
                                    notice.metadata))


class UndeduplicatedWarnings(ReferenceDriver):
    """Never deduplicates warnings: a condition that holds for ten observations gives ten
    Warnings (``ContainerIdentityConflict``, ``ContainerInstanceMissing``, ...).

    Breaks OWN-17 (one Warning per distinct condition, not one per observation).
    """

    hub_class = _EveryTimeHub


# -- factories -------------------------------------------------------------------------------------

#: factory name -> the broken driver class it runs
BROKEN: dict[str, type[ReferenceDriver]] = {
    "trusts_labels_last_wins": TrustsLabelsLastWins,
    "trusts_labels_first_wins": TrustsLabelsFirstWins,
    "deleted_on_missing": DeletedOnMissing,
    "adopts_on_first_sight": AdoptsOnFirstSight,
    "ignores_generation": IgnoresGeneration,
    "no_journal": NoJournal,
    "torn_journal": TornJournal,
    "undeduplicated_warnings": UndeduplicatedWarnings,
    "promotes_while_pending": PromotesWhilePending,
    "deletes_only_one": DeletesOnlyOne,
}


def trusts_labels_last_wins(ctx: DriverContext) -> ReferenceAdapter:
    return ReferenceAdapter(ctx, TrustsLabelsLastWins, name="trusts_labels_last_wins")


def trusts_labels_first_wins(ctx: DriverContext) -> ReferenceAdapter:
    return ReferenceAdapter(ctx, TrustsLabelsFirstWins, name="trusts_labels_first_wins")


def deleted_on_missing(ctx: DriverContext) -> ReferenceAdapter:
    return ReferenceAdapter(ctx, DeletedOnMissing, name="deleted_on_missing")


def adopts_on_first_sight(ctx: DriverContext) -> ReferenceAdapter:
    return ReferenceAdapter(ctx, AdoptsOnFirstSight, name="adopts_on_first_sight")


def ignores_generation(ctx: DriverContext) -> ReferenceAdapter:
    return ReferenceAdapter(ctx, IgnoresGeneration, name="ignores_generation")


def no_journal(ctx: DriverContext) -> ReferenceAdapter:
    return ReferenceAdapter(ctx, NoJournal, name="no_journal")


def torn_journal(ctx: DriverContext) -> ReferenceAdapter:
    return ReferenceAdapter(ctx, TornJournal, name="torn_journal")


def undeduplicated_warnings(ctx: DriverContext) -> ReferenceAdapter:
    return ReferenceAdapter(ctx, UndeduplicatedWarnings, name="undeduplicated_warnings")


def promotes_while_pending(ctx: DriverContext) -> ReferenceAdapter:
    return ReferenceAdapter(ctx, PromotesWhilePending, name="promotes_while_pending")


def deletes_only_one(ctx: DriverContext) -> ReferenceAdapter:
    return ReferenceAdapter(ctx, DeletesOnlyOne, name="deletes_only_one")


#: factory name -> factory
DRIVERS = {name: globals()[name] for name in BROKEN}
