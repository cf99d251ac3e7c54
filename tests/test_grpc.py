"""The OpenShell compute-driver gRPC path, end to end on the local Docker engine.

The reference driver is served over gRPC by ``python -m pytest_sandbox_conformance.grpc.server``
(a real subprocess on a temporary Unix socket); the first test speaks the RPCs directly, the
second plays a catalog scenario through ``GrpcAdapter`` and the runner. Live: skipped without a
Docker engine (failed instead with ``SANDBOX_CONFORMANCE_REQUIRE_ENGINE=1``) or without grpcio.
"""

from __future__ import annotations

import os
import shlex
import signal
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from test_engine_fake import _make_engine

grpc = pytest.importorskip("grpc")
pb = pytest.importorskip("pytest_sandbox_conformance.grpc.compute_driver_pb2")
pb_grpc = pytest.importorskip("pytest_sandbox_conformance.grpc.compute_driver_pb2_grpc")

pytestmark = pytest.mark.live

ROOT = Path(__file__).resolve().parent.parent
CATALOG = ROOT / "scenarios"
SERVER = [sys.executable, "-m", "pytest_sandbox_conformance.grpc.server"]
TEST_LABEL = "sandbox-conformance.test/grpc"


@pytest.fixture
def docker():
    engine = _make_engine("docker")
    yield engine
    engine.close()


@pytest.fixture
def short_tmp():
    """A short private folder: a Unix socket path must fit in ~107 bytes."""
    folder = tempfile.mkdtemp(prefix="sbx-grpc-test-")
    yield Path(folder)
    subprocess.run(["rm", "-rf", folder], check=False)


def _wait_for_socket(path: Path, proc: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"the server exited ({proc.returncode}): {proc.stderr.read()}")
        if time.monotonic() > deadline:
            pytest.fail(f"no socket at {path} after {timeout}s")
        time.sleep(0.05)


def test_reference_driver_over_grpc_creates_watches_and_deletes(docker, short_tmp):
    run = uuid.uuid4().hex[:8]
    namespace = f"grpc-test-{run}"
    sock = short_tmp / "sock" / "driver.sock"
    env = dict(os.environ, DOCKER_HOST=docker.base_url)
    proc = subprocess.Popen(SERVER + ["--socket", str(sock), "--state-dir", str(short_tmp / "st"),
                                      "--namespace", namespace, "--poll-interval", "0.3"],
                            cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    sid = f"g1-{run}"
    try:
        _wait_for_socket(sock, proc)
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600
        assert stat.S_IMODE(sock.parent.stat().st_mode) == 0o700
        with grpc.insecure_channel(f"unix:{sock}") as channel:
            stub = pb_grpc.ComputeDriverStub(channel)
            caps = stub.GetCapabilities(pb.GetCapabilitiesRequest(), timeout=5)
            assert caps.driver_name
            stream = stub.WatchSandboxes(pb.WatchSandboxesRequest(), timeout=30)
            sandbox = pb.DriverSandbox(id=sid, name="box", spec=pb.DriverSandboxSpec(
                template=pb.DriverSandboxTemplate(labels={TEST_LABEL: run})))
            stub.CreateSandbox(pb.CreateSandboxRequest(sandbox=sandbox), timeout=30)
            with pytest.raises(grpc.RpcError) as again:
                stub.CreateSandbox(pb.CreateSandboxRequest(sandbox=sandbox), timeout=10)
            assert again.value.code() == grpc.StatusCode.ALREADY_EXISTS
            with pytest.raises(grpc.RpcError) as empty:
                stub.CreateSandbox(pb.CreateSandboxRequest(sandbox=pb.DriverSandbox()), timeout=5)
            assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            with pytest.raises(grpc.RpcError) as stop:
                stub.StopSandbox(pb.StopSandboxRequest(sandbox_id=sid), timeout=5)
            assert stop.value.code() == grpc.StatusCode.UNIMPLEMENTED

            instance = None
            for event in stream:
                if event.WhichOneof("payload") == "sandbox" and event.sandbox.sandbox.id == sid:
                    instance = event.sandbox.sandbox.status.instance_id
                    ready = {c.type: c for c in event.sandbox.sandbox.status.conditions}["Ready"]
                    break
            assert instance, "the stream reported no instance"
            container = docker.inspect(instance)  # a real container, made by the driver
            assert container.labels[TEST_LABEL] == run
            assert ready.status == "True", ready
            got = stub.GetSandbox(pb.GetSandboxRequest(sandbox_id=sid), timeout=5)
            assert got.sandbox.status.instance_id == instance
            listed = stub.ListSandboxes(pb.ListSandboxesRequest(), timeout=5)
            assert [s.id for s in listed.sandboxes] == [sid]

            assert stub.DeleteSandbox(pb.DeleteSandboxRequest(sandbox_id=sid, sandbox_name="box"),
                                      timeout=30).deleted is True
            assert any(e.WhichOneof("payload") == "deleted" and e.deleted.sandbox_id == sid
                       for e in stream)  # the stream ends at its 30 s deadline at the latest
            stream.cancel()
            assert stub.DeleteSandbox(pb.DeleteSandboxRequest(sandbox_id=sid), timeout=30
                                      ).deleted is False
        assert docker.list({TEST_LABEL: run}) == []
    except grpc.RpcError as exc:
        if exc.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
            raise
        pytest.fail("the watch stream never sent Deleted")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(timeout=15) == 0, proc.stderr.read()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stderr.close()
            docker.remove_all((c.id for c in docker.list({TEST_LABEL: run})), force=True)
    assert not sock.exists()


def test_grpc_adapter_plays_a_scenario_through_the_runner(docker, short_tmp, tmp_path):
    from pytest_sandbox_conformance.adapters.grpc import factory
    from pytest_sandbox_conformance.engines.docker import DockerEngine
    from pytest_sandbox_conformance.runner import RunConfig, play
    from pytest_sandbox_conformance.scenario import load_file
    from pytest_sandbox_conformance.schedule import pinned

    scenario = next(s for s in load_file(CATALOG / "delete.yaml") if s.id == "delete-idempotent")
    cmd = (shlex.join(SERVER) + " --socket {socket} --state-dir {state_dir} "
           "--namespace {namespace} --poll-interval 0.3")
    run = uuid.uuid4().hex[:8]
    adapters = []

    def make(ctx):
        adapters.append(factory(ctx))
        return adapters[0]

    config = RunConfig(driver=make, engine=lambda: DockerEngine(docker.base_url),
                       state_root=tmp_path, ordered_lists=False, cleanup_engine=True,
                       unique_sandbox_ids=True, extra_labels={TEST_LABEL: run},
                       driver_options={"cmd": cmd, "poll_interval": "0.3", "poll_margin": "0.2"})
    try:
        result = play(scenario, pinned(scenario)[0], config)
        assert result.observations >= 3
        adapter = adapters[0]
        assert adapter.timing == "approximate"
        assert adapter._proc is None, "close() stops the driver process"
    finally:
        docker.remove_all((c.id for c in docker.list({TEST_LABEL: run})), force=True)
