"""Helpers for driver-level tests: a reference driver over the fake engine, watched by a gateway.

* :class:`Harness` holds one :class:`~pytest_sandbox_conformance.engines.fake.FakeEngine`, one
  :class:`~reference_driver.ReferenceDriver` over a journal folder, one watcher on it and one
  :class:`~pytest_sandbox_conformance.run.gateway.Gateway` that consumes everything the driver reports.
  ``observe()`` is one poll followed by feeding the gateway; ``restart()`` swaps in a driver
  restored from the same journal (as after a process restart) and a new watcher on it.
* :class:`Story` is the suite acting as *another engine client*: the NemoClaw GPU handoff's steps
  (stop, rename to the backup name, clone with all labels and optional GPU device requests,
  remove the backup) and its rollback, one method each, so tests can put observations between them.

Other people may append small helpers below; keep what is here stable.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, Mapping

from pytest_sandbox_conformance.api import (
    DeletedEvent,
    Event,
    PlatformEvent,
    SandboxSpec,
    Snapshot,
    SnapshotEvent,
)
from pytest_sandbox_conformance.engines.base import Container, ContainerSpec, DeviceRequest
from pytest_sandbox_conformance.engines.fake import FakeEngine, ListOrder, order_first
from pytest_sandbox_conformance.run.gateway import DurableState, Gateway
from reference_driver import ReferenceDriver
from reference_driver.naming import LabelKeys, backup_name, canonical_name
from reference_driver.state import Record

__all__ = [
    "BACKUP_MS", "DURABLE", "GPU_STYLES", "KEEP", "KEYS", "SANDBOX", "Harness", "Story",
    "backup_first", "comparable_state", "deleted_events", "first", "gpu_options", "has_gpu",
    "recording", "replacement_first", "snapshot_events", "warnings_of",
]

KEYS = LabelKeys()
#: The sandbox most tests use (metadata labels travel onto its container).
SANDBOX = SandboxSpec(id="sbx-0001", name="demo", labels={"team": "ml", "tier": "gold"})
#: What the user stored in the gateway for it; it must survive every non-adopting observation.
DURABLE = DurableState(spec={"image": "sbx-busybox:local", "cpus": 2},
                       labels={"team": "ml", "tier": "gold"}, policy_version=7,
                       settings={"network": "restricted", "gpu": False})
#: The millisecond timestamp in the backup name the GPU tool picks.
BACKUP_MS = 1718000000000
#: The three ways a GPU tool asks for a GPU (``docker run --gpus all``, CDI, ``--runtime nvidia``).
GPU_STYLES = ("gpus", "cdi", "runtime")
#: ``Story.clone(generation=KEEP)``: keep whatever generation label the template carries.
KEEP = object()


# -- events ---------------------------------------------------------------------------------------


def warnings_of(events: Iterable[Event], reason: str | None = None,
                sandbox_id: str | None = None) -> list[PlatformEvent]:
    return [e for e in events if isinstance(e, PlatformEvent) and e.type == "Warning"
            and (reason is None or e.reason == reason)
            and (sandbox_id is None or e.sandbox_id == sandbox_id)]


def deleted_events(events: Iterable[Event]) -> list[DeletedEvent]:
    return [e for e in events if isinstance(e, DeletedEvent)]


def snapshot_events(events: Iterable[Event], sandbox_id: str | None = None) -> list[Snapshot]:
    return [e.snapshot for e in events if isinstance(e, SnapshotEvent)
            and (sandbox_id is None or e.sandbox_id == sandbox_id)]


# -- list orders ----------------------------------------------------------------------------------


def first(container_id: str) -> ListOrder:
    """A list order that puts ``container_id`` first (the others keep their order)."""
    return order_first(lambda c: c.id == container_id)


def backup_first(story: "Story") -> ListOrder:
    """A list order that puts every backup-named container first."""
    return order_first(lambda c: c.name.startswith(story.canonical + "-nemoclaw-gpu-backup-"))


def replacement_first(story: "Story") -> ListOrder:
    """A list order that puts the container under the canonical name first."""
    return order_first(lambda c: c.name == story.canonical)


def recording(order: ListOrder, log: list[list[str]]) -> ListOrder:
    """Wrap a list order so that each list call's resulting ID order is appended to ``log``."""

    def wrapped(containers: list[Container]) -> list[Container]:
        if callable(order):
            result = list(order(containers))
        elif order == "oldest":
            result = list(reversed(containers))
        else:
            result = list(containers)
        log.append([c.id for c in result])
        return result

    return wrapped


# -- the suite as another engine client -----------------------------------------------------------


