"""The Rust peer driver (``tests/peer_driver``, ``sbx-peer-driver``) against the real engine.

The binary is built once per session by :func:`peer.peer_binary` (skipped without cargo, failed
instead under ``SANDBOX_CONFORMANCE_REQUIRE_PEER=1``) and driven over its gRPC socket with the
project's generated stubs. The engine is Docker (``DOCKER_HOST`` or the default socket) with the
image ``sbx-busybox:local``; without one the tests skip (fail under
``SANDBOX_CONFORMANCE_REQUIRE_ENGINE=1``). Every test uses a namespace of its own and removes the
containers it left (by the namespace label); every container carries the label
``sandbox-conformance.test=peer``. Two tests use an in-process fake engine instead (the exact
container-create body and the exact list request), one the suite's observation gate (list order).
"""

from __future__ import annotations

import http.server
import json
import os
import queue
import re
import socket
import socketserver
import stat
import subprocess
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

grpc = pytest.importorskip("grpc", reason="grpcio is not installed (the grpc extra)")

from peer import PeerDriver, peer_binary  # noqa: E402
from pytest_sandbox_conformance.grpc import compute_driver_pb2 as pb  # noqa: E402

REQUIRE_ENGINE = os.environ.get("SANDBOX_CONFORMANCE_REQUIRE_ENGINE") == "1"
REQUIRE_PODMAN = os.environ.get("SANDBOX_CONFORMANCE_REQUIRE_PODMAN") == "1"
IMAGE = "sbx-busybox:local"
TEST_LABEL = "sandbox-conformance.test"
NS_LABEL = "openshell.ai/sandbox-namespace"
ID_LABEL = "openshell.ai/sandbox-id"
POLL = "0.05"
#: Seconds any expected stream message may take (polls are 0.05 s apart).
WAIT = 10.0


def unique(prefix: str) -> str:
    """A sandbox id no other test (nor another run on the engine) uses: container names are
    global on an engine, and they contain the id."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _no_engine(reason: str) -> None:
    if REQUIRE_ENGINE:
        pytest.fail(f"{reason} (SANDBOX_CONFORMANCE_REQUIRE_ENGINE=1 requires it)", pytrace=False)
    pytest.skip(reason)


def docker_url() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def binary() -> Path:
    return peer_binary()


@pytest.fixture(scope="module")
def engine():
    """The Docker SDK on the driver's engine, with the sandbox image there."""
    try:
        import docker
    except ImportError:
        _no_engine("the Docker SDK is not installed (the live extra)")
    try:
        client = docker.DockerClient(base_url=docker_url(), timeout=60)
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means: no engine here
        _no_engine(f"no Docker engine answers at {docker_url()}: {exc}")
    try:
        client.images.get(IMAGE)
    except Exception as exc:  # noqa: BLE001
        client.close()
        _no_engine(f"the image {IMAGE} is not on the engine ({exc}); "
                   f"make it with `sandbox-conformance make-image`")
    yield client
    client.close()


@pytest.fixture
def namespace(engine):
    ns = f"peer-{uuid.uuid4().hex[:10]}"
    yield ns
    for container in engine.containers.list(all=True, filters={"label": f"{NS_LABEL}={ns}"}):
        container.remove(force=True)


@pytest.fixture
def run(binary, namespace):
    """Start a driver on ``namespace`` (poll interval 0.05 s): ``run(*flags, docker_host=...)``."""
    drivers: list[PeerDriver] = []

    def start(*flags: str, poll: str = POLL, **kwargs) -> PeerDriver:
        driver = PeerDriver(binary, namespace, "--poll-interval", poll, *flags, **kwargs)
        drivers.append(driver)
        return driver.start()

    yield start
    for driver in drivers:
        driver.close()


# -- helpers --------------------------------------------------------------------------------------


