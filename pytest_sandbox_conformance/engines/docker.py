"""The real engine: Docker (or Podman's Docker-compatible API) through the Docker SDK.

The SDK is imported lazily, inside :class:`DockerEngine`, so that importing this module (and the
rest of the package) never needs it; without it the constructor raises an :class:`ImportError`
that names ``pip install 'pytest-sandbox-conformance[live]'``.

Every Docker SDK failure goes through one context manager, :func:`map_docker_errors` (the way
httpx's ``map_httpcore_exceptions`` turns httpcore's exceptions into its own), so callers only
ever see :class:`~.base.EngineError` and its subclasses: the engine's HTTP status decides the class
(404 :class:`~.base.EngineNotFound`, 409 :class:`~.base.EngineConflict`, 400
:class:`~.base.EngineInvalid`, anything else :class:`~.base.EngineError` with that status), and an
engine that cannot be reached or does not answer (connection refused or reset, no socket, no
answer within the per-call timeout, a proxy's 502/503/504) is an
:class:`~.base.EngineUnavailable`, with one short reason (``cannot reach the docker engine at
unix:///var/run/docker.sock (from base_url): connection refused``) rather than the transport's
nested exceptions.
"""

from __future__ import annotations

import contextlib
import http.client
import math
import os
import re
import socket
import time
from collections import Counter
from typing import Any, Callable, Iterator, Mapping

from .base import (
    Container,
    ContainerSpec,
    Engine,
    EngineConflict,
    EngineError,
    EngineInvalid,
    EngineNotFound,
    EngineUnavailable,
    LabelFilter,
)
from .dockerapi import create_body, from_inspect

__all__ = ["DockerEngine", "INSTALL_HINT", "map_docker_errors", "parse_created", "resolve_endpoint",
           "transport_reason"]

#: What to install when the Docker SDK is missing.
INSTALL_HINT = "pip install 'pytest-sandbox-conformance[live]'"

#: Runtime names that mean "the engine's default runtime" rather than one a client asked for
#: (Docker fills ``HostConfig.Runtime`` with its default, Podman's compatible API says ``oci``).
_DEFAULT_RUNTIME_ALIASES = frozenset({"", "oci"})

#: Answers of a proxy in front of the engine (the observation gate, an SSH or TCP relay) that mean
#: "the engine behind me is not there", and Docker's own "not available".
_UNAVAILABLE_STATUSES = frozenset({502, 503, 504})
#: The API version of the first request (``GET /version`` is unversioned; this only builds the
#: client that asks). Every later request uses the version the engine reports.
_PROBE_VERSION = "1.24"


def _import_docker() -> Any:
    try:
        import docker  # noqa: PLC0415 - lazy on purpose
        import docker.context  # noqa: F401,PLC0415
        import docker.errors  # noqa: F401,PLC0415
        import docker.types  # noqa: F401,PLC0415
    except ImportError as exc:
        raise ImportError(
            f"the Docker engine needs the Docker SDK (the 'docker' package): {INSTALL_HINT}"
        ) from exc
    return docker


