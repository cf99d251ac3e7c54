"""Each held-out sensitivity driver is a real, reachable bug: a story where it differs.

``tests/sensitivity_drivers_holdout.py`` is the second frozen set of sensitivity drivers, written
after the catalog was extended against the first (``tests/sensitivity_drivers.py``). As in
``tests/test_sensitivity_drivers.py``, these tests do not use the scenario catalog: one short
story of outside actions per driver, played through the Python API on the fake engine, shows
what the reference driver does (what the contract asks for) and that the broken driver does
something else.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pytest_sandbox_conformance.adapters import DriverContext, check_adapter, load_factory
from pytest_sandbox_conformance.api import SandboxSpec
from pytest_sandbox_conformance.engines.fake import FakeEngine
from reference_driver import ReferenceDriver

import sensitivity_drivers_holdout as hd
from helpers import KEYS, Harness, first
from test_sensitivity_drivers import (adopted_with_backup_kept, both, check_set, created, overlap,
                                     reading)

CONFLICT = "ContainerIdentityConflict"
PENDING = "ContainerReplacementPending"
MISSING = "ContainerInstanceMissing"
UNRESOLVED = "ContainerOwnershipUnresolved"
PERSIST_FAILED = "ContainerOwnershipPersistFailed"
INVALIDATED = "SandboxReplacementIntentInvalidated"
UNOWNED = "UnownedSandboxContainersIgnored"


class Crash(BaseException):
    """The driver process dying inside a journal write (nothing may catch it)."""


def observed(h: Harness) -> tuple[str | None, str]:
    """One poll, then the sandbox's (instance_id, reason)."""
    h.observe()
    return reading(h)


def fail_next_write(h: Harness) -> None:
    """The next journal write fails as on a full disk (ENOSPC), as the adapter's write-fail."""
    state = {"left": 1}

    def hook(step: str) -> None:
        if step == "open-temp" and state["left"]:
            state["left"] -= 1
            raise OSError(28, "No space left on device (injected)")

    h.driver.journal.crash_hook = hook


# == the set itself ===============================================================================


def test_the_set_is_complete_and_documented():
    import sensitivity_drivers as sd

    assert 10 <= len(hd.HOLDOUT) <= 12
    assert not set(hd.HOLDOUT) & set(sd.SENSITIVITY)
    assert not {cls for cls, _, _ in hd.HOLDOUT.values()} & {
        cls for cls, _, _ in sd.SENSITIVITY.values()}
    check_set(hd.HOLDOUT, hd.DRIVERS, globals())  # factories: test_sensitivity_drivers.py


# == promise ======================================================================================


def test_missing_reports_no_instance_id(tmp_path):
    # OWN-6: A removed, no replacement: the snapshot keeps A's ID, ContainerInstanceMissing.
    def story(h):
        a = created(h)
        h.story.remove(a)
        return observed(h), a

    (ref, a), (broken, _) = both(tmp_path, hd.MissingReportsNoInstanceId, story)
    assert ref == (a, MISSING)
    assert broken == (None, MISSING)


def test_unowned_warning_names_their_sandbox(tmp_path):
    # OWN-18 / §6: one UnownedSandboxContainersIgnored Warning, with an empty sandbox id.
    def story(h):
        a = created(h)
        labels = h.story.labels_of(a)
        labels[KEYS.sandbox_id] = "sbx-ghost"
        h.story.clone(labels, name="openshell-demo-sbx-ghost")
        h.observe_quietly(3)
        return [w.sandbox_id for w in h.warnings(UNOWNED)]

    assert both(tmp_path, hd.UnownedWarningNamesTheirSandbox, story) == ([""], ["sbx-ghost"])


# == shape ========================================================================================


def test_poll_ignores_namespace(tmp_path):
    # OWN-18 / OWN-2: another namespace's sandboxes on the same engine are not this driver's.
    def story(h):
        created(h)
        staging = ReferenceDriver(h.engine, h.state_dir.with_name(h.state_dir.name + "-staging"),
                                  namespace="staging")
        staging.create(SandboxSpec("sbx-0002", "other"))
        h.observe_quietly(2)
        return len(h.warnings(UNOWNED)), reading(h)[1]

    assert both(tmp_path, hd.PollIgnoresNamespace, story) == ((0, "ContainerRunning"),
                                                               (1, "ContainerRunning"))


def test_journal_file_name_lowercased(tmp_path):
    # OWN-9 / OWN-15: a restart restores a sandbox whose id has upper-case letters.
    spec = SandboxSpec(id="SBX-7", name="demo")

    def story(h):
        a = created(h)
        h.restart()
        snap = h.observe()
        return (snap.instance_id if snap else None), h.driver.tracked(), a

    (ref, ref_tracked, a), (broken, broken_tracked, _) = both(
        tmp_path, hd.JournalFileNameLowercased, story, sandbox=spec)
    assert (ref, ref_tracked) == (a, ["SBX-7"])
    assert (broken, broken_tracked) == (None, ["sbx-7"])


