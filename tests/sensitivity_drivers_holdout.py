"""Held-out sensitivity drivers: the **second** frozen set, written on 2026-12-01.

``tests/sensitivity_drivers.py`` holds the first frozen set (40 drivers). The scenario catalog
and the story grammar were then extended by someone who had read those 40 drivers, so they no
longer measure how sensitive the suite is to bugs it was *not* written against. The drivers here
do: they were invented on 2026-12-01, after that extension, from ``docs/contract.md``
(OWN-1..OWN-20 and the decision procedure), the reference driver's code
(``reference_driver/decision.py``, ``journal.py``, ``events.py``, ``driver.py``) and what real
drivers and tools do, **without** reading the catalog (``scenarios/*.yaml``,
``docs/scenarios.md``), the story grammar (``pytest_sandbox_conformance/exploration/stories.py``)
or ``docs/sensitivity.md``, and without running the catalog against any of them before all were
committed. None repeats a mistake of the first set or of ``tests/broken_drivers.py`` (a different
constant of the same mistake would not count as new).

The rules of the first set hold here too: each driver is a small, realistic variation of the
reference driver (a mistake a driver author makes in one or two lines), a real violation of the
contract where the reference driver is right, reachable by a story of outside actions
(``tests/test_sensitivity_drivers_holdout.py`` plays one such story per driver), and **they are
never changed to make them caught** (only a driver that crashes on import, or turns out not to
be a real violation, may be fixed, and the commit says so). ``benchmarks/sensitivity.py --set
holdout`` runs the catalog and generated stories against each; ``docs/sensitivity.md`` ("The
held-out set") records the figures.

Each class docstring says the mistake, the requirement(s) it breaks, and in which situation it
behaves differently from the reference driver. Each has a factory of the same name::

    PYTHONPATH=tests pytest --sandbox-driver=sensitivity_drivers_holdout:poll_ignores_namespace

``HOLDOUT`` maps each name to ``(class, requirements, category)``, with the first set's
categories (``sensitivity_drivers.CATEGORIES``: promise, shape, fault, exploration, boundary).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import quote

from pytest_sandbox_conformance.adapters.base import DriverContext
from pytest_sandbox_conformance.adapters.reference import ReferenceAdapter
from pytest_sandbox_conformance.api import Snapshot
from pytest_sandbox_conformance.engines.base import ALL_STATES, Container
from reference_driver import ReferenceDriver
from reference_driver.decision import (
    Decision,
    Outcome,
    candidates_for,
    group_by_sandbox,
    persist_failed,
    unowned_notices,
)
from reference_driver.events import EventHub
from reference_driver.journal import SUFFIX, TMP_MARK, Journal, JournalWriteError
from reference_driver.naming import canonical_name, is_backup_name
from reference_driver.state import Record

from sensitivity_drivers import CATEGORIES, _decide_variant, _VariantDecide

__all__ = ["DRIVERS", "HOLDOUT", "CATEGORIES"]


# == promise ======================================================================================


class MissingReportsNoInstanceId(ReferenceDriver):
    """When the authority's container is gone and nothing replaced it, the snapshot reports
    ``instance_id=None`` ("there is no instance any more"), with the ``ContainerInstanceMissing``
    condition.

    Breaks OWN-6 (the snapshot *keeps A's ID* and reports ``ContainerInstanceMissing``). Differs
    whenever the sandbox's container is removed (``docker rm -f``, a host clean-up, a Watchtower
    recreate caught between its remove and its run) and a poll sees no candidate at all.
    """

    def decide(self, record: Record, candidates, canonical: str) -> Decision:
        d = super().decide(record, candidates, canonical)
        if d.outcome == Outcome.MISSING:
            return replace(d, instance_id=None)
        return d


class UnownedWarningNamesTheirSandbox(ReferenceDriver):
    """The ``UnownedSandboxContainersIgnored`` Warning is sent once per untracked sandbox id,
    *with that sandbox id* ("so that an operator can find which sandbox they were"), instead of
    one Warning with an empty sandbox id naming them all.

    Breaks OWN-18 (unowned containers are reported once, contract §6: "sent with an empty
    sandbox id") and, through the sandbox id, the gateway's view: it receives Warnings for
    sandboxes it does not know. Differs whenever containers carry this driver's labels and
    namespace but an untracked sandbox id (a journal lost or restored from an older backup, a
    container left by a failed create, a ``docker run --label`` copy with an invented id).
    """

    def observe(self, listed: list[Container] | None = None) -> None:
        if listed is None:
            with self._lock:
                self.observe(self.list_namespace())
            return
        with self._lock:
            keys = self.labels
            groups = group_by_sandbox(listed, keys.sandbox_id)
            for record in list(self._records.values()):
                self._resolve(record, candidates_for(record, groups, keys.sandbox_name))
            for sid, group in sorted(groups.items()):
                if sid not in self._records:
                    self._hub.notices(sid, unowned_notices({sid: group}, self._records))


# == shape ========================================================================================


class PollIgnoresNamespace(ReferenceDriver):
    """The poll lists every container that has a ``sandbox-id`` label (a key-only filter,
    ``label=openshell.ai/sandbox-id``) and groups them by id and name: "sandbox ids are unique,
    the namespace label is redundant".

    Breaks OWN-2 (candidates are the containers whose namespace, id and name labels match; a
    container of another namespace must not count) and OWN-18 (containers of another namespace
    are not this driver's concern, the Warning is for this driver's labels *and namespace*).
    Differs when a second gateway (another namespace: ``staging`` beside ``default``) runs
    sandboxes on the same engine: their containers are reported as unowned, and one with the same
    sandbox id and name is a candidate (a duplicate beside the authority, or a gap-handoff
    replacement once the authority is gone).
    """

    def list_namespace(self) -> list[Container]:
        return self.engine.list({self.labels.sandbox_id: None})


class _LowercasedPathJournal(Journal):
    def path_for(self, sandbox_id: str) -> Path:
        return self.folder / (quote(sandbox_id.lower(), safe="") + SUFFIX)


class JournalFileNameLowercased(ReferenceDriver):
    """The journal's file name is the lower-cased, percent-encoded sandbox id ("so that the
    state folder survives a copy to a case-insensitive filesystem"), while the loader still takes
    the sandbox id from the file name and checks it against the journal's content.

    Breaks OWN-15 (one journal per sandbox, checked when loaded) and OWN-9 (a restarted driver
    restores every sandbox from its journal). Differs for a sandbox id with an upper-case letter
    (``SBX-7``, ``Team-Box``): after a restart its journal loads as another sandbox's
    (``sbx-7``: foreign, untrusted), the real sandbox is no longer tracked and its container is
    reported as unowned; two ids that differ only in case share one journal file.
    """

    journal_class = _LowercasedPathJournal


class SuccessorNamePrefixMatch(ReferenceDriver):
    """A successor's name is checked with ``name.startswith(canonical)`` instead of equality
    (written to accept Docker Compose's replica suffix, ``<name>-1``), so a running container
    whose name extends the canonical name counts as one under the canonical name.

    Breaks OWN-4 and OWN-5 (the replacement has *the canonical name*) and OWN-2 (a container
    that is no acceptable claim must not drive the snapshot). Differs when the clone is made
    under a longer name (``<canonical>-1`` from ``docker compose up``, ``<canonical>-gpu`` from a
    script) with all of A's labels: after A is removed it is adopted through a gap handoff where
    the reference driver reports a conflict; beside A exited under a backup name it is adopted
    where the reference driver keeps the handoff pending.
    """

    def decide(self, record: Record, candidates, canonical: str) -> Decision:
        seen = [replace(c, name=canonical)
                if (c.id != record.authority and c.name.startswith(canonical)
                    and not is_backup_name(c.name, canonical)) else c
                for c in candidates]
        d = super().decide(record, seen, canonical)
        real = {c.id: c for c in candidates}
        if d.instance is not None and d.instance.id in real:
            d = replace(d, instance=real[d.instance.id])
        return d


# == fault ========================================================================================


class AdoptsDespiteFailedWrite(ReferenceDriver):
    """When the journal write of a changed record fails, the driver reports
    ``ContainerOwnershipPersistFailed`` as a Warning but goes on with the decision in memory
    ("log it; the journal catches up at the next change"): it adopts, records intents and rolls
    back without the journal.

    Breaks OWN-15 (every change to the journal is persisted before the in-memory state changes;
    a failed write is reported and *nothing is adopted*) and through it OWN-9 (a restart then
    comes back on the old authority). Differs when a journal write fails (disk full, a read-only
    remount) at the observation that adopts, records an intent or rolls back: the sandbox's
    snapshot moves to the replacement while the journal still names the incumbent.
    """

    def _resolve(self, record: Record, candidates: list[Container]) -> None:
        canonical = canonical_name(record.name, record.sandbox_id)
        decision: Decision = self.decide(record, candidates, canonical)
        if decision.record != record:
            try:
                self.journal.write(decision.record)
            except JournalWriteError as exc:
                failed = persist_failed(decision, record, str(exc))
                decision = replace(decision, notices=decision.notices + failed.notices)
            self._records[record.sandbox_id] = decision.record
        snap = Snapshot(record.sandbox_id, record.name, self.namespace, decision.instance_id,
                        decision.ready)
        self._snapshots[record.sandbox_id] = snap
        self._hub.notices(record.sandbox_id, decision.notices)
        self._hub.snapshot(snap)


class _SkipUntrustedJournal(Journal):
    def load_all(self) -> Iterator[Record]:
        for record in super().load_all():
            if not record.untrusted:
                yield record


class UntrustedJournalSkipped(ReferenceDriver):
    """At start-up the loader skips every journal it cannot read or verify ("a file that does
    not parse is debris from a crash"), so the sandbox is simply not tracked.

    Breaks OWN-15 (a corrupt, foreign or unreadable journal is never trusted silently: it fails
    closed, ``ContainerOwnershipUnresolved``) and OWN-9 (a restarted driver restores every
    sandbox). Differs when a sandbox's journal is corrupt or foreign at a restart (a torn file
    from another tool, a bad restore, a journal of another namespace or format version): the
    sandbox gets no unresolved snapshot, and its container is reported as unowned.
    """

    journal_class = _SkipUntrustedJournal


class _PromoteTempJournal(Journal):
    def load_all(self) -> Iterator[Record]:
        for tmp in sorted(self.folder.glob("*" + SUFFIX + TMP_MARK + "*")):
            final = tmp.with_name(tmp.name.split(TMP_MARK)[0])
            try:
                os.replace(tmp, final)  # finish the interrupted write
            except OSError:
                pass
        yield from super().load_all()


class StartupPromotesTempFile(ReferenceDriver):
    """At start-up a leftover temporary file ``<journal>.tmp-<pid>`` is taken for the newest
    state and renamed over the journal ("finish the interrupted write") instead of being swept.

    Breaks OWN-16 (a crash at any point during a journal write leaves the old journal or the new
    one, never a torn one) and OWN-15. Differs when the driver dies while the temporary file is
    half written (a crash or an OOM kill in the middle of the write): the restarted driver
    promotes the torn file and fails closed (``ContainerOwnershipUnresolved``) on a sandbox whose
    old journal was intact.
    """

    journal_class = _PromoteTempJournal


# == exploration ==================================================================================


def _ids_in_list_order(containers) -> str:
    return ",".join(c.id for c in containers)


class ConflictKeyInListOrder(_VariantDecide):
    """The IDs in Warning keys and metadata are joined in the engine's list order
    (``",".join(c.id for c in duplicates)``: the ``sorted`` was forgotten).

    Breaks OWN-17 (one Warning per distinct condition: the same containers are one condition)
    and OWN-20 (the outcome must not depend on the order in which the engine lists containers).
    Differs when two or more containers are named in one condition (two copies beside the
    authority, candidates of a pending handoff or of a conflict) and two polls list them in
    different orders: the same condition is warned about again.
    """

    _procedure = staticmethod(_decide_variant(_ids=_ids_in_list_order))


class RollbackDuringIntentSilent(ReferenceDriver):
    """While a replacement intent is recorded, an observation that shows the incumbent back
    under the canonical name (the GPU tool rolled back before the adoption) quietly drops the
    intent and reports the incumbent as usual ("nothing happened").

    Breaks OWN-8 (an observation after an intent that does not match it clears the intent,
    emits ``SandboxReplacementIntentInvalidated`` and adopts nothing, reporting the handoff
    pending). Differs when the GPU tool's rollback (stop B, remove B, rename the backup back,
    start it) falls between the poll that recorded the intent and the next one: no Warning, and
    the incumbent is Ready one poll early.
    """

    def decide(self, record: Record, candidates, canonical: str) -> Decision:
        d = super().decide(record, candidates, canonical)
        if (d.outcome == Outcome.INVALIDATE
                and any(c.id == record.authority and c.name == canonical for c in candidates)):
            return super().decide(record.with_intent(None), candidates, canonical)
        return d


# == boundary =====================================================================================


class RollbackInAnyState(_VariantDecide):
    """A retired instance is rolled back to in any state ("it was ours; its state is reported
    by its Ready condition anyway"): the rollback states are all of Docker's states.

    Breaks OWN-13 (the retired instance must be in a non-terminal state, or exited; dead,
    paused and removing instances are no rollback targets). Differs when the revived former
    instance is ``paused`` (``docker pause`` right after the tool's rollback started it), ``dead``
    (a failed removal) or ``removing`` at the poll: it becomes authoritative, where the reference
    driver reports a conflict.
    """

    _procedure = staticmethod(_decide_variant(ROLLBACK_STATES=frozenset(ALL_STATES)))


class _ResetOnSnapshotHub(EventHub):
    def snapshot(self, snap) -> None:
        if self._last.get(snap.sandbox_id) != snap:
            self._active.pop(snap.sandbox_id, None)  # a new snapshot, a new set of conditions
        super().snapshot(snap)


class DedupeResetOnSnapshotChange(ReferenceDriver):
    """The Warnings' deduplication state of a sandbox is reset whenever its snapshot changes
    ("a new snapshot is a new situation"); the hub is told the conditions before the snapshot.

    Breaks OWN-17 (one Warning per distinct condition, not again while its key stays). Differs
    when a condition outlives a change of the snapshot (a duplicate beside the authority when
    the authority is stopped or started again, an unresolved journal while the list changes) and
    at the first poll of any condition that comes with a new snapshot (a missing instance, an
    intent): the same condition is warned about again at the next poll.
    """

    hub_class = _ResetOnSnapshotHub


# -- factories -------------------------------------------------------------------------------------

#: factory name -> (driver class, requirements it breaks, category)
HOLDOUT: dict[str, tuple[type[ReferenceDriver], tuple[str, ...], str]] = {
    # promise
    "missing_reports_no_instance_id": (MissingReportsNoInstanceId, ("OWN-6",), "promise"),
    "unowned_warning_names_their_sandbox": (UnownedWarningNamesTheirSandbox, ("OWN-18",),
                                            "promise"),
    # shape
    "poll_ignores_namespace": (PollIgnoresNamespace, ("OWN-2", "OWN-18"), "shape"),
    "journal_file_name_lowercased": (JournalFileNameLowercased, ("OWN-15", "OWN-9"), "shape"),
    "successor_name_prefix_match": (SuccessorNamePrefixMatch, ("OWN-4", "OWN-5", "OWN-2"),
                                    "shape"),
    # fault
    "adopts_despite_failed_write": (AdoptsDespiteFailedWrite, ("OWN-15", "OWN-9"), "fault"),
    "untrusted_journal_skipped": (UntrustedJournalSkipped, ("OWN-15", "OWN-9"), "fault"),
    "startup_promotes_temp_file": (StartupPromotesTempFile, ("OWN-16", "OWN-15"), "fault"),
    # exploration
    "conflict_key_in_list_order": (ConflictKeyInListOrder, ("OWN-17", "OWN-20"), "exploration"),
    "rollback_during_intent_silent": (RollbackDuringIntentSilent, ("OWN-8",), "exploration"),
    # boundary
    "rollback_in_any_state": (RollbackInAnyState, ("OWN-13",), "boundary"),
    "dedupe_reset_on_snapshot_change": (DedupeResetOnSnapshotChange, ("OWN-17",), "boundary"),
}


def _factory(name: str, cls: type[ReferenceDriver]) -> Callable[[DriverContext], ReferenceAdapter]:
    def factory(ctx: DriverContext) -> ReferenceAdapter:
        return ReferenceAdapter(ctx, driver_cls=cls, name=name)

    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = f"The ``sensitivity_drivers_holdout:{name}`` driver ({cls.__name__})."
    return factory


for _name, (_cls, _requirements, _category) in HOLDOUT.items():
    globals()[_name] = _factory(_name, _cls)
del _name, _cls, _requirements, _category

#: factory name -> factory
DRIVERS: dict[str, Callable[[DriverContext], ReferenceAdapter]] = {
    name: globals()[name] for name in HOLDOUT}