class Watch:
    """A WatchSandboxes stream read by a thread; :meth:`next` waits for a matching message."""

    def __init__(self, driver: PeerDriver) -> None:
        self.driver = driver
        self.call = driver.stub.WatchSandboxes(pb.WatchSandboxesRequest())
        self.messages: queue.Queue = queue.Queue()
        self.seen: list[str] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for message in self.call:
                self.messages.put(message)
        except grpc.RpcError as exc:
            self.messages.put(exc)

    def next(self, match, timeout: float = WAIT, what: str = "a matching message"):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {what} within {timeout:g} s; seen: {self.seen}; "
                                     f"the driver's log:\n{self.driver.log()}")
            try:
                message = self.messages.get(timeout=left)
            except queue.Empty:
                continue
            if isinstance(message, grpc.RpcError):
                raise AssertionError(f"the stream failed: {message.code()} {message.details()}; "
                                     f"seen: {self.seen}; the driver's log:\n{self.driver.log()}")
            self.seen.append(describe(message))
            if match(message):
                return message

    def drain(self, quiet: float = 0.3) -> list:
        """Messages until the stream has been quiet for ``quiet`` seconds."""
        out = []
        while True:
            try:
                message = self.messages.get(timeout=quiet)
            except queue.Empty:
                return out
            if not isinstance(message, grpc.RpcError):
                self.seen.append(describe(message))
            out.append(message)

    def cancel(self) -> None:
        self.call.cancel()
        self.thread.join(5)


def describe(message) -> str:
    kind = message.WhichOneof("payload")
    if kind == "sandbox":
        s = message.sandbox.sandbox
        ready = s.status.conditions[0] if s.status.conditions else None
        return (f"sandbox {s.id} {s.status.instance_id[:12]} "
                f"{ready.status if ready else '-'} {ready.reason if ready else '-'}")
    if kind == "deleted":
        return f"deleted {message.deleted.sandbox_id}"
    return kind or "empty"


def snapshot_of(sandbox_id: str, instance: str | None = None, ready: str | None = None,
                reason: str | None = None):
    """A matcher for a sandbox event of ``sandbox_id`` (and its instance / Ready, if given)."""
    def match(message) -> bool:
        if message.WhichOneof("payload") != "sandbox":
            return False
        s = message.sandbox.sandbox
        cond = s.status.conditions[0] if s.status.conditions else None
        return (s.id == sandbox_id and (instance is None or s.status.instance_id == instance)
                and (ready is None or (cond is not None and cond.status == ready))
                and (reason is None or (cond is not None and cond.reason == reason)))
    return match


def deleted_of(sandbox_id: str):
    return lambda m: m.WhichOneof("payload") == "deleted" and m.deleted.sandbox_id == sandbox_id


def sandbox_request(sandbox_id: str, name: str = "demo", token: str | None = "tok",
                    command: tuple[str, ...] = (), gpu: bool = False,
                    env: dict[str, str] | None = None) -> pb.DriverSandbox:
    template = pb.DriverSandboxTemplate(image=IMAGE, labels={TEST_LABEL: "peer", "team": "ml"})
    spec = pb.DriverSandboxSpec(template=template, sandbox_token=token or "",
                                command=list(command), environment=env or {})
    if gpu:
        spec.resource_requirements.gpu.SetInParent()
    return pb.DriverSandbox(id=sandbox_id, name=name, spec=spec)


def create(driver: PeerDriver, sandbox_id: str, **kwargs) -> None:
    driver.stub.CreateSandbox(pb.CreateSandboxRequest(sandbox=sandbox_request(sandbox_id, **kwargs)),
                              timeout=60)


def containers_of(engine, namespace: str, sandbox_id: str | None = None) -> list:
    labels = [f"{NS_LABEL}={namespace}"] + ([f"{ID_LABEL}={sandbox_id}"] if sandbox_id else [])
    return engine.containers.list(all=True, filters={"label": labels})


def rpc_error(call, *args, **kwargs) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call(*args, timeout=30, **kwargs)
    return info.value


# -- the process ----------------------------------------------------------------------------------


