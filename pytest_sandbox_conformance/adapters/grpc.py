"""The adapter for black-box drivers that serve the OpenShell compute-driver gRPC service.

``GrpcAdapter`` talks to any process serving ``openshell.compute.v1.ComputeDriver`` on a Unix
socket (``pytest_sandbox_conformance/grpc/compute_driver.proto``): the reference driver served by
``python -m pytest_sandbox_conformance.grpc.server``, OpenShell's own Docker driver, or a
third-party driver. ``factory(ctx)`` reads its options from ``ctx.options``:

``socket``
    the socket of a driver that is already running (the adapter never stops it), or
``cmd``
    a command line the adapter starts (and stops in ``close()``; ``restart()`` stops and starts
    it again). ``{socket}``, ``{state_dir}`` and ``{namespace}`` are replaced by a fresh socket
    path (in a private 0700 folder), the driver's state folder (kept across restarts) and the run's
    namespace; ``DOCKER_HOST`` is set to the context engine's URL.
``poll_interval`` (default 2.0), ``poll_margin`` (default 0.5), ``step_timeout`` (default
``poll_interval + 3``), ``start_timeout`` (default 30)
    seconds.

The suite cannot make such a driver poll: ``observe()`` waits one declared poll interval plus a
margin (wall-clock mode), so results are timing-approximate (``adapter.timing``); exact schedules
need the observation gate (not built yet, ``docs/grpc.md``). Snapshots and events come from one
``WatchSandboxes`` stream read by a background thread. Needs ``grpcio`` and ``protobuf`` (the
``grpc`` extra).
"""

from __future__ import annotations

import os
import queue
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

import grpc

from ..api import Condition, DeletedEvent, Event, PlatformEvent, SandboxSpec, Snapshot, SnapshotEvent
from ..grpc import compute_driver_pb2 as pb
from ..grpc import compute_driver_pb2_grpc as pb_grpc
from .base import DriverAdapter, DriverContext

__all__ = ["DriverProcessError", "GrpcAdapter", "factory", "snapshot_from_pb"]

STDERR_TAIL = 40  # lines


class DriverProcessError(RuntimeError):
    """The driver process or its socket is not there; the message carries its stderr tail."""


def snapshot_from_pb(sandbox: pb.DriverSandbox, namespace: str = "") -> Snapshot:
    """A ``DriverSandbox`` as the contract's snapshot: instance ID and the ``Ready`` condition."""
    status = sandbox.status
    ready = next((c for c in status.conditions if c.type == "Ready"), None)
    condition = (Condition(ready.status or "Unknown", ready.reason, ready.message)
                 if ready is not None else Condition("Unknown", "NoReadyCondition",
                                                     "the driver reported no Ready condition"))
    return Snapshot(sandbox.id, sandbox.name or status.sandbox_name,
                    sandbox.namespace or namespace, status.instance_id or None, condition)


