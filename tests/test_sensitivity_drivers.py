"""Each sensitivity driver is a real, reachable bug: a story where it differs from the reference.

``tests/sensitivity_drivers.py`` holds broken drivers invented before the suite's next checks
(generated stories, new scenarios) and frozen since, to measure how many bugs the suite was not
written against it catches (``benchmarks/sensitivity.py``, ``docs/sensitivity.md``). These tests
do **not** use the scenario catalog: for each driver one short story of outside actions, played
through the Python API on the fake engine (``helpers.Harness``), shows what the reference driver
does (which the contract asks for) and that the broken driver does something else. So each bug
is real and reachable by that story; whether the catalog catches it is the benchmark's business.

Stories that need a power loss look at the system calls instead (``fs_trace``): what is not
fsynced before a write returns is what a power loss can take back.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import tempfile
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from pytest_sandbox_conformance.adapters import DriverContext, check_adapter, load_factory
from pytest_sandbox_conformance.api import PlatformEvent, SandboxSpec
from pytest_sandbox_conformance.engines.fake import FakeEngine
from reference_driver import DriverError, ReferenceDriver
from reference_driver.journal import Journal
from reference_driver.naming import canonical_name

import sensitivity_drivers as sd
import sensitivity_drivers_holdout as hd
from helpers import KEYS, Harness, backup_first, has_gpu, replacement_first

CONFLICT = "ContainerIdentityConflict"
PENDING = "ContainerReplacementPending"
MISSING = "ContainerInstanceMissing"
UNRESOLVED = "ContainerOwnershipUnresolved"
REPLACED = "SandboxInstanceReplaced"
ROLLBACK = "SandboxInstanceRollback"


class PowerCut(BaseException):
    """The machine losing power in the middle of a system call (nothing may catch it)."""


# -- playing one story on the reference driver and on a broken one --------------------------------


def harness(tmp_path: Path, cls: type[ReferenceDriver], **kwargs) -> Harness:
    return Harness(tmp_path / f"{cls.__name__}-journal", driver_cls=cls, **kwargs)


def both(tmp_path: Path, cls: type[ReferenceDriver], story, **kwargs):
    """``story(h)`` with the reference driver, then with ``cls``; each on a fresh fake engine,
    whose container IDs are the same sequence, so the two results compare."""
    return story(harness(tmp_path, ReferenceDriver, **kwargs)), story(harness(tmp_path, cls,
                                                                              **kwargs))


def created(h: Harness) -> str:
    snap = h.create()
    assert h.observe().instance_id == snap.instance_id
    return snap.instance_id


def overlap(h: Harness, **clone_args) -> tuple[str, str]:
    """Create; stop A; rename it to the backup name; clone B under the canonical name."""
    a = created(h)
    h.story.stop(a)
    h.story.rename_to_backup(a)
    return a, h.story.clone(a, **clone_args)


def adopted_with_backup_kept(h: Harness) -> tuple[str, str]:
    """The GPU handoff adopted (two polls of the overlap); the stopped backup A is kept."""
    a, b = overlap(h)
    h.observe()
    assert h.observe().instance_id == b
    return a, b


def reading(h: Harness) -> tuple[str | None, str]:
    snap = h.snap()
    return snap.instance_id, snap.reason


def copy_without_managed_by(h: Harness, a: str, name: str = "demo-copy") -> str:
    labels = h.story.labels_of(a)
    labels.pop(KEYS.managed_by)
    return h.story.clone(labels, name=name)


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.fixture
def fs_trace(monkeypatch):
    """The journal-relevant system calls, in order: ``("fsync", inode)``, ``("replace", inode
    of the source, destination)`` and ``("unlink", path)``; an inode is ``(st_dev, st_ino)``."""
    events: list[tuple] = []
    real_fsync, real_replace, real_unlink = os.fsync, os.replace, os.unlink

    def fsync(fd):
        st = os.fstat(fd)
        events.append(("fsync", (st.st_dev, st.st_ino)))
        return real_fsync(fd)

    def replace_(src, dst, *args, **kwargs):
        st = os.stat(src)
        events.append(("replace", (st.st_dev, st.st_ino), str(dst)))
        return real_replace(src, dst, *args, **kwargs)

    def unlink(path, *args, **kwargs):
        events.append(("unlink", str(path)))
        return real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace_)
    monkeypatch.setattr(os, "unlink", unlink)
    return events


def inode(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def synced_after_last(events: list[tuple], kind: str, folder: Path) -> bool:
    """Whether the folder was fsynced after the last ``kind`` call (what a power loss keeps)."""
    last = max(i for i, e in enumerate(events) if e[0] == kind)
    return ("fsync", inode(folder)) in events[last + 1:]


def every_replaced_file_synced_first(events: list[tuple]) -> bool:
    replaced = [(i, e[1]) for i, e in enumerate(events) if e[0] == "replace"]
    assert replaced
    return all(("fsync", src) in events[:i] for i, src in replaced)


# == the set itself ===============================================================================


def check_set(table, drivers, stories: dict) -> None:
    """A frozen set is complete and documented: each driver has a factory of its name, a
    category, a docstring naming the requirements it breaks and where it differs, and a story
    (``test_<name>`` in ``stories``, its test module's globals) that shows the bug."""
    assert sorted(drivers) == sorted(table)
    for name, (cls, requirements, category) in table.items():
        assert category in sd.CATEGORIES, name
        assert issubclass(cls, ReferenceDriver), name
        assert re.fullmatch(r"[a-z0-9_]+", name) and drivers[name].__name__ == name
        doc = cls.__doc__ or ""
        assert all(re.search(rf"\b{r}\b", doc) for r in requirements), (name, requirements)
        assert "Differs" in doc, f"{name}: say in which situation it differs"
        assert f"test_{name}" in stories, f"{name}: no story shows the bug"


def test_the_set_is_complete_and_documented():
    assert len(sd.SENSITIVITY) >= 28
    per_category = {c: [n for n, (_, _, cat) in sd.SENSITIVITY.items() if cat == c]
                    for c in sd.CATEGORIES}
    assert all(len(names) >= 3 for names in per_category.values()), per_category
    check_set(sd.SENSITIVITY, sd.DRIVERS, globals())


#: Every frozen set: its module (as ``--sandbox-driver`` names it), its table, its factories.
SETS = {"sensitivity_drivers": (sd.SENSITIVITY, sd.DRIVERS),
        "sensitivity_drivers_holdout": (hd.HOLDOUT, hd.DRIVERS)}


@pytest.mark.parametrize("module, name", [(m, n) for m, (t, _) in SETS.items() for n in sorted(t)])
def test_factory_loads_and_runs(module, name, tmp_path):
    table, drivers = SETS[module]
    factory = load_factory(f"{module}:{name}")
    assert factory is drivers[name]
    ctx = DriverContext(FakeEngine(), tmp_path / "state", "ns", "sbx-busybox:local")
    adapter = check_adapter(factory(ctx), f"{module}:{name}")
    assert adapter.name == name
    assert type(adapter.driver) is table[name][0]
    snap = adapter.create(SandboxSpec("sbx-1", "box"))
    adapter.observe()
    assert adapter.snapshot("sbx-1").instance_id == snap.instance_id
    adapter.restart()
    adapter.observe()
    assert adapter.snapshot("sbx-1").instance_id == snap.instance_id


# == promise ======================================================================================


def test_conflict_warning_without_ids(tmp_path):
    # OWN-3: the Warning beside a present authority names the other candidates.
    def story(h):
        a = created(h)
        x = h.story.clone(a, name="demo-copy")
        h.observe()
        return [w.metadata.get("candidate_instance_ids") for w in h.warnings(CONFLICT)], x

    (ref, x), (broken, _) = both(tmp_path, sd.ConflictWarningWithoutIds, story)
    assert ref == [x]
    assert broken == [None]


def test_conflict_names_first_duplicate_only(tmp_path):
    # OWN-3: two copies beside the authority: the one Warning names both.
    def story(h):
        a = created(h)
        x = h.story.clone(a, name="demo-copy")
        y = h.story.clone(a, name="demo-copy-2")
        h.observe()
        return [w.metadata.get("candidate_instance_ids") for w in h.warnings(CONFLICT)], x, y

    (ref, x, y), (broken, _, _) = both(tmp_path, sd.ConflictNamesFirstDuplicateOnly, story)
    assert ref == [",".join(sorted([x, y]))]
    assert len(broken) == 1 and broken[0] in (x, y)


def test_conflict_warning_per_duplicate(tmp_path):
    # OWN-3, OWN-17: one condition (two duplicates seen together), one Warning.
    def story(h):
        a = created(h)
        h.story.clone(a, name="demo-copy")
        h.story.clone(a, name="demo-copy-2")
        h.observe_quietly(3)
        return len(h.warnings(CONFLICT))

    assert both(tmp_path, sd.ConflictWarningPerDuplicate, story) == (1, 2)


def test_rollback_reason_typo(tmp_path):
    # OWN-13: the GPU tool's rollback after an adoption: Warning SandboxInstanceRollback.
    def story(h):
        a, b = adopted_with_backup_kept(h)
        h.story.rollback(b, a)
        assert h.observe().instance_id == a
        return len(h.warnings(ROLLBACK)), len(h.warnings("SandboxInstanceRolledBack"))

    assert both(tmp_path, sd.RollbackReasonTypo, story) == ((1, 0), (0, 1))


def test_replaced_event_is_normal(tmp_path):
    # OWN-4: adoption emits a Warning SandboxInstanceReplaced.
    def story(h):
        adopted_with_backup_kept(h)
        return len(h.warnings(REPLACED)), sorted(
            e.type for e in h.events if isinstance(e, PlatformEvent) and e.reason == REPLACED)

    assert both(tmp_path, sd.ReplacedEventIsNormal, story) == ((1, ["Warning"]), (0, ["Normal"]))


def test_journal_file_mode_0644(tmp_path, umask_022):
    # OWN-15: the journal file is owner-only (0600), whatever the umask.
    def story(h):
        h.create()
        return stat.S_IMODE(h.driver.journal.path_for(h.sid).stat().st_mode)

    assert both(tmp_path, sd.JournalFileMode0644, story) == (0o600, 0o644)


def test_journal_folder_mode_0755(tmp_path, umask_022):
    # OWN-15: the journal folder is owner-only (0700), a new one and an existing lax one.
    def story(h):
        h.create()
        fresh = stat.S_IMODE(h.state_dir.stat().st_mode)
        os.chmod(h.state_dir, 0o755)
        h.restart()
        return fresh, stat.S_IMODE(h.state_dir.stat().st_mode)

    assert both(tmp_path, sd.JournalFolderMode0755, story) == ((0o700, 0o700), (0o755, 0o755))


def test_journal_temp_in_system_tmp(tmp_path, monkeypatch):
    # OWN-15: the temporary file is beside the journal and renamed over it; OWN-1: create works.
    class Crash(BaseException):
        pass

    def crash_at_rename(step):
        if step == "rename":
            raise Crash(step)

    # On one filesystem: a crash before the rename leaves the journal's data outside the folder.
    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))

    def leftovers(h):
        h.driver.journal.crash_hook = crash_at_rename
        with pytest.raises(Crash):
            h.create()
        return sorted(p.name for p in system_tmp.iterdir())

    ref, broken = both(tmp_path, sd.JournalTempInSystemTmp, leftovers)
    assert ref == [] and len(broken) == 1
    for p in system_tmp.iterdir():
        p.unlink()

    # The state folder on another filesystem than the temp folder: no write can succeed.
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)) or inode(shm)[0] == inode(tmp_path)[0]:
        return  # the leftover above shows the bug; EXDEV needs two filesystems
    other_fs = Path(tempfile.mkdtemp(prefix="sbx-sensitivity-", dir=shm))
    try:
        monkeypatch.setattr(tempfile, "tempdir", str(other_fs))
        ok = harness(tmp_path / "exdev", ReferenceDriver)
        assert ok.create().ready.ready
        bad = harness(tmp_path / "exdev", sd.JournalTempInSystemTmp)
        with pytest.raises(DriverError, match="ContainerOwnershipPersistFailed"):
            bad.create()
        assert bad.engine.snapshot() == []
    finally:
        shutil.rmtree(other_fs, ignore_errors=True)


