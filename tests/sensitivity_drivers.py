"""Sensitivity drivers: broken drivers invented *before* the suite's next checks, then frozen.

``tests/broken_drivers.py`` holds the broken drivers the scenario catalog was written against;
the suite catches every one of them by construction. The drivers here measure something else:
how sensitive the suite is to bugs it was **not** written against. Each is a small, realistic
variation of the reference driver (a mistake a driver author makes in one or two lines: a wrong
constant, a forgotten case, a shortcut, a wrong default, a missed fsync, a misread sentence of
``docs/contract.md``), and each is a real violation of the contract that some story of outside
actions reaches, where the reference driver behaves correctly (``tests/test_sensitivity_drivers.py``
plays one such story per driver). They were written all at once and committed before any work
on generated stories, new checks or new scenarios; **they are never changed to make them
caught** (only a driver that crashes on import, or turns out not to be a real violation, may be
fixed, and the commit says so). ``benchmarks/sensitivity.py`` runs the catalog against each and
prints which are caught; ``docs/sensitivity.md`` records the figures.

Each class docstring says: the mistake, in a sentence a driver author would recognise; which
requirement(s) it breaks; and in which situation it behaves differently from the reference
driver. Each has a factory of the same name as the ``--sandbox-driver=sensitivity_drivers:<name>``
value that runs it (with ``tests/`` on ``sys.path``)::

    PYTHONPATH=tests pytest --sandbox-driver=sensitivity_drivers:backup_name_any_suffix

``SENSITIVITY`` maps each name to ``(class, requirements, category)``; the categories are

* ``promise``: a promise of the contract that no check of the suite reads today (Warning
  metadata and types, journal file modes, where files go, a driver-made GPU request, OWN-9's
  stored-ID rule);
* ``shape``: a shape of containers, names, labels or journals the catalog's stories never take;
* ``fault``: a durability mistake the catalog's fault injection cannot bite (a missed fsync, a
  non-atomic write whose torn window lies between the driver's crash hooks);
* ``exploration``: a mistake that only shows under particular interleavings of polls, list orders
  and restarts;
* ``boundary``: a boundary condition of the decision procedure or of delete and the event rules
  (container states, generation comparison, return values, deduplication).

Like ``tests/broken_drivers.py``, nothing here patches module globals: every variation is a
subclass of :class:`reference_driver.ReferenceDriver` (or of its ``Journal`` / ``EventHub``)
overriding a seam or a small method. Where the mistake is one changed name inside
``reference_driver/decision.py`` (a constant, ``is_backup_name``), :func:`_decide_variant`
builds a private copy of ``decide`` whose globals bind that one name differently; the reference
module, and so the suite's oracle, are untouched.
"""

from __future__ import annotations

import errno
import os
import re
import tempfile
import types
import uuid
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterator

from pytest_sandbox_conformance.adapters.base import DriverContext
from pytest_sandbox_conformance.adapters.reference import ReferenceAdapter
from pytest_sandbox_conformance.api import DeletedEvent, PlatformEvent, SandboxSpec
from pytest_sandbox_conformance.engines.base import ACTIVE_STATES, NON_TERMINAL_STATES, Container
from reference_driver import ReferenceDriver
from reference_driver import decision as _decision
from reference_driver.decision import (
    Decision,
    Notice,
    Outcome,
    candidates_for,
    group_by_sandbox,
    unowned_notices,
)
from reference_driver.events import EventHub
from reference_driver.journal import (
    FORMAT_VERSION,
    SUFFIX,
    TMP_MARK,
    Journal,
    JournalWriteError,
    _fsync_dir,
    _unlink_quietly,
    _write_all,
)
from reference_driver.state import Record

__all__ = ["DRIVERS", "SENSITIVITY"]

CONFLICT = "ContainerIdentityConflict"
MISSING = "ContainerInstanceMissing"


# -- shared pieces ---------------------------------------------------------------------------------


def _decide_variant(**names: object) -> Callable[..., Decision]:
    """``reference_driver.decision.decide`` as if ``decision.py`` bound ``names`` differently.

    ``decide`` and ``_is_intended_overlap`` (the two functions that read module-level names such
    as ``NON_TERMINAL_STATES`` and ``is_backup_name``) are rebuilt from their code objects over a
    *copy* of the module's globals with ``names`` replaced, so the result is the reference
    procedure with exactly that one-name change. The module itself is not modified.
    """
    scope = dict(vars(_decision))
    scope.update(names)
    for fn_name in ("decide", "_is_intended_overlap"):
        fn = getattr(_decision, fn_name)
        scope[fn_name] = types.FunctionType(fn.__code__, scope, fn.__name__, fn.__defaults__,
                                            fn.__closure__)
    return scope["decide"]  # type: ignore[return-value]


class _VariantDecide(ReferenceDriver):
    """A driver whose decision procedure is a :func:`_decide_variant`."""

    _procedure: Callable[..., Decision] = staticmethod(_decision.decide)

    def decide(self, record: Record, candidates, canonical: str) -> Decision:
        return type(self)._procedure(record, candidates, canonical, self.labels.generation)


def _ids(containers) -> str:
    return ",".join(sorted(c.id for c in containers))


def _replace_notices(decision: Decision, fn: Callable[[Notice], Notice]) -> Decision:
    return replace(decision, notices=tuple(fn(n) for n in decision.notices))


def _has_gpu(c: Container) -> bool:
    return (any(r.is_gpu for r in c.device_requests)
            or (c.runtime == "nvidia" and "NVIDIA_VISIBLE_DEVICES" in c.env))