class GrpcAdapter(DriverAdapter):
    name = "openshell-grpc"
    capabilities: frozenset[str] = frozenset()
    #: Wall-clock observations: where a poll falls is not controlled (docs/grpc.md).
    timing = "approximate"

    def __init__(self, ctx: DriverContext, *, socket: str | None = None, cmd: str | None = None,
                 poll_interval: float = 2.0, poll_margin: float = 0.5,
                 step_timeout: float | None = None, start_timeout: float = 30.0) -> None:
        if bool(socket) == bool(cmd):
            raise ValueError("openshell-grpc needs exactly one of the options 'socket' (a running "
                             "driver) and 'cmd' (a command line the suite starts)")
        self.ctx = ctx
        self.poll_interval = poll_interval
        self.poll_margin = poll_margin
        self.step_timeout = step_timeout if step_timeout is not None else poll_interval + 3.0
        self.start_timeout = start_timeout
        self._cmd = cmd
        self._proc: subprocess.Popen | None = None
        self._tmp: str | None = None
        self._log: Path | None = None
        self._channel: grpc.Channel | None = None
        self._stream: Any = None
        self._reader: threading.Thread | None = None
        self._queue: queue.Queue[Event] = queue.Queue()
        self._snaps: dict[str, Snapshot] = {}
        self._cond = threading.Condition()
        self._stream_error: str | None = None
        self._closing = False
        if cmd:
            self._tmp = tempfile.mkdtemp(prefix="sbx-grpc-")  # short: sun_path is ~107 bytes
            os.chmod(self._tmp, 0o700)
            self.socket_path = str(Path(self._tmp) / "driver.sock")
            self.driver_state = Path(ctx.state_dir) / "grpc-driver"
            self.driver_state.mkdir(parents=True, exist_ok=True)
        else:
            self.socket_path = str(socket)
        try:
            self._connect()
        except BaseException:
            self.close()
            raise

    # -- process and connection ----------------------------------------------------------------

    def _command(self) -> list[str]:
        values = {"socket": self.socket_path, "state_dir": str(self.driver_state),
                  "namespace": self.ctx.namespace}
        line = str(self._cmd)
        for key, value in values.items():
            line = line.replace("{" + key + "}", shlex.quote(value))
        return shlex.split(line)

    def _start_process(self) -> None:
        env = dict(os.environ)
        base_url = getattr(self.ctx.engine, "base_url", None)
        if not base_url:
            raise DriverProcessError(f"openshell-grpc with 'cmd' needs a real engine with a URL; "
                                     f"{self.ctx.engine!r} has none")
        env["DOCKER_HOST"] = base_url
        try:
            os.unlink(self.socket_path)
        except FileNotFoundError:
            pass
        self._log = Path(str(self._tmp)) / "driver.log"
        with open(self._log, "ab") as log:
            self._proc = subprocess.Popen(self._command(), env=env, stdin=subprocess.DEVNULL,
                                          stdout=log, stderr=log, start_new_session=True)

    def stderr_tail(self) -> str:
        if self._log is None or not self._log.exists():
            return "(no output captured: the driver was not started by the suite)"
        lines = self._log.read_text(errors="replace").splitlines()[-STDERR_TAIL:]
        return "\n".join("  | " + line for line in lines) or "  (empty)"

    def _dead(self) -> str | None:
        if self._proc is not None and self._proc.poll() is not None:
            return (f"the driver process ({shlex.join(self._command())}) exited with status "
                    f"{self._proc.returncode}; its output ends with:\n{self.stderr_tail()}")
        return None

    def _connect(self) -> None:
        if self._cmd:
            self._start_process()
        deadline = time.monotonic() + self.start_timeout
        while not os.path.exists(self.socket_path):
            dead = self._dead()
            if dead:
                raise DriverProcessError(dead)
            if time.monotonic() > deadline:
                raise DriverProcessError(
                    f"no socket at {self.socket_path} after {self.start_timeout:.0f}s"
                    + (f"; the driver's output ends with:\n{self.stderr_tail()}" if self._cmd
                       else ""))
            time.sleep(0.05)
        self._channel = grpc.insecure_channel(f"unix:{self.socket_path}")
        try:
            grpc.channel_ready_future(self._channel).result(
                timeout=max(0.1, deadline - time.monotonic()))
        except grpc.FutureTimeoutError:
            raise DriverProcessError(self._dead() or f"the driver at {self.socket_path} does not "
                                     "answer") from None
        self.stub = pb_grpc.ComputeDriverStub(self._channel)
        caps = self._optional(self.stub.GetCapabilities, pb.GetCapabilitiesRequest())
        if caps is not None:
            self.name = f"openshell-grpc:{caps.driver_name}" if caps.driver_name else self.name
            self.version = caps.driver_version
        self._open_stream()

    def _open_stream(self) -> None:
        self._stream_error = None
        stream = self.stub.WatchSandboxes(pb.WatchSandboxesRequest())  # long-lived: no deadline
        self._stream = stream
        self._reader = threading.Thread(target=self._read, args=(stream,), daemon=True,
                                        name="grpc-watch")
        self._reader.start()

    def _read(self, stream: Any) -> None:
        try:
            for message in stream:
                self._accept(message)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                with self._cond:
                    self._stream_error = f"WatchSandboxes failed: {exc.code().name} {exc.details()}"
                    self._cond.notify_all()
            return
        with self._cond:
            if self._stream is stream and not self._closing:
                self._stream_error = "the driver closed the WatchSandboxes stream"
            self._cond.notify_all()

    def _accept(self, message: pb.WatchSandboxesEvent) -> None:
        kind = message.WhichOneof("payload")
        event: Event
        with self._cond:
            if kind == "sandbox":
                snap = snapshot_from_pb(message.sandbox.sandbox, self.ctx.namespace)
                self._snaps[snap.sandbox_id] = snap
                event = SnapshotEvent(snap)
            elif kind == "deleted":
                self._snaps.pop(message.deleted.sandbox_id, None)
                event = DeletedEvent(message.deleted.sandbox_id)
            elif kind == "platform_event":
                e = message.platform_event.event
                event = PlatformEvent(message.platform_event.sandbox_id, e.type, e.reason,
                                      e.message, dict(e.metadata))
            else:
                return  # an unknown payload from a newer driver: ignored
            self._queue.put(event)
            self._cond.notify_all()

    def _stop_process(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def _disconnect(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.cancel()
        if self._reader is not None:
            self._reader.join(timeout=5)
            self._reader = None
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    # -- RPCs ----------------------------------------------------------------------------------

    def _call(self, rpc: Callable[..., Any], request: Any) -> Any:
        try:
            return rpc(request, timeout=self.step_timeout)
        except grpc.RpcError:
            dead = self._dead()
            if dead:
                raise DriverProcessError(dead) from None
            raise

    def _optional(self, rpc: Callable[..., Any], request: Any) -> Any:
        """An optional RPC: ``None`` where the driver answers UNIMPLEMENTED."""
        try:
            return self._call(rpc, request)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                return None
            raise

    def _wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0 or self._stream_error:
                    return predicate()
                self._cond.wait(left)
        return True

    # -- the six operations ----------------------------------------------------------------------

    def create(self, spec: SandboxSpec) -> Snapshot | None:
        template = pb.DriverSandboxTemplate(image=spec.image or self.ctx.image,
                                            labels=dict(spec.labels))
        driver_spec = pb.DriverSandboxSpec(template=template, environment=dict(spec.env),
                                           command=list(spec.command))
        if spec.gpu:
            driver_spec.resource_requirements.gpu.SetInParent()
        # The namespace comes from the driver's own configuration; the field is informative.
        sandbox = pb.DriverSandbox(id=spec.id, name=spec.name, namespace=self.ctx.namespace,
                                   spec=driver_spec)
        self._optional(self.stub.ValidateSandboxCreate,
                       pb.ValidateSandboxCreateRequest(sandbox=sandbox))
        self._call(self.stub.CreateSandbox, pb.CreateSandboxRequest(sandbox=sandbox))
        # CreateSandbox accepts and provisions in the background: wait (bounded) until the
        # stream reports an instance, so the suite sees the container it made.
        self._wait_for(lambda: bool(getattr(self._snaps.get(spec.id), "instance_id", None)),
                       self.step_timeout)
        self._raise_if_broken()
        return self._snaps.get(spec.id)

    def delete(self, sandbox_id: str, name: str) -> bool:
        tracked = sandbox_id in self._snaps
        reply = self._call(self.stub.DeleteSandbox,
                           pb.DeleteSandboxRequest(sandbox_id=sandbox_id, sandbox_name=name))
        if tracked or reply.deleted:  # let the stream's Deleted arrive before the next step
            self._wait_for(lambda: sandbox_id not in self._snaps, self.step_timeout)
        return bool(reply.deleted)

    def observe(self) -> None:
        """Wall-clock mode: wait one declared poll interval plus a margin."""
        deadline = time.monotonic() + self.poll_interval + self.poll_margin
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, 0.1))
            self._raise_if_broken()

    def snapshot(self, sandbox_id: str) -> Snapshot | None:
        with self._cond:
            return self._snaps.get(sandbox_id)

    def events(self) -> list[Event]:
        out: list[Event] = []
        while True:
            try:
                out.append(self._queue.get_nowait())
            except queue.Empty:
                return out

    def get_sandbox(self, sandbox_id: str, name: str = "") -> Snapshot | None:
        """``GetSandbox`` (None where the driver does not know the sandbox or lacks the RPC)."""
        try:
            reply = self._optional(self.stub.GetSandbox,
                                   pb.GetSandboxRequest(sandbox_id=sandbox_id, sandbox_name=name))
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        return snapshot_from_pb(reply.sandbox, self.ctx.namespace) if reply else None

    def list_sandboxes(self) -> list[Snapshot] | None:
        """``ListSandboxes`` (None where the driver lacks the RPC)."""
        reply = self._optional(self.stub.ListSandboxes, pb.ListSandboxesRequest())
        if reply is None:
            return None
        return [snapshot_from_pb(s, self.ctx.namespace) for s in reply.sandboxes]

    def restart(self) -> None:
        """Stop the driver process and start it again over the same state folder."""
        if not self._cmd:
            raise NotImplementedError("openshell-grpc can restart only a driver it started "
                                      "(option 'cmd')")
        self._disconnect()
        self._stop_process()
        with self._cond:
            self._snaps.clear()  # the new stream starts with the full snapshot again
        self._connect()

    def _raise_if_broken(self) -> None:
        dead = self._dead()
        if dead:
            raise DriverProcessError(dead)
        if self._stream_error:
            raise DriverProcessError(self._stream_error)

    def describe(self) -> str:
        return f"{super().describe()} (timing approximate: wall-clock polls every " \
               f"{self.poll_interval}s)"

    def close(self) -> None:
        self._closing = True
        self._disconnect()
        self._stop_process()
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


def factory(ctx: DriverContext) -> GrpcAdapter:
    """Options: ``socket`` or ``cmd``; ``poll_interval``, ``poll_margin``, ``step_timeout``,
    ``start_timeout`` (seconds)."""
    o = ctx.options
    poll = float(o.get("poll_interval", 2.0))
    return GrpcAdapter(ctx, socket=o.get("socket"), cmd=o.get("cmd"), poll_interval=poll,
                       poll_margin=float(o.get("poll_margin", 0.5)),
                       step_timeout=float(o["step_timeout"]) if "step_timeout" in o else None,
                       start_timeout=float(o.get("start_timeout", 30.0)))