def test_successor_name_prefix_match(tmp_path):
    # OWN-5 / OWN-2: a clone under "<canonical>-1" is no acceptable claim.
    def story(h):
        a = created(h)
        c = h.story.clone(a, name=h.story.canonical + "-1")
        h.story.remove(a)
        h.observe_quietly(3)
        return reading(h), a, c

    (ref, a, c), (broken, _, _) = both(tmp_path, hd.SuccessorNamePrefixMatch, story)
    assert ref == (a, CONFLICT)
    assert broken == (c, "ContainerRunning")


# == fault ========================================================================================


def test_adopts_despite_failed_write(tmp_path):
    # OWN-15: a failed journal write adopts nothing (ContainerOwnershipPersistFailed).
    def story(h):
        a, b = overlap(h)
        h.observe()  # the intent
        fail_next_write(h)
        h.observe()  # the adoption, whose write fails
        return reading(h), h.journaled().authority, a, b

    (ref, ref_journal, a, b), (broken, broken_journal, _, _) = both(
        tmp_path, hd.AdoptsDespiteFailedWrite, story)
    assert ref == (a, PERSIST_FAILED) and ref_journal == a
    assert broken == (b, "ContainerRunning") and broken_journal == a


def test_untrusted_journal_skipped(tmp_path):
    # OWN-15: a corrupt journal fails closed (ContainerOwnershipUnresolved) after a restart.
    def story(h):
        created(h)
        h.driver.journal.path_for(h.sid).write_bytes(b'{"version": 1, "sandbox_id": ')
        h.restart()
        snap = h.observe()
        return (snap.reason if snap else None), len(h.warnings(UNOWNED))

    assert both(tmp_path, hd.UntrustedJournalSkipped, story) == ((UNRESOLVED, 0), (None, 1))


def test_startup_promotes_temp_file(tmp_path):
    # OWN-16: a crash half-way through a journal write leaves the old journal, never a torn one.
    def story(h):
        a, b = overlap(h)

        def hook(step):
            if step == "write-partial":
                raise Crash(step)

        h.driver.journal.crash_hook = hook
        with pytest.raises(Crash):
            h.observe()  # the intent's write dies half-way
        h.restart()
        return observed(h), a

    (ref, a), (broken, _) = both(tmp_path, hd.StartupPromotesTempFile, story)
    assert ref == (a, PENDING)
    assert broken == (None, UNRESOLVED)


# == exploration ==================================================================================


def test_conflict_key_in_list_order(tmp_path):
    # OWN-17 / OWN-20: one condition, one Warning, whatever order the engine lists it in.
    def story(h):
        a = created(h)
        x = h.story.clone(a, name="demo-copy")
        y = h.story.clone(a, name="demo-copy-2")
        h.observe(first(x))
        h.observe(first(y))
        return len(h.warnings(CONFLICT))

    assert both(tmp_path, hd.ConflictKeyInListOrder, story) == (1, 2)


def test_rollback_during_intent_silent(tmp_path):
    # OWN-8: the tool rolls back between the intent and the adoption: the intent is invalidated.
    def story(h):
        a, b = overlap(h)
        h.observe()  # the intent
        h.story.rollback(b, a)
        return observed(h), len(h.warnings(INVALIDATED)), a

    (ref, ref_n, a), (broken, broken_n, _) = both(tmp_path, hd.RollbackDuringIntentSilent, story)
    assert (ref, ref_n) == ((a, PENDING), 1)
    assert (broken, broken_n) == ((a, "ContainerRunning"), 0)


# == boundary =====================================================================================


def test_rollback_in_any_state(tmp_path):
    # OWN-13: a paused former instance is no rollback target.
    def story(h):
        a, b = adopted_with_backup_kept(h)
        h.story.rollback(b, a)
        h.engine.set_state(a, "paused")
        return observed(h), a, b

    (ref, a, b), (broken, _, _) = both(tmp_path, hd.RollbackInAnyState, story)
    assert ref == (b, CONFLICT)
    assert broken == (a, "ContainerPaused")


def test_dedupe_reset_on_snapshot_change(tmp_path):
    # OWN-17: a duplicate beside A is one condition, whether A runs or was stopped.
    def story(h):
        a = created(h)
        h.story.clone(a, name="demo-copy")
        h.observe()
        h.story.stop(a)
        h.observe_quietly(3)
        return len(h.warnings(CONFLICT)), reading(h)[1]

    assert both(tmp_path, hd.DedupeResetOnSnapshotChange, story) == (
        (1, "ContainerExited"), (2, "ContainerExited"))
