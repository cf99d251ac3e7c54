"""Serve the reference driver over the OpenShell compute-driver gRPC service on a Unix socket.

    python -m reference_driver.grpc_server --socket PATH [--state-dir DIR] [--namespace NS]
        [--docker-host URL] [--poll-interval 2.0] [--image REF] [--driver MODULE:CLASS]
        [--behind-gate] [--require-token]

The driver runs on a :class:`~pytest_sandbox_conformance.engines.docker.DockerEngine`
(``--docker-host``, else ``DOCKER_HOST``, else the docker context) and polls on its own clock: a
background thread polls every ``--poll-interval`` seconds (backing off to 30 s while the engine
fails). ``WatchSandboxes`` sends a full snapshot of every sandbox when a stream opens, then every
change (snapshots, platform events, Deleted). The socket is 0600 in a folder made 0700 when the
server creates it. SIGTERM or SIGINT stops it cleanly (exit status 0). ``StopSandbox``,
``StartSandbox`` and the RPCs this proto does not declare answer ``UNIMPLEMENTED``;
``sandbox_token`` is not required.

Polls and RPCs are serialised by one lock. Behind the suite's observation gate (``--behind-gate``,
or the ``SANDBOX_CONFORMANCE_GATE`` variable the suite sets), which holds each container-list
request until a schedule releases it, a poll lists the engine *outside* that lock, so RPCs are
served while the poll waits at the gate; the list is answered only when released, so it is never
older than an RPC served meanwhile. Without a gate the lock covers the list too (a list fetched
before a concurrent create would be older than it). Behind the gate a poll whose list the gate
let pass during the suite's start-up (its answer says ``X-Observation-Gate: start-up``) is not
observed: the in-process reference driver observes only where the schedule says, and so does
this one. ``WatchSandboxes`` sends its headers as soon as the stream's first snapshot is ready,
as a tonic server does.

``--driver`` serves another driver class with the reference driver's constructor (the project's
deliberately broken drivers, ``tests/broken_drivers.py``, to prove the suite fails them over gRPC).

This module is the reference driver's gRPC face: besides the driver it needs ``grpcio``, the
generated code in ``pytest_sandbox_conformance.grpc`` and the Docker engine.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import stat
import sys
import threading
import time
from concurrent import futures
from pathlib import Path
from typing import Iterator

import grpc

from pytest_sandbox_conformance.api import (DeletedEvent, Event, PlatformEvent, SandboxSpec,
                                            Snapshot, SnapshotEvent)
from pytest_sandbox_conformance.grpc import compute_driver_pb2 as pb
from pytest_sandbox_conformance.grpc import compute_driver_pb2_grpc as pb_grpc

from .driver import DriverError, ReferenceDriver, SandboxExists

__all__ = ["ComputeDriverServicer", "main", "serve", "snapshot_to_pb", "event_to_pb"]

MAX_BACKOFF = 30.0
#: How often an open watch stream looks for new events when nothing wakes it.
STREAM_TICK = 0.25
#: Behind the gate, the least time to the next poll after one the gate let pass in the suite's
#: start-up (not observed: there is no point in polling fast then).
STARTUP_POLL = 0.1
#: How long a poll waits for open streams to take its events before the next poll.
FLUSH_TIMEOUT = 1.0
#: Set (to the gate's URL) by the suite when the engine URL is its observation gate.
GATE_VARIABLE = "SANDBOX_CONFORMANCE_GATE"
#: The header of the gate's list answers: why the list was let go (``start-up``, ...).
GATE_HEADER = "X-Observation-Gate"


def snapshot_to_pb(snap: Snapshot) -> pb.DriverSandbox:
    ready = snap.ready
    status = pb.DriverSandboxStatus(
        sandbox_name=snap.name, instance_id=snap.instance_id or "",
        conditions=[pb.DriverCondition(type="Ready", status=ready.status, reason=ready.reason,
                                       message=ready.message)])
    return pb.DriverSandbox(id=snap.sandbox_id, name=snap.name, namespace=snap.namespace,
                            status=status)


def event_to_pb(event: Event) -> pb.WatchSandboxesEvent:
    if isinstance(event, SnapshotEvent):
        return pb.WatchSandboxesEvent(
            sandbox=pb.WatchSandboxesSandboxEvent(sandbox=snapshot_to_pb(event.snapshot)))
    if isinstance(event, DeletedEvent):
        return pb.WatchSandboxesEvent(
            deleted=pb.WatchSandboxesDeletedEvent(sandbox_id=event.sandbox_id))
    if isinstance(event, PlatformEvent):
        return pb.WatchSandboxesEvent(platform_event=pb.WatchSandboxesPlatformEvent(
            sandbox_id=event.sandbox_id,
            event=pb.DriverPlatformEvent(timestamp_ms=int(time.time() * 1000), source="docker",
                                         type=event.type, reason=event.reason,
                                         message=event.message, metadata=dict(event.metadata))))
    raise TypeError(f"unknown event {event!r}")


class ComputeDriverServicer(pb_grpc.ComputeDriverServicer):
    """The RPCs, over one :class:`ReferenceDriver`; every driver call holds ``self.lock``."""

    def __init__(self, driver: ReferenceDriver, stopping: threading.Event, *,
                 behind_gate: bool = False, require_token: bool = False) -> None:
        self.driver = driver
        self.require_token = require_token
        self.lock = threading.RLock()
        self.stopping = stopping
        self.behind_gate = behind_gate
        #: Notified whenever events may be waiting, and whenever a stream drained its watcher.
        self.changed = threading.Condition(self.lock)
        self.watchers: list = []
        #: Events streams have taken from their watchers but gRPC has not sent yet.
        self.unsent = 0
        #: Per thread: the gate's word on the last container list (``X-Observation-Gate``).
        self.gate_said = threading.local()

    def heard_from_gate(self, response, *args, **kwargs) -> None:
        """A response hook of the engine's HTTP client: remember the gate's header of a list."""
        if response.request.path_url.partition("?")[0].endswith("/containers/json"):
            self.gate_said.value = response.headers.get(GATE_HEADER)

    # -- helpers -----------------------------------------------------------------------------

    def _spec(self, sandbox: pb.DriverSandbox, context: grpc.ServicerContext) -> SandboxSpec:
        if not sandbox.id or not sandbox.name:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          "a sandbox needs a non-empty id and name")
        spec, template = sandbox.spec, sandbox.spec.template
        env = dict(spec.environment)
        env.update(template.environment)
        gpu = spec.HasField("resource_requirements") and spec.resource_requirements.HasField("gpu")
        return SandboxSpec(id=sandbox.id, name=sandbox.name, image=template.image or None,
                           command=tuple(spec.command), env=env, labels=dict(template.labels),
                           gpu=gpu)

    def _find(self, sandbox_id: str, name: str) -> Snapshot | None:
        if sandbox_id:
            return self.driver.snapshot(sandbox_id)
        return next((s for s in self.driver.snapshots() if s.name == name), None)

    # -- RPCs --------------------------------------------------------------------------------

    def GetCapabilities(self, request, context):
        return pb.GetCapabilitiesResponse(driver_name=f"{self.driver.driver_name}-grpc",
                                          driver_version=self.driver.driver_version,
                                          default_image=self.driver.image)

    def ValidateSandboxCreate(self, request, context):
        self._spec(request.sandbox, context)
        return pb.ValidateSandboxCreateResponse()

    def CreateSandbox(self, request, context):
        spec = self._spec(request.sandbox, context)
        if self.require_token and not request.sandbox.spec.sandbox_token:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          "sandbox_token is required (as OpenShell's Docker driver requires it)")
        with self.lock:
            if any(s.name == spec.name for s in self.driver.snapshots()):
                context.abort(grpc.StatusCode.ALREADY_EXISTS,
                              f"a sandbox named {spec.name!r} already exists")
            try:
                self.driver.create(spec)
            except SandboxExists as exc:
                context.abort(grpc.StatusCode.ALREADY_EXISTS, str(exc))
            except DriverError as exc:
                context.abort(grpc.StatusCode.INTERNAL, str(exc))
            finally:
                self.changed.notify_all()
        return pb.CreateSandboxResponse()

    def GetSandbox(self, request, context):
        if not request.sandbox_id and not request.sandbox_name:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "give sandbox_id or sandbox_name")
        with self.lock:
            snap = self._find(request.sandbox_id, request.sandbox_name)
        if snap is None:
            context.abort(grpc.StatusCode.NOT_FOUND,
                          f"no sandbox {request.sandbox_id or request.sandbox_name!r}")
        return pb.GetSandboxResponse(sandbox=snapshot_to_pb(snap))

    def ListSandboxes(self, request, context):
        with self.lock:
            snaps = self.driver.snapshots()
        return pb.ListSandboxesResponse(sandboxes=[snapshot_to_pb(s) for s in snaps])

    def DeleteSandbox(self, request, context):
        if not request.sandbox_id and not request.sandbox_name:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "give sandbox_id or sandbox_name")
        with self.lock:
            sandbox_id = request.sandbox_id
            if not sandbox_id:
                snap = self._find("", request.sandbox_name)
                if snap is None:
                    return pb.DeleteSandboxResponse(deleted=False)
                sandbox_id = snap.sandbox_id
            try:
                removed = self.driver.delete(sandbox_id, request.sandbox_name or None)
            except DriverError as exc:
                context.abort(grpc.StatusCode.INTERNAL, str(exc))
            finally:
                self.changed.notify_all()
        return pb.DeleteSandboxResponse(deleted=removed)

    def WatchSandboxes(self, request, context) -> Iterator[pb.WatchSandboxesEvent]:
        with self.lock:
            watcher = self.driver.watch()  # current snapshots first, then changes
            self.watchers.append(watcher)
        # The headers now, as a tonic server sends them when its handler returns the stream: a
        # client waiting for the stream to open need not wait for a first message (there is
        # none with nothing to report).
        try:
            context.send_initial_metadata(())
            while context.is_active() and not self.stopping.is_set():
                with self.changed:
                    events = watcher.drain()
                    if not events:
                        self.changed.notify_all()  # a poll may be waiting for this flush
                        self.changed.wait(STREAM_TICK)
                        continue
                    self.unsent += len(events)
                left = len(events)
                try:
                    for event in events:
                        yield event_to_pb(event)
                        # Resumed: gRPC has sent the message (it asks for the next one then).
                        left -= 1
                        with self.changed:
                            self.unsent -= 1
                            self.changed.notify_all()
                finally:
                    if left:
                        with self.changed:
                            self.unsent -= left
                            self.changed.notify_all()
        finally:
            with self.changed:
                self.watchers.remove(watcher)
                watcher.close()
                self.changed.notify_all()

    # -- the driver's own clock ----------------------------------------------------------------

    def poll_once(self) -> bool:
        """One poll; then wait (bounded) until every open stream has sent its events.

        Behind the gate, a list the gate let pass during the suite's start-up (its
        ``X-Observation-Gate: start-up`` answer) is not observed: the in-process reference
        driver observes only where the schedule says, and so does this one. False then (the
        poll did not observe)."""
        if self.behind_gate:
            listed = self.driver.list_namespace()  # waits at the gate, without the lock
            if getattr(self.gate_said, "value", None) == "start-up":
                return False
            with self.lock:
                self.driver.observe(listed)
        else:
            with self.lock:
                self.driver.observe()
        deadline = time.monotonic() + FLUSH_TIMEOUT
        with self.changed:
            self.changed.notify_all()
            while ((any(w.pending() for w in self.watchers) or self.unsent)
                   and not self.stopping.is_set()):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.changed.wait(left)
        return True

    def poll_forever(self, interval: float) -> None:
        delay = interval
        while not self.stopping.wait(delay):
            try:
                delay = interval if self.poll_once() else max(interval, STARTUP_POLL)
            except Exception as exc:  # an engine error must not kill the clock
                delay = min(max(delay * 2, interval), MAX_BACKOFF)
                print(f"poll failed ({exc}); next poll in {delay:.1f}s", file=sys.stderr,
                      flush=True)


def _prepare_socket(path: Path) -> None:
    folder = path.parent
    if not folder.exists():
        folder.mkdir(mode=0o700, parents=True)
        os.chmod(folder, 0o700)
    if path.exists() or path.is_symlink():
        if not stat.S_ISSOCK(path.lstat().st_mode):
            raise SystemExit(f"{path} exists and is not a socket; refusing to replace it")
        path.unlink()


def load_driver_class(spec: str) -> type[ReferenceDriver]:
    """``MODULE:ATTR`` to a class (or factory) with the reference driver's constructor."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise SystemExit(f"--driver {spec!r}: give MODULE:CLASS")
    try:
        target = importlib.import_module(module_name)
    except ImportError as exc:
        raise SystemExit(f"--driver {spec!r}: cannot import {module_name!r}: {exc}") from None
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise SystemExit(f"--driver {spec!r}: {module_name!r} has no {attr!r}") from None
    return target  # type: ignore[return-value]