def test_help_names_every_flag(binary):
    out = subprocess.run([str(binary), "--help"], capture_output=True, text=True, timeout=30,
                         check=True).stdout
    for flag in ("--bind-socket", "--docker-host", "--namespace", "--poll-interval", "--image",
                 "--supervisor", "--state-dir", "--network", "--name-scheme", "--gpu-style",
                 "--watch", "--engine", "--short-ids", "--generation-label", "--stop-timeout"):
        assert flag in out, flag
    bad = subprocess.run([str(binary), "--bind-socket", "/tmp/x", "--namespace", "n",
                          "--poll-interval", "0"], capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "positive" in bad.stderr


def test_capabilities_and_sigterm_with_an_open_stream(run, namespace):
    driver = run()
    reply = driver.stub.GetCapabilities(pb.GetCapabilitiesRequest(), timeout=10)
    assert reply.driver_name == "sbx-peer-driver"
    assert re.fullmatch(r"\d+\.\d+\.\d+", reply.driver_version)
    assert reply.default_image == IMAGE
    assert stat.S_IMODE(os.stat(driver.socket_path).st_mode) == 0o600
    watch = Watch(driver)
    watch.drain(0.2)
    took = driver.stop()
    assert took < 1.0, f"exit took {took:.2f} s"
    assert driver.process.returncode == 0
    assert not driver.socket_path.exists()
    watch.cancel()
    assert driver.log_lines("SIGTERM: shutting down")


def _world_python() -> str | None:
    """A Python interpreter that another user may run (the venv's may live in root's home)."""
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.path.isfile(candidate) and os.stat(candidate).st_mode & stat.S_IXOTH:
            return candidate
    return None


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (to connect as another user)")
@pytest.mark.skipif(_world_python() is None, reason="no Python that user nobody may run")
def test_clients_of_another_uid_are_refused(run):
    driver = run()
    os.chmod(driver.folder, 0o755)
    os.chmod(driver.socket_path, 0o666)
    # The HTTP/2 client preface; an accepted client gets the server's SETTINGS frame back.
    probe = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_UNIX); s.settimeout(5); s.connect(sys.argv[1])\n"
        "try:\n"
        "    s.sendall(b'PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n' + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0]))\n"
        "    data = s.recv(64)\n"
        "except (BrokenPipeError, ConnectionResetError, socket.timeout):\n    data = b''\n"
        "print(len(data))\n")

    def answered_bytes(uid: int) -> int:
        done = subprocess.run([_world_python(), "-I", "-c", probe, str(driver.socket_path)],
                              capture_output=True, text=True, timeout=30,
                              preexec_fn=(lambda: os.setuid(uid)) if uid else None)
        assert done.returncode == 0, done.stderr
        return int(done.stdout.strip())

    assert answered_bytes(0) > 0
    assert answered_bytes(65534) == 0
    assert driver.log_lines("refused a client with uid 65534")
    # The driver still serves its own uid.
    driver.stub.GetCapabilities(pb.GetCapabilitiesRequest(), timeout=10)


# -- the RPCs -------------------------------------------------------------------------------------


def test_create_get_list_delete(run, engine, namespace):
    s1 = unique("s1")
    driver = run()
    create(driver, s1)
    [container] = containers_of(engine, namespace, s1)
    got = driver.stub.GetSandbox(pb.GetSandboxRequest(sandbox_id=s1), timeout=30).sandbox
    assert (got.id, got.name, got.namespace) == (s1, "demo", namespace)
    assert got.status.instance_id == container.id and len(container.id) == 64
    assert got.status.sandbox_name == container.name == f"openshell-demo-{s1}"
    [ready] = got.status.conditions
    assert (ready.type, ready.status, ready.reason) == ("Ready", "True", "BackendReady")
    by_name = driver.stub.GetSandbox(pb.GetSandboxRequest(sandbox_name="demo"), timeout=30).sandbox
    assert by_name.id == s1
    listed = driver.stub.ListSandboxes(pb.ListSandboxesRequest(), timeout=30).sandboxes
    assert [s.id for s in listed] == [s1]

    token_dir = driver.state_dir / s1
    assert token_dir.is_dir()
    reply = driver.stub.DeleteSandbox(pb.DeleteSandboxRequest(sandbox_id=s1), timeout=60)
    assert reply.deleted is True
    assert containers_of(engine, namespace, s1) == []
    assert not token_dir.exists()
    again = driver.stub.DeleteSandbox(pb.DeleteSandboxRequest(sandbox_id=s1), timeout=60)
    assert again.deleted is False
    err = rpc_error(driver.stub.GetSandbox, pb.GetSandboxRequest(sandbox_id=s1))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    err = rpc_error(driver.stub.GetSandbox, pb.GetSandboxRequest())
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert driver.log_lines(f"rpc DeleteSandbox id={s1}")