def _error_for_status(status: int | None, message: str) -> EngineError:
    if status == 404:
        return EngineNotFound(message)
    if status == 409:
        return EngineConflict(message)
    if status == 400:
        return EngineInvalid(message)
    return EngineError(message, status=status or 500)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, the exceptions in its arguments (urllib3 and requests nest them there) and its
    ``__cause__``/``__context__`` chain, depth first, each once."""
    stack, seen = [exc], set()
    while stack:
        e = stack.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        nested = [a for a in getattr(e, "args", ()) if isinstance(a, BaseException)]
        nested += [x for x in (e.__cause__, e.__context__) if x is not None]
        stack.extend(reversed(nested))


def transport_reason(exc: BaseException, timeout: float | None = None) -> str:
    """One short phrase for why a request did not get an answer: ``connection refused``,
    ``no answer within 10 s``, ``it closed the connection without answering``..."""
    for e in _causes(exc):
        name = type(e).__name__
        if isinstance(e, (TimeoutError, socket.timeout)) or name in (
                "ReadTimeout", "ConnectTimeout", "ReadTimeoutError", "ConnectTimeoutError"):
            within = f" within {timeout:g} s" if timeout else ""
            return f"no answer{within} (the per-call timeout)"
        if isinstance(e, http.client.RemoteDisconnected):
            return "it closed the connection without answering"
        if isinstance(e, OSError) and e.errno:
            return os.strerror(e.errno).lower()
    return str(exc)


def _close_leaked_sockets(exc: BaseException) -> None:
    """The SDK's unix transport opens a socket in ``connect`` and drops it unclosed when the
    connection fails (a ResourceWarning per failed call, printed at the end of a pytest run):
    close the sockets still open in the frames of the failure."""
    for e in _causes(exc):
        tb = e.__traceback__
        while tb is not None:
            for value in tb.tb_frame.f_locals.values():
                if isinstance(value, socket.socket) and value.fileno() != -1:
                    try:
                        value.close()
                    except OSError:
                        pass
            tb = tb.tb_next


@contextlib.contextmanager
def map_docker_errors(where: str = "the Docker engine",
                      timeout: float | None = None) -> Iterator[None]:
    """Turn every Docker SDK (and transport) exception raised inside into an :class:`EngineError`.

    ``where`` names the engine in messages about failed connections, ``timeout`` is the
    per-request timeout (for the message of a request that got no answer). Our own errors pass
    through.
    """
    docker = _import_docker()
    import requests  # noqa: PLC0415 - the SDK's transport, present whenever docker is

    try:
        yield
    except EngineError:
        raise
    except docker.errors.APIError as exc:
        status = exc.status_code
        message = str(exc.explanation or exc)
        if status in _UNAVAILABLE_STATUSES:
            raise EngineUnavailable(f"cannot reach {where}: it answered {status}: "
                                    f"{message}") from exc
        raise _error_for_status(status, message) from exc
    except docker.errors.NullResource as exc:  # an empty ID or name; the API would answer 404
        raise EngineNotFound(f"No such container: (empty reference): {exc}") from exc
    except docker.errors.DockerException as exc:
        # InvalidVersion, TLSParameterError, ContextException, "Error while fetching server API
        # version" (the engine is not there), ...
        text = str(exc)
        if "fetching server API version" in text:
            _close_leaked_sockets(exc)
            raise EngineUnavailable(f"cannot reach {where}: "
                                    f"{transport_reason(exc, timeout)}") from exc
        raise EngineError(f"{where}: {text}", status=500) from exc
    except (requests.exceptions.RequestException, OSError) as exc:  # refused, reset, timed out
        _close_leaked_sockets(exc)
        raise EngineUnavailable(f"cannot reach {where}: {transport_reason(exc, timeout)}") from exc


def resolve_endpoint(base_url: str | None = None) -> tuple[str, Any, str]:
    """Where to connect: ``(base_url, tls, source)``, as the ``docker`` CLI would choose.

    An explicit ``base_url`` wins; then ``DOCKER_HOST`` (with ``DOCKER_TLS_VERIFY`` and
    ``DOCKER_CERT_PATH``); then the current docker context (``DOCKER_CONTEXT``, else
    ``currentContext`` in the docker config file: what ``docker context inspect`` shows); then
    the default socket. ``source`` says which, for messages and reports.
    """
    docker = _import_docker()
    if base_url:
        return base_url, False, "base_url"
    if os.environ.get("DOCKER_HOST"):
        kwargs = docker.utils.kwargs_from_env()
        return kwargs["base_url"], kwargs.get("tls", False), "DOCKER_HOST"
    with map_docker_errors("the current docker context"):
        name = os.environ.get("DOCKER_CONTEXT") or None
        ctx = docker.context.ContextAPI.get_context(name)
        if ctx is None:
            raise EngineError(f"docker context {name!r} does not exist (DOCKER_CONTEXT)",
                              status=404)
    host = ctx.Host
    if host:
        return host, ctx.TLSConfig or False, f"docker context {ctx.Name!r}"
    default = docker.constants.DEFAULT_UNIX_SOCKET
    return default.removeprefix("http+"), False, "default socket"


_CREATED_RE = re.compile(
    r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:[.,](\d+))?(Z|[+-]\d\d:?\d\d)?$")


def parse_created(value: str) -> int:
    """An RFC 3339 timestamp with up to nanosecond precision (Docker's ``Created``) -> Unix ns."""
    import datetime as dt  # noqa: PLC0415

    m = _CREATED_RE.match(value.strip())
    if not m:
        raise EngineError(f"unexpected creation time from the engine: {value!r}")
    whole, frac, zone = m.groups()
    tz = dt.timezone.utc
    if zone and zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        hh, mm = int(zone[1:3]), int(zone[-2:])
        tz = dt.timezone(sign * dt.timedelta(hours=hh, minutes=mm))
    seconds = int(dt.datetime.fromisoformat(whole).replace(tzinfo=tz).timestamp())
    nanos = int((frac or "0")[:9].ljust(9, "0"))
    return seconds * 1_000_000_000 + nanos


#: How long a call waits for the engine's list to show its effect (see DockerEngine._listed_as).
LIST_SETTLE_TIMEOUT = 2.0


def _not_running(row: dict | None) -> bool:
    return row is None or row.get("State") not in ("running", "restarting", "removing")


def _primary_name(names: list[str] | None) -> str:
    """A list entry's own name: ``Names`` can also hold legacy link aliases (``/other/alias``)."""
    names = names or [""]
    own = next((n for n in names if n.count("/") <= 1), names[0])
    return own.lstrip("/")


class DockerEngine(Engine):
    """The Docker engine (or another engine behind Docker's API), through the Docker SDK.

    ``base_url=None`` connects where the ``docker`` CLI would (:func:`resolve_endpoint`:
    ``DOCKER_HOST``, else the current docker context, else the default socket); pass a URL such
    as ``unix:///run/podman/podman.sock``, ``tcp://host:2376`` or ``ssh://user@host`` for another
    engine. ``name`` is the engine's name in reports (``"podman"`` for Podman's compatible API).
    ``timeout`` is the SDK's per-request timeout in seconds (a ``stop`` adds its own grace time);
    a request that gets no answer within it raises :class:`EngineUnavailable` (the suite passes a
    fraction of ``--sandbox-engine-timeout``, so an engine that stops answering costs seconds per
    call, not the SDK's 60). The constructor asks the engine for its API version (one request,
    not counted) and speaks that version from then on, so an engine that cannot be reached fails
    here, with an :class:`EngineUnavailable`.

    **Availability.** :attr:`unavailable_since` is the monotonic time at which the current streak
    of unanswered calls began (None while the engine answers); :meth:`ping` asks ``GET /_ping``.
    Once a call went unanswered, each later call first tries the unix socket itself (a cheap
    connect), so a dead engine is reported at once, without the SDK's retries or its leaked
    sockets.

    **list versus inspect.** :meth:`list` is one ``GET /containers/json?all=1`` with label
    filters, whatever the number of containers, and builds each :class:`Container` from that
    summary alone: ``id``, ``name``, ``image``, ``state``, ``labels`` and ``created`` (Docker's
    list reports whole seconds, so ``created`` is ``seconds * 10**9``: it orders like creation
    but ties within one second; the list itself is exactly newest first). Every configuration
    field (command, environment, mounts, device requests, runtime, ...) is at its default in
    list results; :meth:`inspect` (one request per container) fills everything, with
    ``created`` in nanoseconds. A driver's observation therefore costs one request; whoever
    needs a container's GPU requests inspects it. The in-memory fake returns the same summaries
    from ``list``.

    ``create`` sends the whole :class:`~.spec.ContainerConfig` (:func:`.dockerapi.create_body`),
    ``inspect`` reads it back (:func:`.dockerapi.from_inspect`); a container created without a
    network mode gets ``none``: no bridge, no iptables, nothing to pull. ``runtime`` is ``None``
    when the container runs the engine's default runtime (Docker reports its default, ``runc``,
    for every container that asked for none).

    **Podman.** The constructor asks the engine what it is (``GET /version``'s components);
    behind Podman's Docker-compatible API (:attr:`is_podman`) inspect answers are read through
    :mod:`.podman`, which smooths what Podman reports differently (image volumes, capabilities,
    network names, its environment additions), whatever ``name`` says.

    For benchmarks, :attr:`calls` counts requests per operation (failures included, like the
    fake's counter) and :attr:`api_seconds` totals the time spent inside them.
    """

    def __init__(self, base_url: str | None = None, *, name: str = "docker",
                 timeout: float = 60.0) -> None:
        self._docker = _import_docker()
        self.name = name
        self.calls: Counter[str] = Counter()
        self.api_seconds = 0.0
        self.closed = False
        self._info: dict[str, Any] | None = None
        #: Whether the engine is Podman (its Docker-compatible API), from ``GET /version``.
        self.is_podman = False
        self.timeout = timeout
        self.unavailable_since: float | None = None
        self.base_url, tls, self.endpoint_source = resolve_endpoint(base_url)
        self._where = f"the {name} engine at {self.base_url} (from {self.endpoint_source})"
        self._api = self._connect(tls, timeout)

    def _connect(self, tls: Any, timeout: float) -> Any:
        """A client speaking the engine's own API version (what the SDK's ``version="auto"``
        does, but closing the probe's connection when the engine is not there)."""
        client_class = self._docker.APIClient
        self._check_unix_socket()
        with map_docker_errors(self._where, timeout):
            probe = client_class(base_url=self.base_url, version=_PROBE_VERSION,
                                 timeout=timeout, tls=tls)
            try:
                answer = probe.version(api_version=False)
                version = answer["ApiVersion"]
            except EngineError:
                raise
            except Exception as exc:
                _close_leaked_sockets(exc)
                raise EngineUnavailable(f"cannot reach {self._where}: "
                                        f"{transport_reason(exc, timeout)}") from exc
            finally:
                probe.close()
            self.is_podman = any("podman" in str(c.get("Name", "")).lower()
                                 for c in answer.get("Components") or ())
            return client_class(base_url=self.base_url, version=version, timeout=timeout, tls=tls)

    def _unix_path(self) -> str | None:
        for prefix in ("http+unix://", "unix://"):
            if self.base_url.startswith(prefix):
                return self.base_url[len(prefix):]
        return None

    def _check_unix_socket(self) -> None:
        """Fail cleanly when a unix socket is not there: the SDK's unix transport leaks its socket
        object when the connection fails (a ResourceWarning), so we try it ourselves first."""
        path = self._unix_path()
        if path is None:
            return
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(min(5.0, self.timeout))
            sock.connect(path)
        except OSError as exc:
            reason = transport_reason(exc, self.timeout)
            raise EngineUnavailable(f"cannot reach {self._where}: {reason}",
                                    since=self.unavailable_since) from exc
        finally:
            sock.close()

    def __repr__(self) -> str:
        return f"DockerEngine({self.base_url!r}, name={self.name!r})"

    # -- plumbing -----------------------------------------------------------------------------

    @property
    def api(self) -> Any:
        """The SDK's low-level ``docker.APIClient`` (for helpers such as :mod:`.image`)."""
        self._check_open()
        return self._api

    @contextlib.contextmanager
    def _call(self, op: str) -> Iterator[None]:
        """Count one request of ``op``, time it, and map its errors."""
        self._check_open()
        self.calls[op] += 1
        started = time.perf_counter()
        began = time.monotonic()
        try:
            if self.unavailable_since is not None:
                self._check_unix_socket()  # dead: say so at once (no SDK retries, no leak)
            with map_docker_errors(self._where, self.timeout):
                yield
        except EngineUnavailable as exc:
            if self.unavailable_since is None:
                self.unavailable_since = began
            exc.since = self.unavailable_since
            raise
        except EngineError:
            self.unavailable_since = None  # it answered (a refusal is an answer)
            raise
        else:
            self.unavailable_since = None
        finally:
            self.api_seconds += time.perf_counter() - started

    def _check_open(self) -> None:
        if self.closed:
            raise EngineError(f"{self._where}: the engine was closed")

    def ping(self) -> None:
        """``GET /_ping``: :class:`EngineUnavailable` when the engine does not answer."""
        with self._call("ping"):
            self._api.ping()

    def info(self) -> dict[str, Any]:
        """The engine's ``docker info`` (fetched once, then cached)."""
        if self._info is None:
            with self._call("info"):
                self._info = self._api.info()
        return self._info

    def runtimes(self) -> frozenset[str]:
        """The runtimes the engine knows (``docker info``'s ``Runtimes``)."""
        return frozenset((self.info().get("Runtimes") or {}).keys())

    def _runtime(self, raw: str | None) -> str | None:
        if not raw or raw in _DEFAULT_RUNTIME_ALIASES:
            return None
        if raw == self.info().get("DefaultRuntime"):
            return None
        return raw

    # -- Engine -------------------------------------------------------------------------------

    def create(self, spec: ContainerSpec) -> str:
        if not spec.name:
            # The API would invent a random name; the Engine interface always names containers.
            raise EngineInvalid("Invalid container name (), a container needs a name")
        body = create_body(spec, is_podman=self.is_podman)
        with self._call("create"):
            answer = self._api.create_container_from_config(body, spec.name)
        return answer.get("Id", "") if answer else ""

    def start(self, container_id: str) -> None:
        with self._call("start"):
            self._api.start(container_id)
        self._listed_as(container_id, lambda row: row is None or row.get("State") != "created")

    def stop(self, container_id: str, timeout: float = 0) -> None:
        with self._call("stop"):
            self._api.stop(container_id, timeout=max(0, math.ceil(timeout)))
        self._listed_as(container_id, _not_running)

    def kill(self, container_id: str) -> None:
        with self._call("kill"):
            self._api.kill(container_id)
        self._listed_as(container_id, _not_running)

    def rename(self, container_id: str, new_name: str) -> None:
        with self._call("rename"):
            self._api.rename(container_id, new_name)
        self._listed_as(container_id,
                        lambda row: row is None or _primary_name(row.get("Names")) == new_name)

    def remove(self, container_id: str, force: bool = False) -> None:
        # v=True: anonymous volumes go with the container (named volumes are never removed).
        with self._call("remove"):
            self._api.remove_container(container_id, v=True, force=force)
        self._listed_as(container_id, lambda row: row is None)

    def _listed_as(self, container_id: str, done: Callable[[dict | None], bool]) -> None:
        """Wait (bounded) until the engine's *list* shows what a call just did.

        Docker 26 answers a stop or kill before its container list says so: for a few
        milliseconds (up to ~25 ms measured) the list still shows ``running``, while inspect
        already shows ``exited``. The Engine interface promises that a call's effect is visible
        to the next list (the fake's behaviour, and Docker 20.10's), so a driver polled right
        after an external step sees the step; each call is followed by one cheap list by id,
        repeated only while the list lags (counted as ``settle``).
        """
        deadline = time.monotonic() + LIST_SETTLE_TIMEOUT
        while True:
            with self._call("settle"):
                rows = self._api.containers(all=True, filters={"id": container_id})
            row = next((r for r in rows if str(r.get("Id", "")).startswith(container_id)), None)
            if done(row) or time.monotonic() > deadline:
                return
            time.sleep(0.002)

    def list(self, labels: LabelFilter | None = None) -> list[Container]:
        wanted = [key if value is None else f"{key}={value}"
                  for key, value in (labels or {}).items()]
        with self._call("list"):
            rows = self._api.containers(all=True, filters={"label": wanted} if wanted else None)
        return [self._summary(row) for row in rows]

    def inspect(self, container_id: str) -> Container:
        with self._call("inspect"):
            raw = self._api.inspect_container(container_id)
        return from_inspect(raw, parse_created=parse_created, runtime=self._runtime,
                            is_podman=self.is_podman)

    def exec(self, container_id: str, argv: list[str]) -> tuple[int, str]:
        with self._call("exec"):
            created = self._api.exec_create(container_id, list(argv), stdout=True, stderr=True)
            output = self._api.exec_start(created["Id"])
            code = self._api.exec_inspect(created["Id"]).get("ExitCode")
        text = output.decode(errors="replace") if isinstance(output, bytes) else str(output)
        return (code if code is not None else -1), text

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._api.close()

    # -- internals ----------------------------------------------------------------------------

    @staticmethod
    def _summary(row: Mapping[str, Any]) -> Container:
        created = row.get("Created") or 0
        if isinstance(created, str):  # some compatible engines send a timestamp
            created_ns = parse_created(created)
        else:
            created_ns = int(created) * 1_000_000_000
        return Container(
            id=row["Id"],
            name=_primary_name(row.get("Names")),
            image=row.get("Image", ""),
            state=row.get("State", ""),
            labels=row.get("Labels") or {},
            created=created_ns,
        )
