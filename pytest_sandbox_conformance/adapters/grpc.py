"""The adapter for black-box drivers that serve the OpenShell compute-driver gRPC service.

``GrpcAdapter`` talks to any process serving ``openshell.compute.v1.ComputeDriver`` on a Unix
socket (``pytest_sandbox_conformance/grpc/compute_driver.proto``): the reference driver served
by ``python -m reference_driver.grpc_server``, OpenShell's own drivers, the project's Rust peer,
or a third-party driver. It is registered as ``--sandbox-driver=openshell-grpc``;
``factory(ctx)`` reads ``ctx.options`` (the plugin fills them from ``--sandbox-driver-socket``,
``--sandbox-driver-cmd``, ``--sandbox-poll-interval``, ``--sandbox-step-timeout`` and
``--sandbox-gate``):

``cmd``
    a command line the adapter starts for each run (and stops in ``close()``; ``restart()`` stops
    and starts it again over the same state). ``{socket}``, ``{state_dir}``, ``{namespace}`` and
    ``{docker_host}`` are replaced by a fresh socket path (in a private 0700 folder), the driver's
    state folder (kept across restarts), the run's namespace and the engine URL the driver must
    use. ``DOCKER_HOST`` is set to that URL too (process: ``grpc_process.py``).
``socket``
    the socket of a driver that is already running (never stopped by the suite).
``gate``
    ``auto`` (default: with ``cmd``, the driver's engine URL is an :class:`ObservationGate`) or
    ``off``.
``authority``
    the HTTP/2 ``:authority`` of every call (default ``localhost``): grpcio would derive one from
    the socket path (percent-encoded), which tonic/h2 servers refuse with ``RST_STREAM``
    ``PROTOCOL_ERROR``.
``poll_interval`` (default 2.0), ``poll_margin`` (0.5), ``step_timeout`` (``poll_interval + 3``),
``start_timeout`` (15), ``quiet`` (0.05): seconds.

**Start-up** (every start of the process, restarts included, and every connection to a running
driver): the gate lets lists pass and events through (they are not observations) while the
adapter waits for the socket, opens the channel, asks ``GetCapabilities`` (``UNIMPLEMENTED``
tolerated), opens ``WatchSandboxes`` and waits (bounded) for its headers and its initial
snapshot (a message about every sandbox the run created and has not deleted), then for the
stream to be quiet. Then the gate holds, and the adapter waits until the driver can be observed:
its first list held, or an engine event stream open (:meth:`ObservationGate.wait_ready`).

**Gated (exact)**: ``observe(order)`` is one :meth:`ObservationGate.observe` (release the held
poll and the buffered events, reordered newest or oldest first, wait until the driver is quiet),
then until the watch stream has been quiet for ``quiet`` seconds: one observation, exactly where
the schedule puts it. RPCs, and the waits that belong to them (a create's first instance, a
delete's Deleted), run inside ``gate.during(...)``, so what the driver lists or gets from the
engine meanwhile serves them and is not mistaken for a poll.

**Wall-clock (approximate)**: without the gate (``socket``, or ``gate=off``), ``observe()`` waits
``poll_interval + poll_margin`` and lets the stream deliver what the driver saw; where polls fall
is not controlled, results are timing-approximate and list orders are the engine's.

A driver process that died, an RPC that failed or timed out, a stream that broke, or a driver
that reaches the engine without the gate raises :class:`DriverProcessError` with the process's
exit status and the tail of its output; every wait that ends without what it waited for says
what it waited for and what it saw (on the timeline, or in the failure). Needs ``grpcio`` and
``protobuf`` (the ``grpc`` extra).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

# Driver processes are forked (subprocess) from threads while other threads use gRPC (concurrent
# plays, --sandbox-concurrency): gRPC's fork handlers would only log "Other threads are currently
# calling into gRPC, skipping fork() handlers" for each; the child runs no gRPC (it execs the
# driver at once). Read by gRPC when it is first imported; a value the user set is kept.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")

import grpc  # noqa: E402

from ..api import Event, SandboxSpec, Snapshot
from ..engines.base import EngineError
from ..gate import GateError, ObservationGate
from ..grpc import compute_driver_pb2 as pb
from ..grpc import compute_driver_pb2_grpc as pb_grpc
from .base import DriverAdapter, DriverContext, DriverProbe, DriverUnavailable
from .grpc_process import DriverProcess
from .grpc_watch import Watch, snapshot_from_pb

__all__ = ["DriverProcessError", "GrpcAdapter", "channel", "factory", "probe",
           "snapshot_from_pb"]

#: The variable that tells a driver started by the suite that its engine URL is the gate.
GATE_VARIABLE = "SANDBOX_CONFORMANCE_GATE"
#: The Docker CLI's TLS variables: a gated driver talks plain HTTP to the gate's socket (the
#: gate speaks TLS to the engine), so they are removed from its environment.
TLS_VARIABLES = ("DOCKER_TLS_VERIFY", "DOCKER_TLS", "DOCKER_CERT_PATH")
DEFAULT_AUTHORITY = "localhost"
#: Start-up: how long the watch stream may take to send its headers once open, and how long a
#: driver (and its stream) must have been idle to end a wait for headers or for the initial
#: snapshot early (a grpcio server sends no headers before its first message).
HEADERS_WAIT = 1.0
START_IDLE = 0.25
OPTION_KEYS = ("socket", "cmd", "gate", "poll_interval", "poll_margin", "step_timeout",
               "start_timeout", "quiet", "token", "namespace", "authority")


class DriverProcessError(DriverUnavailable):
    """The driver process, its socket or an RPC failed; the message carries its output's tail."""