class _JournalVariant(Journal):
    """The reference journal's ``write``, step for step, with the knobs the mistakes below turn.

    Each broken journal sets one class attribute; with the defaults this is the reference write.
    """

    #: The mode the temporary file (and so the journal) is created with.
    file_mode = 0o600
    #: Make the temporary file with ``tempfile.mkstemp()`` (the system temp folder).
    temp_in_system_tmp = False
    fsync_temp = True
    fsync_folder = True

    def write(self, record: Record) -> None:
        if record.untrusted:
            raise JournalWriteError(errno.EPERM, "refusing to overwrite an untrusted journal")
        final = self.path_for(record.sandbox_id)
        data = self.encode(record)
        hook = self.crash_hook
        tmp: Path | None = None
        try:
            hook("open-temp")
            if self.temp_in_system_tmp:
                fd, name = tempfile.mkstemp(prefix=final.name + TMP_MARK)
                tmp = Path(name)
            else:
                tmp = final.with_name(f"{final.name}{TMP_MARK}{os.getpid()}")
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, self.file_mode)
            try:
                half = len(data) // 2
                os.write(fd, data[:half])
                hook("write-partial")
                _write_all(fd, data[half:])
                hook("fsync-temp")
                if self.fsync_temp:
                    os.fsync(fd)
            finally:
                os.close(fd)
            hook("rename")
            os.replace(tmp, final)
            hook("fsync-dir")
            if self.fsync_folder:
                _fsync_dir(self.folder)
        except OSError as exc:
            if tmp is not None:
                _unlink_quietly(tmp)
            raise JournalWriteError(exc.errno, f"cannot persist journal {final}: "
                                               f"{exc.strerror or exc}") from exc
        self.writes += 1


# == promise: what no check reads today ===========================================================


class ConflictWarningWithoutIds(ReferenceDriver):
    """The ``ContainerIdentityConflict`` Warning beside a present authority carries only the
    authority's ID: the author filled the metadata with ``authoritative_instance_id`` and thought
    the message's count ("2 other container(s) carry this sandbox's labels") was enough.

    Breaks OWN-3 (the Warning "names the other candidates"). Differs whenever a duplicate sits
    beside a present authority (a ``docker run --label`` copy, a debugging clone): the Warning
    names none of them.
    """

    def decide(self, record: Record, candidates, canonical: str) -> Decision:
        d = super().decide(record, candidates, canonical)
        if d.outcome != Outcome.AUTHORITATIVE:
            return d
        return _replace_notices(d, lambda n: replace(
            n, metadata={"authoritative_instance_id": d.instance_id or ""})
            if n.reason == CONFLICT else n)


class ConflictNamesFirstDuplicateOnly(ReferenceDriver):
    """The ``ContainerIdentityConflict`` Warning names only the first duplicate in the engine's
    list (``duplicates[0].id``, written when there was only ever one copy).

    Breaks OWN-3 (the Warning names *the other candidates*). Differs when two or more duplicates
    sit beside a present authority (two ``docker run --label`` copies): the Warning names one.
    """

    def decide(self, record: Record, candidates, canonical: str) -> Decision:
        d = super().decide(record, candidates, canonical)
        if d.outcome != Outcome.AUTHORITATIVE:
            return d

        def first_only(n: Notice) -> Notice:
            if n.reason != CONFLICT:
                return n
            named = set(n.metadata.get("candidate_instance_ids", "").split(","))
            first = next(c.id for c in candidates if c.id in named)
            return replace(n, metadata={**n.metadata, "candidate_instance_ids": first})

        return _replace_notices(d, first_only)


class ConflictWarningPerDuplicate(ReferenceDriver):
    """Beside a present authority the driver emits one ``ContainerIdentityConflict`` Warning per
    duplicate (a loop over the duplicates, each with its own key), instead of one Warning that
    names them all.

    Breaks OWN-3 ("one Warning ... that names the other candidates") and OWN-17 (one Warning per
    distinct condition). Differs when two or more duplicates are seen at once: two Warnings.
    """

    def decide(self, record: Record, candidates, canonical: str) -> Decision:
        d = super().decide(record, candidates, canonical)
        if d.outcome != Outcome.AUTHORITATIVE or not d.notices:
            return d
        a = d.instance_id or ""
        out: list[Notice] = []
        for n in d.notices:
            if n.reason != CONFLICT:
                out.append(n)
                continue
            for dup in n.metadata["candidate_instance_ids"].split(","):
                out.append(replace(n, key=f"identity-conflict:{a}:{dup}",
                                   metadata={**n.metadata, "candidate_instance_ids": dup}))
        return replace(d, notices=tuple(out))


class RollbackReasonTypo(ReferenceDriver):
    """The rollback Warning's reason is spelt ``SandboxInstanceRolledBack`` (past tense, like
    ``SandboxInstanceReplaced``) instead of the contract's ``SandboxInstanceRollback``.

    Breaks OWN-13 (the rollback emits Warning ``SandboxInstanceRollback``). Differs only when a
    retired instance is revived (the GPU tool's rollback after an adoption).
    """

    def decide(self, record: Record, candidates, canonical: str) -> Decision:
        return _replace_notices(super().decide(record, candidates, canonical), lambda n: replace(
            n, reason="SandboxInstanceRolledBack") if n.reason == "SandboxInstanceRollback" else n)


class ReplacedEventIsNormal(ReferenceDriver):
    """``SandboxInstanceReplaced`` is emitted as a ``Normal`` event: the author saw a successful
    adoption as good news, not as a warning.

    Breaks OWN-4 (at adoption the driver "emits a Warning ``SandboxInstanceReplaced``").
    Differs at every adoption (overlap or gap handoff): the event is not a Warning.
    """

    def decide(self, record: Record, candidates, canonical: str) -> Decision:
        return _replace_notices(super().decide(record, candidates, canonical), lambda n: replace(
            n, type="Normal") if n.reason == "SandboxInstanceReplaced" else n)


class _Mode0644Journal(_JournalVariant):
    file_mode = 0o644


class JournalFileMode0644(ReferenceDriver):
    """The journal's temporary file is created with mode ``0o644`` (the usual mode for a data
    file), so every journal is world-readable under the common umask 022.

    Breaks OWN-15 (the journal is owner-only: file mode 0600). Differs at every journal write
    when the process umask does not mask group and other read bits.
    """

    journal_class = _Mode0644Journal


class _Folder0755Journal(Journal):
    def __init__(self, folder, namespace: str) -> None:  # noqa: D401 - the reference's, minus 0700
        self.folder = Path(folder)
        self.namespace = namespace
        self.crash_hook = lambda step: None
        self.writes = 0
        self.folder.mkdir(parents=True, exist_ok=True)