def serve(socket_path: str | Path, state_dir: str | Path, namespace: str, *,
          docker_host: str | None = None, poll_interval: float = 2.0, image: str | None = None,
          driver_class: type[ReferenceDriver] = ReferenceDriver, behind_gate: bool = False,
          require_token: bool = False, stopping: threading.Event | None = None) -> None:
    """Run until ``stopping`` is set (SIGTERM/SIGINT set it when run as a program)."""
    from pytest_sandbox_conformance.engines.docker import DockerEngine

    stopping = stopping or threading.Event()
    socket_path = Path(socket_path).absolute()
    engine = DockerEngine(docker_host)
    kwargs = {"image": image} if image else {}
    driver = driver_class(engine, state_dir, namespace=namespace, **kwargs)
    servicer = ComputeDriverServicer(driver, stopping, behind_gate=behind_gate,
                                     require_token=require_token)
    if behind_gate:
        # The Docker SDK's client is a requests session: read the gate's header of each list.
        engine._api.hooks["response"].append(servicer.heard_from_gate)  # noqa: SLF001
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    pb_grpc.add_ComputeDriverServicer_to_server(servicer, server)
    _prepare_socket(socket_path)
    old = os.umask(0o177)  # the socket is born 0600
    try:
        server.add_insecure_port(f"unix:{socket_path}")
        server.start()
    finally:
        os.umask(old)
    os.chmod(socket_path, 0o600)
    poller = threading.Thread(target=servicer.poll_forever, args=(poll_interval,),
                              name="driver-poll", daemon=True)
    poller.start()
    print(f"serving {driver.driver_name} ({type(driver).__name__}) on unix:{socket_path} "
          f"(namespace {namespace}, engine {engine.base_url}"
          f"{' behind the observation gate' if behind_gate else ''}, poll every "
          f"{poll_interval}s)", file=sys.stderr, flush=True)
    try:
        stopping.wait()
    finally:
        stopping.set()
        if servicer.lock.acquire(timeout=1.0):  # not forever: an RPC may hang holding it
            try:
                servicer.changed.notify_all()
            finally:
                servicer.lock.release()
        server.stop(grace=1.0).wait(5)
        if not behind_gate:  # behind it, an idle poll waits there for a release that never comes
            poller.join(timeout=5)
        engine.close()
        try:
            socket_path.unlink()
        except FileNotFoundError:
            pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reference_driver.grpc_server",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--socket", required=True, help="the Unix socket to serve on")
    parser.add_argument("--state-dir", default="reference-driver-state",
                        help="where the driver keeps its journal (default: "
                             "./reference-driver-state)")
    parser.add_argument("--namespace", default="default",
                        help="the driver namespace label value (default: default)")
    parser.add_argument("--docker-host", default=None,
                        help="the engine URL (default: DOCKER_HOST, else the docker context)")
    parser.add_argument("--poll-interval", type=float, default=2.0,
                        help="seconds between the driver's polls (default 2.0)")
    parser.add_argument("--image", default=None, help="the default sandbox image")
    parser.add_argument("--driver", default=None, metavar="MODULE:CLASS",
                        help="serve this driver class instead of the reference driver")
    parser.add_argument("--behind-gate", action="store_true",
                        help="the engine URL is an observation gate: list outside the lock "
                             f"(implied when {GATE_VARIABLE} is set)")
    parser.add_argument("--require-token", action="store_true",
                        help="refuse a CreateSandbox without sandbox_token (as OpenShell's Docker "
                             "driver does)")
    args = parser.parse_args(argv)
    if args.poll_interval <= 0:
        parser.error("--poll-interval must be > 0")
    driver_class = load_driver_class(args.driver) if args.driver else ReferenceDriver
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    serve(args.socket, args.state_dir, args.namespace, docker_host=args.docker_host,
          poll_interval=args.poll_interval, image=args.image, driver_class=driver_class,
          behind_gate=args.behind_gate or bool(os.environ.get(GATE_VARIABLE)),
          require_token=args.require_token, stopping=stopping)
    sys.stdout.flush()
    sys.stderr.flush()
    # Exit now: an RPC handler that hangs (a driver bug) must not keep the process alive, and
    # the interpreter would wait for its thread.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