def test_gpu_create_drops_device_request(tmp_path):
    # OWN-19: a GPU sandbox's instance is a container that has the GPU.
    def story(h):
        snap = h.create(SandboxSpec(id="sbx-gpu", name="gpubox", gpu=True))
        return has_gpu(h.engine.inspect(snap.instance_id))

    assert both(tmp_path, sd.GpuCreateDropsDeviceRequest, story) == (True, False)


def test_reconcile_trusts_gateway(tmp_path):
    # OWN-9: a gateway one replacement behind the journal gets the journal's authority.
    def story(h):
        a, b = adopted_with_backup_kept(h)
        return h.driver.reconcile_instance(h.sid, a), b

    (ref, b), (broken, _) = both(tmp_path, sd.ReconcileTrustsGateway, story)
    assert ref == b
    assert broken != b


# == shape ========================================================================================


def test_backup_name_any_suffix(tmp_path):
    # OWN-4, OWN-2, OWN-3: "-nemoclaw-gpu-backup-old" is no handoff shape; A stays authoritative.
    def story(h):
        a = created(h)
        h.story.stop(a)
        h.story.rename(a, h.story.canonical + "-nemoclaw-gpu-backup-old")
        b = h.story.clone(a)
        h.observe()
        h.observe()
        return reading(h), len(h.warnings(CONFLICT)), a, b

    (ref, conflicts, a, b), (broken, broken_conflicts, _, _) = both(
        tmp_path, sd.BackupNameAnySuffix, story)
    assert (ref, conflicts) == ((a, "ContainerExited"), 1)
    assert (broken, broken_conflicts) == ((b, "ContainerRunning"), 0)


