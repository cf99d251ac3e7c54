"""The adapter for black-box drivers that serve the OpenShell compute-driver gRPC service.

``GrpcAdapter`` talks to any process serving ``openshell.compute.v1.ComputeDriver`` on a Unix
socket (``pytest_sandbox_conformance/grpc/compute_driver.proto``): the reference driver served by
``python -m reference_driver.grpc_server``, OpenShell's own Docker driver, or a third-party driver.
It is registered as ``--sandbox-driver=openshell-grpc``; ``factory(ctx)`` reads ``ctx.options``
(the plugin fills them from ``--sandbox-driver-socket``, ``--sandbox-driver-cmd``,
``--sandbox-poll-interval``, ``--sandbox-step-timeout`` and ``--sandbox-gate``):

``cmd``
    a command line the adapter starts for each run (and stops in ``close()``; ``restart()`` stops
    and starts it again over the same state). ``{socket}``, ``{state_dir}``, ``{namespace}`` and
    ``{docker_host}`` are replaced by a fresh socket path (in a private 0700 folder), the driver's
    state folder (kept across restarts), the run's namespace and the engine URL the driver must
    use. ``DOCKER_HOST`` is set to that URL too.
``socket``
    the socket of a driver that is already running (never stopped by the suite).
``gate``
    ``auto`` (default: with ``cmd``, the driver's engine URL is an :class:`ObservationGate`) or
    ``off``.
``poll_interval`` (default 2.0), ``poll_margin`` (0.5), ``step_timeout`` (``poll_interval + 3``),
``start_timeout`` (15), ``quiet`` (0.05): seconds.

**Gated (exact)**: the driver is started with ``DOCKER_HOST`` pointing at the observation gate, a
Docker API proxy that holds every container-list request. ``observe(order)`` releases the held
poll (reordered newest or oldest first), waits until the driver holds its next poll at the gate,
then until the watch stream has been quiet for ``quiet`` seconds: one observation, exactly where
the schedule puts it. RPCs are sent inside ``gate.during(...)``, so lists a driver makes to serve
them are not mistaken for polls.

**Wall-clock (approximate)**: without the gate (``socket``, or ``gate=off``), ``observe()`` waits
``poll_interval + poll_margin`` and lets the stream deliver what the driver saw; where polls fall
is not controlled, results are timing-approximate and list orders are the engine's.

Snapshots and events come from one ``WatchSandboxes`` stream read by a background thread. A driver
process that died, an RPC that failed or timed out, or a stream that broke raises
:class:`DriverProcessError` with the process's exit status and the tail of its output. Needs
``grpcio`` and ``protobuf`` (the ``grpc`` extra).
"""

from __future__ import annotations

import contextlib
import os
import queue
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

import grpc

from ..api import Condition, DeletedEvent, Event, PlatformEvent, SandboxSpec, Snapshot, SnapshotEvent
from ..gate import GateError, ObservationGate
from ..grpc import compute_driver_pb2 as pb
from ..grpc import compute_driver_pb2_grpc as pb_grpc
from .base import DriverAdapter, DriverContext, DriverProbe, DriverUnavailable

__all__ = ["DriverProcessError", "GrpcAdapter", "factory", "probe", "snapshot_from_pb"]

STDERR_TAIL = 40  # lines
#: The variable that tells a driver started by the suite that its engine URL is the gate.
GATE_VARIABLE = "SANDBOX_CONFORMANCE_GATE"
#: How long a driver that lists before it opens its socket is waited for with the gate shut.
LIST_BEFORE_SOCKET_GRACE = 1.0
OPTION_KEYS = ("socket", "cmd", "gate", "poll_interval", "poll_margin", "step_timeout",
               "start_timeout", "quiet", "token", "namespace")


class DriverProcessError(DriverUnavailable):
    """The driver process, its socket or an RPC failed; the message carries its output's tail."""


