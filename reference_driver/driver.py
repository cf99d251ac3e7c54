"""The reference driver: the ownership contract (``docs/contract.md``), executable.

It runs each sandbox as one container on an :class:`~pytest_sandbox_conformance.engines.base.Engine`
and keeps, per sandbox, a journaled :class:`~.state.Record` of which container is authoritative.
The three rule sets live beside it, one module each: the decision procedure (``decision.py``), the
journal (``journal.py``) and the event rules (``events.py``). This module wires them together:

* ``create`` journals a fresh generation, creates the container with its identity labels,
  journals the returned ID as the authority, and only then reports it (OWN-1);
* ``observe`` is one poll: one list call for the whole namespace, then the decision procedure per
  tracked sandbox; a changed record is persisted before it is used (OWN-15), an unchanged one
  writes nothing;
* ``delete`` removes every exact match and forgets the journal (OWN-14); it is the only source
  of Deleted events (OWN-10);
* a new driver over the same state folder restores everything from the journal (OWN-9).

Seams for variations of this driver (the deliberately broken ones in ``tests/broken_drivers.py``):
``journal_class``, ``hub_class``, ``decide``, ``delete_targets`` and ``emit``.

Thread safety: every public method holds one re-entrant lock, so a delete from another thread
waits for a create in progress and then removes what it made.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Iterable

from pytest_sandbox_conformance.api import (
    Condition,
    DeletedEvent,
    Event,
    SandboxSpec,
    Snapshot,
)
from pytest_sandbox_conformance.engines.base import (
    Container,
    ContainerSpec,
    DeviceRequest,
    Engine,
    EngineError,
)

from .decision import (
    Decision,
    candidates_for,
    decide,
    group_by_sandbox,
    persist_failed,
    ready_for_state,
    resolve_stored_instance,
    unowned_notices,
)
from .events import EventHub, Watcher
from .journal import Journal, JournalWriteError
from .naming import LabelKeys, canonical_name
from .state import Record

__all__ = ["DriverError", "ReferenceDriver", "SandboxExists"]

DEFAULT_IMAGE = "sbx-busybox:local"
DEFAULT_COMMAND = ("sleep", "2147483647")
#: The device request the driver makes for a GPU sandbox (OpenShell's Docker driver uses CDI).
GPU_REQUEST = DeviceRequest(driver="cdi", device_ids=("nvidia.com/gpu=all",))


class DriverError(Exception):
    """A driver operation failed; nothing it started is left behind."""


class SandboxExists(DriverError):
    """Create with an id the driver already tracks (gRPC's ALREADY_EXISTS)."""


class ReferenceDriver:
    """The contract's reference implementation. See the module docstring."""

    driver_name = "reference"
    driver_version = "1"
    #: What it offers the suite, in the adapter vocabulary (docs/adapters.md).
    capabilities = frozenset({"restart", "journal-faults", "gpu"})
    #: The journal's class (a seam for variations of this driver).
    journal_class: type[Journal] = Journal
    #: The event hub's class (a seam for variations of this driver).
    hub_class: type[EventHub] = EventHub

    def __init__(self, engine: Engine, state_dir: str | Path, *, namespace: str = "default",
                 image: str = DEFAULT_IMAGE, command: Iterable[str] = DEFAULT_COMMAND,
                 labels: LabelKeys | None = None) -> None:
        self.engine = engine
        self.state_dir = Path(state_dir)
        self.namespace = namespace
        self.image = image
        self.command = tuple(command)
        self.labels = labels or LabelKeys()
        self.journal = self.journal_class(self.state_dir, namespace)
        self._lock = threading.RLock()
        self._hub = self.hub_class()
        self._records: dict[str, Record] = {}
        self._snapshots: dict[str, Snapshot] = {}
        self._creating: set[str] = set()
        self._cancelled: set[str] = set()
        for record in self.journal.load_all():  # start-up restoration (OWN-9)
            self._records[record.sandbox_id] = record

    def restart(self) -> "ReferenceDriver":
        """A new driver object over the same engine and state folder, as after a process restart."""
        return type(self)(self.engine, self.state_dir, namespace=self.namespace, image=self.image,
                          command=self.command, labels=self.labels)

    # -- reading -------------------------------------------------------------------------------

    def snapshot(self, sandbox_id: str) -> Snapshot | None:
        """The last snapshot of a sandbox (``None`` before its first create or observation)."""
        return self._snapshots.get(sandbox_id)

    def snapshots(self) -> list[Snapshot]:
        return [self._snapshots[k] for k in sorted(self._snapshots)]

    def record(self, sandbox_id: str) -> Record | None:
        """The ownership record held in memory (what the journal says, once persisted)."""
        return self._records.get(sandbox_id)

    def tracked(self) -> list[str]:
        return sorted(self._records)

    def watch(self) -> Watcher:
        """Subscribe to events: current snapshots first, then (first watcher only) the backlog."""
        with self._lock:
            return self._hub.watch(self.snapshots)

    def emit(self, event: Event) -> None:
        """Send ``event`` to every watcher (a seam for variations of this driver)."""
        self._hub.emit(event)

    # -- create --------------------------------------------------------------------------------

    def create(self, spec: SandboxSpec) -> Snapshot:
        """Create and start the sandbox's container (OWN-1). Raises :class:`DriverError`."""
        with self._lock:
            if spec.id in self._records:
                raise SandboxExists(f"sandbox {spec.id!r} already exists")
            generation = str(uuid.uuid4())
            record = Record(spec.id, spec.name, self.namespace, authority=None,
                            generation=generation)
            self._persist_or_raise(record, "cannot journal the new sandbox")
            self._records[spec.id] = record
            self._creating.add(spec.id)
            try:
                return self._create_container(spec, record)
            except BaseException:
                self._discard(spec.id, generation)
                raise
            finally:
                self._creating.discard(spec.id)
                self._cancelled.discard(spec.id)

    def _create_container(self, spec: SandboxSpec, record: Record) -> Snapshot:
        labels = dict(spec.labels)
        labels.update(self.labels.identity(self.namespace, spec.id, spec.name))
        labels[self.labels.generation] = record.generation  # type: ignore[assignment]
        container = ContainerSpec(
            name=canonical_name(spec.name, spec.id), image=spec.image or self.image,
            labels=labels, command=spec.command or self.command, env=spec.env,
            device_requests=(GPU_REQUEST,) if spec.gpu else ())
        try:
            cid = self.engine.create(container)
        except EngineError as exc:
            raise DriverError(f"engine refused to create {container.name}: {exc}") from exc
        if not cid:
            raise DriverError("the engine returned an empty container ID; the sandbox is not "
                              "created (OWN-1)")
        if spec.id in self._cancelled:
            raise DriverError(f"sandbox {spec.id!r} was deleted while it was being created")
        owned = replace(record, authority=cid)
        self._persist_or_raise(owned, "cannot journal the new container")
        self._records[spec.id] = owned
        try:
            self.engine.start(cid)
            ready = ready_for_state(self.engine.inspect(cid))
        except EngineError as exc:
            ready = Condition("False", "ContainerStartFailed", f"cannot start {cid[:12]}: {exc}")
        if spec.id in self._cancelled:
            # A delete ran during start/inspect (OWN-14): it removed the container and the
            # journal and emitted Deleted; reporting a snapshot now would resurrect the sandbox.
            raise DriverError(f"sandbox {spec.id!r} was deleted while it was being created")
        snap = Snapshot(spec.id, spec.name, self.namespace, cid, ready)
        self._snapshots[spec.id] = snap
        self._hub.snapshot(snap)
        return snap

    def _discard(self, sandbox_id: str, generation: str) -> None:
        """Undo a failed create: remove whatever carries its generation, forget its journal."""
        try:
            made = self.engine.list({self.labels.generation: generation})
            self.engine.remove_all((c.id for c in made), force=True)
        except EngineError:
            pass  # the next observation reports what is left as unowned (OWN-18)
        self._records.pop(sandbox_id, None)
        self._snapshots.pop(sandbox_id, None)
        try:
            self.journal.forget(sandbox_id)
        except JournalWriteError:
            pass

    def _persist_or_raise(self, record: Record, what: str) -> None:
        try:
            self.journal.write(record)
        except JournalWriteError as exc:
            raise DriverError(f"{what}: {exc} (ContainerOwnershipPersistFailed)") from exc

    # -- delete --------------------------------------------------------------------------------

    def delete(self, sandbox_id: str, name: str | None = None) -> bool:
        """Stop and remove every exact match, forget the journal (OWN-14). True iff removed any.

        ``name`` defaults to the tracked record's name. A delete during a create of the same
        sandbox makes that create undo itself.
        """
        with self._lock:
            record = self._records.get(sandbox_id)
            if name is None:
                name = record.name if record is not None else ""
            if sandbox_id in self._creating:
                self._cancelled.add(sandbox_id)
            matches = self.engine.list(self.labels.exact(self.namespace, sandbox_id, name))
            removed = []
            for c in self.delete_targets(matches):
                try:
                    self.engine.stop(c.id)
                except EngineError:
                    pass
                removed.extend(self.engine.remove_all([c.id], force=True))
            if record is not None or removed:
                try:
                    self.journal.forget(sandbox_id)
                except JournalWriteError as exc:
                    raise DriverError(f"removed {len(removed)} container(s) but cannot remove "
                                      f"the journal of {sandbox_id!r}: {exc}") from exc
                self._records.pop(sandbox_id, None)
                self._snapshots.pop(sandbox_id, None)
                self._hub.forget(sandbox_id)
                self.emit(DeletedEvent(sandbox_id))
            return bool(removed)

    def delete_targets(self, matches: list[Container]) -> list[Container]:
        """Which exact matches (namespace, id and name) a delete removes: all of them (OWN-14).

        A seam for variations of this driver.
        """
        return matches

    # -- observe -------------------------------------------------------------------------------

    def list_namespace(self) -> list[Container]:
        """The poll's one engine list: every container of this driver's namespace."""
        # Candidates match on namespace, sandbox id and name (contract §4); managed-by is not
        # required, so a hand-made copy without it is still seen (and refused).
        return self.engine.list({self.labels.namespace: self.namespace})

    def observe(self, listed: list[Container] | None = None) -> None:
        """One poll: list the namespace once, resolve every tracked sandbox, report changes.

        ``listed`` is a :meth:`list_namespace` result the caller fetched itself (a server that
        must not hold the driver's lock while the engine answers); it must not be older than the
        driver's last create or delete.
        """
        if listed is None:
            with self._lock:
                self.observe(self.list_namespace())
            return
        with self._lock:
            keys = self.labels
            groups = group_by_sandbox(listed, keys.sandbox_id)
            for record in list(self._records.values()):
                self._resolve(record, candidates_for(record, groups, keys.sandbox_name))
            self._hub.notices("", unowned_notices(groups, self._records))

    def decide(self, record: Record, candidates: list[Container], canonical: str) -> Decision:
        """The decision procedure for one sandbox (a seam for variations of this driver)."""
        return decide(record, candidates, canonical, self.labels.generation)

    def _resolve(self, record: Record, candidates: list[Container]) -> None:
        canonical = canonical_name(record.name, record.sandbox_id)
        decision: Decision = self.decide(record, candidates, canonical)
        if decision.record != record:
            try:
                self.journal.write(decision.record)  # persisted before memory changes (OWN-15)
            except JournalWriteError as exc:
                decision = persist_failed(decision, record, str(exc))
            else:
                self._records[record.sandbox_id] = decision.record
        snap = Snapshot(record.sandbox_id, record.name, self.namespace, decision.instance_id,
                        decision.ready)
        self._snapshots[record.sandbox_id] = snap
        self._hub.notices(record.sandbox_id, decision.notices)
        self._hub.snapshot(snap)

    # -- gateway reconciliation ------------------------------------------------------------------

    def reconcile_instance(self, sandbox_id: str, stored_instance_id: str | None) -> str | None:
        """OWN-9: the instance ID the gateway should hold, given the one it stored.

        The journal wins when the stored ID is its authority or a retired ID; otherwise ``None``
        (the two cannot be reconciled; the gateway must not trust either).
        """
        with self._lock:
            record = self._records.get(sandbox_id)
            if record is None or record.untrusted:
                return None
            return resolve_stored_instance(record, stored_instance_id)

    def close(self) -> None:
        """Nothing to release: engines belong to whoever made them."""