def test_requests_without_a_token_or_an_identity_are_refused(run, engine, namespace):
    s1, s2 = unique("s1"), unique("s2")
    driver = run()
    no_token = sandbox_request(s1, token=None)
    err = rpc_error(driver.stub.CreateSandbox, pb.CreateSandboxRequest(sandbox=no_token))
    assert err.code() in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.INVALID_ARGUMENT)
    assert "token" in err.details()
    err = rpc_error(driver.stub.ValidateSandboxCreate,
                    pb.ValidateSandboxCreateRequest(sandbox=no_token))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    for nameless in (sandbox_request("", name="demo"), sandbox_request(s2, name="")):
        for call, request in ((driver.stub.ValidateSandboxCreate, pb.ValidateSandboxCreateRequest),
                              (driver.stub.CreateSandbox, pb.CreateSandboxRequest)):
            assert rpc_error(call, request(sandbox=nameless)).code() == \
                grpc.StatusCode.INVALID_ARGUMENT
    driver.stub.ValidateSandboxCreate(
        pb.ValidateSandboxCreateRequest(sandbox=sandbox_request(s1)), timeout=10)
    assert containers_of(engine, namespace) == []
    assert not (driver.state_dir / s1).exists()


def test_a_second_create_of_one_id_is_already_exists(run, engine, namespace):
    s1 = unique("s1")
    driver = run()
    create(driver, s1)
    err = rpc_error(driver.stub.CreateSandbox,
                    pb.CreateSandboxRequest(sandbox=sandbox_request(s1, name="other")))
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS
    assert len(containers_of(engine, namespace, s1)) == 1


def test_container_shape_supervisor_token_and_labels(run, engine, namespace, tmp_path):
    s1 = unique("s1")
    supervisor = tmp_path / "openshell-sandbox"
    supervisor.write_text('#!/bin/sh\necho "supervised $OPENSHELL_SANDBOX_ID"\n'
                          'cat "$OPENSHELL_SANDBOX_TOKEN_FILE"\nexec "$@"\n')
    supervisor.chmod(0o755)
    driver = run("--supervisor", str(supervisor))
    create(driver, s1, token="secret-1", env={"GREETING": "hi"})
    [container] = containers_of(engine, namespace, s1)
    attrs = container.attrs
    assert attrs["Config"]["Entrypoint"] == ["/opt/openshell/bin/openshell-sandbox"]
    assert attrs["Config"]["Cmd"] == ["sleep", "2147483647"]
    assert attrs["HostConfig"]["NetworkMode"] == "none"
    token_dir = driver.state_dir / s1
    binds = attrs["HostConfig"]["Binds"]
    assert f"{supervisor}:/opt/openshell/bin/openshell-sandbox:ro,z" in binds
    assert f"{token_dir}:/etc/openshell/auth:ro,z" in binds
    labels = attrs["Config"]["Labels"]
    assert {k: labels[k] for k in ("openshell.ai/managed-by", ID_LABEL, "openshell.ai/sandbox-name",
                                    NS_LABEL, TEST_LABEL, "team")} == {
        "openshell.ai/managed-by": "openshell", ID_LABEL: s1,
        "openshell.ai/sandbox-name": "demo", NS_LABEL: namespace, TEST_LABEL: "peer", "team": "ml"}
    assert not [k for k in labels if "generation" in k], labels  # OpenShell main sets none
    env = dict(item.split("=", 1) for item in attrs["Config"]["Env"])
    assert (env["OPENSHELL_SANDBOX_ID"], env["OPENSHELL_SANDBOX"], env["GREETING"]) == \
        (s1, "demo", "hi")
    assert attrs["HostConfig"].get("DeviceRequests") in (None, [])
    # The token file: 0600 in a 0700 folder, readable in the container through the mount.
    assert stat.S_IMODE(token_dir.stat().st_mode) == 0o700
    token_file = token_dir / "token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert token_file.read_text().strip() == "secret-1"
    deadline = time.monotonic() + WAIT
    while b"secret-1" not in container.logs() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert container.logs().decode().split() == ["supervised", s1, "secret-1"]
    container.reload()
    assert container.status == "running"


def test_workspace_name_scheme_and_a_request_command(run, engine, namespace):
    s1 = unique("s1")
    driver = run("--name-scheme", "workspace")
    create(driver, s1, name="My Box", command=("sleep", "1000"))
    [container] = containers_of(engine, namespace, s1)
    assert container.name == f"openshell-default--my-box-{s1}"
    assert container.attrs["Config"]["Cmd"] == ["sleep", "1000"]
    assert container.attrs["Config"]["Entrypoint"] in (None, [])  # no --supervisor
    assert container.labels["openshell.ai/sandbox-workspace"] == "default"