def snapshot_from_pb(sandbox: pb.DriverSandbox, namespace: str = "") -> Snapshot:
    """A ``DriverSandbox`` as the contract's snapshot: instance ID and the ``Ready`` condition."""
    status = sandbox.status
    ready = next((c for c in status.conditions if c.type == "Ready"), None)
    condition = (Condition(ready.status or "Unknown", ready.reason, ready.message)
                 if ready is not None else Condition("Unknown", "NoReadyCondition",
                                                     "the driver reported no Ready condition"))
    return Snapshot(sandbox.id, sandbox.name or status.sandbox_name,
                    sandbox.namespace or namespace, status.instance_id or None, condition)


def _describe_event(message: pb.WatchSandboxesEvent) -> str:
    kind = message.WhichOneof("payload")
    if kind == "sandbox":
        snap = snapshot_from_pb(message.sandbox.sandbox)
        return (f"sandbox {snap.sandbox_id} instance={(snap.instance_id or '-')[:12]} "
                f"Ready={snap.ready.status} {snap.ready.reason}")
    if kind == "deleted":
        return f"deleted {message.deleted.sandbox_id}"
    if kind == "platform_event":
        e = message.platform_event.event
        return f"platform_event {message.platform_event.sandbox_id or '-'} {e.type} {e.reason}"
    return f"unknown payload {kind!r} (ignored)"


