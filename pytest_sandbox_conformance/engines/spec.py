"""What a container is: the values engines take and hand out.

:class:`ContainerSpec` is what to create (the flags of ``docker create``/``docker run``),
:class:`Container` is what ``list`` and ``inspect`` return. Both share :class:`ContainerConfig`, the
configuration a container runs with, field by field (so that a clone can be made of an inspected
container: :func:`~.clone.clone_spec`), and its parts :class:`Mount` and :class:`DeviceRequest`.
Every value is immutable: mappings are read-only views, sequences tuples.

Pure data: no I/O. :mod:`.base` re-exports everything here, so drivers import only ``base``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Mapping

__all__ = [
    "DOCKER_DEFAULT_CAPABILITIES",
    "MOUNT_TYPES",
    "RESTART_POLICIES",
    "Container",
    "ContainerSpec",
    "DeviceRequest",
    "Mount",
    "ContainerConfig",
    "capability_name",
    "evolve",
    "summary_of",
]

#: The capabilities Docker gives a container that asks for none (moby's
#: ``oci/caps/defaults.go``); ``cap_add``/``cap_drop`` are relative to an engine's default set.
DOCKER_DEFAULT_CAPABILITIES = frozenset({
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
    "NET_BIND_SERVICE", "NET_RAW", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"})

#: The kinds of :class:`Mount`: ``--mount type=bind|volume|tmpfs|image``.
MOUNT_TYPES = ("bind", "volume", "tmpfs", "image")

#: Docker's restart policies (``--restart``); ``""`` means ``no``.
RESTART_POLICIES = ("no", "always", "unless-stopped", "on-failure")


def _frozen_map(value: Mapping[str, str] | None) -> Mapping[str, str]:
    return MappingProxyType(dict(value or {}))


def capability_name(name: str) -> str:
    """A capability as the suite writes it: upper case, without ``CAP_`` (Docker accepts
    ``cap_sys_admin``, ``CAP_SYS_ADMIN`` and ``SYS_ADMIN`` alike and reports what it was given;
    Podman's libpod API writes the prefix). ``ALL`` stays ``ALL``."""
    upper = name.strip().upper()
    return upper[4:] if upper.startswith("CAP_") else upper


@dataclass(frozen=True)
class DeviceRequest:
    """A Docker ``HostConfig.DeviceRequests`` entry.

    ``--gpus all`` is ``DeviceRequest(count=-1, capabilities=(("gpu",),))``; a CDI device is
    ``DeviceRequest(driver="cdi", device_ids=("nvidia.com/gpu=all",))``.
    """

    driver: str = ""
    count: int = 0
    device_ids: tuple[str, ...] = ()
    capabilities: tuple[tuple[str, ...], ...] = ()
    options: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "device_ids", tuple(self.device_ids))
        object.__setattr__(self, "capabilities", tuple(tuple(c) for c in self.capabilities))
        object.__setattr__(self, "options", _frozen_map(self.options))

    def __hash__(self) -> int:
        return hash((self.driver, self.count, self.device_ids, self.capabilities,
                     tuple(sorted(self.options.items()))))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DeviceRequest):
            return NotImplemented
        mine = (self.driver, self.count, self.device_ids, self.capabilities, dict(self.options))
        return mine == (other.driver, other.count, other.device_ids, other.capabilities,
                        dict(other.options))

    @property
    def is_gpu(self) -> bool:
        """True for a request a GPU tool makes: ``--gpus`` capabilities or an NVIDIA CDI device."""
        if any("gpu" in caps for caps in self.capabilities):
            return True
        return any(d.startswith("nvidia.com/gpu") for d in self.device_ids)