def test_stop_and_start_rpcs(run, engine, namespace):
    s1 = unique("s1")
    driver = run("--stop-timeout", "0")
    watch = Watch(driver)
    create(driver, s1)
    [container] = containers_of(engine, namespace, s1)
    watch.next(snapshot_of(s1, container.id, "True"))
    driver.stub.StopSandbox(pb.StopSandboxRequest(sandbox_id=s1), timeout=60)
    watch.next(snapshot_of(s1, container.id, "False", "ContainerExited"))
    driver.stub.StartSandbox(pb.StartSandboxRequest(sandbox_id=s1), timeout=60)
    watch.next(snapshot_of(s1, container.id, "True", "BackendReady"))
    err = rpc_error(driver.stub.StopSandbox, pb.StopSandboxRequest(sandbox_id="nope"))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    watch.cancel()


# -- the watch stream (polling) -------------------------------------------------------------------


def test_watch_opens_with_a_full_snapshot_for_every_watcher(run, engine, namespace):
    s1, s2 = unique("s1"), unique("s2")
    first = run()
    create(first, s1)
    create(first, s2, name="other")
    first.stop()
    # A fresh process: its stream opens with both sandboxes, listed on open; so does a 2nd one.
    driver = run()
    streams = [Watch(driver), Watch(driver)]
    for watch in streams:
        opening = [watch.next(lambda m: True), watch.next(lambda m: True)]
        assert sorted(m.sandbox.sandbox.id for m in opening) == [s1, s2]
        for message in opening:
            assert message.sandbox.sandbox.status.conditions[0].status == "True"
    assert len(driver.log_lines(": initial snapshot) -> 2 container(s)")) == 2
    assert driver.log_lines("start-up reconcile) -> 2 container(s)")
    for watch in streams:
        watch.cancel()


def test_docker_stop_updates_the_snapshot_and_rm_emits_deleted(run, engine, namespace):
    s1 = unique("s1")
    driver = run()
    watch = Watch(driver)
    create(driver, s1)
    [container] = containers_of(engine, namespace, s1)
    watch.next(snapshot_of(s1, container.id, "True"))
    container.stop(timeout=0)
    watch.next(snapshot_of(s1, container.id, "False", "ContainerExited"))
    container.remove(force=True)
    watch.next(deleted_of(s1))
    # One container list per poll, numbered.
    polls = [int(m.group(1)) for line in driver.log_lines("(poll ")
             if (m := re.search(r"\(poll (\d+)\)", line))]
    assert polls == list(range(1, len(polls) + 1)) and len(polls) >= 3
    watch.cancel()


def test_the_container_listed_last_wins(run, engine, namespace):
    """Two containers with one sandbox's labels: the snapshot is the one listed LAST (the gate
    reorders the poll's list oldest or newest first), as in OpenShell's Docker driver."""
    s1 = unique("s1")
    from pytest_sandbox_conformance.gate import ObservationGate

    with ObservationGate(docker_url()) as gate:
        driver = run(docker_host=gate.url)
        watch = Watch(driver)
        with gate.during("CreateSandbox"):
            create(driver, s1)
        [original] = containers_of(engine, namespace, s1)
        copy = engine.containers.run(IMAGE, ["sleep", "2147483647"], detach=True,
                                     labels=dict(original.labels), network_mode="none",
                                     name=f"{original.name}-copy")
        watch.next(snapshot_of(s1, original.id, "True"))
        gate.set_holding(True)
        try:
            assert gate.wait_held(WAIT)
            gate.observe("oldest", WAIT)  # original, copy: the copy is last
            watch.next(snapshot_of(s1, copy.id), what="the copy's snapshot")
            gate.observe("newest", WAIT)  # copy, original: the original is last
            watch.next(snapshot_of(s1, original.id), what="the original's snapshot")
            with gate.during("GetSandbox"):  # get answers with the FIRST listed (newest: copy)
                got = driver.stub.GetSandbox(pb.GetSandboxRequest(sandbox_id=s1), timeout=30)
            assert got.sandbox.status.instance_id == copy.id
            # Delete removes every container with the sandbox's id.
            with gate.during("DeleteSandbox"):
                reply = driver.stub.DeleteSandbox(pb.DeleteSandboxRequest(sandbox_id=s1),
                                                  timeout=60)
            assert reply.deleted and containers_of(engine, namespace, s1) == []
        finally:
            gate.set_holding(False)
            watch.cancel()
            driver.stop()


