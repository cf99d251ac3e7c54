"""The ownership journal: owner-only, atomic, checked on load, crash consistent (OWN-15, OWN-16).

The first half tests :class:`reference_driver.journal.Journal` on its own; the second half runs a
:class:`reference_driver.ReferenceDriver` over a journal folder and the fake engine to check what
the driver does with what it finds there (fail closed, no torn state after a crash, write
failures reported and nothing adopted).
"""

from __future__ import annotations

import errno
import json
import os
import stat

import pytest

from pytest_sandbox_conformance.api import PlatformEvent, SandboxSpec, SnapshotEvent
from pytest_sandbox_conformance.engines.base import ContainerSpec, DeviceRequest
from pytest_sandbox_conformance.engines.fake import EMPTY_ID, FakeEngine
from reference_driver import DriverError, ReferenceDriver
from reference_driver.journal import (
    FORMAT_VERSION,
    TMP_MARK,
    WRITE_STEPS,
    Journal,
    JournalWriteError,
)
from reference_driver.naming import LabelKeys, backup_name, canonical_name
from reference_driver.state import Intent, Record

NS = "default"
SPEC = SandboxSpec(id="sbx-1", name="alpha")
KEYS = LabelKeys()
A_ID = "a" * 64
B_ID = "b" * 64
C_ID = "c" * 64
GEN = "3f2c6a8e-1b7d-4c1e-9a57-0d6f1e2b9c44"
BACKUP = backup_name(canonical_name(SPEC.name, SPEC.id), 1700000000000)