class JournalFolderMode0755(ReferenceDriver):
    """The journal folder is made with ``mkdir(parents=True, exist_ok=True)`` (default mode,
    0755 under umask 022) and an existing lax folder is left as it is.

    Breaks OWN-15 (folder mode 0700). Differs at start-up whenever the folder is new (under a
    umask that leaves group or other bits) or already exists with a lax mode.
    """

    journal_class = _Folder0755Journal


class _SystemTmpJournal(_JournalVariant):
    temp_in_system_tmp = True


class JournalTempInSystemTmp(ReferenceDriver):
    """The journal's temporary file is made with ``tempfile.mkstemp()`` without ``dir=``, so it
    lives in the system temp folder, outside the state folder, and is then ``os.replace``-d over
    the journal.

    Breaks OWN-15 (written atomically: a temporary file beside the journal, renamed over it; the
    rename is only a rename on one filesystem) and with it OWN-1 (create cannot persist the
    authority). Differs whenever the state folder is on another filesystem than the temp folder
    (a volume for ``/var/lib/...``, ``/tmp`` on tmpfs): every journal write fails with EXDEV, so
    create fails and every handoff is ``ContainerOwnershipPersistFailed``; on one filesystem a
    crash before the rename leaves a copy of the journal outside the owner-only folder, which the
    start-up sweep never removes.
    """

    journal_class = _SystemTmpJournal


class GpuCreateDropsDeviceRequest(ReferenceDriver):
    """``create`` normalises the gateway's spec into a new ``SandboxSpec(id, name, image,
    command, env, labels)`` and forgets the ``gpu`` flag, so a GPU sandbox's container is made
    without its CDI device request.

    Breaks OWN-19 (the sandbox's instance is the container that actually has the GPU; the
    driver-made GPU sandbox has its device request). Differs for every sandbox created with
    ``gpu: true``.
    """

    def create(self, spec: SandboxSpec):
        return super().create(SandboxSpec(spec.id, spec.name, image=spec.image,
                                          command=spec.command, env=spec.env, labels=spec.labels))


class ReconcileTrustsGateway(ReferenceDriver):
    """``reconcile_instance`` returns the gateway's stored ID when the journal knows it as a
    retired instance ("the gateway is the source of truth, the journal only confirms").

    Breaks OWN-9 (if the journal is one replacement ahead of the gateway's stored
    ``instance_id``, the journal wins). Differs when the gateway missed an adoption (it was down
    while the driver adopted the GPU clone) and reconciles with the old ID: it gets the retired
    instance back.
    """

    def reconcile_instance(self, sandbox_id: str, stored_instance_id: str | None) -> str | None:
        record = self.record(sandbox_id)
        if (record is not None and not record.untrusted and stored_instance_id is not None
                and stored_instance_id in record.retired):
            return stored_instance_id
        return super().reconcile_instance(sandbox_id, stored_instance_id)


# == shape: containers, names, labels and journals the stories never take =========================


def _backup_prefix_only(name: str, canonical: str) -> bool:
    return name.startswith(f"{canonical}-nemoclaw-gpu-backup-")


class BackupNameAnySuffix(_VariantDecide):
    """``is_backup_name`` checks only the prefix ``<canonical>-nemoclaw-gpu-backup-``, not that
    the rest is digits, so ``...-nemoclaw-gpu-backup-old`` or ``...-backup-manual`` counts as the
    GPU tool's backup.

    Breaks OWN-4 (the handoff shape needs ``<canonical>-nemoclaw-gpu-backup-<digits>``) and
    OWN-2 / OWN-3 (beside an authority that is not in a handoff shape, a copy must not drive the
    snapshot). Differs when someone stops the sandbox's container, renames it to such a name by
    hand and starts a clone under the canonical name: it records an intent and adopts the clone,
    where the reference driver keeps A authoritative and reports the clone as a duplicate.
    """

    _procedure = staticmethod(_decide_variant(is_backup_name=_backup_prefix_only))


def _backup_13_digits(name: str, canonical: str) -> bool:
    return re.fullmatch(re.escape(f"{canonical}-nemoclaw-gpu-backup-") + r"\d{13}", name) is not None


class BackupNameNeeds13Digits(_VariantDecide):
    """``is_backup_name`` matches ``-nemoclaw-gpu-backup-\\d{13}``: exactly the length of
    JavaScript's ``Date.now()``, which the author saw in NemoClaw's backup names.

    Breaks OWN-4 (the backup name is ``<canonical>-nemoclaw-gpu-backup-<digits>``, any number of
    digits). Differs when the backup's timestamp has another length (a tool or fork that uses
    seconds, ten digits): the overlapping handoff is not recognised, A stays authoritative
    (``ContainerExited``) and the clone is reported as a duplicate instead of an intent being
    recorded.
    """

    _procedure = staticmethod(_decide_variant(is_backup_name=_backup_13_digits))


class CanonicalNameUnsanitized(ReferenceDriver):
    """When it resolves an observation the driver compares names with ``f"openshell-{name}-{id}"``
    as written, while ``create`` names the container with the sanitised canonical name
    (lower-cased, unsafe characters replaced): two code paths, one forgot ``canonical_name()``.

    Breaks OWN-4 and OWN-5 (the replacement carries *the canonical name*, the backup is
    ``<canonical>-nemoclaw-gpu-backup-<digits>``). Differs for sandboxes whose name has upper-case
    letters or characters outside ``[a-z0-9_.-]`` (``GPU-Box``, ``ml team``): no handoff is
    ever recognised; a gap handoff ends in ``ContainerIdentityConflict``.
    """

    def decide(self, record: Record, candidates, canonical: str) -> Decision:
        return super().decide(record, candidates, f"openshell-{record.name}-{record.sandbox_id}")


