"""The checks for the contract's promises no earlier check read (issue 10, items 3 and 4).

* what each Warning names (``warnings-name-their-containers``);
* the state-folder audit (``state-folder-owner-only``, ``run/state_audit.py``);
* the driver's own GPU sandbox has its device request (the ``create`` check, OWN-19);
* the power-loss journal fault (``adapters/durability.py``);
* a failure names the rule the driver's branch broke (``run/rules.py``).

Each broken driver here is one of ``tests/sensitivity_drivers.py`` (frozen: invented before
these checks) or a small subclass of the reference driver, played on the fake engine through
:func:`~pytest_sandbox_conformance.run.runner.play`; the reference driver must pass each time.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from pytest_sandbox_conformance.adapters.durability import FolderWatch
from pytest_sandbox_conformance.adapters.reference import ReferenceAdapter
from pytest_sandbox_conformance.api import Condition, Snapshot
from pytest_sandbox_conformance.engines.base import Container
from pytest_sandbox_conformance.engines.fake import FakeEngine
from pytest_sandbox_conformance.exploration.schedule import enumerate_exhaustive, pinned
from pytest_sandbox_conformance.run.checks import REGISTRY, RUNNER_CHECKS, requirement_checks
from pytest_sandbox_conformance.run.rules import Situation, broken_rule
from pytest_sandbox_conformance.run.runner import ConformanceFailure, RunConfig, play
from pytest_sandbox_conformance.run.state_audit import audit_state_folder
from pytest_sandbox_conformance.scenario import load_file
from reference_driver import ReferenceDriver
from reference_driver.decision import Outcome, decide
from reference_driver.journal import Journal
from reference_driver.naming import LabelKeys, backup_name, canonical_name
from reference_driver.state import Intent, Record

import sensitivity_drivers as sens

ROOT = Path(__file__).resolve().parent.parent
CATALOG = ROOT / "scenarios"
GEN = LabelKeys().generation


def first(sc):
    """The first exhaustive schedule (no observation in the story's gaps)."""
    return next(iter(enumerate_exhaustive(sc)))


def scenario(file: str, sid: str):
    return next(s for s in load_file(CATALOG / file) if s.id == sid)


def factory_of(cls):
    def factory(ctx):
        return ReferenceAdapter(ctx, driver_cls=cls, name=cls.__name__)
    return factory


def run(sc, sched, cls, tmp_path):
    play(sc, sched, RunConfig(driver=factory_of(cls), engine=FakeEngine, state_root=tmp_path))


def failure(sc, sched, cls, tmp_path) -> ConformanceFailure:
    with pytest.raises(ConformanceFailure) as info:
        run(sc, sched, cls, tmp_path)
    return info.value


# -- what a Warning names ----------------------------------------------------------------------


@pytest.mark.parametrize("broken", [sens.ConflictWarningWithoutIds,
                                    sens.ConflictNamesFirstDuplicateOnly])
def test_a_conflict_warning_that_does_not_name_every_duplicate_fails_own3(broken, tmp_path):
    # OWN-3: "one Warning ContainerIdentityConflict that names the other candidates".
    sc = scenario("warnings.yaml", "warnings-name-every-duplicate")
    for sched in pinned(sc):
        run(sc, sched, ReferenceDriver, tmp_path)
    f = failure(sc, pinned(sc)[0], broken, tmp_path)
    named = [x for x in f.failures if x.check == "warnings-name-their-containers"]
    assert named and named[0].requirements == ("OWN-3",)
    assert "does not name D" in named[0].message


def test_a_warning_per_duplicate_fails_the_name_and_the_count(tmp_path):
    # OWN-3, OWN-17: one Warning for the condition, naming every duplicate.
    sc = scenario("warnings.yaml", "warnings-name-every-duplicate")
    f = failure(sc, pinned(sc)[0], sens.ConflictWarningPerDuplicate, tmp_path)
    assert {x.check for x in f.failures} >= {"warnings-name-their-containers",
                                             "warnings-deduplicated"}


# -- the state folder --------------------------------------------------------------------------


def test_audit_of_an_owner_only_folder_finds_nothing(tmp_path):
    # OWN-15: owner-only files and folders, nothing beside the folder.
    folder = tmp_path / "state"
    folder.mkdir(mode=0o700)
    (folder / "s1.json").write_text("{}")
    os.chmod(folder / "s1.json", 0o600)
    sub = folder / "sub"
    sub.mkdir(mode=0o700)
    (sub / "x").write_text("")
    os.chmod(sub / "x", 0o400)  # stricter than 0600 is owner-only too
    assert audit_state_folder(tmp_path, folder) == []


def test_audit_reports_lax_modes_writes_beside_the_folder_and_foreign_renames(tmp_path):
    # OWN-15: "owner-only: file mode 0600, folder mode 0700"; the temporary file beside it.
    folder = tmp_path / "state"
    folder.mkdir(mode=0o700)
    (folder / "s1.json").write_text("{}")
    os.chmod(folder / "s1.json", 0o644)
    (folder / "d").mkdir()
    os.chmod(folder / "d", 0o755)
    (tmp_path / "state.lock").write_text("")
    problems = audit_state_folder(tmp_path, folder, ["/tmp/x.tmp -> s1.json"])
    assert len(problems) == 4
    assert any("s1.json in the state folder has mode 0644" in p for p in problems)
    assert any("d in the state folder has mode 0755" in p and "0700" in p for p in problems)
    assert any("'state.lock' was written beside" in p for p in problems)
    assert any("renamed into the state folder from outside it" in p for p in problems)


def test_audit_follows_a_link_on_the_way_to_the_folder(tmp_path):
    # The audit resolves the way from the play's folder to the driver's (its fast path takes
    # the names as written only where no link lies on it).
    run = tmp_path / "run"
    (run / "real" / "state").mkdir(parents=True, mode=0o700)
    os.chmod(run / "real", 0o700)
    (run / "via").symlink_to(run / "real")
    (run / "real" / "extra").write_text("")
    # through the link: the folders on the real way are audited, the link itself is beside it
    problems = audit_state_folder(run, run / "via" / "state")
    assert any("'extra' was written beside the driver's state folder" in p for p in problems)
    assert any("'via' was written beside" in p for p in problems)
    # a link out of the play's folder: nothing around it is audited, the link is reported
    outside = tmp_path / "elsewhere"
    outside.mkdir(mode=0o700)
    (run / "real" / "out").symlink_to(outside)
    [problem] = audit_state_folder(run / "real", run / "real" / "out")
    assert problem.startswith("the state folder is a symbolic link")


@pytest.mark.parametrize("broken", [sens.JournalFileMode0644, sens.JournalFolderMode0755])
def test_lax_journal_modes_fail_own15(broken, tmp_path):
    # OWN-15: owner-only journal; the reference driver passes the same story.
    old = os.umask(0o022)
    try:
        sc = scenario("journal.yaml", "journal-power-loss-after-create")
        run(sc, first(sc), ReferenceDriver, tmp_path)
        f = failure(sc, first(sc), broken, tmp_path)
    finally:
        os.umask(old)
    assert f.first.check == "state-folder-owner-only" and f.first.requirements == ("OWN-15",)


def test_a_temporary_file_renamed_in_from_the_system_temp_folder_fails_own15(tmp_path):
    # OWN-15: the journal's temporary file lives beside it (same folder, one filesystem).
    sc = scenario("journal.yaml", "journal-power-loss-after-create")
    state_root = Path(os.environ.get("TMPDIR", "/tmp"))
    with pytest.raises(ConformanceFailure) as info:
        play(sc, first(sc), RunConfig(driver=factory_of(sens.JournalTempInSystemTmp),
                                               engine=FakeEngine, state_root=state_root))
    assert "OWN-15" in info.value.requirements
    assert "renamed into the state folder from outside it" in info.value.render()


# -- the driver's own GPU sandbox -----------------------------------------------------------------


def test_a_gpu_sandbox_created_without_its_device_request_fails_own19(tmp_path):
    # OWN-19: the driver-made GPU sandbox has its device request in effect.
    sc = scenario("gpu.yaml", "gpu-replacement-cdi")
    for sched in pinned(sc):
        run(sc, sched, ReferenceDriver, tmp_path)
    f = failure(sc, pinned(sc)[0], sens.GpuCreateDropsDeviceRequest, tmp_path)
    assert f.first.check == "create" and f.first.requirements == ("OWN-19",)
    assert "gpu: true" in f.first.message


# -- power loss ---------------------------------------------------------------------------------


def test_folder_watch_undoes_what_no_fsync_made_durable(tmp_path):
    # OWN-15, OWN-16: a rename without the folder's fsync, a write without the file's fsync.
    watch = FolderWatch(tmp_path)
    try:
        journal = Journal(tmp_path, "ns")
        journal.write(Record("s1", "box", "ns", "a" * 64, "g"))  # the reference write
        (tmp_path / "loose").write_bytes(b"never synced")
        fd = os.open(tmp_path / "half", os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, b"data")
        os.fsync(fd)
        os.close(fd)  # its data is durable, its name is not (no fsync of the folder)
        undone = watch.power_loss()
        assert sorted(os.listdir(tmp_path)) == ["s1.json"]
        assert journal.load(tmp_path / "s1.json").authority == "a" * 64
        assert len(undone) == 2
        # A rename over the journal without the folder's fsync: the old journal comes back.
        tmp = tmp_path / "s1.json.tmp-1"
        tmp.write_bytes(Journal.encode(Record("s1", "box", "ns", "b" * 64, "g")))
        fd = os.open(tmp, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
        os.replace(tmp, tmp_path / "s1.json")
        assert watch.power_loss()
        assert journal.load(tmp_path / "s1.json").authority == "a" * 64
    finally:
        watch.close()
    from pytest_sandbox_conformance.adapters import durability

    assert watch not in durability._WATCHES  # closed: it hears nothing more


def test_power_loss_catches_a_journal_without_the_folders_fsync(tmp_path):
    # OWN-15, OWN-16, OWN-9: the sensitivity driver no_dir_fsync loses its journal.
    for sid in ("journal-power-loss-after-create", "journal-power-loss-after-adoption",
                "journal-power-loss-at-fsync-dir"):
        sc = scenario("journal.yaml", sid)
        for sched in pinned(sc) or [first(sc)]:
            run(sc, sched, ReferenceDriver, tmp_path)
    sc = scenario("journal.yaml", "journal-power-loss-after-create")
    f = failure(sc, first(sc), sens.NoDirFsync, tmp_path)
    assert {"OWN-9", "OWN-16"} <= set(f.requirements)
    assert "power loss" in f.render() and "not tracked" in f.render()


# -- the rule a failure names -------------------------------------------------------------------


def _c(cid: str, name: str, state: str = "running", gen: str | None = "g") -> Container:
    labels = {GEN: gen} if gen is not None else {}
    return Container(id=cid * 64, name=name, state=state, labels=labels, image="img", created=0)


CANON = canonical_name("box", "s1")
BACKUP = backup_name(CANON, 1_760_000_000_000)


def _snap(cid: str | None, reason: str = "ContainerRunning", status: str = "True") -> Snapshot:
    return Snapshot("s1", "box", "ns", cid and cid * 64, Condition(status, reason))


def _situation(record: Record, candidates, invalidated=frozenset()):
    expected = decide(record, candidates, CANON, GEN)
    return expected.outcome, Situation(record, tuple(candidates), CANON, GEN,
                                       frozenset(invalidated))


def test_a_rollback_to_a_container_never_owned_is_named_own13():
    # OWN-13: "a container that was never this sandbox's instance can never be rolled back to".
    rec = Record("s1", "box", "ns", "b" * 64, "g", retired=("a" * 64,))
    outcome, s = _situation(rec, [_c("a", BACKUP, "exited"), _c("x", CANON)])
    assert outcome == Outcome.CONFLICT
    assert broken_rule(outcome, s, _snap("x"))[0] == "OWN-13"


def test_an_adoption_after_an_invalidated_intent_is_named_own8():
    # OWN-8: adoption needs a fresh pair of consistent observations after an invalidation.
    rec = Record("s1", "box", "ns", "a" * 64, "g")
    outcome, s = _situation(rec, [_c("a", BACKUP, "exited"), _c("b", CANON)],
                            invalidated={"b" * 64})
    assert outcome == Outcome.RECORD_INTENT
    assert broken_rule(outcome, s, _snap("b"))[0] == "OWN-8"


def test_pending_on_an_invalidated_intent_is_named_own8():
    # OWN-8: the intent was invalidated (B exited); reporting the handoff pending still acts on it.
    rec = Record("s1", "box", "ns", "a" * 64, "g")
    outcome, s = _situation(rec, [_c("b", CANON, "exited")], invalidated={"b" * 64})
    assert outcome == Outcome.CONFLICT
    got = broken_rule(outcome, s, _snap("a", "ContainerReplacementPending", "False"))
    assert got is not None and got[0] == "OWN-8"


def test_the_exited_backup_reported_as_a_plain_instance_is_named_own4():
    # OWN-4: the handoff shape (A exited under the backup name, B with copied labels running).
    rec = Record("s1", "box", "ns", "a" * 64, "g")
    outcome, s = _situation(rec, [_c("a", BACKUP, "exited"), _c("b", CANON)])
    got = broken_rule(outcome, s, _snap("a", "ContainerExited", "False"))
    assert got is not None and got[0] == "OWN-4"
    # ... also when the successor is not acceptable (the handoff is pending, OWN-7's outcome).
    outcome, s = _situation(rec, [_c("a", BACKUP, "exited"), _c("b", CANON, gen="other")])
    assert outcome == Outcome.PENDING
    assert broken_rule(outcome, s, _snap("a", "ContainerExited", "False"))[0] == "OWN-4"


def test_first_sight_adoptions_duplicates_and_refusals_are_named_by_their_rule():
    # OWN-3, OWN-4, OWN-5, OWN-7: the branch the report corresponds to.
    rec = Record("s1", "box", "ns", "a" * 64, "g")
    outcome, s = _situation(rec, [_c("a", CANON), _c("d", "copy")])
    assert broken_rule(outcome, s, _snap("d"))[0] == "OWN-3"
    outcome, s = _situation(rec, [_c("a", CANON), _c("d", "copy")])
    assert broken_rule(outcome, s, _snap("a", "ContainerIdentityConflict", "False"))[0] == "OWN-3"
    outcome, s = _situation(rec, [_c("a", BACKUP, "exited"), _c("b", CANON)])
    assert broken_rule(outcome, s, _snap("b"))[0] == "OWN-4"
    outcome, s = _situation(rec, [_c("b", CANON)])
    assert broken_rule(outcome, s, _snap("b"))[0] == "OWN-5"
    outcome, s = _situation(rec, [_c("b", CANON, gen="other")])
    assert broken_rule(outcome, s, _snap("b"))[0] == "OWN-7"
    outcome, s = _situation(rec, [_c("b", CANON, state="exited")])
    assert broken_rule(outcome, s, _snap("b"))[0] == "OWN-7"
    rec = replace(rec, intent=Intent(None, "b" * 64))
    outcome, s = _situation(rec, [_c("b", CANON)])
    assert outcome == Outcome.ADOPT and broken_rule(outcome, s, _snap("a")) is None


class _RollsBackToAnyCanonical(ReferenceDriver):
    """Takes any canonical running candidate as a rollback target (broken on purpose)."""

    def decide(self, record, candidates, canonical):
        d = super().decide(record, candidates, canonical)
        if d.outcome != Outcome.CONFLICT:
            return d
        x = next((c for c in candidates if c.name == canonical and c.state == "running"), None)
        if x is None:
            return d
        return replace(d, outcome=Outcome.ROLLBACK, record=record.adopt(x.id), instance=x,
                       instance_id=x.id, ready=Condition("True", "ContainerRunning"), notices=())


def test_a_play_that_rolls_back_to_a_never_owned_container_names_own13_first(tmp_path):
    # OWN-13 (the contract's outcome there is a conflict, OWN-7: kept in the message).
    sc = scenario("rollback.yaml", "rollback-refused-never-owned")
    run(sc, pinned(sc)[0], ReferenceDriver, tmp_path)
    f = failure(sc, pinned(sc)[0], _RollsBackToAnyCanonical, tmp_path)
    assert f.first.requirements == ("OWN-13",)
    assert "the contract's outcome here is conflict, OWN-7" in f.first.message


# -- the requirement -> check table -------------------------------------------------------------


def test_every_requirement_is_read_by_a_check():
    # Each requirement is named by some check's failures (docs/contract.md, section 8).
    table = requirement_checks()
    assert [r for r, checks in table.items() if not checks] == []
    assert set(RUNNER_CHECKS) == {"create", "delete", "containers-only-on-request"}
    assert {"warnings-name-their-containers", "state-folder-owner-only"} <= set(REGISTRY)


def test_every_failure_the_runner_records_is_a_known_check():
    import re

    names = set(REGISTRY) | set(RUNNER_CHECKS) | {"gateway-invariants", "state-folder-owner-only"}
    pkg = ROOT / "pytest_sandbox_conformance" / "run"
    used = {m for p in ("runner.py", "steps.py", "observing.py", "checks.py")
            for m in re.findall(r'Failure\("([a-z-]+)"', (pkg / p).read_text())}
    assert used <= names, used - names
