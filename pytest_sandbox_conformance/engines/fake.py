"""An in-memory engine with Docker's semantics: deterministic, fast, and steerable.

It behaves like Docker wherever a driver could notice (64-hex IDs, unique names and 409 conflicts,
the seven states, label filters, stopped containers listed, newest first) and adds the two things
a schedule must control and a real engine cannot offer on demand:

* **list order**: :attr:`FakeEngine.list_order` sets the default order of ``list`` results and
  :meth:`FakeEngine.queue_list_orders` sets the order of the next few ``list`` calls;
* **faults**: :attr:`FakeEngine.faults` arms failures of the next call of an operation (a list
  that fails, a create that returns an empty ID, a remove that fails).

It also counts calls per operation (:attr:`FakeEngine.calls`) and lets a test run code just before
an operation (:meth:`FakeEngine.before`), which is how races such as delete-during-create are
played deterministically.

Where real Docker was checked against it (``tests/test_engine_fake.py`` runs the same tests on
both; ``docs/engines.md`` lists the differences), the fake follows what Docker answered:

* ``list`` returns summaries, as Docker's list endpoint does: command, environment, device
  requests and runtime are empty there and only :meth:`FakeEngine.inspect` (or
  :meth:`FakeEngine.snapshot`) has them;
* an ambiguous ID prefix is a 500 ``EngineError`` ("Multiple IDs found with provided prefix"),
  not a 404: the container may well exist;
* a runtime the engine does not know is refused at create (400 "Unknown runtime specified");
  the fake knows :data:`DEFAULT_RUNTIMES` unless told otherwise;
* a device request no installed device driver can serve fails at *start* (500 "could not
  select device driver ...") and leaves the container ``created``; the fake has the ``nvidia``
  and ``cdi`` drivers (a GPU host) unless told otherwise (``device_drivers=()``: a host without
  the NVIDIA container toolkit, like the Docker engine on the CPU machines);
* the whole configuration is recorded (:class:`~.spec.ContainerConfig`) and checked as Docker
  checks it (:mod:`.fakecheck`): a bind whose source does not exist on this machine or a relative
  mount path (400 at create), an unknown capability, an invalid restart policy (400), a malformed
  security option (500), a network the engine does not have (404 at *start*);
* an entrypoint (or, without one, a command) below ``/nonexistent/`` is an executable the image
  does not hold: the start is refused (400 "OCI runtime create failed ... no such file or
  directory") and the container stays ``created``, as Docker 20.10 leaves it (exit code 127).
"""

from __future__ import annotations

import hashlib
import itertools
import os
from collections import Counter, deque
from typing import Callable, Iterable, Union

from .base import (
    ACTIVE_STATES,
    ALL_STATES,
    Container,
    ContainerSpec,
    DeviceRequest,
    Engine,
    EngineConflict,
    EngineError,
    EngineInvalid,
    EngineNotFound,
    LabelFilter,
    MISSING_EXECUTABLE,
    labels_match,
    valid_container_name,
)
from .fakecheck import DEFAULT_NETWORKS, check_config
from .spec import evolve, summary_of

__all__ = ["DEFAULT_DEVICE_DRIVERS", "DEFAULT_NETWORKS", "DEFAULT_RUNTIMES", "EMPTY_ID",
           "FakeEngine", "Faults", "ListOrder"]

#: A list order: a named order or a function from the matching containers (newest first) to the
#: list to return (it may reorder, but must return the same containers).
ListOrder = Union[str, Callable[[list[Container]], list[Container]]]

#: Armed with ``faults.arm("create", EMPTY_ID)``: the next create returns "" (and creates nothing).
EMPTY_ID = "empty-id"

_NAMED_ORDERS = ("newest", "oldest")
#: The fake's images hold every executable but those below this folder (where
#: :data:`~.base.MISSING_EXECUTABLE` is), as no real image holds ``/nonexistent``.
MISSING_PREFIX = MISSING_EXECUTABLE.rsplit("/", 1)[0] + "/"

#: The fake host's name: the hostname of a container in the host's network.
HOST_NAME = "fake-engine-host"