class GrpcAdapter(DriverAdapter):
    name = "openshell-grpc"

    def __init__(self, ctx: DriverContext, *, socket: str | None = None, cmd: str | None = None,
                 gate: str = "auto", poll_interval: float = 2.0, poll_margin: float = 0.5,
                 step_timeout: float | None = None, start_timeout: float = 15.0,
                 quiet: float = 0.05, token: str | None = None) -> None:
        _check_options(socket, cmd, gate)
        self.ctx = ctx
        self._fixed_token = token
        self._tokens: dict[str, str] = {}
        self.poll_interval = poll_interval
        self.poll_margin = poll_margin
        self.step_timeout = step_timeout if step_timeout is not None else poll_interval + 3.0
        self.start_timeout = start_timeout
        self.quiet = quiet
        self._cmd = cmd
        self._proc: subprocess.Popen | None = None
        self._tmp: str | None = None
        self._log: Path | None = None
        self._log_offset = 0
        self._channel: grpc.Channel | None = None
        self._stream: Any = None
        self._reader: threading.Thread | None = None
        self._queue: queue.Queue[Event] = queue.Queue()
        self._snaps: dict[str, Snapshot] = {}
        self._cond = threading.Condition()
        self._last_message = 0.0
        self._stream_error: str | None = None
        self._closing = False
        self._notes: list[tuple[float, str]] = []
        self.gate: ObservationGate | None = None
        self.capabilities = _capabilities(bool(cmd), gated=bool(cmd) and gate == "auto")
        self.timing = "exact" if "list-order" in self.capabilities else "approximate"
        try:
            if cmd:
                self._tmp = tempfile.mkdtemp(prefix="sbx-grpc-")  # short: sun_path ~107 bytes
                os.chmod(self._tmp, 0o700)
                self.socket_path = str(Path(self._tmp) / "driver.sock")
                self.driver_state = Path(ctx.state_dir) / "grpc-driver"
                self.driver_state.mkdir(parents=True, exist_ok=True)
                base_url = getattr(ctx.engine, "base_url", None)
                if not base_url:
                    raise DriverProcessError(
                        f"openshell-grpc with a driver command needs a real engine with a URL "
                        f"(--sandbox-engine=docker or podman); {ctx.engine.name!r} has none")
                self.docker_host = base_url
                if gate == "auto":
                    try:
                        self.gate = ObservationGate(base_url,
                                                    Path(self._tmp) / "gate.sock").start()
                    except GateError as exc:
                        raise DriverProcessError(f"the observation gate cannot stand in front "
                                                 f"of this engine: {exc}; run with "
                                                 "--sandbox-gate=off") from None
                    self.docker_host = self.gate.url
            else:
                self.socket_path = str(socket)
            self._connect()
        except BaseException:
            self.close()
            raise

    # -- process and connection ----------------------------------------------------------------

    def _command(self) -> list[str]:
        values = {"socket": self.socket_path, "state_dir": str(self.driver_state),
                  "namespace": self.ctx.namespace, "docker_host": self.docker_host}
        line = str(self._cmd)
        for key, value in values.items():
            line = line.replace("{" + key + "}", shlex.quote(value))
        return shlex.split(line)

    def _start_process(self) -> None:
        env = dict(os.environ)
        env["DOCKER_HOST"] = self.docker_host
        env.pop(GATE_VARIABLE, None)
        if self.gate is not None:
            env[GATE_VARIABLE] = self.gate.url
        try:
            os.unlink(self.socket_path)
        except FileNotFoundError:
            pass
        self._log = Path(str(self._tmp)) / "driver.log"
        command = self._command()
        self._note(f"start the driver: {shlex.join(command)}")
        with open(self._log, "ab") as log:
            try:
                self._proc = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL,
                                              stdout=log, stderr=log, start_new_session=True,
                                              preexec_fn=_DIE_WITH_PARENT)
            except OSError as exc:
                raise DriverProcessError(f"cannot start the driver ({shlex.join(command)}): "
                                         f"{exc}") from None

    def stderr_tail(self) -> str:
        """The last lines of the driver's output (stdout and stderr), indented."""
        if self._log is None or not self._log.exists():
            return "  (no output captured: the driver was not started by the suite)"
        lines = self._log.read_text(errors="replace").splitlines()[-STDERR_TAIL:]
        return "\n".join("  | " + line for line in lines) or "  (empty)"

    def _dead(self) -> str | None:
        if self._proc is not None and self._proc.poll() is not None:
            return (f"the driver process ({shlex.join(self._command())}) exited with status "
                    f"{self._proc.returncode}; its output ends with:\n{self.stderr_tail()}")
        return None

    def _failure(self, what: str) -> DriverProcessError:
        """``what`` went wrong: with the process's death or its output's tail when there is one."""
        if self._proc is not None:
            try:  # a connection that broke is often a process that is dying: let it finish
                self._proc.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                pass
        dead = self._dead()
        if dead:
            return DriverProcessError(f"{what}: {dead}")
        if self._cmd:
            return DriverProcessError(f"{what}; the driver's output ends with:\n"
                                      f"{self.stderr_tail()}")
        return DriverProcessError(what)

    def _connect(self) -> None:
        if self._cmd:
            if self.gate is not None:
                self.gate.set_holding(True)
            self._start_process()
        started = time.monotonic()
        deadline = started + self.start_timeout
        if not self._cmd and not os.path.exists(self.socket_path):
            raise DriverProcessError(
                f"--sandbox-driver-socket={self.socket_path}: no such socket; start the driver "
                "first, or let the suite start it with --sandbox-driver-cmd")
        while not os.path.exists(self.socket_path):
            dead = self._dead()
            if dead:
                raise DriverProcessError(f"the driver never opened its socket: {dead}")
            if time.monotonic() > deadline:
                raise self._failure(f"no socket at {self.socket_path} after "
                                    f"{self.start_timeout:.0f}s")
            if (self.gate is not None and self.gate.holding and self.gate.held_count()
                    and time.monotonic() - started > LIST_BEFORE_SOCKET_GRACE):
                # A driver that lists the engine before it serves: let its start-up through.
                self._note("the driver lists the engine before it opens its socket: the gate "
                           "lets those lists through until the socket is open")
                self.gate.set_holding(False)
            time.sleep(0.02)
        if self.gate is not None and not self.gate.holding:
            self.gate.set_holding(True)
        self._channel = grpc.insecure_channel(f"unix:{self.socket_path}")
        try:
            grpc.channel_ready_future(self._channel).result(
                timeout=max(0.1, deadline - time.monotonic()))
        except grpc.FutureTimeoutError:
            raise self._failure(f"the driver at {self.socket_path} does not answer") from None
        self.stub = pb_grpc.ComputeDriverStub(self._channel)
        caps = self._optional("GetCapabilities", pb.GetCapabilitiesRequest())
        if caps is not None:
            self.name = f"openshell-grpc:{caps.driver_name}" if caps.driver_name else self.name
            self.version = caps.driver_version
        self._open_stream()
        if self.gate is not None:
            # Quiet means: the driver's first poll waits at the gate.
            if not self.gate.wait_held(self.step_timeout + self.poll_interval):
                raise self._failure(
                    f"the driver made no container-list request within "
                    f"{self.step_timeout + self.poll_interval:.1f}s of starting; the observation "
                    "gate needs a driver that polls the engine at DOCKER_HOST by listing "
                    "containers (or run it without the gate: --sandbox-gate=off)")

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
        event: Event | None = None
        with self._cond:
            self._last_message = time.monotonic()
            self._notes.append((self._last_message,
                                f"grpc WatchSandboxes <- {_describe_event(message)}"))
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
            if event is not None:  # an unknown payload from a newer driver is ignored
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

    def _call(self, name: str, request: Any, answers: tuple[grpc.StatusCode, ...] = ()) -> Any:
        """One RPC with the step deadline; a failure says what the driver was doing. Codes in
        ``answers`` are answers, not failures: raised as the RpcError they are."""
        rpc = getattr(self.stub, name)
        started = time.monotonic()
        try:
            with self._during(name):
                reply = rpc(request, timeout=self.step_timeout)
        except grpc.RpcError as exc:
            self._note(f"grpc {name} -> {exc.code().name}: {exc.details()} "
                       f"({time.monotonic() - started:.2f}s)", at=started)
            if exc.code() in answers:
                raise
            if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                held = (f"; its poll was held at the observation gate meanwhile, so a driver "
                        "that holds a lock across its engine poll cannot serve RPCs behind the "
                        "gate (run it with --sandbox-gate=off)"
                        if self.gate is not None and self.gate.held_count() else "")
                raise self._failure(f"{name} did not answer within the step timeout "
                                    f"({self.step_timeout:.1f}s){held}") from None
            raise self._failure(f"{name} failed: {exc.code().name} {exc.details()}") from None
        self._note(f"grpc {name} -> OK ({time.monotonic() - started:.2f}s)", at=started)
        return reply

    def _optional(self, name: str, request: Any,
                  none_for: tuple[grpc.StatusCode, ...] = (grpc.StatusCode.UNIMPLEMENTED,)) -> Any:
        """An optional RPC: ``None`` where the driver answers UNIMPLEMENTED (or a code of
        ``none_for``)."""
        try:
            return self._call(name, request, answers=none_for)
        except grpc.RpcError:
            return None

    def _wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0 or self._stream_error:
                    return predicate()
                self._cond.wait(min(left, 0.1))
                if self._dead():
                    return predicate()
        return True

    def _wait_quiet(self) -> None:
        """Until the watch stream has said nothing for ``quiet`` seconds (bounded)."""
        deadline = time.monotonic() + self.step_timeout
        with self._cond:
            while time.monotonic() < deadline:
                left = self._last_message + self.quiet - time.monotonic()
                if left <= 0:
                    return
                self._cond.wait(left)

    def _during(self, label: str) -> contextlib.AbstractContextManager[None]:
        """Behind the gate: lists the driver makes meanwhile serve ``label``, not a poll."""
        return self.gate.during(label) if self.gate is not None else contextlib.nullcontext()

    def _note(self, line: str, at: float | None = None) -> None:
        with self._cond:
            self._notes.append((time.monotonic() if at is None else at, line))

    # -- the six operations ----------------------------------------------------------------------

    def create(self, spec: SandboxSpec) -> Snapshot | None:
        template = pb.DriverSandboxTemplate(image=spec.image or self.ctx.image,
                                            labels=dict(spec.labels))
        driver_spec = pb.DriverSandboxSpec(template=template, environment=dict(spec.env),
                                           command=list(spec.command),
                                           sandbox_token=self._token(spec.id))
        if spec.gpu:
            driver_spec.resource_requirements.gpu.SetInParent()
        # The namespace comes from the driver's own configuration; the field is informative.
        sandbox = pb.DriverSandbox(id=spec.id, name=spec.name, namespace=self.ctx.namespace,
                                   spec=driver_spec)
        self._optional("ValidateSandboxCreate", pb.ValidateSandboxCreateRequest(sandbox=sandbox))
        self._call("CreateSandbox", pb.CreateSandboxRequest(sandbox=sandbox))
        # CreateSandbox may accept and provision in the background: wait (bounded) until the
        # stream reports an instance, so the suite sees the container it made. Lists made
        # meanwhile serve the create, not a poll.
        with self._during("CreateSandbox (provisioning)"):
            self._wait_for(self._has_instance(spec.id), self.step_timeout)
        self._raise_if_broken()
        self._wait_quiet()
        return self._snaps.get(spec.id)

    def _token(self, sandbox_id: str) -> str:
        """The sandbox's secret token (OpenShell's Docker driver refuses a create without one):
        a fresh random one per sandbox, unless ``token`` fixes one for every sandbox."""
        if self._fixed_token:
            return self._fixed_token
        return self._tokens.setdefault(sandbox_id, secrets.token_urlsafe(24))

    def _has_instance(self, sandbox_id: str) -> Callable[[], bool]:
        return lambda: bool(getattr(self._snaps.get(sandbox_id), "instance_id", None))

    def delete(self, sandbox_id: str, name: str) -> bool:
        tracked = sandbox_id in self._snaps
        reply = self._call("DeleteSandbox",
                           pb.DeleteSandboxRequest(sandbox_id=sandbox_id, sandbox_name=name))
        if tracked or reply.deleted:  # let the stream's Deleted arrive before the next step
            self._wait_for(lambda: sandbox_id not in self._snaps, self.step_timeout)
        self._raise_if_broken()
        self._wait_quiet()
        return bool(reply.deleted)

    def observe(self, order: str | None = None) -> None:
        """Gated: release one held poll (in ``order``) and wait until the driver is quiet again.
        Wall-clock: wait one declared poll interval plus a margin."""
        if self.gate is None:
            deadline = time.monotonic() + self.poll_interval + self.poll_margin
            while (left := deadline - time.monotonic()) > 0:
                time.sleep(min(left, 0.1))
                self._raise_if_broken()
            return
        self._raise_if_broken()
        try:
            self.gate.observe(order, self.step_timeout + self.poll_interval)
        except GateError as exc:
            raise self._failure(f"observation {self.gate.observations}: {exc}") from None
        self._raise_if_broken()
        self._wait_quiet()

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
        reply = self._optional("GetSandbox",
                               pb.GetSandboxRequest(sandbox_id=sandbox_id, sandbox_name=name),
                               none_for=(grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.NOT_FOUND))
        return snapshot_from_pb(reply.sandbox, self.ctx.namespace) if reply else None

    def list_sandboxes(self) -> list[Snapshot] | None:
        """``ListSandboxes`` (None where the driver lacks the RPC)."""
        reply = self._optional("ListSandboxes", pb.ListSandboxesRequest())
        if reply is None:
            return None
        return [snapshot_from_pb(s, self.ctx.namespace) for s in reply.sandboxes]

    def restart(self) -> None:
        """Stop the driver process and start it again over the same state folder."""
        if not self._cmd:
            raise NotImplementedError("openshell-grpc can restart only a driver it started "
                                      "(--sandbox-driver-cmd)")
        self._disconnect()
        self._stop_process()
        with self._cond:
            self._snaps.clear()  # the new stream starts with the full snapshot again
        self._connect()
        self._wait_quiet()

    def _raise_if_broken(self) -> None:
        dead = self._dead()
        if dead:
            raise DriverProcessError(dead)
        if self._stream_error:
            raise self._failure(self._stream_error)

    def describe(self) -> str:
        if self.gate is not None:
            how = "exact: polls released by the observation gate"
        else:
            how = f"timing approximate: wall-clock polls every {self.poll_interval}s"
        return f"{super().describe()} ({how})"

    def diagnostics(self) -> list[str]:
        """What crossed the boundary since the last call, in time order: the gRPC calls and
        stream messages, and the gate's log of the driver's Docker API requests (by arrival);
        then what the driver printed meanwhile."""
        with self._cond:
            notes, self._notes = self._notes, []
        if self.gate is not None:
            notes += [(r.at, f"docker API: {r.describe()}") for r in self.gate.drain_log()]
        lines = [line for _, line in sorted(notes, key=lambda n: n[0])]
        if self._log is not None and self._log.exists():
            with open(self._log, "rb") as f:
                f.seek(self._log_offset)
                data = f.read()
                self._log_offset += len(data)
            lines += [f"driver output: {line}" for line in
                      data.decode(errors="replace").splitlines()[-STDERR_TAIL:]]
        return lines

    def close(self) -> None:
        self._closing = True
        self._disconnect()
        self._stop_process()
        if self.gate is not None:
            self.gate.close()
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