def test_backup_name_needs_13_digits(tmp_path):
    # OWN-4: a backup named with ten digits (seconds) is a handoff like one with milliseconds.
    def story(h):
        a = created(h)
        h.story.stop(a)
        h.story.rename_to_backup(a, ms=1718000000)
        b = h.story.clone(a)
        h.observe()
        h.observe()
        return reading(h), a, b

    (ref, a, b), (broken, _, _) = both(tmp_path, sd.BackupNameNeeds13Digits, story)
    assert ref == (b, "ContainerRunning")
    assert broken == (a, "ContainerExited")


def test_canonical_name_unsanitized(tmp_path):
    # OWN-5: a gap handoff of a sandbox whose name is not already lower-case and safe.
    spec = SandboxSpec(id="sbx-0003", name="GPU-Box")

    def story(h):
        a = created(h)
        assert h.engine.inspect(a).name == canonical_name("GPU-Box", "sbx-0003")
        labels = h.story.labels_of(a)
        h.story.remove(a)
        b = h.story.clone(labels)
        h.observe()
        h.observe()
        return reading(h), a, b

    (ref, a, b), (broken, _, _) = both(tmp_path, sd.CanonicalNameUnsanitized, story,
                                       sandbox=spec)
    assert ref == (b, "ContainerRunning")
    assert broken == (a, CONFLICT)