def gpu_options(style: str | None) -> dict:
    """``ContainerSpec`` keyword arguments for a GPU tool's way of asking for a GPU."""
    if style is None:
        return {}
    if style == "gpus":  # docker run --gpus all
        return {"device_requests": (DeviceRequest(count=-1, capabilities=(("gpu",),)),)}
    if style == "cdi":  # docker run --device nvidia.com/gpu=all
        return {"device_requests": (DeviceRequest(driver="cdi",
                                                  device_ids=("nvidia.com/gpu=all",)),)}
    if style == "runtime":  # docker run --runtime nvidia -e NVIDIA_VISIBLE_DEVICES=all
        return {"runtime": "nvidia", "env": {"NVIDIA_VISIBLE_DEVICES": "all"}}
    raise ValueError(f"unknown GPU style {style!r}")


def has_gpu(container: Container) -> bool:
    """True when the container really has GPU access (one of the three styles is in effect)."""
    return (any(r.is_gpu for r in container.device_requests)
            or (container.runtime == "nvidia" and "NVIDIA_VISIBLE_DEVICES" in container.env))


@dataclass
class Story:
    """The NemoClaw Docker GPU patch (contract section 2), one engine call per method."""

    engine: FakeEngine
    sandbox: SandboxSpec = SANDBOX

    @property
    def canonical(self) -> str:
        return canonical_name(self.sandbox.name, self.sandbox.id)

    def backup(self, ms: int = BACKUP_MS) -> str:
        return backup_name(self.canonical, ms)

    def stop(self, cid: str) -> None:
        self.engine.stop(cid)

    def start(self, cid: str) -> None:
        self.engine.start(cid)

    def rename(self, cid: str, new_name: str) -> None:
        self.engine.rename(cid, new_name)

    def rename_to_backup(self, cid: str, ms: int = BACKUP_MS) -> str:
        """``docker rename A <canonical>-nemoclaw-gpu-backup-<ms>``; returns the backup name."""
        name = self.backup(ms)
        self.engine.rename(cid, name)
        return name

    def labels_of(self, cid: str) -> dict[str, str]:
        return dict(self.engine.inspect(cid).labels)

    def clone(self, template: str | Container | Mapping[str, str], *, name: str | None = None,
              gpu: str | None = None, generation: object = KEEP,
              extra_labels: Mapping[str, str] | None = None, start: bool = True,
              state: str | None = None) -> str:
        """``docker run -d --name <canonical>`` of a clone that copies **all** the template's labels.

        ``template`` is a container ID (inspected now), a container, or a label mapping (for a
        clone made after the template was removed). ``generation``: ``KEEP`` the template's, a
        string to put instead, or ``None`` to drop it. ``state`` puts the clone in any Docker
        state afterwards (``dead``, ``paused``, ...).
        """
        if isinstance(template, str):
            template = self.engine.inspect(template)
        if isinstance(template, Container):
            labels, image, command = dict(template.labels), template.image, template.command
        else:
            labels, image, command = dict(template), "sbx-busybox:local", ()
        if generation is None:
            labels.pop(KEYS.generation, None)
        elif generation is not KEEP:
            labels[KEYS.generation] = generation  # type: ignore[assignment]
        labels.update(extra_labels or {})
        cid = self.engine.create(ContainerSpec(name=name or self.canonical, image=image,
                                               labels=labels, command=command, **gpu_options(gpu)))
        if start:
            self.engine.start(cid)
        if state is not None:
            self.engine.set_state(cid, state)
        return cid

    def remove(self, cid: str) -> None:
        """``docker rm -f``."""
        self.engine.remove(cid, force=True)

    def handoff(self, a_id: str, *, gpu: str | None = "cdi", ms: int = BACKUP_MS,
                between: Callable[[str], None] = lambda step: None) -> str:
        """The whole handoff: stop A, rename it to the backup name, run the clone B, remove the
        backup. ``between(step)`` runs after each step ("stopped", "renamed", "cloned",
        "removed"), where a test observes, restarts or changes the list order. Returns B's ID.
        """
        self.stop(a_id)
        between("stopped")
        self.rename_to_backup(a_id, ms)
        between("renamed")
        b_id = self.clone(a_id, gpu=gpu)
        between("cloned")
        self.remove(a_id)
        between("removed")
        return b_id

    def rollback(self, b_id: str, backup_id: str) -> None:
        """The GPU tool's rollback: stop B; rm B; rename backup -> canonical; start it."""
        self.engine.stop(b_id)
        self.engine.remove(b_id)
        self.engine.rename(backup_id, self.canonical)
        self.engine.start(backup_id)


# -- a driver watched by a gateway ----------------------------------------------------------------