class GrpcAdapter(DriverAdapter):
    name = "openshell-grpc"

    def __init__(self, ctx: DriverContext, *, socket: str | None = None, cmd: str | None = None,
                 gate: str = "auto", poll_interval: float = 2.0, poll_margin: float = 0.5,
                 step_timeout: float | None = None, start_timeout: float = 15.0,
                 quiet: float = 0.05, token: str | None = None,
                 authority: str | None = None) -> None:
        _check_options(socket, cmd, gate)
        self.ctx = ctx
        self._fixed_token = token
        self._tokens: dict[str, str] = {}
        self.authority = authority or DEFAULT_AUTHORITY
        self.poll_interval = poll_interval
        self.poll_margin = poll_margin
        self.step_timeout = step_timeout if step_timeout is not None else poll_interval + 3.0
        self.start_timeout = start_timeout
        #: The suite's watchdog (adapters/watchdog.py) allows one call this long: above this
        #: adapter's own bounds, so that its own, better message comes first.
        self.call_timeout = 3 * self.step_timeout + poll_interval
        self.quiet = quiet
        self._cmd = cmd
        self.process: DriverProcess | None = None
        self._tmp: str | None = None
        self._channel: grpc.Channel | None = None
        self._notes: list[tuple[float, str]] = []
        self._notes_lock = threading.Lock()
        self.watch = Watch(ctx.namespace, self._note_at)
        #: Sandboxes created and not deleted: a restarted driver's first snapshot has them all.
        self._live: set[str] = set()
        self._started_seq = 0
        self.gate: ObservationGate | None = None
        #: Where the driver keeps its durable state, when its command says ({state_dir}).
        self.state_folder: Path | None = None
        self.capabilities = _capabilities(bool(cmd), gated=bool(cmd) and gate == "auto")
        self.timing = "exact" if "list-order" in self.capabilities else "approximate"
        try:
            if cmd:
                self._tmp = tempfile.mkdtemp(prefix="sbx-grpc-")  # short: sun_path ~107 bytes
                os.chmod(self._tmp, 0o700)
                self.socket_path = str(Path(self._tmp) / "driver.sock")
                self.driver_state = Path(ctx.state_dir) / "grpc-driver"
                self.driver_state.mkdir(parents=True, exist_ok=True)
                if "{state_dir}" in cmd:
                    # The driver keeps its durable state where the suite said: audited (OWN-15).
                    self.state_folder = self.driver_state
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
                self.process = DriverProcess(
                    cmd, {"socket": self.socket_path, "state_dir": str(self.driver_state),
                          "namespace": ctx.namespace, "docker_host": self.docker_host},
                    self._driver_env(), Path(self._tmp) / "driver.log")
            else:
                self.socket_path = str(socket)
            self._connect()
        except BaseException:
            with contextlib.suppress(Exception):
                self.close()
            raise

    # -- process and connection ----------------------------------------------------------------

    def _driver_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["DOCKER_HOST"] = self.docker_host
        env.pop(GATE_VARIABLE, None)
        if self.gate is not None:
            env[GATE_VARIABLE] = self.gate.url
            for name in TLS_VARIABLES:
                env.pop(name, None)
        return env

    def stderr_tail(self) -> str:
        """The last lines of the driver's output (stdout and stderr), indented."""
        if self.process is None:
            return "  (no output captured: the driver was not started by the suite)"
        return self.process.output_tail()

    def _dead(self) -> str | None:
        return self.process.dead() if self.process is not None else None

    def _failure(self, what: str) -> DriverProcessError:
        """``what`` went wrong: with the process's death or its output's tail when there is one."""
        if self.process is not None:
            self.process.settle()  # a connection that broke is often a process that is dying
        dead = self._dead()
        if dead:
            return DriverProcessError(f"{what}: {dead}")
        if self.process is not None:
            return DriverProcessError(f"{what}; the driver's output ends with:\n"
                                      f"{self.stderr_tail()}")
        return DriverProcessError(what)

    def _connect(self) -> None:
        """Start (or reach) the driver and go through its start-up (module docstring)."""
        started = time.monotonic()
        deadline = started + self.start_timeout
        if self.gate is not None:
            self.gate.set_holding(True)
            self._started_seq = self.gate.requests_seen()
        with self.gate.start_up("driver start-up") if self.gate else contextlib.nullcontext():
            if self.process is not None:
                self._note(f"start the driver: {self.process.describe()}")
                try:
                    self.process.start()
                except OSError as exc:
                    raise DriverProcessError(f"cannot start the driver "
                                             f"({self.process.describe()}): {exc}") from None
            self._wait_for_socket(deadline)
            self._channel = channel(self.socket_path, self.authority)
            try:
                grpc.channel_ready_future(self._channel).result(
                    timeout=max(0.1, deadline - time.monotonic()))
            except grpc.FutureTimeoutError:
                raise self._failure(f"the driver at {self.socket_path} does not answer: no gRPC "
                                    f"connection within {self.start_timeout:.0f}s of the start "
                                    f"(authority {self.authority!r})") from None
            self.stub = pb_grpc.ComputeDriverStub(self._channel)
            caps = self._optional("GetCapabilities", pb.GetCapabilitiesRequest())
            if caps is not None:
                self.name = f"openshell-grpc:{caps.driver_name}" if caps.driver_name else self.name
                self.version = caps.driver_version
            self.watch.open(self.stub)
            if self.gate is not None:
                self._await_headers(deadline)
            self._await_initial_snapshot()
            if not self.watch.wait_quiet(self.quiet, self.step_timeout):
                self._note(f"start-up: the watch stream did not fall quiet for {self.quiet}s "
                           f"within {self.step_timeout:.1f}s ({self.watch.messages} messages)")
            self._raise_if_broken()
        if self.gate is not None:
            self._await_observable()

    def _wait_for_socket(self, deadline: float) -> None:
        if self.process is None:
            if not os.path.exists(self.socket_path):
                raise DriverProcessError(
                    f"--sandbox-driver-socket={self.socket_path}: no such socket; start the "
                    "driver first, or let the suite start it with --sandbox-driver-cmd")
            return
        while not os.path.exists(self.socket_path):
            dead = self._dead()
            if dead:
                raise DriverProcessError(f"the driver never opened its socket: {dead}")
            if time.monotonic() > deadline:
                raise self._failure(f"no socket at {self.socket_path} after "
                                    f"{self.start_timeout:.0f}s")
            time.sleep(0.02)

    def _await_headers(self, deadline: float) -> None:
        """Until the stream's headers (or a message) came; bounded by :data:`HEADERS_WAIT`, and
        shorter when the driver is idle at the gate (a grpcio server sends them with its first
        message, and a stream with nothing to say sends none)."""
        watch, gate = self.watch, self.gate
        assert gate is not None
        until = min(deadline, time.monotonic() + HEADERS_WAIT)

        def done() -> bool:
            if watch.headers_at is not None or watch.error:
                return True
            waited = time.monotonic() - watch.opened_at
            return waited >= START_IDLE and gate.idle_for() >= START_IDLE

        watch.wait_for(done, max(0.0, until - time.monotonic()), self._is_dead, tick=0.02)
        if watch.headers_at is None and not watch.error:
            self._note(f"start-up: the watch stream sent no headers within "
                       f"{time.monotonic() - watch.opened_at:.2f}s (the driver "
                       f"{'is idle at the engine' if gate.idle_for() >= START_IDLE else 'kept making requests'}"
                       "; a grpcio server sends them with its first message): start-up ends")

    def _await_initial_snapshot(self) -> None:
        """Until the new stream sent a message about every live sandbox; bounded by the step
        timeout, and shorter once the stream has been silent :data:`START_IDLE` seconds after
        its headers (a driver that reports a sandbox only after its first poll)."""
        watch = self.watch
        if not self._live:
            return

        def done() -> bool:
            if self._live <= watch.seen or watch.error:
                return True
            return watch.headers_at is not None and watch.silent_for() >= START_IDLE

        watch.wait_for(done, self.step_timeout, self._is_dead, tick=0.02)
        missing = sorted(self._live - watch.seen)
        if missing and not watch.error:
            self._note(f"start-up: the watch stream's initial snapshot has no message about "
                       f"{', '.join(missing)} ({watch.messages} messages in "
                       f"{time.monotonic() - watch.opened_at:.2f}s); the driver may report "
                       "them after its first observation")

    def _await_observable(self) -> None:
        """After start-up: the first list held, or an engine event stream open."""
        assert self.gate is not None
        limit = self.step_timeout + self.poll_interval
        ready = self.gate.wait_ready(limit, START_IDLE)
        if ready is not None:
            return
        self._raise_if_broken()
        if self.gate.requests_seen() == self._started_seq:
            raise self._failure(
                f"the observation gate saw no request at all from the driver within {limit:.1f}s "
                f"of its start (it answered gRPC and opened its watch stream): it reaches the "
                f"engine without the gate, or not at all; it must use the engine URL "
                f"{{docker_host}} / DOCKER_HOST ({self.docker_host}) (OpenShell's Docker driver "
                "falls back to /var/run/docker.sock when its engine-socket key is unset)")
        raise self._failure(
            f"the driver made no container-list request or event stream within {limit:.1f}s "
            "after its start-up; the observation gate needs a driver that polls the engine at "
            "DOCKER_HOST by listing containers, or follows its event stream (or run it without "
            "the gate: --sandbox-gate=off)")

    def _is_dead(self) -> bool:
        return self._dead() is not None

    def _disconnect(self) -> None:
        try:
            self.watch.close()
        finally:
            if self._channel is not None:
                channel, self._channel = self._channel, None
                channel.close()

    def _stop_process(self) -> None:
        """Answer the lists the gate holds first (with an error: a driver that stops gracefully
        may wait for its held poll, and must not observe anything now), then stop the process."""
        if self.process is None or not self.process.running():
            return
        if self.gate is not None:
            self.gate.refuse_lists("the driver is being stopped")
        self.process.stop()

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
                held = ("; its poll was held at the observation gate meanwhile, so a driver "
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

    def _during(self, label: str) -> contextlib.AbstractContextManager[None]:
        """Behind the gate: lists the driver makes meanwhile serve ``label``, not a poll."""
        return self.gate.during(label) if self.gate is not None else contextlib.nullcontext()

    def _note(self, line: str, at: float | None = None) -> None:
        self._note_at(time.monotonic() if at is None else at, line)

    def _note_at(self, at: float, line: str) -> None:
        with self._notes_lock:  # the watch stream's reader thread notes too
            self._notes.append((at, line))

    def _wait_quiet(self) -> None:
        """Until the watch stream has said nothing for ``quiet`` seconds from now (bounded):
        what the driver reported just before may still be on its way."""
        if not self.watch.wait_quiet(self.quiet, self.step_timeout, since=time.monotonic()) \
                and not self.watch.error:
            self._note(f"the watch stream did not fall quiet for {self.quiet}s within "
                       f"{self.step_timeout:.1f}s: the driver kept reporting")

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
        seen_before = self.gate.requests_seen() if self.gate is not None else 0
        self._optional("ValidateSandboxCreate", pb.ValidateSandboxCreateRequest(sandbox=sandbox))
        self._call("CreateSandbox", pb.CreateSandboxRequest(sandbox=sandbox))
        self._live.add(spec.id)
        # CreateSandbox may accept and provision in the background: wait (bounded) until the
        # stream reports an instance, so the suite sees the container it made. Lists made
        # meanwhile serve the create, not a poll.
        waited = time.monotonic()
        with self._during("CreateSandbox (provisioning)"):
            got = self.watch.wait_for(self._has_instance(spec.id), self.step_timeout,
                                      self._is_dead)
        self._check_bypass(spec.id, seen_before)
        if not got:
            self._note(self._not_seen(spec.id, "an instance of", time.monotonic() - waited))
        self._raise_if_broken()
        self._wait_quiet()
        return self.watch.snapshot(spec.id)

    def _check_bypass(self, sandbox_id: str, seen_before: int) -> None:
        """A create the gate saw no request for, whose container exists: the driver reaches the
        engine some other way (a failure, not a wait until the step timeout)."""
        if self.gate is None or self.gate.requests_seen() != seen_before:
            return
        labels = self.labels
        try:
            found = self.ctx.engine.list({labels.namespace: self.ctx.namespace,
                                          labels.sandbox_id: sandbox_id})
        except EngineError:
            return
        if found:
            ids = ", ".join(c.id[:12] for c in found)
            raise self._failure(
                f"the driver reaches the engine without the observation gate: the container(s) "
                f"{ids} of sandbox {sandbox_id} appeared in namespace {self.ctx.namespace} while "
                f"the gate saw no request at all during CreateSandbox; the driver ignores "
                f"{{docker_host}} / DOCKER_HOST ({self.docker_host}) (OpenShell's Docker driver "
                "falls back to /var/run/docker.sock when its engine-socket key is unset)")

    def _not_seen(self, sandbox_id: str, what: str, waited: float) -> str:
        """The note for a wait on the stream that ended without what it waited for."""
        snap = self.watch.snapshot(sandbox_id)
        saw = ("nothing about it" if snap is None else
               f"instance={(snap.instance_id or '-')[:12]} Ready={snap.ready.status} "
               f"{snap.ready.reason}")
        return (f"waited {waited:.1f}s for the watch stream to report {what} {sandbox_id}; it "
                f"reported {saw} ({self.watch.messages} message(s) since it opened)")

    def _token(self, sandbox_id: str) -> str:
        """The sandbox's secret token (OpenShell's Docker driver refuses a create without one):
        a fresh random one per sandbox, unless ``token`` fixes one for every sandbox."""
        if self._fixed_token:
            return self._fixed_token
        return self._tokens.setdefault(sandbox_id, secrets.token_urlsafe(24))

    def _has_instance(self, sandbox_id: str) -> Callable[[], bool]:
        return lambda: bool(getattr(self.watch.snaps.get(sandbox_id), "instance_id", None))

    def delete(self, sandbox_id: str, name: str) -> bool:
        tracked = self.watch.snapshot(sandbox_id) is not None
        with self._during("DeleteSandbox"):
            reply = self._call("DeleteSandbox",
                               pb.DeleteSandboxRequest(sandbox_id=sandbox_id, sandbox_name=name))
            if tracked or reply.deleted:  # let the stream's Deleted arrive before the next step
                waited = time.monotonic()
                if not self.watch.wait_for(lambda: sandbox_id not in self.watch.snaps,
                                           self.step_timeout, self._is_dead):
                    self._note(self._not_seen(sandbox_id, "Deleted for",
                                              time.monotonic() - waited))
        self._live.discard(sandbox_id)
        self._raise_if_broken()
        self._wait_quiet()
        return bool(reply.deleted)

    def observe(self, order: str | None = None) -> None:
        """Gated: one observation (release the held poll and buffered events, in ``order``,
        and wait until the driver is quiet again). Wall-clock: wait one declared poll interval
        plus a margin."""
        if self.gate is None:
            deadline = time.monotonic() + self.poll_interval + self.poll_margin
            while (left := deadline - time.monotonic()) > 0:
                time.sleep(min(left, 0.1))
                self._raise_if_broken()
            return
        self._raise_if_broken()
        try:
            self.gate.observe(order, self.step_timeout + self.poll_interval, quiet=self.quiet)
        except GateError as exc:
            raise self._failure(f"observation {self.gate.observations + 1}: {exc}") from None
        self._raise_if_broken()
        self._wait_quiet()

    def snapshot(self, sandbox_id: str) -> Snapshot | None:
        return self.watch.snapshot(sandbox_id)

    def events(self) -> list[Event]:
        return self.watch.drain()

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
        self.watch.forget()  # the new stream starts with the full snapshot again
        self._connect()
        self._wait_quiet()

    def _raise_if_broken(self) -> None:
        dead = self._dead()
        if dead:
            raise DriverProcessError(dead)
        if self.watch.error:
            raise self._failure(self.watch.error)

    def describe(self) -> str:
        if self.gate is not None:
            how = "exact: polls and engine events released by the observation gate"
        else:
            how = f"timing approximate: wall-clock polls every {self.poll_interval}s"
        version = f" version {self.version} (GetCapabilities)" if self.version else ""
        return f"{self.name}{version} ({how})"

    def diagnostics(self) -> list[str]:
        """What crossed the boundary since the last call, in time order: the gRPC calls and
        stream messages, and the gate's log of the driver's Docker API requests (by arrival)
        and of the engine events it let go; then what the driver printed meanwhile."""
        with self._notes_lock:
            notes, self._notes = self._notes, []
        if self.gate is not None:
            notes += [(r.at, f"docker API: {r.describe()}") for r in self.gate.drain_log()]
        lines = [line for _, line in sorted(notes, key=lambda n: n[0])]
        if self.process is not None:
            lines += [f"driver output: {line}" for line in self.process.new_output()]
        return lines

    def close(self) -> None:
        """Stop everything, each part even when another fails (the first failure is raised)."""
        self.watch.closing = True
        failures: list[BaseException] = []
        for part in (self._disconnect, self._stop_process, self._close_gate, self._remove_tmp):
            try:
                part()
            except Exception as exc:  # noqa: BLE001 - every part runs; the first is raised
                failures.append(exc)
        if failures:
            raise failures[0]

    def _close_gate(self) -> None:
        if self.gate is not None:
            self.gate.close()

    def _remove_tmp(self) -> None:
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


def channel(socket_path: str, authority: str = DEFAULT_AUTHORITY) -> grpc.Channel:
    """An insecure channel to a driver's Unix socket with ``authority`` as every call's HTTP/2
    ``:authority`` (grpcio's own, derived from the path, is refused by tonic servers)."""
    return grpc.insecure_channel(f"unix:{socket_path}",
                                 options=[("grpc.default_authority", authority)])


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
    if "authority" in options and not options["authority"].strip():
        raise ValueError("openshell-grpc option authority='': give a host name (default "
                         f"{DEFAULT_AUTHORITY})")
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
                       token=o.get("token"), authority=o.get("authority"), **_floats(o))


factory.probe = probe  # type: ignore[attr-defined]