def test_short_ids(run, engine, namespace):
    s1 = unique("s1")
    driver = run("--short-ids")
    watch = Watch(driver)
    create(driver, s1)
    [container] = containers_of(engine, namespace, s1)
    watch.next(snapshot_of(s1, container.id[:12], "True"))
    got = driver.stub.GetSandbox(pb.GetSandboxRequest(sandbox_id=s1), timeout=30).sandbox
    assert got.status.instance_id == container.id[:12]
    watch.cancel()


def test_engine_errors_back_off(run):
    s1 = unique("s1")
    driver = run(docker_host="tcp://127.0.0.1:1")
    driver.stub.GetCapabilities(pb.GetCapabilitiesRequest(), timeout=10)
    err = rpc_error(driver.stub.ListSandboxes, pb.ListSandboxesRequest())
    assert err.code() == grpc.StatusCode.UNAVAILABLE
    deadline = time.monotonic() + WAIT
    while len(driver.log_lines("failed:")) < 5 and time.monotonic() < deadline:
        time.sleep(0.1)
    waits = [float(m.group(1)) for line in driver.log_lines("next poll in")
             if (m := re.search(r"next poll in ([\d.]+) s", line))]
    assert waits[:3] == [0.1, 0.2, 0.4], driver.log()


# -- the watch stream (events) --------------------------------------------------------------------


def test_events_mode_emits_deleted_on_remove_without_polling(run, engine, namespace):
    s1 = unique("s1")
    driver = run("--watch", "events")
    watch = Watch(driver)
    create(driver, s1)
    [container] = containers_of(engine, namespace, s1)
    watch.next(snapshot_of(s1, container.id, "True"))
    lists = len(driver.log_lines("GET /containers/json"))
    container.stop(timeout=0)
    watch.next(snapshot_of(s1, container.id, "False", "ContainerExited"))
    container.remove(force=True)
    watch.next(deleted_of(s1))
    time.sleep(0.3)  # six poll intervals
    assert len(driver.log_lines("GET /containers/json")) == lists
    assert not driver.log_lines("(poll ")
    assert driver.log_lines("engine GET /events type=container")
    assert driver.log_lines("engine event destroy")
    watch.cancel()


def test_events_mode_on_podman(binary):
    s1 = unique("s1")
    url = os.environ.get("SANDBOX_PODMAN_URL")
    if not url:
        if REQUIRE_PODMAN:
            pytest.fail("SANDBOX_PODMAN_URL is not set (SANDBOX_CONFORMANCE_REQUIRE_PODMAN=1 "
                        "requires Podman)", pytrace=False)
        pytest.skip("no Podman engine (SANDBOX_PODMAN_URL is not set; .ci/engines.sh podman)")
    import docker

    client = docker.DockerClient(base_url=url, timeout=60)
    namespace = f"peer-{uuid.uuid4().hex[:10]}"
    driver = PeerDriver(binary, namespace, "--poll-interval", POLL, "--watch", "events",
                        "--engine", "podman", "--short-ids", docker_host=url)
    try:
        driver.start()
        watch = Watch(driver)
        create(driver, s1)
        [container] = containers_of(client, namespace, s1)
        watch.next(snapshot_of(s1, container.id[:12], "True"))
        container.remove(force=True)
        watch.next(deleted_of(s1))
        assert driver.log_lines("GET /v5.0.0/libpod/events?stream=true")
        assert not driver.log_lines("(poll ")
        watch.cancel()
    finally:
        driver.close()
        for leftover in containers_of(client, namespace):
            leftover.remove(force=True)
        client.close()


# -- against a fake engine: the exact requests ----------------------------------------------------