def test_ignores_copies_without_managed_by(tmp_path):
    # OWN-3: a copy without managed-by is still a candidate ("Where this project decides", 2).
    def story(h):
        a = created(h)
        x = copy_without_managed_by(h, a)
        h.observe()
        return [w.metadata.get("candidate_instance_ids") for w in h.warnings(CONFLICT)], x

    (ref, x), (broken, _) = both(tmp_path, sd.IgnoresCopiesWithoutManagedBy, story)
    assert ref == [x]
    assert broken == []


def test_delete_skips_copies_without_managed_by(tmp_path):
    # OWN-14: delete removes every exact match, with or without managed-by.
    def story(h):
        a = created(h)
        x = copy_without_managed_by(h, a)
        assert h.delete() is True
        return h.container_ids(), x

    (ref, x), (broken, _) = both(tmp_path, sd.DeleteSkipsCopiesWithoutManagedBy, story)
    assert ref == []
    assert broken == [x]


def test_candidates_by_id_only(tmp_path):
    # OWN-2: a container whose sandbox-name label is another is not a candidate.
    def story(h):
        a = created(h)
        labels = h.story.labels_of(a)
        h.story.remove(a)
        b = h.story.clone(labels, extra_labels={KEYS.sandbox_name: "demo-v2"})
        h.observe()
        h.observe()
        return reading(h), a, b

    (ref, a, b), (broken, _, _) = both(tmp_path, sd.CandidatesByIdOnly, story)
    assert ref == (a, MISSING)
    assert broken == (b, "ContainerRunning")