#: The runtimes the fake knows by default: Docker's own plus the NVIDIA runtime (a GPU host).
DEFAULT_RUNTIMES = frozenset({"runc", "io.containerd.runc.v2", "nvidia"})
#: The device drivers the fake has by default: what a GPU host with the NVIDIA container toolkit
#: and CDI offers. ``nvidia`` serves capability requests (``--gpus``), ``cdi`` CDI device names.
DEFAULT_DEVICE_DRIVERS = frozenset({"nvidia", "cdi"})
#: The capabilities Docker's ``nvidia`` device driver registers (moby daemon/nvidia_linux.go).
_NVIDIA_CAPABILITIES = frozenset({"gpu", "nvidia", "compute", "compat32", "graphics", "utility",
                                  "video", "display"})


class Faults:
    """Failures armed for the next calls of an operation, consumed in order, one per call."""

    def __init__(self) -> None:
        self._armed: dict[str, deque[object]] = {}

    def arm(self, op: str, fault: object = None, times: int = 1) -> None:
        """Make the next ``times`` calls of ``op`` fail with ``fault``.

        ``fault`` is an :class:`EngineError` to raise (default: a 500 naming the operation) or,
        for ``create``, :data:`EMPTY_ID` to return an empty ID.
        """
        if fault is None:
            fault = EngineError(f"injected failure of {op}", status=500)
        self._armed.setdefault(op, deque()).extend([fault] * times)

    def take(self, op: str) -> object | None:
        queue = self._armed.get(op)
        if queue:
            return queue.popleft()
        return None

    def pending(self, op: str) -> int:
        return len(self._armed.get(op, ()))

    def clear(self) -> None:
        self._armed.clear()