class FakeEngine:
    """Just enough of the Docker Engine API on a Unix socket to create sandboxes: records every
    request (and each create's body); containers are 'running' once started."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "engine.sock"
        self.requests: list[tuple[str, str]] = []
        self.bodies: dict[str, dict] = {}
        self.containers: dict[str, dict] = {}
        self.lock = threading.Lock()
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _answer(self, status: int, body: object = None) -> None:
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _route(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                with fake.lock:
                    fake.requests.append((method, self.path))
                    status, body = fake.route(method, self.path, raw)
                self._answer(status, body)

            def do_GET(self) -> None:
                self._route("GET")

            def do_POST(self) -> None:
                self._route("POST")

            def do_DELETE(self) -> None:
                self._route("DELETE")

        self.server = socketserver.ThreadingUnixStreamServer(str(self.path), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"unix://{self.path}"

    def route(self, method: str, target: str, raw: bytes) -> tuple[int, object]:
        path = re.sub(r"^/v[\d.]+", "", urlsplit(target).path)
        query = parse_qs(urlsplit(target).query)
        if method == "GET" and path == "/version":
            return 200, {"ApiVersion": "1.41", "Version": "20.10-fake"}
        if method == "GET" and path == "/containers/json":
            wanted = json.loads(query["filters"][0])["label"] if "filters" in query else []
            return 200, [c for c in self.containers.values()
                         if set(wanted) <= {f"{k}={v}" for k, v in c["Labels"].items()}]
        if method == "POST" and path == "/containers/create":
            name = query["name"][0]
            body = json.loads(raw)
            cid = uuid.uuid4().hex + uuid.uuid4().hex
            self.bodies[name] = body
            self.containers[cid] = {"Id": cid, "Names": [f"/{name}"], "Labels": body["Labels"],
                                    "State": "created", "Created": int(time.time())}
            return 201, {"Id": cid, "Warnings": []}
        m = re.fullmatch(r"/containers/([0-9a-f]+)/start", path)
        if method == "POST" and m and m.group(1) in self.containers:
            self.containers[m.group(1)]["State"] = "running"
            return 204, None
        m = re.fullmatch(r"/containers/([0-9a-f]+)", path)
        if method == "DELETE" and m and self.containers.pop(m.group(1), None):
            return 204, None
        return 404, {"message": f"fake engine: no route for {method} {target}"}

    def lists(self) -> list[str]:
        with self.lock:
            return [t for m, t in self.requests if m == "GET" and "/containers/json" in t]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_docker(tmp_path):
    engine = FakeEngine(tmp_path)
    yield engine
    engine.close()


def test_gpu_device_requests_in_the_create_body(binary, fake_docker):
    styles = {
        "cdi": {"Driver": "cdi", "DeviceIDs": ["nvidia.com/gpu=all"]},
        "gpus": {"Count": -1, "Capabilities": [["gpu"]]},
    }
    for style, expected in styles.items():
        with PeerDriver(binary, f"gpu-{style}", "--poll-interval", POLL, "--gpu-style", style,
                        docker_host=fake_docker.url) as driver:
            create(driver, f"g-{style}", gpu=True)
            create(driver, f"c-{style}")
        gpu_body = fake_docker.bodies[f"openshell-demo-g-{style}"]
        [request] = gpu_body["HostConfig"]["DeviceRequests"]
        assert {k: v for k, v in request.items() if v not in (None, "", [], {})} == expected
        assert not fake_docker.bodies[f"openshell-demo-c-{style}"]["HostConfig"].get(
            "DeviceRequests")


def test_a_generation_label_only_when_asked(binary, fake_docker):
    for flag, name in (((), "plain"), (("--generation-label",), "generation")):
        with PeerDriver(binary, "ns-gen", "--poll-interval", POLL, *flag,
                        docker_host=fake_docker.url) as driver:
            create(driver, name)
    key = "openshell.ai/docker-instance-generation"
    assert key not in fake_docker.bodies["openshell-demo-plain"]["Labels"]
    value = fake_docker.bodies["openshell-demo-generation"]["Labels"][key]
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", value)


def test_one_exact_container_list_per_poll(binary, fake_docker):
    with PeerDriver(binary, "ns-exact", "--poll-interval", POLL,
                    docker_host=fake_docker.url) as driver:
        time.sleep(0.5)
        lists = fake_docker.lists()
        polls = driver.log_lines("(poll ")
        assert driver.log_lines("(start-up reconcile) -> 0 container(s)")
    filters = '{"label":["openshell.ai/managed-by=openshell","openshell.ai/sandbox-namespace=ns-exact"]}'
    for target in lists:
        split = urlsplit(target)
        assert re.fullmatch(r"(/v1\.\d+)?/containers/json", split.path), target
        assert parse_qs(split.query) == {"all": ["true"], "size": ["false"],
                                         "filters": [filters]}, target
    # The start-up reconcile, then exactly one list per poll (one may be under way at the end).
    assert len(polls) >= 4
    assert len(lists) - 1 - len(polls) in (-1, 0, 1), (lists, polls)