class IgnoresCopiesWithoutManagedBy(ReferenceDriver):
    """The poll lists ``{managed-by: openshell, namespace: <ns>}`` (as OpenShell's own driver
    filters by ``managed-by``), so a container without the ``managed-by`` label is never seen.

    Breaks OWN-3 and OWN-7 as this project decides them ("Where this project decides", point 2:
    candidates are namespace + id + name; a hand-made copy without ``managed-by`` is still a
    candidate, seen and refused). Differs when a ``docker run --label`` copy carries the
    sandbox's id, name and namespace labels but not ``managed-by``: beside the authority no
    ``ContainerIdentityConflict`` is reported; after the authority vanished the sandbox is
    "missing" instead of a conflict (or a gap handoff).
    """

    def list_namespace(self) -> list[Container]:
        return self.engine.list({self.labels.namespace: self.namespace,
                                 self.labels.managed_by: self.labels.managed_by_value})


class DeleteSkipsCopiesWithoutManagedBy(ReferenceDriver):
    """Delete removes only the exact matches that carry ``managed-by: openshell`` ("never remove
    what we do not manage").

    Breaks OWN-14 (delete removes every container whose namespace, id and name labels match,
    "Where this project decides", point 2: ``managed-by`` is not required). Differs when a
    hand-made copy without ``managed-by`` carries the sandbox's labels at delete time: it
    survives the delete.
    """

    def delete_targets(self, matches: list[Container]) -> list[Container]:
        key, value = self.labels.managed_by, self.labels.managed_by_value
        return [c for c in matches if c.labels.get(key) == value]


class CandidatesByIdOnly(ReferenceDriver):
    """A poll groups containers by the ``sandbox-id`` label alone ("the id is unique, the name
    label is redundant"), so a container with the sandbox's id but another ``sandbox-name``
    label is a candidate.

    Breaks OWN-2 (and OWN-5): candidates are the containers whose namespace, id **and name**
    labels match; another container must never drive the snapshot. Differs when a copy carries
    the sandbox's id with an edited name label (a Compose file or script that sets
    ``sandbox-name`` to its own service name): after the authority is removed that copy is
    adopted through a gap handoff where the reference driver reports the sandbox missing.
    """

    def observe(self, listed: list[Container] | None = None) -> None:
        if listed is None:
            super().observe(listed)  # lists, then calls observe(listed)
            return
        with self._lock:
            groups = group_by_sandbox(listed, self.labels.sandbox_id)
            for record in list(self._records.values()):
                self._resolve(record, list(groups.get(record.sandbox_id, ())))
            self._hub.notices("", unowned_notices(groups, self._records))


class DeletedAfterFiveMissing(ReferenceDriver):
    """After five consecutive polls (ten seconds at OpenShell's 2 s poll) with the sandbox's
    container missing, the driver concludes it is gone for good: it forgets the journal and
    emits Deleted (a "grace period" instead of OpenShell's Deleted at the first miss).

    Breaks OWN-10 (Deleted only on an explicit delete) and OWN-6 (a missing instance keeps being
    tracked as ``ContainerInstanceMissing``), hence OWN-11. Differs when a ``docker rm -f`` is
    not followed by a replacement within five polls (a long quiet period after a removal).
    """

    GRACE = 5

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._misses: Counter[str] = Counter()

    def _resolve(self, record: Record, candidates) -> None:
        super()._resolve(record, candidates)
        sid = record.sandbox_id
        snap = self.snapshot(sid)
        if snap is None or snap.reason != MISSING:
            self._misses.pop(sid, None)
            return
        self._misses[sid] += 1
        if self._misses[sid] >= self.GRACE:
            self._misses.pop(sid, None)
            self.journal.forget(sid)
            self._records.pop(sid, None)
            self._snapshots.pop(sid, None)
            self._hub.forget(sid)
            self.emit(DeletedEvent(sid))


class _NoRetiredJournal(Journal):
    def _parse(self, data, sandbox_id: str, path: Path) -> Record:
        return replace(super()._parse(data, sandbox_id, path), retired=())


class RestartForgetsRetired(ReferenceDriver):
    """The journal loader rebuilds the record from authority, generation and intent; the
    ``retired`` list (added to the format later) is written but not read back.

    Breaks OWN-9 (a restart restores the retired set) and OWN-13 / OWN-3 through it. Differs after
    an adoption followed by a restart: the kept backup of the former instance is reported as a
    duplicate (``ContainerIdentityConflict``), and the GPU tool's rollback is no longer a rollback
    (it becomes a two-observation gap handoff, pending in between).
    """

    journal_class = _NoRetiredJournal


class _UnquotedForgetJournal(Journal):
    def forget(self, sandbox_id: str) -> None:
        path = self.folder / f"{sandbox_id}{SUFFIX}"
        try:
            path.unlink()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise JournalWriteError(exc.errno, f"cannot remove journal {path}: "
                                               f"{exc.strerror or exc}") from exc
        _fsync_dir(self.folder)


class ForgetUnquotedPath(ReferenceDriver):
    """``forget`` builds the journal's path as ``folder / f"{sandbox_id}.json"`` instead of
    ``path_for(sandbox_id)``, which percent-encodes the id; a missing file is "already forgotten".

    Breaks OWN-14 (delete forgets the sandbox's journal) and OWN-9 / OWN-10 through it. Differs
    for sandbox ids with a character the file name encodes (``team:box``, ``a/b``, ``x y``):
    the journal survives the delete, and a driver restarted afterwards tracks the deleted
    sandbox again.
    """

    journal_class = _UnquotedForgetJournal


class _AnyNamespaceJournal(Journal):
    def _parse(self, data, sandbox_id: str, path: Path) -> Record:
        if isinstance(data, dict):
            data = {**data, "namespace": self.namespace}
        return super()._parse(data, sandbox_id, path)


class JournalAcceptsOtherNamespace(ReferenceDriver):
    """The journal loader checks the version and the sandbox id but not the namespace: the
    namespace is the driver's own by construction, the author thought.

    Breaks OWN-15 (a journal is checked when loaded: version, sandbox id, name and namespace; a
    foreign one fails closed). Differs when another namespace's well-formed journal sits in its
    folder (two drivers configured with one state folder, a restore of another gateway's state):
    it trusts that journal's authority instead of reporting ``ContainerOwnershipUnresolved``.
    """

    journal_class = _AnyNamespaceJournal