def _parent_death_signal() -> Callable[[], None] | None:
    """On Linux, a function for the driver's process to run before it starts: be sent SIGTERM
    if the suite dies (a SIGKILLed pytest must not leave drivers behind; Ctrl-C is handled by
    ``close()``). Resolved here, in the parent: the child, forked from a process with threads,
    must run as little Python as possible (no imports)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    term = int(signal.SIGTERM)
    return lambda: prctl(1, term)  # PR_SET_PDEATHSIG


_DIE_WITH_PARENT = _parent_death_signal()


def _check_options(socket: str | None, cmd: str | None, gate: str) -> None:
    if bool(socket) == bool(cmd):
        raise ValueError("openshell-grpc needs exactly one of --sandbox-driver-socket (a running "
                         "driver) and --sandbox-driver-cmd (a command line the suite starts)")
    if gate not in ("auto", "off"):
        raise ValueError(f"--sandbox-gate={gate}: use auto or off")


def _capabilities(started_by_suite: bool, gated: bool) -> frozenset[str]:
    caps = {"gpu"}
    if started_by_suite:
        caps.add("restart")
    if gated:
        caps.add("list-order")
    return frozenset(caps)


def _floats(options: dict[str, str]) -> dict[str, float]:
    out = {}
    for key in ("poll_interval", "poll_margin", "step_timeout", "start_timeout", "quiet"):
        if key in options:
            try:
                value = float(options[key])
            except ValueError:
                raise ValueError(f"openshell-grpc option {key}={options[key]!r}: not a number "
                                 "of seconds") from None
            if value < 0 or (value == 0 and key in ("poll_interval", "step_timeout",
                                                    "start_timeout")):
                raise ValueError(f"openshell-grpc option {key}={options[key]!r}: must be > 0")
            out[key] = value
    return out


def probe(options: dict[str, str], engine: str) -> DriverProbe:
    """Capabilities and timing from the options alone (no process started); ValueError for
    options that cannot work."""
    unknown = sorted(set(options) - set(OPTION_KEYS))
    if unknown:
        raise ValueError(f"openshell-grpc: unknown option(s) {', '.join(unknown)}; known: "
                         f"{', '.join(OPTION_KEYS)}")
    socket, cmd, gate = options.get("socket"), options.get("cmd"), options.get("gate", "auto")
    _check_options(socket, cmd, gate)
    _floats(options)
    if engine == "fake":
        raise ValueError("a driver process works on a real engine, and the suite must act on the "
                         "same one: add --sandbox-engine=docker (or podman) and its URL")
    if socket and gate != "auto":
        raise ValueError("--sandbox-gate applies to a driver the suite starts "
                         "(--sandbox-driver-cmd); a running driver is observed by wall clock")
    if cmd and "namespace" in options:
        raise ValueError("option namespace is for a running driver (--sandbox-driver-socket); "
                         "a driver the suite starts gets each run's namespace as {namespace}")
    gated = bool(cmd) and gate == "auto"
    return DriverProbe(_capabilities(bool(cmd), gated), "openshell-grpc",
                       "exact" if gated else "approximate", options.get("namespace") or None)


def factory(ctx: DriverContext) -> GrpcAdapter:
    o = ctx.options
    probe(o, ctx.engine.name)
    return GrpcAdapter(ctx, socket=o.get("socket"), cmd=o.get("cmd"), gate=o.get("gate", "auto"),
                       token=o.get("token"), **_floats(o))


factory.probe = probe  # type: ignore[attr-defined]