class FakeEngine(Engine):
    """The in-memory engine. ``seed`` makes the generated IDs differ between engines.

    ``runtimes`` are the runtimes a create may name (others are refused, as Docker refuses a
    runtime it has not configured); ``device_drivers`` the device drivers that can serve device
    requests at start (``()``: a host with no GPU support, where starting a container with a
    device request fails as on Docker without the NVIDIA container toolkit).
    """

    name = "fake"

    def __init__(self, seed: str = "fake", list_order: ListOrder = "newest", *,
                 runtimes: Iterable[str] = DEFAULT_RUNTIMES,
                 device_drivers: Iterable[str] = DEFAULT_DEVICE_DRIVERS,
                 networks: Iterable[str] = DEFAULT_NETWORKS,
                 path_exists: Callable[[str], bool] = os.path.exists) -> None:
        self._seed = seed
        self.networks = frozenset(networks)
        self._path_exists = path_exists
        self._runtimes = frozenset(runtimes)
        self.device_drivers = frozenset(device_drivers)
        self._counter = itertools.count(1)
        # Insertion order is creation order; list() walks it backwards for newest-first.
        self._containers: dict[str, Container] = {}
        self._summaries: dict[str, Container] = {}  # what list returns for each (kept in step)
        self._by_name: dict[str, str] = {}
        self.list_order: ListOrder = list_order
        self._queued_orders: deque[ListOrder] = deque()
        self.faults = Faults()
        self.calls: Counter[str] = Counter()
        self._before: dict[str, list[Callable[..., None]]] = {}

    # -- steering ---------------------------------------------------------------------------

    def queue_list_orders(self, *orders: ListOrder) -> None:
        """Use these orders for the next ``list`` calls, one each, then :attr:`list_order` again."""
        for order in orders:
            self._check_order(order)
        self._queued_orders.extend(orders)

    def before(self, op: str, hook: Callable[..., None], once: bool = True) -> None:
        """Run ``hook(*args)`` just before the next call of ``op`` (every call if not ``once``)."""
        if once:
            original = hook

            def hook(*args: object, _fn=original) -> None:  # type: ignore[misc]
                self._before[op].remove(hook)
                _fn(*args)

        self._before.setdefault(op, []).append(hook)

    def set_state(self, container_id: str, state: str) -> None:
        """Put a container in any Docker state (``dead``, ``paused``, ``removing``, ...).

        A test helper for states an outside client cannot reach on demand; not part of
        :class:`Engine`.
        """
        if state not in ALL_STATES:
            raise EngineInvalid(f"unknown container state {state!r}")
        c = self._get(container_id)
        self._put(evolve(c, state=state))

    def snapshot(self) -> list[Container]:
        """Every container, oldest first, in full (as inspect sees them; no call is counted)."""
        return list(self._containers.values())

    def runtimes(self) -> frozenset[str]:
        """The runtimes a create may name (as ``docker info``'s ``Runtimes``)."""
        return self._runtimes

    # -- Engine -------------------------------------------------------------------------------

    def create(self, spec: ContainerSpec) -> str:
        self._enter("create", spec)
        fault = self.faults.take("create")
        if fault == EMPTY_ID:
            return ""
        if isinstance(fault, BaseException):
            raise fault
        if not valid_container_name(spec.name):
            raise EngineInvalid(
                f"Invalid container name ({spec.name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        if spec.runtime is not None and spec.runtime not in self._runtimes:
            raise EngineInvalid(f"Unknown runtime specified {spec.runtime}")
        check_config(spec, self._path_exists)
        if spec.name in self._by_name:
            other = self._by_name[spec.name]
            raise EngineConflict(
                f'Conflict. The container name "/{spec.name}" is already in use by container '
                f'"{other}". You have to remove (or rename) that container to be able to reuse '
                "that name.")
        n = next(self._counter)
        cid = hashlib.sha256(f"{self._seed}:{n}".encode()).hexdigest()
        config = spec.config()
        config["network_mode"] = spec.network_mode or "none"
        config["restart_policy"] = spec.restart_policy or "no"
        # Docker's default hostname: the short id; in the host's network, the host's name.
        config["hostname"] = spec.hostname or (
            HOST_NAME if config["network_mode"] == "host" else cid[:12])
        container = Container(id=cid, name=spec.name, image=spec.image, state="created",
                              labels=spec.labels, created=n, **config)
        self._containers[cid] = container
        self._summaries[cid] = summary_of(container)
        self._by_name[spec.name] = cid
        return cid

    def start(self, container_id: str) -> None:
        self._enter("start", container_id)
        c = self._get(container_id)
        if c.state == "paused":
            raise EngineConflict(f"cannot start a paused container {c.id}, try unpause instead")
        if c.state in ("removing", "dead"):  # Docker: RemovalInProgress || Dead -> 409
            raise EngineConflict(f"container {c.id} is marked for removal and cannot be started")
        if c.state == "running":
            return
        mode = c.network_mode
        if not mode.startswith("container:") and mode not in self.networks:
            raise EngineNotFound(f"network {mode} not found")
        executable = (c.entrypoint or c.command or ("",))[0]
        if executable.startswith(MISSING_PREFIX):  # no image has /nonexistent
            # Docker 20.10 leaves it created (exit code 127) and answers 400.
            raise EngineError(f'failed to create shim task: OCI runtime create failed: exec: '
                              f'"{executable}": stat {executable}: no such file or directory: '
                              "unknown", status=400)
        for request in c.device_requests:
            if not self._can_serve(request):
                caps = "[" + " ".join("[" + " ".join(cs) + "]" for cs in request.capabilities) + "]"
                raise EngineError(f'could not select device driver "{request.driver}" with '
                                  f"capabilities: {caps}", status=500)
        self._put(evolve(c, state="running"))

    def stop(self, container_id: str, timeout: float = 0) -> None:
        self._enter("stop", container_id)
        c = self._get(container_id)
        if c.state in ACTIVE_STATES:
            self._put(evolve(c, state="exited"))

    def kill(self, container_id: str) -> None:
        self._enter("kill", container_id)
        c = self._get(container_id)
        if c.state not in ACTIVE_STATES:
            raise EngineConflict(f"Cannot kill container: {c.id}: container {c.id} is not running")
        self._put(evolve(c, state="exited"))

    def rename(self, container_id: str, new_name: str) -> None:
        self._enter("rename", container_id, new_name)
        c = self._get(container_id)
        if not valid_container_name(new_name):
            raise EngineInvalid(
                f"Invalid container name ({new_name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        if new_name == c.name:
            raise EngineInvalid(
                "Renaming a container with the same name as its current name")
        if new_name in self._by_name:
            raise EngineConflict(
                f'Error when allocating new name: Conflict. The container name "/{new_name}" is '
                f'already in use by container "{self._by_name[new_name]}".')
        del self._by_name[c.name]
        self._by_name[new_name] = c.id
        self._put(evolve(c, name=new_name))

    def remove(self, container_id: str, force: bool = False) -> None:
        self._enter("remove", container_id, force)
        c = self._get(container_id)
        if c.state == "removing":
            raise EngineConflict(f"removal of container {c.id} is already in progress")
        if c.state in ACTIVE_STATES and not force:
            raise EngineConflict(
                f"cannot remove container \"/{c.name}\": container is {c.state}: stop the "
                "container before removing or force remove")
        del self._containers[c.id]
        del self._summaries[c.id]
        del self._by_name[c.name]

    def list(self, labels: LabelFilter | None = None) -> list[Container]:
        self._enter("list", labels)
        wanted = labels or {}
        found = [c for c in reversed(self._summaries.values())
                 if not wanted or labels_match(c.labels, wanted)]
        order = self._queued_orders.popleft() if self._queued_orders else self.list_order
        return _apply_order(order, found)

    def inspect(self, container_id: str) -> Container:
        self._enter("inspect", container_id)
        return self._get(container_id)

    # -- internals ----------------------------------------------------------------------------

    def _enter(self, op: str, *args: object) -> None:
        """Count the call, run hooks, raise an armed error (create handles its own faults)."""
        self.calls[op] += 1
        for hook in list(self._before.get(op, ())):
            hook(*args)
        if op != "create":
            fault = self.faults.take(op)
            if fault is not None:
                raise fault  # type: ignore[misc]

    def _get(self, ref: str) -> Container:
        c = self._containers.get(ref)
        if c is not None:
            return c
        cid = self._by_name.get(ref.lstrip("/"))
        if cid is not None:
            return self._containers[cid]
        if ref and all(ch in "0123456789abcdef" for ch in ref):
            matches = [k for k in self._containers if k.startswith(ref)]
            if len(matches) == 1:
                return self._containers[matches[0]]
            if len(matches) > 1:  # Docker answers 500: the container may well exist
                raise EngineError(f"Multiple IDs found with provided prefix: {ref}", status=500)
        raise EngineNotFound(f"No such container: {ref}")

    def _put(self, c: Container) -> None:
        self._containers[c.id] = c
        self._summaries[c.id] = summary_of(c)

    def _can_serve(self, request: DeviceRequest) -> bool:
        """Docker's device driver selection (moby daemon/devices.go), for the fake's drivers."""
        if request.driver:
            if request.driver not in self.device_drivers:
                return False
            if request.driver == "cdi":
                return True
        elif "nvidia" not in self.device_drivers:
            return False
        return any(set(caps) <= _NVIDIA_CAPABILITIES for caps in request.capabilities)

    @staticmethod
    def _check_order(order: ListOrder) -> None:
        if isinstance(order, str) and order not in _NAMED_ORDERS:
            raise ValueError(f"unknown list order {order!r}; use one of {_NAMED_ORDERS} or a function")


def _apply_order(order: ListOrder, newest_first: list[Container]) -> list[Container]:
    if order == "newest":
        return newest_first
    if order == "oldest":
        newest_first.reverse()
        return newest_first
    if callable(order):
        result = list(order(list(newest_first)))
        if sorted(c.id for c in result) != sorted(c.id for c in newest_first):
            raise ValueError("a list order function must return the same containers it was given")
        return result
    raise ValueError(f"unknown list order {order!r}")


def order_first(predicate: Callable[[Container], bool]) -> Callable[[list[Container]], list[Container]]:
    """A list order that puts the containers matching ``predicate`` first (stable otherwise)."""

    def order(containers: list[Container]) -> list[Container]:
        return sorted(containers, key=lambda c: 0 if predicate(c) else 1)

    return order


def ids_of(containers: Iterable[Container]) -> list[str]:
    return [c.id for c in containers]