class _NewerVersionJournal(Journal):
    def _parse(self, data, sandbox_id: str, path: Path) -> Record:
        if (isinstance(data, dict) and type(data.get("version")) is int
                and data["version"] > FORMAT_VERSION):
            data = {**data, "version": FORMAT_VERSION}
        return super()._parse(data, sandbox_id, path)


class JournalAcceptsNewerVersion(ReferenceDriver):
    """The journal loader refuses only versions *older* than its own ("a newer driver only adds
    fields"), so a version-2 journal is read as version 1.

    Breaks OWN-15 (the journal is versioned and its version checked when loaded; a foreign one
    fails closed). Differs after a downgrade of the driver (a rollback of a release that wrote
    version 2): it trusts the newer journal instead of failing closed.
    """

    journal_class = _NewerVersionJournal


class RetiredNeverDuplicate(ReferenceDriver):
    """Beside a present authority every retired instance is exempt from the duplicate report
    ("we owned it once, it is not a stranger"), whatever its name and state.

    Breaks OWN-3: only retired instances *exited under a backup name* are exempt (contract §5,
    step 3); any other candidate beside the authority is a duplicate, named in a
    ``ContainerIdentityConflict``. Differs after an adoption whose backup was kept, when someone
    starts the old backup again (``docker start <backup>``) or renames it: no Warning.
    """

    def decide(self, record: Record, candidates, canonical: str) -> Decision:
        d = super().decide(record, candidates, canonical)
        if d.outcome != Outcome.AUTHORITATIVE or not d.notices:
            return d
        retired = set(record.retired)
        a = d.instance_id or ""
        out = []
        for n in d.notices:
            if n.reason == CONFLICT:
                left = [i for i in n.metadata["candidate_instance_ids"].split(",")
                        if i not in retired]
                if not left:
                    continue
                ids = ",".join(left)
                n = replace(n, key=f"identity-conflict:{a}:{ids}",
                            metadata={**n.metadata, "candidate_instance_ids": ids})
            out.append(n)
        return replace(d, notices=tuple(out))