@dataclass(frozen=True, order=True)
class Mount:
    """One filesystem mount of a container (``--mount``, ``-v``, ``--tmpfs``).

    ``target`` is the absolute path inside the container. ``type`` is one of
    :data:`MOUNT_TYPES`; ``source`` means, by type:

    * ``bind``: the absolute path on the engine's host (it must exist: a bind is created as
      ``--mount type=bind``, which Docker refuses for a missing source, never as ``-v``, which
      would make an empty directory there);
    * ``volume``: the volume's name; ``""`` is an *anonymous* volume (``-v /path``, an image's
      ``VOLUME``), which every container gets afresh;
    * ``tmpfs``: nothing (``""``); ``options`` holds ``--tmpfs`` options (``"size=64m"``);
    * ``image``: an image reference whose filesystem is mounted (Podman's image volumes, Docker's
      ``type=image`` from API 1.48; Docker 20.10 refuses it).

    ``read_only`` is ``:ro``. Propagation and SELinux relabelling are not modelled. Mounts are
    kept sorted by target in specs and containers (engines mount parents before children
    whatever the order given).
    """

    target: str
    type: str = "bind"
    source: str = ""
    read_only: bool = False
    options: str = ""

    def __post_init__(self) -> None:
        if self.type not in MOUNT_TYPES:
            raise ValueError(f"unknown mount type {self.type!r}; known: {MOUNT_TYPES}")

    @property
    def anonymous(self) -> bool:
        """A volume without a name: recreated empty, not shared, by a clone."""
        return self.type == "volume" and not self.source

    def describe(self) -> str:
        """Like a ``--mount`` flag: ``bind /host/x:/x ro``."""
        source = f"{self.source}:" if self.source else ""
        extra = " ro" if self.read_only else ""
        extra += f" ({self.options})" if self.options else ""
        return f"{self.type} {source}{self.target}{extra}"


@dataclass(frozen=True, kw_only=True)
class ContainerConfig:
    """How a container runs: what ``docker run``'s flags set, in :class:`ContainerSpec` (what to
    create) and in :class:`Container` (what ``inspect`` reports; ``list`` summaries carry every
    field at its default, see :func:`summary_of`). Each field, with its flag and Docker's field:

    * ``entrypoint`` (``--entrypoint``, ``Config.Entrypoint``): ``()`` the image's;
    * ``command`` (the arguments after the image, ``Config.Cmd``): ``()`` the image's (Docker drops
      the image's command when an entrypoint is given);
    * ``env`` (``-e``, ``Config.Env``): inspect reports the image's environment merged in;
    * ``user`` (``--user``, ``Config.User``) and ``working_dir`` (``--workdir``,
      ``Config.WorkingDir``): ``""`` the image's;
    * ``hostname`` (``--hostname``, ``Config.Hostname``): ``""`` the engine's default, which
      inspect then reports (the container's 12-digit short id on Docker and Podman);
    * ``tty`` (``--tty``, ``Config.Tty``), ``stdin_open`` (``--interactive``,
      ``Config.OpenStdin``);
    * ``mounts`` (``--mount``/``-v``/``--tmpfs``; ``HostConfig.Mounts``, ``Binds``, ``Tmpfs``, and
      inspect's ``Mounts``): :class:`Mount` values, sorted by target;
    * ``cap_add``/``cap_drop`` (``--cap-add``/``--cap-drop``, ``HostConfig.CapAdd``/``CapDrop``):
      capability names relative to the engine's default set, written by
      :func:`capability_name`, sorted; ``ALL`` may be dropped or added;
    * ``security_opt`` (``--security-opt``, ``HostConfig.SecurityOpt``): as given, sorted;
    * ``privileged`` (``--privileged``, ``HostConfig.Privileged``);
    * ``network_mode`` (``--network``, ``HostConfig.NetworkMode``): ``""`` asks for the Engine
      interface's default, ``none`` (no network to set up, so it works anywhere); inspect reports
      the mode (``none``, ``host``, ``bridge``, ``container:<id>``, a network's name);
    * ``extra_hosts`` (``--add-host``, ``HostConfig.ExtraHosts``): ``"name:address"`` entries;
    * ``restart_policy`` and ``restart_retries`` (``--restart name[:retries]``,
      ``HostConfig.RestartPolicy``): one of :data:`RESTART_POLICIES`, ``""`` meaning ``no``
      (inspect reports ``no``); retries only with ``on-failure``;
    * ``init`` (``--init``, ``HostConfig.Init``): ``None`` the engine's default;
    * ``device_requests`` (``--gpus``, CDI ``--device``; ``HostConfig.DeviceRequests``);
    * ``runtime`` (``--runtime``, ``HostConfig.Runtime``): ``None`` the engine's default;
    * ``nano_cpus`` (``--cpus`` times 10**9, ``HostConfig.NanoCpus``) and ``memory`` (``--memory``
      in bytes, ``HostConfig.Memory``): ``0`` unlimited.
    """

    command: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    device_requests: tuple[DeviceRequest, ...] = ()
    runtime: str | None = None
    entrypoint: tuple[str, ...] = ()
    user: str = ""
    working_dir: str = ""
    hostname: str = ""
    tty: bool = False
    stdin_open: bool = False
    mounts: tuple[Mount, ...] = ()
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    security_opt: tuple[str, ...] = ()
    privileged: bool = False
    network_mode: str = ""
    extra_hosts: tuple[str, ...] = ()
    restart_policy: str = ""
    restart_retries: int = 0
    init: bool | None = None
    nano_cpus: int = 0
    memory: int = 0

    def __post_init__(self) -> None:
        setattr_ = object.__setattr__
        if hasattr(self, "labels"):
            setattr_(self, "labels", _frozen_map(self.labels))
        setattr_(self, "env", _frozen_map(self.env))
        setattr_(self, "command", tuple(self.command))
        # The rest are empty in most containers: normalise only what is there.
        if self.entrypoint:
            setattr_(self, "entrypoint", tuple(self.entrypoint))
        if self.device_requests:
            setattr_(self, "device_requests", tuple(self.device_requests))
        if self.mounts:
            setattr_(self, "mounts", tuple(sorted(self.mounts)))
        if self.cap_add:
            setattr_(self, "cap_add", tuple(sorted({capability_name(c) for c in self.cap_add})))
        if self.cap_drop:
            setattr_(self, "cap_drop", tuple(sorted({capability_name(c)
                                                     for c in self.cap_drop})))
        if self.security_opt:
            setattr_(self, "security_opt", tuple(sorted(self.security_opt)))
        if self.extra_hosts:
            setattr_(self, "extra_hosts", tuple(self.extra_hosts))
        for name in ("entrypoint", "device_requests", "mounts", "cap_add", "cap_drop",
                     "security_opt", "extra_hosts"):
            if not getattr(self, name):
                setattr_(self, name, ())

    def changed(self) -> dict:
        """The configuration fields that differ from their defaults (what ``repr`` shows)."""
        return {k: v for k, v in self.config().items() if v != getattr(_DEFAULTS, k)}

    def _repr(self, *head: str) -> str:
        parts = [f"{k}={getattr(self, k)!r}" for k in head]
        parts += [f"{k}={v!r}" for k, v in self.changed().items()]
        return f"{type(self).__name__}({', '.join(parts)})"

    def config(self) -> dict:
        """The :class:`ContainerConfig` fields, as keyword arguments for ``ContainerSpec``."""
        return {name: getattr(self, name) for name in _CONFIG_FIELDS}


