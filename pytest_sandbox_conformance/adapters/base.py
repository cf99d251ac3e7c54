"""The driver adapter: what the suite needs from a driver, whatever its language.

An adapter wraps one driver and offers the six operations of the contract's observables, plus
the capabilities it declares (scenarios that need others are skipped, as csi-sanity skips tests
for capabilities a CSI driver does not advertise). ``docs/adapters.md`` shows a complete one.

Adapters are made by a *factory*: a callable taking a :class:`DriverContext` and returning a
:class:`DriverAdapter`. ``--sandbox-driver=module:factory`` names one directly; names registered
in the ``sandbox_conformance.drivers`` entry-point group (``reference`` among them) name one by
a short name.
"""

from __future__ import annotations

import abc
import importlib
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Callable

from reference_driver.naming import LabelKeys

from ..api import Event, SandboxSpec, Snapshot
from ..engines.base import Engine

__all__ = [
    "ADAPTER_CAPABILITIES",
    "AdapterLoadError",
    "DriverAdapter",
    "DriverContext",
    "DriverFactory",
    "DriverProbe",
    "DriverUnavailable",
    "ENTRY_POINT_GROUP",
    "load_factory",
]

ENTRY_POINT_GROUP = "sandbox_conformance.drivers"

#: Capabilities an adapter may declare (the engine declares the others; ``list-order`` comes
#: from either: an adapter that declares it is given each observation's list order).
ADAPTER_CAPABILITIES = frozenset({"restart", "journal-faults", "power-loss", "gpu",
                                  "list-order"})


@dataclass(frozen=True)
class DriverProbe:
    """What a factory's optional ``probe(options, engine)`` says without starting a driver."""

    capabilities: frozenset[str]
    name: str
    #: ``exact`` (the suite decides when the driver polls: in-process, or through the observation
    #: gate) or ``approximate`` (the suite waits on the driver's own clock).
    timing: str = "exact"
    #: The one namespace a driver that is already running works in (None: the suite gives each
    #: run a fresh one). Runs then go one at a time.
    namespace: str | None = None


@dataclass(frozen=True)
class DriverContext:
    """What a factory gets: the engine the driver must use and where it may keep state."""

    engine: Engine
    state_dir: Path
    #: The driver namespace (label ``openshell.ai/sandbox-namespace``); unique per run.
    namespace: str
    #: The image sandboxes run.
    image: str
    #: Free-form options from ``--sandbox-driver-option KEY=VALUE``.
    options: dict[str, str] = field(default_factory=dict)


class DriverAdapter(abc.ABC):
    """One driver, seen through the contract's observables."""

    #: A short name for reports.
    name: str = "driver"
    #: The driver's version, if known ("" otherwise).
    version: str = ""
    #: What the driver supports, from :data:`ADAPTER_CAPABILITIES`.
    capabilities: frozenset[str] = frozenset()
    #: The identity label keys the driver puts on its containers.
    labels: LabelKeys = LabelKeys()

    @abc.abstractmethod
    def create(self, spec: SandboxSpec) -> Snapshot | None:
        """Create a sandbox; return its first snapshot if the driver gives one synchronously."""

    @abc.abstractmethod
    def delete(self, sandbox_id: str, name: str) -> bool:
        """Delete a sandbox; True iff the driver removed a platform resource."""

    @abc.abstractmethod
    def observe(self) -> None:
        """Make the driver do exactly one observation (one poll of the engine).

        An adapter that declares ``list-order`` is called as ``observe(order=...)`` instead, with
        ``"newest"`` or ``"oldest"``: the order in which that poll's engine list must come.
        """

    @abc.abstractmethod
    def snapshot(self, sandbox_id: str) -> Snapshot | None:
        """The driver's current snapshot of a sandbox, or None if it does not track it."""

    @abc.abstractmethod
    def events(self) -> list[Event]:
        """Events the driver emitted since the last call, in order (a watcher's queue)."""

    def restart(self) -> None:
        """Restart the driver over its durable state (capability ``restart``)."""
        raise NotImplementedError(f"{self.name} does not declare the 'restart' capability")

    def journal_fault(self, kind: str, sandbox_id: str | None, at: str | None,
                      times: int) -> None:
        """Fail, crash or corrupt journal writes (capability ``journal-faults``).

        ``kind`` is ``write-fail`` (the next ``times`` writes fail), ``crash`` (the driver dies at
        step ``at`` of its next write and is restarted), ``corrupt`` (the journal of
        ``sandbox_id`` is overwritten with garbage; the driver reads it at its next restart),
        ``foreign-sandbox``, ``foreign-namespace``, ``foreign-version`` (the journal of
        ``sandbox_id`` is rewritten well-formed but as another sandbox's id, another namespace or
        a newer format version would have it: the driver must not trust it at its next restart)
        or,
        with capability ``power-loss``, ``power-loss`` (the power goes: now, or with ``at`` at
        that step of the next write; every change to the state folder that no fsync made
        durable is undone, then the driver restarts: ``adapters/durability.py``).
        """
        raise NotImplementedError(f"{self.name} does not declare 'journal-faults'")

    def describe(self) -> str:
        """One line for report headers."""
        return f"{self.name} {self.version}".strip()

    def diagnostics(self) -> list[str]:
        """Lines for the failure timeline since the last call (requests the driver made, RPCs
        sent): an adapter of an out-of-process driver says here what crossed its boundary."""
        return []

    def close(self) -> None:
        """Release the driver (stop its process, close connections)."""


DriverFactory = Callable[[DriverContext], DriverAdapter]


class DriverUnavailable(RuntimeError):
    """The driver itself failed (its process died, an RPC failed or timed out, it never started):
    the runner reports this as the scenario's failure, with the timeline so far."""


class AdapterLoadError(Exception):
    """A ``--sandbox-driver`` value that cannot be loaded; the message says why and what to do."""


def _available() -> dict[str, object]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def load_factory(spec: str) -> DriverFactory:
    """Resolve ``NAME`` (entry point) or ``module:attribute`` to a factory."""
    if ":" in spec:
        module_name, _, attr = spec.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise AdapterLoadError(f"--sandbox-driver={spec}: cannot import module "
                                   f"{module_name!r}: {exc}") from None
        target: object = module
        for part in attr.split("."):
            try:
                target = getattr(target, part)
            except AttributeError:
                raise AdapterLoadError(f"--sandbox-driver={spec}: module {module_name!r} has no "
                                       f"attribute {attr!r}") from None
    else:
        available = _available()
        if spec not in available:
            raise AdapterLoadError(
                f"--sandbox-driver={spec}: no driver named {spec!r}; registered drivers: "
                f"{sorted(available) or 'none'} (entry-point group {ENTRY_POINT_GROUP!r}), "
                "or give module:factory")
        try:
            target = available[spec].load()  # type: ignore[attr-defined]
        except Exception as exc:  # an entry point's import can fail in any way
            raise AdapterLoadError(f"--sandbox-driver={spec}: loading entry point "
                                   f"{available[spec]!r} failed: {exc}") from None
    if not callable(target):
        raise AdapterLoadError(f"--sandbox-driver={spec}: {target!r} is not callable; it must be "
                               "a factory taking a DriverContext and returning a DriverAdapter")
    return target  # type: ignore[return-value]


def check_adapter(adapter: object, spec: str) -> DriverAdapter:
    """Fail early, naming every problem, if a factory returned something else
    (:func:`.validate.check_adapter`)."""
    from .validate import check_adapter as check

    return check(adapter, spec)
