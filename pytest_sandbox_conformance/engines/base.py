"""The Engine interface: what a sandbox driver and the suite may do to containers.

One small abstract class, shaped after Docker's API, so that an in-memory fake and a real engine
(Docker, Podman through its Docker-compatible API) stand behind the same methods, the way httpx
puts a mock transport and a real one behind ``BaseTransport``.

Callers:

* drivers (the bundled ``reference_driver`` among them) create, start, stop, remove, list and
  inspect their own containers;
* the suite acts as *another client* of the same engine (stop, rename, clone, remove) to play a
  scenario's story.

Every method raises :class:`EngineError` (or a subclass) on failure, never a backend's own
exception type, so drivers can handle engine failures without importing docker. A refusal (the
engine answered: 404, 409, 400, 500) is an :class:`EngineError`; an engine that cannot be reached
or does not answer is an :class:`EngineUnavailable` (503), which the suite treats as its own
environment failing, never as the driver's.
"""

from __future__ import annotations

import abc
import re
from typing import Iterable, Mapping, TypeVar

from .spec import (
    DOCKER_DEFAULT_CAPABILITIES,
    MOUNT_TYPES,
    RESTART_POLICIES,
    Container,
    ContainerConfig,
    ContainerSpec,
    DeviceRequest,
    Mount,
    capability_name,
    summary_of,
)

__all__ = [
    "ACTIVE_STATES",
    "ALL_STATES",
    "DOCKER_DEFAULT_CAPABILITIES",
    "MISSING_EXECUTABLE",
    "MOUNT_TYPES",
    "NON_TERMINAL_STATES",
    "RESTART_POLICIES",
    "TERMINAL_STATES",
    "Container",
    "ContainerConfig",
    "ContainerSpec",
    "DeviceRequest",
    "Mount",
    "capability_name",
    "summary_of",
    "Engine",
    "EngineConflict",
    "EngineError",
    "EngineInvalid",
    "EngineNotFound",
    "EngineUnavailable",
    "LabelFilter",
    "SHORT_ID",
    "ids_match",
    "cause_in",
    "unavailable_in",
    "valid_container_name",
]

#: An executable no image holds (the suite's tiny image, Docker's and Podman's, the fake engine's:
#: no image has ``/nonexistent``): a container whose entrypoint it is is created, and its start
#: is refused, as a ``docker run`` that cannot start its container (a scenario's ``fails: start``).
MISSING_EXECUTABLE = "/nonexistent/sandbox-conformance-start-fails"

#: Docker's container states, as ``docker inspect`` reports ``State.Status``.
ALL_STATES = ("created", "running", "paused", "restarting", "removing", "exited", "dead")
#: States in which a container is, or is about to be, running (contract OWN-4: "non-terminal").
NON_TERMINAL_STATES = frozenset({"created", "running", "restarting"})
#: States a replacement must not be in to be adopted (contract OWN-7: "terminal").
TERMINAL_STATES = frozenset({"exited", "dead", "paused", "removing"})
#: States in which Docker considers the container's process alive (stop/kill act on them).
ACTIVE_STATES = frozenset({"running", "paused", "restarting"})

# Docker's rule (daemon/names.go): one alphanumeric, then at least one more allowed character.
_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")


def valid_container_name(name: str) -> bool:
    """True when Docker would accept ``name`` as a container name."""
    return bool(_NAME_RE.match(name))


#: The shortest id prefix that names a container in reports (Docker's short id is 12 hex digits).
SHORT_ID = 12


def ids_match(reported: str | None, full: str | None) -> bool:
    """Whether the container id a driver reported names the container with id ``full``: the
    whole id, or a prefix of at least :data:`SHORT_ID` characters, as Docker's API accepts (some
    drivers report short ids)."""
    if not reported or not full:
        return reported == full or (not reported and not full)
    return reported == full or (len(reported) >= SHORT_ID and full.startswith(reported))


class EngineError(Exception):
    """An engine operation failed. ``status`` is the HTTP-like status the engine answered."""

    status: int = 500

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class EngineNotFound(EngineError):
    """No such container (Docker answers 404)."""

    status = 404


class EngineConflict(EngineError):
    """The operation conflicts with the container's name or state (Docker answers 409)."""

    status = 409


class EngineInvalid(EngineError):
    """The request itself is invalid, such as a bad container name (Docker answers 400)."""

    status = 400


class EngineUnavailable(EngineError):
    """The engine cannot be reached or does not answer: connection refused or reset, its socket
    missing, no answer within the per-call timeout (status 503). Unlike a refusal (404, 409, 400,
    a 500 the engine answered), this says nothing about the request: the engine is not there.
    ``since`` is the monotonic time at which the engine stopped answering (the start of the first
    failed call of the streak), when the engine tracks it."""

    status = 503

    def __init__(self, message: str, *, since: float | None = None) -> None:
        super().__init__(message)
        self.since = since