@dataclass(frozen=True, kw_only=True, repr=False)
class ContainerSpec(ContainerConfig):
    """What to create: a name, an image, labels, and how it runs (:class:`ContainerConfig`)."""

    name: str
    image: str
    labels: Mapping[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        return self._repr("name", "image", "labels")


@dataclass(frozen=True, kw_only=True, repr=False)
class Container(ContainerConfig):
    """One container as ``list`` and ``inspect`` see it (immutable: engines hand out new ones).

    ``name`` has no leading slash. ``created`` is a monotonic creation sequence number (fake) or
    the creation time in nanoseconds (real engines; whole seconds times 10**9 in ``list``
    results, as Docker's list reports seconds): only its order matters.

    ``list`` results are summaries (Docker's list endpoint): ``id``, ``name``, ``image``,
    ``state``, ``labels`` and ``created`` only; every :class:`ContainerConfig` field (``command``,
    ``env``, ``mounts``, ``device_requests``, ...) is at its default there and filled by
    ``inspect``. ``runtime`` is ``None`` for the engine's default runtime.
    """

    id: str
    name: str
    image: str
    state: str
    labels: Mapping[str, str]
    created: int

    def __hash__(self) -> int:  # mappings are not hashable; the id identifies a container
        return hash(self.id)

    def __repr__(self) -> str:
        return self._repr("id", "name", "image", "state", "labels", "created")

    @property
    def short_id(self) -> str:
        return self.id[:12]


#: The names of the :class:`ContainerConfig` fields, in order.
_CONFIG_FIELDS = tuple(f.name for f in fields(ContainerConfig))
#: The fields a ``list`` summary carries.
SUMMARY_FIELDS = ("id", "name", "image", "state", "labels", "created")
_DEFAULTS = ContainerConfig()


def summary_of(c: Container) -> Container:
    """What a list entry carries: ``c`` with every :class:`ContainerConfig` field at its
    default."""
    return Container(id=c.id, name=c.name, image=c.image, state=c.state, labels=c.labels,
                     created=c.created)


def evolve(c: Container, **changes: object) -> Container:
    """``c`` with ``changes`` (already normalised values: a state, a name), made without running
    the normalisation again (engines change a container's state often)."""
    new = object.__new__(type(c))
    new.__dict__.update(c.__dict__)
    new.__dict__.update(changes)
    return new