class Harness:
    """A reference driver over a fake engine and a journal folder, watched by a gateway model."""

    def __init__(self, state_dir: str | Path, *, engine: FakeEngine | None = None,
                 namespace: str = "default", sandbox: SandboxSpec = SANDBOX,
                 driver_cls: type[ReferenceDriver] = ReferenceDriver) -> None:
        self.engine = engine if engine is not None else FakeEngine()
        self.state_dir = Path(state_dir)
        self.namespace = namespace
        self.sandbox = sandbox
        self.driver = driver_cls(self.engine, self.state_dir, namespace=namespace)
        self.gateway = Gateway()
        self.watcher = self.driver.watch()
        #: Every event the gateway consumed, in order, across restarts.
        self.events: list[Event] = []
        #: The driver's snapshot of ``sandbox`` after each observation (the timeline).
        self.history: list[Snapshot | None] = []
        self.story = Story(self.engine, sandbox)

    # -- acting --------------------------------------------------------------------------------

    def pump(self) -> list[Event]:
        """Feed the gateway what the driver reported since the last pump."""
        events = self.watcher.drain()
        self.events.extend(events)
        self.gateway.consume(events)
        return events

    def create(self, spec: SandboxSpec | None = None,
               durable: DurableState = DURABLE) -> Snapshot:
        """The user creates the sandbox: the gateway stores it first, then the driver creates."""
        spec = spec or self.sandbox
        self.gateway.register(spec.id, spec.name, durable)
        try:
            return self.driver.create(spec)
        finally:
            self.pump()

    def observe(self, *orders: ListOrder, sandbox_id: str | None = None) -> Snapshot | None:
        """One poll (``orders``: the list order(s) of its list call), then feed the gateway."""
        if orders:
            self.engine.queue_list_orders(*orders)
        try:
            self.driver.observe()
        finally:
            self.pump()
        snap = self.driver.snapshot(sandbox_id or self.sandbox.id)
        if sandbox_id is None:
            self.history.append(snap)
        return snap

    def observe_quietly(self, times: int = 3) -> Snapshot | None:
        snap = None
        for _ in range(times):
            snap = self.observe()
        return snap

    def restart(self) -> ReferenceDriver:
        """The driver process restarts: a new driver over the same journal, a new watcher."""
        self.watcher.close()
        self.driver = self.driver.restart()
        self.watcher = self.driver.watch()
        self.pump()
        return self.driver

    def delete(self, sandbox_id: str | None = None, name: str | None = None) -> bool:
        """The user deletes the sandbox: the gateway expects Deleted, the driver deletes."""
        sandbox_id = sandbox_id or self.sandbox.id
        self.gateway.request_delete(sandbox_id)
        try:
            return self.driver.delete(sandbox_id, name)
        finally:
            self.pump()

    # -- reading -------------------------------------------------------------------------------

    @property
    def sid(self) -> str:
        return self.sandbox.id

    def snap(self, sandbox_id: str | None = None) -> Snapshot | None:
        return self.driver.snapshot(sandbox_id or self.sid)

    def record(self, sandbox_id: str | None = None) -> Record | None:
        return self.driver.record(sandbox_id or self.sid)

    def journaled(self, sandbox_id: str | None = None) -> Record | None:
        """What the journal on disk says (read by a fresh driver, as after a restart)."""
        return ReferenceDriver(self.engine, self.state_dir,
                               namespace=self.namespace).record(sandbox_id or self.sid)

    def warnings(self, reason: str | None = None,
                 sandbox_id: str | None = None) -> list[PlatformEvent]:
        return warnings_of(self.events, reason, sandbox_id)

    def deleted(self) -> list[DeletedEvent]:
        return deleted_events(self.events)

    def phase(self, sandbox_id: str | None = None) -> str | None:
        return self.gateway.phase(sandbox_id or self.sid)

    def container_ids(self) -> list[str]:
        return [c.id for c in self.engine.snapshot()]

    def assert_clean(self) -> None:
        """No forbidden state reached: no Deleted nobody asked for, durable state intact, no
        promotion while unresolved (the gateway model's checks of OWN-10, OWN-11, OWN-12)."""
        assert self.gateway.violations == []
        assert self.gateway.durable_violations() == []


def comparable_state(h: Harness, sandbox_id: str | None = None) -> tuple:
    """A sandbox's state in a form two harnesses (engines with the same seed) can compare.

    Generations are fresh UUIDs per driver, so the record's generation is replaced by whether it
    equals the generation label on the authoritative container.
    """
    sandbox_id = sandbox_id or h.sid
    record = h.record(sandbox_id)
    if record is not None:
        label = None
        if record.authority in h.container_ids():
            label = h.engine.inspect(record.authority).labels.get(KEYS.generation)
        record = replace(record, generation=(record.generation is not None
                                             and record.generation == label))
    containers = tuple((c.id, c.name, c.state) for c in h.engine.snapshot())
    gw = h.gateway.sandboxes.get(sandbox_id)
    gateway_view = (gw.instance_id, gw.phase, gw.registered) if gw is not None else None
    return record, h.snap(sandbox_id), containers, gateway_view