def test_deleted_after_five_missing(tmp_path):
    # OWN-10, OWN-6, OWN-11: a long quiet period after docker rm -f: still missing, never Deleted.
    def story(h):
        a = created(h)
        h.story.remove(a)
        h.observe_quietly(6)
        return len(h.deleted()), h.driver.tracked(), [v.requirement for v in h.gateway.violations]

    ref, broken = both(tmp_path, sd.DeletedAfterFiveMissing, story)
    assert ref == (0, ["sbx-0001"], [])
    assert broken[0] == 1 and broken[1] == [] and "OWN-10" in broken[2]


def test_restart_forgets_retired(tmp_path):
    # OWN-9, OWN-3: after a restart the kept backup of the former instance is still exempt.
    def story(h):
        a, b = adopted_with_backup_kept(h)
        h.restart()
        h.observe()
        return h.record().retired, len(h.warnings(CONFLICT)), a

    (ref, conflicts, a), (broken, broken_conflicts, _) = both(
        tmp_path, sd.RestartForgetsRetired, story)
    assert (ref, conflicts) == ((a,), 0)
    assert (broken, broken_conflicts) == ((), 1)


def test_forget_unquoted_path(tmp_path):
    # OWN-14, OWN-9: a deleted sandbox stays deleted after a restart, whatever its id.
    spec = SandboxSpec(id="team:box-1", name="box")

    def story(h):
        created(h)
        assert h.delete() is True
        h.restart()
        h.observe()
        return h.driver.tracked()

    assert both(tmp_path, sd.ForgetUnquotedPath, story, sandbox=spec) == ([], ["team:box-1"])


def test_journal_accepts_other_namespace(tmp_path):
    # OWN-15: another namespace's well-formed journal in the driver's folder fails closed.
    def story(h):
        created(h)
        record = h.record()
        other = replace(record, namespace="staging", authority="f" * 64,
                        generation=str(uuid.uuid4()))
        Journal(h.state_dir, "staging").write(other)  # the staging driver shares the folder
        h.restart()
        h.observe()
        return reading(h)

    assert both(tmp_path, sd.JournalAcceptsOtherNamespace, story) == (
        (None, UNRESOLVED), ("f" * 64, CONFLICT))


def test_journal_accepts_newer_version(tmp_path):
    # OWN-15: a journal of a version this driver does not know fails closed (a downgrade).
    def story(h):
        a = created(h)
        path = h.driver.journal.path_for(h.sid)
        data = json.loads(path.read_bytes())
        data["version"] = 2  # what the next release wrote before it was rolled back
        path.write_text(json.dumps(data))
        h.restart()
        h.observe()
        return reading(h), a

    (ref, a), (broken, _) = both(tmp_path, sd.JournalAcceptsNewerVersion, story)
    assert ref == (None, UNRESOLVED)
    assert broken == (a, "ContainerRunning")


def test_retired_never_duplicate(tmp_path):
    # OWN-3: a retired instance that is running again beside the authority is a duplicate.
    def story(h):
        a, b = adopted_with_backup_kept(h)
        h.story.start(a)  # docker start <backup>, to copy files out of it
        h.observe()
        return [w.metadata.get("candidate_instance_ids") for w in h.warnings(CONFLICT)], a

    (ref, a), (broken, _) = both(tmp_path, sd.RetiredNeverDuplicate, story)
    assert ref == [a]
    assert broken == []


def test_restart_recreates_missing(tmp_path):
    # OWN-6: A absent and no candidates: A's ID, ContainerInstanceMissing, also after a restart.
    def story(h):
        a = created(h)
        h.story.remove(a)
        h.restart()
        h.observe()
        return reading(h), len(h.container_ids()), a

    (ref, n, a), (broken, broken_n, _) = both(tmp_path, sd.RestartRecreatesMissing, story)
    assert (ref, n) == ((a, MISSING), 0)
    assert broken[0] != a and broken[1] == "ContainerRunning" and broken_n == 1


# == fault ========================================================================================


