"""The adapter for the bundled reference driver, and for Python drivers built like it.

``ReferenceAdapter(ctx, driver_cls=...)`` wraps any class with the reference driver's Python
interface (``create``, ``delete``, ``observe``, ``snapshot``, ``watch``, ``restart`` and a
``journal`` with a ``crash_hook``), which is how the project's deliberately broken drivers are
tested (``tests/broken_drivers.py``).

The adapter declares the driver's state folder (``state_folder``: the suite audits it after every
step, OWN-15) and watches it with a :class:`~.durability.FolderWatch`, which is what makes the
``power-loss`` journal fault possible: the folder is rewritten to what its fsyncs made durable,
then the driver restarts over it.
"""

from __future__ import annotations

import json
import os
from typing import Callable

from reference_driver import ReferenceDriver
from reference_driver.journal import FORMAT_VERSION, Journal
from reference_driver.state import Record

from ..api import Event, SandboxSpec, Snapshot
from .base import DriverAdapter, DriverContext
from .durability import FolderWatch

__all__ = ["ReferenceAdapter", "SimulatedCrash", "factory"]


#: ``foreign-*`` journal faults: which field of the sandbox's own journal is changed, and how.
FOREIGN_FIELDS = {
    "foreign-sandbox": ("sandbox_id", lambda v: f"{v}-other"),
    "foreign-namespace": ("namespace", lambda v: f"{v}-other"),
    "foreign-version": ("version", lambda v: FORMAT_VERSION + 1),
}


def foreign_journal(own: bytes, kind: str, sandbox_id: str, namespace: str) -> bytes:
    """The sandbox's journal ``own`` as another sandbox, namespace or format version would have
    written it: well-formed, every other field kept. A journal that is no JSON object (torn by
    an earlier ``corrupt``) is replaced by a well-formed record of the sandbox with no authority,
    then changed the same way."""
    try:
        data = json.loads(own)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        data = json.loads(Journal.encode(Record(sandbox_id, "unknown", namespace)))
    field, change = FOREIGN_FIELDS[kind]
    data[field] = change(data.get(field))
    return json.dumps(data).encode()


class SimulatedCrash(BaseException):
    """Raised inside a journal write to simulate the driver process dying at that point."""


class ReferenceAdapter(DriverAdapter):
    name = "reference"
    capabilities = ReferenceDriver.capabilities | {"power-loss"}

    def __init__(self, ctx: DriverContext, driver_cls: Callable[..., ReferenceDriver] = ReferenceDriver,
                 name: str | None = None) -> None:
        self.ctx = ctx
        self._cls = driver_cls
        if name:
            self.name = name
        #: The folder the driver keeps its journal in: the suite audits it (OWN-15).
        self.state_folder = ctx.state_dir
        self._notes: list[str] = []
        self._power_at_crash = False
        self.driver = driver_cls(ctx.engine, ctx.state_dir, namespace=ctx.namespace,
                                 image=ctx.image)
        #: What its fsyncs made durable (the power-loss fault; renames from outside it), from
        #: when the driver has made its folder.
        self.durability = (FolderWatch(ctx.state_dir) if os.path.isdir(ctx.state_dir)
                           else None)
        self.version = getattr(self.driver, "driver_version", "")
        self.labels = self.driver.labels
        self._watcher = self.driver.watch()
        self._pending: list[Event] = []
        self._fail_writes = 0
        self._crash_at: str | None = None
        #: Set when a simulated crash happened (the runner puts it on the timeline).
        self.crashed: str | None = None
        self._install_hook()

    # -- faults ------------------------------------------------------------------------------

    def _install_hook(self) -> None:
        journal = getattr(self.driver, "journal", None)
        if journal is None:
            return

        def hook(step: str) -> None:
            if self._fail_writes and step == "open-temp":
                self._fail_writes -= 1
                raise OSError(28, "No space left on device (injected)")
            if self._crash_at == step:
                self._crash_at = None
                raise SimulatedCrash(step)

        journal.crash_hook = hook

    def journal_fault(self, kind: str, sandbox_id: str | None, at: str | None,
                      times: int) -> None:
        if kind == "write-fail":
            self._fail_writes += times
        elif kind == "crash":
            self._crash_at, self._power_at_crash = at, False
        elif kind == "power-loss" and at is not None:
            self._crash_at, self._power_at_crash = at, True
        elif kind == "power-loss":
            self._power_loss("the power goes")
            self.restart()
        elif kind == "corrupt" or kind in FOREIGN_FIELDS:
            path = Journal(self.ctx.state_dir, self.ctx.namespace).path_for(sandbox_id or "")
            if kind == "corrupt":
                data = b'{"version": 1, "sandbox_id": '  # torn JSON
            else:
                data = foreign_journal(path.read_bytes(), kind, sandbox_id or "",
                                       self.ctx.namespace)
            with open(path, "wb") as f:  # the file keeps its mode (0600)
                f.write(data)
                os.fsync(f.fileno())
            if self.durability is not None:
                self.durability.baseline()
        else:
            raise ValueError(f"unknown journal fault {kind!r}")

    # -- the six operations ------------------------------------------------------------------

    def create(self, spec: SandboxSpec) -> Snapshot | None:
        return self._guard(lambda: self.driver.create(spec))

    def delete(self, sandbox_id: str, name: str) -> bool:
        return bool(self._guard(lambda: self.driver.delete(sandbox_id, name)))

    def observe(self) -> None:
        self._guard(self.driver.observe)

    def snapshot(self, sandbox_id: str) -> Snapshot | None:
        return self.driver.snapshot(sandbox_id)

    def events(self) -> list[Event]:
        events = self._pending + self._watcher.drain()
        self._pending = []
        return events

    def restart(self) -> None:
        self._pending.extend(self._watcher.drain())
        self._watcher.close()
        self.driver = self.driver.restart()
        self._watcher = self.driver.watch()
        self._install_hook()

    def _guard(self, op: Callable[[], object]) -> object:
        """Run ``op``; a simulated crash kills the driver, which then restarts (a supervisor)."""
        try:
            return op()
        except SimulatedCrash as crash:
            self.crashed = str(crash)
            if self._power_at_crash:
                self._power_at_crash = False
                self._power_loss(f"the power goes at {crash} of a journal write")
            self.restart()
            return None

    def _power_loss(self, what: str) -> None:
        if self.durability is None:
            raise ValueError("power-loss: the driver made no state folder to watch")
        undone = self.durability.power_loss()
        self._notes.append(f"power loss: {what}; the state folder is rewritten to what its "
                           "fsyncs made durable: " + ("; ".join(undone) or "nothing undone"))

    def diagnostics(self) -> list[str]:
        notes, self._notes = self._notes, []
        return notes

    def close(self) -> None:
        if self.durability is not None:
            self.durability.close()


def factory(ctx: DriverContext) -> ReferenceAdapter:
    """The ``reference`` entry point."""
    return ReferenceAdapter(ctx)
