"""Serve the reference driver over the OpenShell compute-driver gRPC service on a Unix socket.

    python -m pytest_sandbox_conformance.grpc.server --socket PATH --state-dir DIR \\
        --namespace NS [--docker-host URL] [--poll-interval 2.0] [--image REF]

The driver runs on a :class:`~pytest_sandbox_conformance.engines.docker.DockerEngine`
(``--docker-host``, else ``DOCKER_HOST``, else the docker context) and polls on its own clock: a
background thread calls ``driver.observe()`` every ``--poll-interval`` seconds (backing off to 30 s
while the engine fails), serialised with the RPCs by one lock. ``WatchSandboxes`` sends a full
snapshot of every sandbox when a stream opens, then every change (snapshots, platform events,
Deleted). The socket is 0600 in a folder made 0700 when the server creates it. SIGTERM or SIGINT
stops it cleanly (exit status 0). ``StopSandbox``/``StartSandbox`` and the RPCs this proto does not
declare answer ``UNIMPLEMENTED``; ``sandbox_token`` is not required.
"""

from __future__ import annotations

import argparse
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

from reference_driver import ReferenceDriver
from reference_driver.driver import DriverError, SandboxExists

from ..api import DeletedEvent, Event, PlatformEvent, SandboxSpec, Snapshot, SnapshotEvent
from . import compute_driver_pb2 as pb
from . import compute_driver_pb2_grpc as pb_grpc

__all__ = ["ComputeDriverServicer", "main", "serve", "snapshot_to_pb", "event_to_pb"]

MAX_BACKOFF = 30.0
#: How often an open watch stream looks for new events.
STREAM_TICK = 0.05


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

    def __init__(self, driver: ReferenceDriver, stopping: threading.Event) -> None:
        self.driver = driver
        self.lock = threading.RLock()
        self.stopping = stopping

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
        return pb.DeleteSandboxResponse(deleted=removed)

    def WatchSandboxes(self, request, context) -> Iterator[pb.WatchSandboxesEvent]:
        with self.lock:
            watcher = self.driver.watch()  # current snapshots first, then changes
        try:
            while context.is_active() and not self.stopping.is_set():
                with self.lock:
                    events = watcher.drain()
                for event in events:
                    yield event_to_pb(event)
                if not events:
                    time.sleep(STREAM_TICK)
        finally:
            with self.lock:
                watcher.close()

    # -- the driver's own clock ----------------------------------------------------------------

    def poll_forever(self, interval: float) -> None:
        delay = interval
        while not self.stopping.wait(delay):
            try:
                with self.lock:
                    self.driver.observe()
                delay = interval
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


def serve(socket_path: str | Path, state_dir: str | Path, namespace: str, *,
          docker_host: str | None = None, poll_interval: float = 2.0, image: str | None = None,
          stopping: threading.Event | None = None) -> None:
    """Run until ``stopping`` is set (SIGTERM/SIGINT set it when run as a program)."""
    from ..engines.docker import DockerEngine

    stopping = stopping or threading.Event()
    socket_path = Path(socket_path).absolute()
    engine = DockerEngine(docker_host)
    kwargs = {"image": image} if image else {}
    driver = ReferenceDriver(engine, state_dir, namespace=namespace, **kwargs)
    servicer = ComputeDriverServicer(driver, stopping)
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
    print(f"serving {driver.driver_name} on unix:{socket_path} (namespace {namespace}, engine "
          f"{engine.base_url}, poll every {poll_interval}s)", file=sys.stderr, flush=True)
    try:
        stopping.wait()
    finally:
        stopping.set()
        server.stop(grace=1.0).wait(5)
        poller.join(timeout=5)
        engine.close()
        try:
            socket_path.unlink()
        except FileNotFoundError:
            pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_sandbox_conformance.grpc.server",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--socket", required=True, help="the Unix socket to serve on")
    parser.add_argument("--state-dir", required=True, help="where the driver keeps its journal")
    parser.add_argument("--namespace", required=True, help="the driver namespace label value")
    parser.add_argument("--docker-host", default=None,
                        help="the engine URL (default: DOCKER_HOST, else the docker context)")
    parser.add_argument("--poll-interval", type=float, default=2.0,
                        help="seconds between the driver's polls (default 2.0)")
    parser.add_argument("--image", default=None, help="the default sandbox image")
    args = parser.parse_args(argv)
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    serve(args.socket, args.state_dir, args.namespace, docker_host=args.docker_host,
          poll_interval=args.poll_interval, image=args.image, stopping=stopping)
    return 0


if __name__ == "__main__":
    sys.exit(main())