def test_no_dir_fsync(tmp_path, fs_trace):
    # OWN-15, OWN-16: after the rename the folder is fsynced, or a power loss can undo it.
    def story(h):
        fs_trace.clear()
        h.create()
        return synced_after_last(fs_trace, "replace", h.state_dir)

    assert both(tmp_path, sd.NoDirFsync, story) == (True, False)


def test_no_temp_fsync(tmp_path, fs_trace):
    # OWN-15, OWN-16: the temporary file is fsynced before it is renamed over the journal.
    def story(h):
        fs_trace.clear()
        h.create()
        return every_replaced_file_synced_first(fs_trace)

    assert both(tmp_path, sd.NoTempFsync, story) == (True, False)


def test_journal_overwrite_in_place(tmp_path, monkeypatch):
    # OWN-16, OWN-15: the power goes in the middle of the journal write that records an intent.
    def story(h):
        a, b = overlap(h)
        real_write = os.write

        def write_half_then_lose_power(fd, data):
            monkeypatch.setattr(os, "write", real_write)
            real_write(fd, bytes(data)[: len(data) // 2])
            raise PowerCut()

        monkeypatch.setattr(os, "write", write_half_then_lose_power)
        with pytest.raises(PowerCut):
            h.observe()
        monkeypatch.setattr(os, "write", real_write)
        after = h.journaled()  # what the driver finds when the machine is back
        return bool(after.untrusted), after.authority == a

    assert both(tmp_path, sd.JournalOverwriteInPlace, story) == ((False, True), (True, False))


def test_sweep_removes_tmp_like_journals(tmp_path):
    # OWN-9, OWN-15: a restart restores every sandbox, even one whose id contains ".tmp-".
    spec = SandboxSpec(id="build.tmp-3", name="box")

    def story(h):
        created(h)
        h.restart()
        h.observe()
        return h.driver.tracked(), len(h.warnings("UnownedSandboxContainersIgnored"))

    assert both(tmp_path, sd.SweepRemovesTmpLikeJournals, story, sandbox=spec) == (
        (["build.tmp-3"], 0), ([], 1))


def test_forget_without_dir_fsync(tmp_path, fs_trace):
    # OWN-15, OWN-14: delete's removal of the journal is fsynced before Deleted is reported.
    def story(h):
        created(h)
        fs_trace.clear()
        assert h.delete() is True
        return synced_after_last(fs_trace, "unlink", h.state_dir)

    assert both(tmp_path, sd.ForgetWithoutDirFsync, story) == (True, False)


# == exploration ==================================================================================


def test_never_rolls_back(tmp_path):
    # OWN-13: the first observation of the GPU tool's rollback makes A authoritative again.
    def story(h):
        a, b = adopted_with_backup_kept(h)
        h.story.rollback(b, a)
        h.observe()
        return reading(h), len(h.warnings(ROLLBACK)), a, b

    (ref, rollbacks, a, b), (broken, broken_rollbacks, _, _) = both(
        tmp_path, sd.NeverRollsBack, story)
    assert (ref, rollbacks) == ((a, "ContainerRunning"), 1)
    assert (broken, broken_rollbacks) == ((b, PENDING), 0)


def test_intent_survives_inconsistent_observation(tmp_path):
    # OWN-8: the clone flaps (exits, restarted by its policy): adoption needs a fresh pair.
    def story(h):
        a, b = overlap(h)
        h.observe()                # intent A -> B
        h.story.stop(b)
        h.observe()                # B exited: the intent is invalidated
        h.story.start(b)
        h.observe()                # a first consistent observation again
        return reading(h), a, b

    (ref, a, b), (broken, _, _) = both(tmp_path, sd.IntentSurvivesInconsistentObservation, story)
    assert ref == (a, PENDING)
    assert broken == (b, "ContainerRunning")


def test_restart_drops_intent(tmp_path):
    # OWN-9: a restart between intent and adoption ends like no restart: adopted at once.
    def story(h):
        a, b = overlap(h)
        h.observe()
        h.restart()
        h.observe()
        return reading(h), a, b

    (ref, a, b), (broken, _, _) = both(tmp_path, sd.RestartDropsIntent, story)
    assert ref == (b, "ContainerRunning")
    assert broken == (a, PENDING)


def test_adopts_gpu_on_first_sight(tmp_path):
    # OWN-19, OWN-4: a GPU clone goes through intent and adoption like any other.
    def story(h):
        a, b = overlap(h, gpu="cdi")
        h.observe()
        return reading(h), a, b

    (ref, a, b), (broken, _, _) = both(tmp_path, sd.AdoptsGpuOnFirstSight, story)
    assert ref == (a, PENDING)
    assert broken == (b, "ContainerRunning")


def test_adoption_needs_same_list_order(tmp_path):
    # OWN-4, OWN-20: the adoption does not depend on the order the engine lists A and B in.
    def story(h):
        a, b = overlap(h)
        h.observe(backup_first(h.story))
        h.observe(replacement_first(h.story))
        return reading(h), a, b

    (ref, a, b), (broken, _, _) = both(tmp_path, sd.AdoptionNeedsSameListOrder, story)
    assert ref == (b, "ContainerRunning")
    assert broken == (a, PENDING)


# == boundary =====================================================================================


def test_restarting_replacement_refused(tmp_path):
    # OWN-4: restarting is non-terminal: the clone between two restart attempts is adopted.
    def story(h):
        a, b = overlap(h, state="restarting")
        h.observe()
        h.observe()
        return reading(h), a, b

    (ref, a, b), (broken, _, _) = both(tmp_path, sd.RestartingReplacementRefused, story)
    assert ref == (b, "Starting")
    assert broken == (a, PENDING)


def test_active_states_as_non_terminal(tmp_path):
    # OWN-7: a paused replacement is terminal and never adopted.
    def story(h):
        a, b = overlap(h, state="paused")
        h.observe()
        h.observe()
        return reading(h), a, b

    (ref, a, b), (broken, _, _) = both(tmp_path, sd.ActiveStatesAsNonTerminal, story)
    assert ref == (a, PENDING)
    assert broken == (b, "ContainerPaused")


def test_generation_prefix_match(tmp_path):
    # OWN-7, OWN-2: a canonical copy with an empty generation label is not adopted.
    def story(h):
        a = created(h)
        labels = h.story.labels_of(a)
        h.story.remove(a)
        b = h.story.clone(labels, generation="")  # --label ...generation=$GEN, GEN unset
        h.observe()
        h.observe()
        return reading(h), a, b

    (ref, a, b), (broken, _, _) = both(tmp_path, sd.GenerationPrefixMatch, story)
    assert ref == (a, CONFLICT)
    assert broken == (b, "ContainerRunning")


def test_delete_running_only(tmp_path):
    # OWN-14: a delete in the middle of the handoff removes the stopped backup too.
    def story(h):
        a, b = overlap(h)
        h.observe()
        assert h.delete() is True
        return h.container_ids(), a

    (ref, a), (broken, _) = both(tmp_path, sd.DeleteRunningOnly, story)
    assert ref == []
    assert broken == [a]


def test_delete_true_when_nothing_removed(tmp_path):
    # OWN-14: deleted=true iff something was removed; the container was already gone.
    def story(h):
        a = created(h)
        h.story.remove(a)
        h.observe()
        return h.delete(), len(h.deleted())

    assert both(tmp_path, sd.DeleteTrueWhenNothingRemoved, story) == ((False, 1), (True, 1))


def test_dedupe_by_reason_only(tmp_path):
    # OWN-17, OWN-3: a second duplicate is a new condition, warned about and named.
    def story(h):
        a = created(h)
        x = h.story.clone(a, name="demo-copy")
        h.observe()
        y = h.story.clone(a, name="demo-copy-2")
        h.observe()
        return [w.metadata.get("candidate_instance_ids") for w in h.warnings(CONFLICT)], x, y

    (ref, x, y), (broken, _, _) = both(tmp_path, sd.DedupeByReasonOnly, story)
    assert ref == [x, ",".join(sorted([x, y]))]
    assert broken == [x]


def test_warnings_reminder_every_30_polls(tmp_path):
    # OWN-17: a duplicate seen for a minute of polls is still one Warning.
    def story(h):
        a = created(h)
        h.story.clone(a, name="demo-copy")
        h.observe_quietly(31)
        return len(h.warnings(CONFLICT))

    assert both(tmp_path, sd.WarningsReminderEvery30Polls, story) == (1, 2)