class RestartRecreatesMissing(ReferenceDriver):
    """At its first poll after start-up the driver "heals" every restored sandbox whose container
    is gone: it creates a new container for it (canonical name, identity labels, the journaled
    generation) and journals that as the authority, as a supervisor would re-run a service.

    Breaks OWN-6 (A absent and no candidates: the snapshot keeps A's ID and reports
    ``ContainerInstanceMissing``) and OWN-2 (the snapshot is driven by a container the driver did
    not create for this sandbox's create request; the old authority is dropped, not retired).
    Differs when the sandbox's container was removed (``docker rm -f``, a host clean-up) and the
    driver restarts before a replacement appears.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._restored = set(self._records)

    def observe(self, listed: list[Container] | None = None) -> None:
        if listed is None and self._restored:
            with self._lock:
                restored, self._restored = self._restored, set()
                groups = group_by_sandbox(self.list_namespace(), self.labels.sandbox_id)
                for sid in sorted(restored):
                    record = self._records.get(sid)
                    if (record is None or record.untrusted or record.authority is None
                            or candidates_for(record, groups, self.labels.sandbox_name)):
                        continue
                    healed = replace(record, intent=None,
                                     generation=record.generation or str(uuid.uuid4()))
                    self._create_container(SandboxSpec(record.sandbox_id, record.name), healed)
        super().observe(listed)


# == fault: durability mistakes the crash hooks cannot bite ========================================


class _NoFolderFsyncJournal(_JournalVariant):
    fsync_folder = False


class NoDirFsync(ReferenceDriver):
    """The journal write fsyncs the temporary file and renames it, but does not fsync the folder
    afterwards (the author thought ``os.replace`` was durable).

    Breaks OWN-15 (written atomically: ... rename over the journal, fsync of the folder) and
    OWN-16 / OWN-9: after a power loss the rename may be lost and the old journal comes back (an
    adoption or an intent forgotten). Differs at every journal write; a process crash cannot
    show it, only a power loss after the write returned.
    """

    journal_class = _NoFolderFsyncJournal


class _NoTempFsyncJournal(_JournalVariant):
    fsync_temp = False


class NoTempFsync(ReferenceDriver):
    """The journal write renames the temporary file over the journal without fsyncing it first
    ("rename is atomic, so the data is safe").

    Breaks OWN-15 (a temporary file, fsync, rename) and OWN-16: after a power loss the renamed
    journal can be empty or partly written (delayed allocation), so the restarted driver finds a
    torn journal. Differs at every journal write; only a power loss shows it.
    """

    journal_class = _NoTempFsyncJournal


class _OverwriteInPlaceJournal(Journal):
    """Overwrites the journal file in place (no truncation first, then ``ftruncate``).

    It still calls the crash hook at the five step names, all of them at moments where the file
    holds the old or the new journal; the torn window is the overwrite itself, between hooks.
    """

    def write(self, record: Record) -> None:
        if record.untrusted:
            raise JournalWriteError(errno.EPERM, "refusing to overwrite an untrusted journal")
        final = self.path_for(record.sandbox_id)
        data = self.encode(record)
        hook = self.crash_hook
        try:
            for step in ("open-temp", "write-partial", "fsync-temp", "rename"):
                hook(step)  # the old journal is intact at each of these
            fd = os.open(final, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                _write_all(fd, data)
                os.ftruncate(fd, len(data))
                os.fsync(fd)
            finally:
                os.close(fd)
            hook("fsync-dir")  # the new journal is complete
            _fsync_dir(self.folder)
        except OSError as exc:
            raise JournalWriteError(exc.errno, f"cannot persist journal {final}: "
                                               f"{exc.strerror or exc}") from exc
        self.writes += 1


class JournalOverwriteInPlace(ReferenceDriver):
    """The journal is rewritten in place: open without truncating, write the new document over
    the old one, ``ftruncate`` to its length, fsync ("no empty-file window, no temporary file to
    clean up").

    Breaks OWN-15 (written atomically: temporary file, fsync, rename) and OWN-16 (a crash at any
    point leaves the old or the new journal). Differs when the process dies, the disk fills up or
    the power goes in the middle of the overwrite: the journal is a mix of new and old bytes and
    the restarted driver fails closed (``ContainerOwnershipUnresolved``) on a sandbox whose old
    journal was fine.
    """

    journal_class = _OverwriteInPlaceJournal


class _GreedySweepJournal(Journal):
    def load_all(self) -> Iterator[Record]:
        for tmp in self.folder.glob("*" + TMP_MARK + "*"):
            try:
                tmp.unlink()  # an interrupted write
            except OSError:
                pass
        for path in sorted(p for p in self.folder.iterdir() if p.name.endswith(SUFFIX)):
            yield self.load(path)


class SweepRemovesTmpLikeJournals(ReferenceDriver):
    """The start-up sweep of interrupted writes removes every file matching ``*.tmp-*``, without
    checking that it is not itself a journal (a journal always ends with ``.json``).

    Breaks OWN-9 (a restarted driver restores every sandbox from its journal) and OWN-15 (the
    journal must not be lost). Differs for a sandbox whose id contains ``.tmp-``
    (``build.tmp-3``, ``ci.tmp-linux``): its journal is deleted at the next restart, the sandbox
    is forgotten and its container reported as unowned.
    """

    journal_class = _GreedySweepJournal


class _ForgetNoFsyncJournal(Journal):
    def forget(self, sandbox_id: str) -> None:
        path = self.path_for(sandbox_id)
        try:
            path.unlink()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise JournalWriteError(exc.errno, f"cannot remove journal {path}: "
                                               f"{exc.strerror or exc}") from exc


class ForgetWithoutDirFsync(ReferenceDriver):
    """Delete unlinks the sandbox's journal but does not fsync the folder afterwards, then
    forgets the sandbox in memory and emits Deleted.

    Breaks OWN-15 (every change to the journal is persisted before the in-memory state changes)
    and OWN-14 (delete forgets the journal): after a power loss the unlink may be lost and the
    restarted driver tracks a sandbox it reported Deleted. Differs at every explicit delete; only
    a power loss shows it.
    """

    journal_class = _ForgetNoFsyncJournal


# == exploration: mistakes that need a particular interleaving ====================================


class NeverRollsBack(ReferenceDriver):
    """The driver implements the handoffs but not the rollback step (§5 step 4): a revived
    former instance is treated like any other container, here as a gap-handoff candidate (it has
    the canonical name and the journaled generation).

    Breaks OWN-13 (a retired instance that is canonical and non-terminal again becomes
    authoritative at once, with Warning ``SandboxInstanceRollback``). Differs at the observation
    that first sees the GPU tool's rollback after an adoption: pending
    (``SandboxReplacementIntentRecorded``) instead of the rollback, adopted one poll later.
    """

    def decide(self, record: Record, candidates, canonical: str) -> Decision:
        d = super().decide(record, candidates, canonical)
        if d.outcome != Outcome.ROLLBACK:
            return d
        d = super().decide(replace(record, retired=()), candidates, canonical)
        return replace(d, record=replace(d.record, retired=record.retired))


class IntentSurvivesInconsistentObservation(ReferenceDriver):
    """When the observation after an intent does not match it but the intended replacement is
    still listed, the driver reports the invalidation but keeps the intent ("the replacement is
    still there, keep waiting for it"), so it adopts as soon as the shape comes back.

    Breaks OWN-8 (the intent is cleared; adoption then needs a fresh pair of consistent
    observations). Differs when the replacement flaps (it exits and is restarted by its restart
    policy) or a third container appears and goes again between two polls: it adopts after two
    non-consecutive consistent observations.
    """

    def decide(self, record: Record, candidates, canonical: str) -> Decision:
        d = super().decide(record, candidates, canonical)
        if (d.outcome == Outcome.INVALIDATE and record.intent is not None
                and any(c.id == record.intent.replacement for c in candidates)):
            return replace(d, record=record)
        return d


class _IntentlessJournal(Journal):
    def _parse(self, data, sandbox_id: str, path: Path) -> Record:
        return replace(super()._parse(data, sandbox_id, path), intent=None)


class RestartDropsIntent(ReferenceDriver):
    """The journal loader drops the replacement intent ("an intent is in-flight state; after a
    restart just observe again").

    Breaks OWN-9 (a restart between recording an intent and adopting restores the intent and
    ends like a driver that never restarted). Differs when the driver restarts between the
    intent and the adoption: the first observation after the restart records the intent again
    (pending) where the reference driver adopts.
    """

    journal_class = _IntentlessJournal


class AdoptsGpuOnFirstSight(ReferenceDriver):
    """A replacement that has a GPU is taken to be the GPU tool's and adopted at the first
    observation ("that is what NemoClaw's patch does"); others go through intent and adoption.

    Breaks OWN-19 (a GPU replacement is adopted or refused by exactly the same rules as any
    other container) and OWN-4 / OWN-5 (adoption at the *next* consistent observation). Differs
    at the first observation of a handoff whose clone has a GPU device request or the NVIDIA
    runtime.
    """

    def decide(self, record: Record, candidates, canonical: str) -> Decision:
        d = super().decide(record, candidates, canonical)
        if d.outcome == Outcome.RECORD_INTENT and d.record.intent is not None:
            try:
                b = self.engine.inspect(d.record.intent.replacement)
            except Exception:
                return d
            if _has_gpu(b):
                return super().decide(d.record, candidates, canonical)
        return d


class AdoptionNeedsSameListOrder(ReferenceDriver):
    """The driver remembers the intent's observation as the list of candidate IDs in the
    engine's order and adopts only if the next observation lists the same IDs in the same order;
    otherwise it treats the observation as a fresh first sighting.

    Breaks OWN-4 ("the outcome MUST NOT depend on the order in which the engine lists A and B")
    and OWN-20. Differs in an overlapping handoff when the two polls list the backup and the
    clone in different orders: it stays pending where the reference driver adopts.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._seen: dict[str, list[str]] = {}

    def decide(self, record: Record, candidates, canonical: str) -> Decision:
        d = super().decide(record, candidates, canonical)
        sid, order = record.sandbox_id, [c.id for c in candidates]
        if d.outcome == Outcome.RECORD_INTENT:
            self._seen[sid] = order
        elif d.outcome == Outcome.ADOPT:
            seen = self._seen.pop(sid, None)
            if seen is not None and seen != order:
                self._seen[sid] = order
                return super().decide(record.with_intent(None), candidates, canonical)
        else:
            self._seen.pop(sid, None)
        return d


# == boundary: states, comparisons, return values, deduplication ==================================


class RestartingReplacementRefused(_VariantDecide):
    """Non-terminal is ``{"created", "running"}``: a container in ``restarting`` is taken for a
    crash loop and refused as a replacement.

    Breaks OWN-4 / OWN-5 (the replacement's state is non-terminal: ``created``, ``running`` or
    ``restarting``; only ``exited``, ``dead``, ``paused`` and ``removing`` are terminal, OWN-7).
    Differs when the clone is ``restarting`` at a poll (Docker's restart policy between two
    attempts): the handoff is pending or a conflict instead of an intent or an adoption.
    """

    _procedure = staticmethod(_decide_variant(
        NON_TERMINAL_STATES=frozenset(NON_TERMINAL_STATES - {"restarting"})))


class ActiveStatesAsNonTerminal(_VariantDecide):
    """The decision imports ``ACTIVE_STATES`` (running, paused, restarting: the states in which
    Docker's process is alive) where it means ``NON_TERMINAL_STATES`` (created, running,
    restarting).

    Breaks OWN-7 (a replacement that is ``paused`` is terminal and is not adopted) and OWN-4 (a
    ``created`` one is non-terminal and is). Differs when the clone is paused (``docker pause``
    by a debugger or a resource manager), or still ``created`` (``docker create`` now,
    ``docker start`` later) at the polls.
    """

    _procedure = staticmethod(_decide_variant(NON_TERMINAL_STATES=ACTIVE_STATES))


class GenerationPrefixMatch(ReferenceDriver):
    """Generations are compared with ``record.generation.startswith(label)``, so that the
    abbreviated form a person copies from ``docker inspect`` output still matches.

    Breaks OWN-7 (a candidate whose generation label is missing or *wrong* is not adopted) and
    OWN-2. Differs when a container carries an empty or truncated generation label (``docker run
    --label openshell.ai/docker-instance-generation=$GEN`` with ``GEN`` unset): it is adopted as
    the sandbox's replacement.
    """

    def decide(self, record: Record, candidates, canonical: str) -> Decision:
        g, key = record.generation, self.labels.generation
        if g is not None:
            candidates = [replace(c, labels={**c.labels, key: g})
                          if c.labels.get(key) is not None and g.startswith(c.labels[key]) else c
                          for c in candidates]
        return super().decide(record, candidates, canonical)


class DeleteRunningOnly(ReferenceDriver):
    """Delete stops and removes the sandbox's *running* containers (what ``docker ps`` without
    ``-a`` shows); stopped ones are left for "the garbage collector".

    Breaks OWN-14 (delete removes every exact match, backups and duplicates included). Differs
    when a stopped container carries the sandbox's labels at delete time: the GPU tool's stopped
    backup, an exited authority, a stopped copy.
    """

    def delete_targets(self, matches: list[Container]) -> list[Container]:
        return [c for c in matches if c.state == "running"]


class DeleteTrueWhenNothingRemoved(ReferenceDriver):
    """Delete returns ``True`` when the sandbox was known to it, whether or not any container
    was removed ("the delete succeeded").

    Breaks OWN-14 (``deleted=true`` if and only if it removed something). Differs when the
    sandbox's container was already gone before the delete (``docker rm -f``, then the user
    deletes the missing sandbox).
    """

    def delete(self, sandbox_id: str, name: str | None = None) -> bool:
        known = self.record(sandbox_id) is not None
        return super().delete(sandbox_id, name) or known


class _ReasonKeyedHub(EventHub):
    def notices(self, sandbox_id: str, notices) -> None:
        super().notices(sandbox_id, [replace(n, key=n.reason) for n in notices])


class DedupeByReasonOnly(ReferenceDriver):
    """Warnings are deduplicated by reason per sandbox (the author keyed the active set by
    ``notice.reason``), not by the condition's key.

    Breaks OWN-17 (one Warning per distinct condition, identified by its key) and OWN-3 (the
    Warning names the other candidates). Differs when one condition follows another of the same
    reason without a poll in between that clears it: a second duplicate appearing beside the
    first (``identity-conflict:A:D1`` -> ``identity-conflict:A:D1,D2``), a pending handoff whose
    other candidates change. The new condition is never reported.
    """

    hub_class = _ReasonKeyedHub


class _ReminderHub(EventHub):
    EVERY = 30

    def __init__(self) -> None:
        super().__init__()
        self._polls: Counter[str] = Counter()

    def notices(self, sandbox_id: str, notices) -> None:
        notices = list(notices)
        keys = frozenset(n.key for n in notices)
        if keys and keys == self._active.get(sandbox_id):
            self._polls[sandbox_id] += 1
            if self._polls[sandbox_id] % self.EVERY == 0:
                for n in notices:  # remind the operator of a long-standing problem
                    self.emit(PlatformEvent(sandbox_id, n.type, n.reason, n.message, n.metadata))
        else:
            self._polls.pop(sandbox_id, None)
        super().notices(sandbox_id, notices)


class WarningsReminderEvery30Polls(ReferenceDriver):
    """A condition that is still active after 30 polls (a minute at OpenShell's 2 s poll) is
    Warned about again, every 30 polls, "so that operators notice it".

    Breaks OWN-17 (one Warning per distinct condition, not one per observation or per period).
    Differs in long quiet periods with a standing condition: a duplicate beside the authority, a
    missing instance, an unresolved journal, unowned containers.
    """

    hub_class = _ReminderHub


# -- factories -------------------------------------------------------------------------------------

#: factory name -> (driver class, requirements it breaks, category)
SENSITIVITY: dict[str, tuple[type[ReferenceDriver], tuple[str, ...], str]] = {
    # promise
    "conflict_warning_without_ids": (ConflictWarningWithoutIds, ("OWN-3",), "promise"),
    "conflict_names_first_duplicate_only": (ConflictNamesFirstDuplicateOnly, ("OWN-3",),
                                            "promise"),
    "conflict_warning_per_duplicate": (ConflictWarningPerDuplicate, ("OWN-3", "OWN-17"),
                                       "promise"),
    "rollback_reason_typo": (RollbackReasonTypo, ("OWN-13",), "promise"),
    "replaced_event_is_normal": (ReplacedEventIsNormal, ("OWN-4",), "promise"),
    "journal_file_mode_0644": (JournalFileMode0644, ("OWN-15",), "promise"),
    "journal_folder_mode_0755": (JournalFolderMode0755, ("OWN-15",), "promise"),
    "journal_temp_in_system_tmp": (JournalTempInSystemTmp, ("OWN-15", "OWN-1"), "promise"),
    "gpu_create_drops_device_request": (GpuCreateDropsDeviceRequest, ("OWN-19",), "promise"),
    "reconcile_trusts_gateway": (ReconcileTrustsGateway, ("OWN-9",), "promise"),
    # shape
    "backup_name_any_suffix": (BackupNameAnySuffix, ("OWN-4", "OWN-2", "OWN-3"), "shape"),
    "backup_name_needs_13_digits": (BackupNameNeeds13Digits, ("OWN-4",), "shape"),
    "canonical_name_unsanitized": (CanonicalNameUnsanitized, ("OWN-4", "OWN-5"), "shape"),
    "ignores_copies_without_managed_by": (IgnoresCopiesWithoutManagedBy, ("OWN-3", "OWN-7"),
                                          "shape"),
    "delete_skips_copies_without_managed_by": (DeleteSkipsCopiesWithoutManagedBy, ("OWN-14",),
                                               "shape"),
    "candidates_by_id_only": (CandidatesByIdOnly, ("OWN-2", "OWN-5"), "shape"),
    "deleted_after_five_missing": (DeletedAfterFiveMissing, ("OWN-10", "OWN-6", "OWN-11"),
                                   "shape"),
    "restart_forgets_retired": (RestartForgetsRetired, ("OWN-9", "OWN-13", "OWN-3"), "shape"),
    "forget_unquoted_path": (ForgetUnquotedPath, ("OWN-14", "OWN-9", "OWN-10"), "shape"),
    "journal_accepts_other_namespace": (JournalAcceptsOtherNamespace, ("OWN-15",), "shape"),
    "journal_accepts_newer_version": (JournalAcceptsNewerVersion, ("OWN-15",), "shape"),
    "retired_never_duplicate": (RetiredNeverDuplicate, ("OWN-3",), "shape"),
    "restart_recreates_missing": (RestartRecreatesMissing, ("OWN-6", "OWN-2"), "shape"),
    # fault
    "no_dir_fsync": (NoDirFsync, ("OWN-15", "OWN-16"), "fault"),
    "no_temp_fsync": (NoTempFsync, ("OWN-15", "OWN-16"), "fault"),
    "journal_overwrite_in_place": (JournalOverwriteInPlace, ("OWN-15", "OWN-16"), "fault"),
    "sweep_removes_tmp_like_journals": (SweepRemovesTmpLikeJournals, ("OWN-9", "OWN-15"),
                                        "fault"),
    "forget_without_dir_fsync": (ForgetWithoutDirFsync, ("OWN-15", "OWN-14"), "fault"),
    # exploration
    "never_rolls_back": (NeverRollsBack, ("OWN-13",), "exploration"),
    "intent_survives_inconsistent_observation": (IntentSurvivesInconsistentObservation,
                                                 ("OWN-8",), "exploration"),
    "restart_drops_intent": (RestartDropsIntent, ("OWN-9",), "exploration"),
    "adopts_gpu_on_first_sight": (AdoptsGpuOnFirstSight, ("OWN-19", "OWN-4", "OWN-5"),
                                  "exploration"),
    "adoption_needs_same_list_order": (AdoptionNeedsSameListOrder, ("OWN-4", "OWN-20"),
                                       "exploration"),
    # boundary
    "restarting_replacement_refused": (RestartingReplacementRefused, ("OWN-4", "OWN-5"),
                                       "boundary"),
    "active_states_as_non_terminal": (ActiveStatesAsNonTerminal, ("OWN-7", "OWN-4"), "boundary"),
    "generation_prefix_match": (GenerationPrefixMatch, ("OWN-7", "OWN-2"), "boundary"),
    "delete_running_only": (DeleteRunningOnly, ("OWN-14",), "boundary"),
    "delete_true_when_nothing_removed": (DeleteTrueWhenNothingRemoved, ("OWN-14",), "boundary"),
    "dedupe_by_reason_only": (DedupeByReasonOnly, ("OWN-17", "OWN-3"), "boundary"),
    "warnings_reminder_every_30_polls": (WarningsReminderEvery30Polls, ("OWN-17",), "boundary"),
}

#: The categories, in the order docs/sensitivity.md lists them.
CATEGORIES = ("promise", "shape", "fault", "exploration", "boundary")


def _factory(name: str, cls: type[ReferenceDriver]) -> Callable[[DriverContext], ReferenceAdapter]:
    def factory(ctx: DriverContext) -> ReferenceAdapter:
        return ReferenceAdapter(ctx, driver_cls=cls, name=name)

    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = f"The ``sensitivity_drivers:{name}`` driver ({cls.__name__})."
    return factory


for _name, (_cls, _requirements, _category) in SENSITIVITY.items():
    globals()[_name] = _factory(_name, _cls)
del _name, _cls, _requirements, _category

#: factory name -> factory
DRIVERS: dict[str, Callable[[DriverContext], ReferenceAdapter]] = {
    name: globals()[name] for name in SENSITIVITY}