_E = TypeVar("_E", bound=BaseException)


def cause_in(exc: BaseException | None, kind: type[_E]) -> _E | None:
    """The exception of type ``kind`` that ``exc`` is or was caused by (its ``__cause__`` and
    ``__context__`` chain), or None."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, kind):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def unavailable_in(exc: BaseException | None) -> "EngineUnavailable | None":
    """The :class:`EngineUnavailable` that ``exc`` is or was caused by, or None: a driver's own
    error raised because the engine was gone."""
    return cause_in(exc, EngineUnavailable)


#: A label filter: ``{"key": "value"}`` matches that exact value, ``{"key": None}`` matches the
#: key with any value (Docker's ``label=key=value`` and ``label=key`` filters).
LabelFilter = Mapping[str, "str | None"]


def labels_match(labels: Mapping[str, str], wanted: LabelFilter) -> bool:
    """Docker's label filter semantics: every wanted key present, and equal where a value is given."""
    for key, value in wanted.items():
        if key not in labels:
            return False
        if value is not None and labels[key] != value:
            return False
    return True


class Engine(abc.ABC):
    """A container engine. Use it as a context manager, or call :meth:`close` when done.

    Semantics follow Docker where a driver could notice them: 64-hex IDs, unique names (creating
    or renaming onto a taken name raises :class:`EngineConflict`), ``list`` includes stopped
    containers and returns the newest first unless the engine is told otherwise.
    """

    #: A short name for reports ("fake", "docker", "podman").
    name: str = "engine"
    #: The monotonic time since which the engine has not answered (the start of the first call
    #: of the current streak of :class:`EngineUnavailable`), None while it answers.
    unavailable_since: float | None = None

    @abc.abstractmethod
    def create(self, spec: ContainerSpec) -> str:
        """Create (but do not start) a container; return its ID.

        Every field of the spec is sent (see :class:`ContainerConfig`); a ``network_mode`` of
        ``""`` creates the container without a network (``none``). Refused as Docker refuses
        them: a taken name (409), an invalid name, an unknown runtime or capability, a bind mount
        whose source does not exist or a relative mount path, an invalid restart policy (400).

        A real engine never returns an empty ID, but drivers must treat one as an error
        (contract OWN-1), so the fake can be told to return one.
        """

    @abc.abstractmethod
    def start(self, container_id: str) -> None:
        """Start a container. Starting a running container does nothing (Docker's 304).

        A device request that no device driver of the engine can serve fails here (Docker: 500
        "could not select device driver"), not at create, and the container stays as it was.
        """

    @abc.abstractmethod
    def stop(self, container_id: str, timeout: float = 0) -> None:
        """Stop a container (it becomes ``exited``). Stopping a stopped one does nothing."""

    @abc.abstractmethod
    def kill(self, container_id: str) -> None:
        """Kill a running container; :class:`EngineConflict` if it is not running."""

    @abc.abstractmethod
    def rename(self, container_id: str, new_name: str) -> None:
        """Rename a container; :class:`EngineConflict` if ``new_name`` is taken."""

    @abc.abstractmethod
    def remove(self, container_id: str, force: bool = False) -> None:
        """Remove a container; a running one only with ``force`` (else :class:`EngineConflict`)."""

    @abc.abstractmethod
    def list(self, labels: LabelFilter | None = None) -> list[Container]:
        """All containers (stopped ones included) whose labels match ``labels``, newest first.

        One request to a real engine; the results are summaries (see :class:`Container`):
        inspect a container for its configuration (command, environment, mounts, device
        requests, runtime, ...).
        """

    @abc.abstractmethod
    def inspect(self, container_id: str) -> Container:
        """One container by ID (a unique ID prefix or a name also works, as in Docker)."""

    def exec(self, container_id: str, argv: list[str]) -> tuple[int, str]:
        """Run ``argv`` inside a running container; return (exit code, output).

        Optional: engines without processes (the fake) raise :class:`NotImplementedError`.
        """
        raise NotImplementedError(f"engine {self.name} cannot run commands in containers")

    def ping(self) -> None:
        """Ask the engine whether it answers; :class:`EngineUnavailable` when it does not.

        An in-memory engine always answers (the default does nothing).
        """

    def close(self) -> None:
        """Release the engine's resources (connections, threads). Idempotent."""

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # Conveniences built on the primitives; engines may override them with faster versions.

    def remove_all(self, ids: Iterable[str], force: bool = True) -> list[str]:
        """Remove each container, ignoring ones already gone; return the IDs actually removed."""
        removed = []
        for cid in ids:
            try:
                self.remove(cid, force=force)
            except EngineNotFound:
                continue
            removed.append(cid)
        return removed