def mode_of(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def tmp_files(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if TMP_MARK in p.name)


class SimulatedCrash(BaseException):
    """The driver process dying inside a journal write (nothing in the driver may catch it)."""


def crash_at(step: str):
    def hook(current: str) -> None:
        if current == step:
            raise SimulatedCrash(step)
    return hook


def fail_at(step: str, err: int = errno.ENOSPC):
    def hook(current: str) -> None:
        if current == step:
            raise OSError(err, os.strerror(err))
    return hook


def warnings_of(events, reason: str | None = None) -> list[PlatformEvent]:
    return [e for e in events if isinstance(e, PlatformEvent) and e.type == "Warning"
            and (reason is None or e.reason == reason)]


# -- the GPU tool's out-of-band handoff (contract section 2), played as another engine client ----


def clone_spec(engine, a_id: str) -> ContainerSpec:
    """``docker run`` of a clone of A under the canonical name with a GPU: all of A's labels."""
    a = engine.inspect(a_id)
    return ContainerSpec(
        name=canonical_name(SPEC.name, SPEC.id), image=a.image, labels=a.labels,
        command=a.command, env=a.env,
        device_requests=(DeviceRequest(driver="cdi", device_ids=("nvidia.com/gpu=all",)),))


def overlap_handoff(engine, a_id: str) -> str:
    """stop A; rename A to the backup name; run the clone B; B is running beside the backup."""
    spec = clone_spec(engine, a_id)
    engine.stop(a_id)
    engine.rename(a_id, BACKUP)
    b_id = engine.create(spec)
    engine.start(b_id)
    return b_id


def gap_handoff(engine, a_id: str) -> str:
    """stop A; remove A; run the clone B: only B is left."""
    spec = clone_spec(engine, a_id)
    engine.stop(a_id)
    engine.remove(a_id)
    b_id = engine.create(spec)
    engine.start(b_id)
    return b_id


HANDOFFS = {"overlap": overlap_handoff, "gap": gap_handoff}


def play(driver: ReferenceDriver, story: str) -> tuple[str, str]:
    a_id = driver.create(SPEC).instance_id
    assert a_id
    return a_id, HANDOFFS[story](driver.engine, a_id)


# -- the folder and its files ---------------------------------------------------------------------


def test_new_folder_is_owner_only(tmp_path):  # OWN-15
    folder = tmp_path / "state" / "journal"
    Journal(folder, NS)
    assert mode_of(folder) == 0o700


@pytest.mark.parametrize("lax", [0o755, 0o777, 0o750, 0o701])
def test_existing_lax_folder_is_made_owner_only(tmp_path, lax):  # OWN-15
    folder = tmp_path / "journal"
    folder.mkdir()
    os.chmod(folder, lax)
    Journal(folder, NS)
    assert mode_of(folder) == 0o700


def test_journal_file_is_owner_only_even_with_a_permissive_umask(tmp_path):  # OWN-15
    journal = Journal(tmp_path / "journal", NS)
    old = os.umask(0)
    try:
        journal.write(Record(SPEC.id, SPEC.name, NS, A_ID, GEN))
    finally:
        os.umask(old)
    assert mode_of(journal.path_for(SPEC.id)) == 0o600


def test_rewriting_a_lax_journal_file_makes_it_owner_only(tmp_path):  # OWN-15
    journal = Journal(tmp_path / "journal", NS)
    record = Record(SPEC.id, SPEC.name, NS, A_ID, GEN)
    journal.write(record)
    path = journal.path_for(SPEC.id)
    os.chmod(path, 0o644)
    journal.write(record.adopt(B_ID))
    assert mode_of(path) == 0o600


def test_write_leaves_no_temporary_file(tmp_path):  # OWN-15
    journal = Journal(tmp_path / "journal", NS)
    journal.write(Record(SPEC.id, SPEC.name, NS, A_ID, GEN))
    assert [p.name for p in journal.folder.iterdir()] == [journal.path_for(SPEC.id).name]
    assert journal.writes == 1


def test_write_calls_the_crash_hook_at_every_step_in_order(tmp_path):  # OWN-16
    journal = Journal(tmp_path / "journal", NS)
    steps: list[str] = []
    journal.crash_hook = steps.append
    journal.write(Record(SPEC.id, SPEC.name, NS, A_ID, GEN))
    assert tuple(steps) == WRITE_STEPS


# -- round trip -----------------------------------------------------------------------------------


ROUND_TRIP = {
    "fresh": Record(SPEC.id, SPEC.name, NS, None, GEN),
    "no-generation": Record(SPEC.id, SPEC.name, NS, A_ID, None),
    "owned": Record(SPEC.id, SPEC.name, NS, A_ID, GEN),
    "retired": Record(SPEC.id, SPEC.name, NS, C_ID, GEN, (A_ID, B_ID)),
    "overlap-intent": Record(SPEC.id, SPEC.name, NS, A_ID, GEN, (),
                             Intent(A_ID, B_ID, BACKUP)),
    "gap-intent": Record(SPEC.id, SPEC.name, NS, A_ID, GEN, (C_ID,), Intent(None, B_ID, None)),
    "retired-and-intent": Record(SPEC.id, SPEC.name, NS, B_ID, GEN, (A_ID,),
                                 Intent(B_ID, C_ID, BACKUP)),
}


@pytest.mark.parametrize("record", ROUND_TRIP.values(), ids=ROUND_TRIP.keys())
def test_record_round_trips(tmp_path, record):  # OWN-15
    journal = Journal(tmp_path / "journal", NS)
    journal.write(record)
    loaded = journal.load(journal.path_for(record.sandbox_id))
    assert loaded == record
    assert not loaded.untrusted
    assert list(Journal(tmp_path / "journal", NS).load_all()) == [record]


def test_encoded_journal_is_versioned_and_names_its_sandbox():  # OWN-15
    body = json.loads(Journal.encode(ROUND_TRIP["retired-and-intent"]))
    assert body["version"] == FORMAT_VERSION
    assert (body["sandbox_id"], body["name"], body["namespace"]) == (SPEC.id, SPEC.name, NS)
    assert body["retired"] == [A_ID]
    assert body["intent"] == {"incumbent": B_ID, "replacement": C_ID, "backup_name": BACKUP}


def test_load_all_sweeps_leftover_temporary_files(tmp_path):  # OWN-16
    journal = Journal(tmp_path / "journal", NS)
    record = ROUND_TRIP["owned"]
    journal.write(record)
    leftover = journal.path_for(SPEC.id).with_name(journal.path_for(SPEC.id).name + TMP_MARK + "4242")
    leftover.write_bytes(Journal.encode(record.adopt(B_ID))[:40])
    assert list(journal.load_all()) == [record]
    assert tmp_files(journal.folder) == []


def test_forget_removes_the_journal_and_tolerates_a_missing_one(tmp_path):
    journal = Journal(tmp_path / "journal", NS)
    journal.write(ROUND_TRIP["owned"])
    journal.forget(SPEC.id)
    assert not journal.path_for(SPEC.id).exists()
    journal.forget(SPEC.id)
    assert list(journal.load_all()) == []


# -- checks on load -------------------------------------------------------------------------------


GOOD = json.loads(Journal.encode(ROUND_TRIP["retired-and-intent"]))


def mutated(**changes) -> bytes:
    body = dict(GOOD)
    for key, value in changes.items():
        if value is DROP:
            del body[key]
        else:
            body[key] = value
    return json.dumps(body).encode()


DROP = object()

UNTRUSTED = {
    "foreign-sandbox": mutated(sandbox_id="sbx-2"),
    "other-namespace": mutated(namespace="other"),
    "version-2": mutated(version=2),
    "version-0": mutated(version=0),
    "version-string": mutated(version="1"),
    "version-bool": mutated(version=True),
    "version-float": mutated(version=1.0),
    "version-null": mutated(version=None),
    "version-missing": mutated(version=DROP),
    "invalid-json": b"{this is not json",
    "empty-file": b"",
    "truncated": Journal.encode(ROUND_TRIP["retired-and-intent"])[:57],
    "binary-garbage": b"\xff\xfe\x00\x01",
    "array": b"[1, 2, 3]",
    "string": b'"sbx-1"',
    "number": b"1",
    "null": b"null",
    "sandbox-id-not-string": mutated(sandbox_id=1),
    "name-not-string": mutated(name=5),
    "name-empty": mutated(name=""),
    "name-missing": mutated(name=DROP),
    "authority-not-string": mutated(authority=7),
    "authority-empty": mutated(authority=""),
    "authority-missing": mutated(authority=DROP),
    "generation-list": mutated(generation=["x"]),
    "generation-empty": mutated(generation=""),
    "retired-string": mutated(retired=A_ID),
    "retired-number-item": mutated(retired=[1]),
    "retired-empty-item": mutated(retired=[""]),
    "retired-missing": mutated(retired=DROP),
    "intent-string": mutated(intent="adopt"),
    "intent-list": mutated(intent=[B_ID, C_ID]),
    "intent-replacement-empty": mutated(intent={"incumbent": B_ID, "replacement": "",
                                                "backup_name": BACKUP}),
    "intent-incumbent-number": mutated(intent={"incumbent": 3, "replacement": C_ID,
                                               "backup_name": BACKUP}),
    "intent-key-missing": mutated(intent={"incumbent": B_ID, "replacement": C_ID}),
    "intent-missing": mutated(intent=DROP),
}


@pytest.mark.parametrize("content", UNTRUSTED.values(), ids=UNTRUSTED.keys())
def test_corrupt_or_foreign_journal_loads_untrusted(tmp_path, content):  # OWN-15
    journal = Journal(tmp_path / "journal", NS)
    path = journal.path_for(SPEC.id)
    path.write_bytes(content)
    record = journal.load(path)
    assert record.untrusted
    assert record.sandbox_id == SPEC.id
    assert record.authority is None
    assert record.intent is None and record.retired == ()


def test_untrusted_record_is_never_written(tmp_path):  # OWN-15
    journal = Journal(tmp_path / "journal", NS)
    path = journal.path_for(SPEC.id)
    path.write_bytes(UNTRUSTED["foreign-sandbox"])
    record = journal.load(path)
    with pytest.raises(JournalWriteError):
        journal.write(record)
    assert path.read_bytes() == UNTRUSTED["foreign-sandbox"]
    assert journal.writes == 0


def test_journal_written_for_another_namespace_is_untrusted(tmp_path):  # OWN-15
    Journal(tmp_path / "journal", "other").write(
        Record(SPEC.id, SPEC.name, "other", A_ID, GEN))
    [record] = Journal(tmp_path / "journal", NS).load_all()
    assert record.untrusted and "other" in record.untrusted


# -- the driver over an untrusted journal fails closed --------------------------------------------


DRIVER_UNTRUSTED = ["foreign-sandbox", "other-namespace", "version-2", "version-bool",
                    "invalid-json", "truncated", "array", "name-not-string", "retired-string",
                    "intent-list"]


@pytest.mark.parametrize("case", DRIVER_UNTRUSTED)
def test_driver_fails_closed_on_an_untrusted_journal(driver_factory, case):  # OWN-15, OWN-7
    first = driver_factory()
    a_id = first.create(SPEC).instance_id  # a running container with matching labels exists
    path = first.journal.path_for(SPEC.id)
    path.write_bytes(UNTRUSTED[case])

    driver = driver_factory()  # restart over the damaged journal
    watcher = driver.watch()
    driver.observe()
    snap = driver.snapshot(SPEC.id)
    assert snap is not None
    assert (snap.ready.status, snap.reason) == ("False", "ContainerOwnershipUnresolved")
    assert snap.instance_id is None  # labels alone never make a_id the instance (OWN-2)
    assert snap.instance_id != a_id
    events = watcher.drain()
    assert len(warnings_of(events, "ContainerOwnershipUnresolved")) == 1

    for _ in range(3):
        driver.observe()
    assert warnings_of(watcher.drain()) == []  # one Warning per condition (OWN-17)
    assert path.read_bytes() == UNTRUSTED[case]
    assert driver.journal.writes == 0
    assert driver.record(SPEC.id).untrusted


def test_driver_does_not_recreate_over_an_untrusted_journal(driver_factory):  # OWN-15
    driver = driver_factory()
    path = driver.journal.path_for(SPEC.id)
    path.write_bytes(UNTRUSTED["invalid-json"])
    driver = driver_factory()
    with pytest.raises(DriverError):
        driver.create(SPEC)
    assert path.read_bytes() == UNTRUSTED["invalid-json"]
    assert driver.engine.snapshot() == []


def test_journal_that_is_a_directory_is_unreadable_and_fails_closed(driver_factory):  # OWN-15
    first = driver_factory()
    first.create(SPEC)
    path = first.journal.path_for(SPEC.id)
    path.unlink()
    path.mkdir()

    driver = driver_factory()
    assert "unreadable" in driver.record(SPEC.id).untrusted
    driver.observe()
    snap = driver.snapshot(SPEC.id)
    assert (snap.ready.status, snap.reason) == ("False", "ContainerOwnershipUnresolved")
    assert snap.instance_id is None
    assert path.is_dir() and list(path.iterdir()) == []
    assert driver.journal.writes == 0


def test_journal_without_read_permission_fails_closed(driver_factory):  # OWN-15
    first = driver_factory()
    first.create(SPEC)
    path = first.journal.path_for(SPEC.id)
    os.chmod(path, 0)
    try:
        with open(path, "rb"):
            pass
    except PermissionError:
        pass
    else:
        os.chmod(path, 0o600)
        pytest.skip("this user (root) can read a mode 0000 file")
    try:
        driver = driver_factory()
        driver.observe()
        assert driver.snapshot(SPEC.id).reason == "ContainerOwnershipUnresolved"
        assert driver.journal.writes == 0
    finally:
        os.chmod(path, 0o600)


# -- odd sandbox ids -------------------------------------------------------------------------------


ODD_IDS = ["a/b", "..", ".", "../../etc/passwd", "a\\b", "with space", "ünïcødé-沙箱",
           "%2F", "100%", "x.json", "x.json.tmp-1", ".tmp-", "-leading-dash", "a" * 150]


@pytest.mark.parametrize("sandbox_id", ODD_IDS)
def test_odd_sandbox_id_maps_to_a_safe_file_name(tmp_path, sandbox_id):  # OWN-15
    journal = Journal(tmp_path / "journal", NS)
    path = journal.path_for(sandbox_id)
    assert path.parent == journal.folder
    assert "/" not in path.name and "\x00" not in path.name
    assert path.name not in (".", "..") and path.name.endswith(".json")
    assert Journal._sandbox_id_of(path) == sandbox_id


@pytest.mark.parametrize("sandbox_id", ODD_IDS)
def test_odd_sandbox_id_round_trips(tmp_path, sandbox_id):  # OWN-15
    journal = Journal(tmp_path / "journal", NS)
    record = Record(sandbox_id, "alpha", NS, A_ID, GEN, (B_ID,))
    journal.write(record)
    assert [p.parent for p in journal.folder.iterdir()] == [journal.folder]
    assert list(Journal(tmp_path / "journal", NS).load_all()) == [record]


def test_journal_whose_id_looks_like_a_temporary_file_survives_the_sweep(tmp_path):  # OWN-15, OWN-16
    journal = Journal(tmp_path / "journal", NS)
    record = Record("x.json.tmp-1", "alpha", NS, A_ID, GEN)
    journal.write(record)
    path = journal.path_for(record.sandbox_id)
    leftover = path.with_name(path.name + TMP_MARK + "4242")
    leftover.write_bytes(b"{")
    assert list(journal.load_all()) == [record]
    assert sorted(p.name for p in journal.folder.iterdir()) == [path.name]


def test_sandbox_id_too_long_for_a_file_name_fails_closed(driver_factory, fake_engine):  # OWN-15, OWN-1
    driver = driver_factory()
    with pytest.raises(DriverError, match="ContainerOwnershipPersistFailed"):
        driver.create(SandboxSpec(id="沙" * 200, name="alpha"))
    assert fake_engine.snapshot() == []
    assert driver.tracked() == []
    assert list(driver.journal.folder.iterdir()) == []


def test_distinct_ids_never_share_a_journal_file(tmp_path):  # OWN-15
    journal = Journal(tmp_path / "journal", NS)
    paths = {journal.path_for(i) for i in ODD_IDS + ["a%2Fb", "a_b", "a-b", "A/B"]}
    assert len(paths) == len(ODD_IDS) + 4


@pytest.mark.parametrize("sandbox_id", ["a/b", "..", "ünïcødé-沙箱", "x.json.tmp-1"])
def test_driver_restores_odd_sandbox_ids(driver_factory, sandbox_id):  # OWN-15, OWN-9
    driver = driver_factory()
    snap = driver.create(SandboxSpec(id=sandbox_id, name="alpha"))
    restarted = driver_factory()
    assert restarted.tracked() == [sandbox_id]
    assert restarted.record(sandbox_id) == driver.record(sandbox_id)
    restarted.observe()
    assert restarted.snapshot(sandbox_id).instance_id == snap.instance_id
    assert restarted.snapshot(sandbox_id).ready.ready


# -- create journals before it reports (OWN-1) ------------------------------------------------------


def test_create_journals_the_generation_before_the_engine_creates(driver_factory, fake_engine):  # OWN-1
    driver = driver_factory()
    seen = {}

    def before_create(spec: ContainerSpec) -> None:
        seen["record"] = Journal(driver.state_dir, NS).load(driver.journal.path_for(SPEC.id))
        seen["generation_label"] = spec.labels.get(KEYS.generation)

    fake_engine.before("create", before_create)
    snap = driver.create(SPEC)
    persisted = seen["record"]
    assert not persisted.untrusted
    assert persisted.authority is None
    assert persisted.generation and persisted.generation == seen["generation_label"]

    after = Journal(driver.state_dir, NS).load(driver.journal.path_for(SPEC.id))
    assert after.authority == snap.instance_id
    assert after.generation == persisted.generation
    assert fake_engine.inspect(snap.instance_id).labels[KEYS.generation] == after.generation


def test_create_journals_the_authority_before_reporting_it(driver_factory, fake_engine):  # OWN-1
    driver = driver_factory()
    watcher = driver.watch()
    seen = {}

    def before_start(container_id: str) -> None:
        seen["record"] = Journal(driver.state_dir, NS).load(driver.journal.path_for(SPEC.id))
        seen["container_id"] = container_id
        seen["reported"] = [e for e in watcher.drain() if isinstance(e, SnapshotEvent)]

    fake_engine.before("start", before_start)
    snap = driver.create(SPEC)
    assert seen["record"].authority == seen["container_id"] == snap.instance_id
    assert seen["reported"] == []
    assert [e.snapshot.instance_id for e in watcher.drain()
            if isinstance(e, SnapshotEvent)] == [snap.instance_id]


def test_create_with_an_empty_engine_id_leaves_no_journal(driver_factory, fake_engine):  # OWN-1
    driver = driver_factory()
    fake_engine.faults.arm("create", EMPTY_ID)
    with pytest.raises(DriverError):
        driver.create(SPEC)
    assert driver.tracked() == []
    assert not driver.journal.path_for(SPEC.id).exists()
    assert driver_factory().tracked() == []


def test_create_whose_journal_write_fails_creates_no_container(driver_factory, fake_engine):  # OWN-1, OWN-15
    driver = driver_factory()
    driver.journal.crash_hook = fail_at("open-temp")
    with pytest.raises(DriverError, match="ContainerOwnershipPersistFailed"):
        driver.create(SPEC)
    assert fake_engine.calls["create"] == 0
    assert fake_engine.snapshot() == []
    assert driver.tracked() == []
    assert list(driver.journal.folder.iterdir()) == []


# -- writes: only on change, persisted before memory ---------------------------------------------


def _steady(engine, a_id):
    pass


def _missing(engine, a_id):
    engine.stop(a_id)
    engine.remove(a_id)


def _duplicate(engine, a_id):
    spec = clone_spec(engine, a_id)
    engine.create(ContainerSpec(name="copied-labels", image=spec.image, labels=spec.labels))


def _stuck_handoff(engine, a_id):
    engine.stop(a_id)
    engine.rename(a_id, BACKUP)


QUIET = {"steady": _steady, "missing": _missing, "duplicate": _duplicate,
         "handoff-without-successor": _stuck_handoff}


@pytest.mark.parametrize("situation", QUIET.values(), ids=QUIET.keys())
def test_observation_that_changes_nothing_writes_nothing(driver_factory, situation):  # OWN-15
    driver = driver_factory()
    a_id = driver.create(SPEC).instance_id
    situation(driver.engine, a_id)
    record = driver.record(SPEC.id)
    writes = driver.journal.writes
    on_disk = driver.journal.path_for(SPEC.id).read_bytes()
    for _ in range(4):
        driver.observe()
    assert driver.journal.writes == writes
    assert driver.record(SPEC.id) == record
    assert driver.journal.path_for(SPEC.id).read_bytes() == on_disk


def test_each_journal_change_is_written_once(driver_factory):  # OWN-15
    driver = driver_factory()
    a_id, b_id = play(driver, "overlap")
    assert driver.journal.writes == 2  # the generation, then the authority (OWN-1)
    driver.observe()  # records the intent
    assert driver.journal.writes == 3
    driver.observe()  # adopts
    assert driver.journal.writes == 4
    for _ in range(3):
        driver.observe()
    assert driver.journal.writes == 4
    assert driver.record(SPEC.id).authority == b_id


# -- crash consistency (OWN-16) ----------------------------------------------------------------------


def expected_change(record: Record, change: str, story: str, a_id: str, b_id: str) -> Record:
    if change == "record-intent":
        intent = Intent(a_id, b_id, BACKUP) if story == "overlap" else Intent(None, b_id, None)
        return record.with_intent(intent)
    return record.adopt(b_id)


def never_crashed(story: str, tmp_path) -> ReferenceDriver:
    """The same story on a twin engine (same ID sequence) with no crash, observed to quiet."""
    driver = ReferenceDriver(FakeEngine(), tmp_path / "never-crashed")
    play(driver, story)
    for _ in range(4):
        driver.observe()
    return driver


@pytest.mark.parametrize("step", WRITE_STEPS)
@pytest.mark.parametrize("change", ["record-intent", "adopt"])
@pytest.mark.parametrize("story", HANDOFFS)
def test_crash_in_a_journal_write_leaves_old_or_new_and_converges(
        driver_factory, tmp_path, story, change, step):  # OWN-16, OWN-9
    driver = driver_factory()
    a_id, b_id = play(driver, story)
    if change == "adopt":
        driver.observe()
        assert driver.record(SPEC.id).intent is not None
    old = driver.record(SPEC.id)
    new = expected_change(old, change, story, a_id, b_id)
    folder = driver.journal.folder

    driver.journal.crash_hook = crash_at(step)
    with pytest.raises(SimulatedCrash):
        driver.observe()
    assert driver.record(SPEC.id) == old  # memory changes only after the write (OWN-15)
    if step in ("write-partial", "fsync-temp", "rename"):
        assert tmp_files(folder)  # the crash left a temporary file behind

    restarted = driver_factory()  # a new process over the same engine and folder
    found = restarted.record(SPEC.id)
    assert not found.untrusted
    assert found == (new if step == "fsync-dir" else old)
    assert tmp_files(folder) == []

    for _ in range(4):
        restarted.observe()
    final = restarted.record(SPEC.id)
    assert (final.authority, final.retired, final.intent) == (b_id, (a_id,), None)
    assert Journal(folder, NS).load(restarted.journal.path_for(SPEC.id)) == final

    twin = never_crashed(story, tmp_path)
    reference = twin.record(SPEC.id)
    assert (final.authority, final.retired, final.intent) == (
        reference.authority, reference.retired, reference.intent)
    snap, twin_snap = restarted.snapshot(SPEC.id), twin.snapshot(SPEC.id)
    assert (snap.instance_id, snap.ready.status, snap.reason) == (
        twin_snap.instance_id, twin_snap.ready.status, twin_snap.reason)
    assert snap.instance_id == b_id and snap.ready.ready


@pytest.mark.parametrize("step", WRITE_STEPS)
def test_crash_in_the_first_write_of_a_restarted_driver_still_converges(
        driver_factory, step):  # OWN-16, OWN-9
    driver = driver_factory()
    a_id, b_id = play(driver, "overlap")
    restarted = driver_factory()
    restarted.journal.crash_hook = crash_at(step)
    with pytest.raises(SimulatedCrash):
        restarted.observe()
    again = driver_factory()
    assert not again.record(SPEC.id).untrusted
    for _ in range(4):
        again.observe()
    assert again.record(SPEC.id).authority == b_id
    assert again.record(SPEC.id).retired == (a_id,)


# -- write failures (OWN-15) -------------------------------------------------------------------------


@pytest.mark.parametrize("step", WRITE_STEPS)
def test_failed_write_reports_persist_failed_and_adopts_nothing(driver_factory, step):  # OWN-15
    driver = driver_factory()
    a_id, b_id = play(driver, "overlap")
    watcher = driver.watch()
    driver.observe()  # records the intent
    before = driver.record(SPEC.id)
    path = driver.journal.path_for(SPEC.id)
    on_disk = path.read_bytes()
    watcher.drain()

    driver.journal.crash_hook = fail_at(step)
    for _ in range(3):
        driver.observe()
    snap = driver.snapshot(SPEC.id)
    assert (snap.ready.status, snap.reason) == ("False", "ContainerOwnershipPersistFailed")
    assert snap.instance_id == a_id
    assert driver.record(SPEC.id) == before  # nothing adopted in memory
    persisted = Journal(driver.state_dir, NS).load(path)
    assert not persisted.untrusted
    if step == "fsync-dir":  # renamed, but the folder sync failed: old or new, never torn
        assert persisted in (before, before.adopt(b_id))
    else:
        assert path.read_bytes() == on_disk
    assert tmp_files(driver.journal.folder) == []
    events = watcher.drain()
    failed = warnings_of(events, "ContainerOwnershipPersistFailed")
    assert len(failed) == 1  # once, not once per observation (OWN-17)
    assert failed[0].metadata["authoritative_instance_id"] == a_id
    assert warnings_of(events, "SandboxInstanceReplaced") == []

    driver.journal.crash_hook = lambda current: None
    driver.observe()
    assert driver.record(SPEC.id).authority == b_id
    assert driver.record(SPEC.id).retired == (a_id,)
    snap = driver.snapshot(SPEC.id)
    assert snap.instance_id == b_id and snap.ready.ready
    assert len(warnings_of(watcher.drain(), "SandboxInstanceReplaced")) == 1


def test_failed_rename_reports_persist_failed(driver_factory, monkeypatch):  # OWN-15
    driver = driver_factory()
    a_id, b_id = play(driver, "overlap")
    driver.observe()
    before = driver.record(SPEC.id)

    def refuse(src, dst, *args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", refuse)
        driver.observe()
        driver.observe()
    assert driver.snapshot(SPEC.id).reason == "ContainerOwnershipPersistFailed"
    assert driver.record(SPEC.id) == before
    assert driver_factory().record(SPEC.id) == before
    assert tmp_files(driver.journal.folder) == []

    driver.observe()
    assert driver.record(SPEC.id).authority == b_id


def test_failed_intent_write_records_no_intent(driver_factory):  # OWN-15, OWN-4
    driver = driver_factory()
    a_id, b_id = play(driver, "overlap")
    watcher = driver.watch()
    watcher.drain()
    driver.journal.crash_hook = fail_at("open-temp")
    driver.observe()
    assert driver.record(SPEC.id).intent is None
    assert driver.snapshot(SPEC.id).reason == "ContainerOwnershipPersistFailed"
    assert warnings_of(watcher.drain(), "SandboxReplacementIntentRecorded") == []

    driver.journal.crash_hook = lambda current: None
    driver.observe()  # the intent, at last
    assert driver.record(SPEC.id).intent == Intent(a_id, b_id, BACKUP)
    assert driver.snapshot(SPEC.id).reason == "ContainerReplacementPending"
    driver.observe()
    assert driver.record(SPEC.id).authority == b_id
