"""The OpenShell compute-driver gRPC path, end to end on the local Docker engine.

The reference driver is served over gRPC by ``python -m reference_driver.grpc_server``
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
import threading
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
SERVER = [sys.executable, "-m", "reference_driver.grpc_server"]
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


# -- the adapter, through the runner ----------------------------------------------------------------

SERVED = (shlex.join(SERVER) + " --socket {socket} --state-dir {state_dir} --namespace {namespace}"
          " --poll-interval {poll} --require-token")
TESTS = Path(__file__).resolve().parent


def _scenario(file: str, scenario_id: str):
    from pytest_sandbox_conformance.scenario import load_file

    return next(s for s in load_file(CATALOG / file) if s.id == scenario_id)


def _pinned(scenario, name: str):
    from pytest_sandbox_conformance.exploration.schedule import pinned

    return next(p for p in pinned(scenario) if p.name == name)


@pytest.fixture
def play_grpc(docker, tmp_path, monkeypatch):
    """play(scenario, schedule, **options) through a GrpcAdapter on the local engine; returns
    (result or the ConformanceFailure raised, the adapter, seconds taken)."""
    from pytest_sandbox_conformance.adapters.grpc import factory
    from pytest_sandbox_conformance.engines.docker import DockerEngine
    from pytest_sandbox_conformance.run.runner import ConformanceFailure, RunConfig, play

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), str(ROOT)]))
    run = uuid.uuid4().hex[:8]

    def go(scenario, schedule, poll="0.05", extra_cmd="", server_poll=None, **options):
        adapters = []

        def make(ctx):
            adapters.append(factory(ctx))
            return adapters[-1]

        opts = {"cmd": SERVED.replace("{poll}", server_poll or poll) + extra_cmd,
                "poll_interval": poll}
        opts.update({k: str(v) for k, v in options.items()})
        opts = {k: v for k, v in opts.items() if v != "None"}
        config = RunConfig(driver=make, engine=lambda: DockerEngine(docker.base_url),
                           state_root=tmp_path, ordered_lists=False, cleanup_engine=True,
                           unique_sandbox_ids=True, extra_labels={TEST_LABEL: run},
                           namespace_prefix=f"grpc-{run}", driver_options=opts)
        started = time.monotonic()
        try:
            outcome = play(scenario, schedule, config)
        except ConformanceFailure as exc:
            outcome = exc
        return outcome, (adapters[-1] if adapters else None), time.monotonic() - started

    yield go
    docker.remove_all((c.id for c in docker.list({TEST_LABEL: run})), force=True)


def test_gated_adapter_observes_exactly_once_per_scheduled_observation(play_grpc):
    from pytest_sandbox_conformance.run.runner import RunResult

    scenario = _scenario("delete.yaml", "delete-idempotent")
    result, adapter, _ = play_grpc(scenario, _pinned(scenario, "every-step"))
    assert isinstance(result, RunResult), result
    assert adapter.timing == "exact" and "list-order" in adapter.capabilities
    # Every observation the runner made released exactly one of the driver's polls.
    assert adapter.gate.observations == result.observations >= 3
    assert not adapter.process.running(), "close() stops the driver process"
    timeline = result.timeline.render()
    assert "grpc CreateSandbox -> OK" in timeline
    assert "docker API: GET" in timeline and "released as observation 1" in timeline


def _reported_at(outcome, observation: int, sandbox_key: str = "s1") -> str | None:
    """The instance binding the driver reported at an observation (from the timeline's data)."""
    for moment in outcome.timeline.moments:
        if moment.kind == "report" and moment.observation == observation \
                and moment.data["sandbox"].startswith(sandbox_key):
            driver = moment.data["driver"]
            return None if driver is None else driver["instance"]
    raise AssertionError(f"no report at observation {observation}")


@pytest.mark.parametrize("name, first_listed", [("copy-listed-first", "X"),
                                                ("copy-listed-last", "A")])
def test_gated_adapter_makes_list_orders_exact(play_grpc, name, first_listed):
    # A driver that trusts whichever matching container it is listed first reports exactly the
    # container the gate put first: the order the client really got, not a note's text.
    scenario = _scenario("copied-labels.yaml", "copied-labels-running-copy")
    schedule = _pinned(scenario, name)
    outcome, adapter, _ = play_grpc(scenario, schedule,
                                    extra_cmd=" --driver broken_drivers:TrustsLabelsFirstWins")
    assert _reported_at(outcome, 1) == first_listed, outcome.timeline.render()


def test_gated_adapter_restarts_the_driver_process(play_grpc):
    from pytest_sandbox_conformance.run.runner import RunResult

    scenario = _scenario("restart.yaml", "restart-mid-intent")
    result, adapter, _ = play_grpc(scenario, _pinned(scenario,
                                                     "restart-between-intent-and-adoption"))
    assert isinstance(result, RunResult), result
    assert "restart" in adapter.capabilities
    assert result.timeline.render().count("start the driver:") == 2


def test_wall_clock_mode_is_timing_approximate(play_grpc):
    from pytest_sandbox_conformance.run.runner import RunResult

    scenario = _scenario("delete.yaml", "delete-idempotent")
    result, adapter, _ = play_grpc(scenario, _pinned(scenario, "every-step"), poll="0.2",
                                   gate="off", poll_margin="0.2")
    assert isinstance(result, RunResult), result
    assert adapter.gate is None and adapter.timing == "approximate"
    assert "list-order" not in adapter.capabilities
    assert "timing approximate" in adapter.describe()


# -- bad input: each a clear failure of the scenario, bounded in time, with the driver's output --


def _driver_failure(outcome, *needles):
    from pytest_sandbox_conformance.run.runner import ConformanceFailure

    assert isinstance(outcome, ConformanceFailure), outcome
    assert outcome.failures[0].check == "driver" and not outcome.requirements
    text = outcome.render()
    for needle in needles:
        assert needle in text, text
    return text


def _play_faulty(play_grpc, **options):
    """delete-idempotent under every-step with a faulty driver: (outcome, seconds)."""
    scenario = _scenario("delete.yaml", "delete-idempotent")
    outcome, _, took = play_grpc(scenario, _pinned(scenario, "every-step"), **options)
    return outcome, took


def test_a_socket_that_does_not_exist_fails_at_once(play_grpc, short_tmp):
    outcome, took = _play_faulty(play_grpc, cmd="None",
                                 socket=str(short_tmp / "nothing.sock"))
    _driver_failure(outcome, "no such socket", "nothing.sock")
    assert took < 5


def test_a_driver_that_never_opens_its_socket_fails_within_the_start_timeout(play_grpc):
    outcome, took = _play_faulty(play_grpc,
                                 cmd="sh -c 'echo starting but never serving >&2; sleep 60'",
                                 start_timeout=2)
    _driver_failure(outcome, "no socket at", "starting but never serving")
    assert took < 8


def test_a_driver_that_exits_at_start_fails_with_its_status_and_output(play_grpc):
    outcome, took = _play_faulty(play_grpc,
                                 extra_cmd=" --driver no_such_module:Nothing")
    _driver_failure(outcome, "exited with status", "no_such_module")
    assert took < 10


def test_a_driver_that_crashes_mid_scenario_fails_with_its_output(play_grpc):
    outcome, took = _play_faulty(play_grpc,
                                 extra_cmd=" --driver grpc_faults:CrashesOnDelete",
                                 step_timeout=3)
    text = _driver_failure(outcome, "exited with status 3", "dying on purpose in delete")
    assert "step 2: delete" in text  # the timeline up to the crash
    assert took < 15


def test_a_driver_that_hangs_fails_within_the_step_timeout(play_grpc):
    outcome, took = _play_faulty(play_grpc,
                                 extra_cmd=" --driver grpc_faults:HangsOnCreate", step_timeout=2)
    _driver_failure(outcome, "CreateSandbox did not answer within the step timeout (2.0s)",
                    "hanging on purpose in create")
    assert took < 20


def test_an_unexpected_error_code_fails_the_scenario(play_grpc):
    outcome, took = _play_faulty(play_grpc,
                                 extra_cmd=" --driver grpc_faults:FailsCreate", step_timeout=3)
    _driver_failure(outcome, "CreateSandbox failed: UNKNOWN")
    assert took < 15


def test_a_driver_that_never_polls_behind_the_gate_fails_clearly(play_grpc):
    outcome, took = _play_faulty(play_grpc, server_poll="1000",
                                 step_timeout=1)
    _driver_failure(outcome, "made no container-list request or event stream", "DOCKER_HOST")
    assert took < 10


def test_a_driver_that_reaches_the_engine_without_the_gate_fails_saying_so(play_grpc, docker):
    outcome, took = _play_faulty(play_grpc, extra_cmd=f" --docker-host {docker.base_url}",
                                 step_timeout=1)
    _driver_failure(outcome, "saw no request at all from the driver",
                    "reaches the engine without the gate", "/var/run/docker.sock")
    assert took < 10


def test_a_driver_that_creates_behind_the_gates_back_fails_at_its_create(play_grpc, docker,
                                                                           monkeypatch):
    monkeypatch.setenv("SBX_DIRECT_ENGINE", docker.base_url)
    outcome, took = _play_faulty(play_grpc,
                                 extra_cmd=" --driver grpc_faults:CreatesBehindTheGatesBack")
    text = _driver_failure(outcome, "reaches the engine without the observation gate",
                           "the gate saw no request at all during CreateSandbox")
    assert "step 1: create" in text
    assert took < 10  # at once, not after the step timeout


# -- drivers that start, stop and delete as real drivers do ------------------------------------


def test_a_driver_that_lists_at_start_and_to_open_its_stream_is_observed_exactly(play_grpc):
    # OpenShell's drivers list before they serve (their reconcile seed) and to build a stream's
    # first snapshot, before its headers. Those lists pass (start-up); the first poll after
    # them is the first observation, after a restart too.
    from pytest_sandbox_conformance.run.runner import RunResult

    scenario = _scenario("restart.yaml", "restart-mid-intent")
    result, adapter, took = play_grpc(scenario,
                                      _pinned(scenario, "restart-between-intent-and-adoption"),
                                      extra_cmd=" --driver grpc_faults:ListsLikeOpenShell")
    assert isinstance(result, RunResult), result
    assert adapter.gate.observations == result.observations
    timeline = result.timeline.render()
    assert timeline.count("start the driver:") == 2
    assert timeline.count("start-up reconcile saw") == 2
    assert "passed (start-up)" in timeline and "released as observation 1" in timeline


def test_a_driver_that_first_polls_well_after_its_start_is_observed_exactly(play_grpc):
    # No list at start, none while its stream opens: its first poll, 0.6 s later, is held as the
    # first observation (start-up ends without it; the suite waits for it).
    from pytest_sandbox_conformance.run.runner import RunResult

    scenario = _scenario("delete.yaml", "delete-idempotent")
    result, adapter, _ = play_grpc(scenario, _pinned(scenario, "every-step"), poll="0.6")
    assert isinstance(result, RunResult), result
    assert adapter.gate.observations == result.observations


def test_stopping_answers_the_held_poll_first(docker, tmp_path):
    # A driver that exits only once its poll's list came back: SIGTERM while the gate holds the
    # list would leave it to the SIGKILL ten seconds later.
    from pytest_sandbox_conformance.adapters.base import DriverContext
    from pytest_sandbox_conformance.adapters.grpc import factory
    from pytest_sandbox_conformance.engines.docker import DockerEngine

    env_path = os.pathsep.join([str(TESTS), str(ROOT)])
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = env_path
    try:
        cmd = SERVED.replace("{poll}", "0.05") + " --driver grpc_faults:WaitsForItsPollOnStop"
        ctx = DriverContext(DockerEngine(docker.base_url), tmp_path, f"stop-{uuid.uuid4().hex[:8]}",
                            "sbx-busybox:local", {"cmd": cmd, "poll_interval": "0.05"})
        adapter = factory(ctx)
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old
    process = adapter.process.proc
    assert adapter.gate.held_count() == 1  # its first poll waits at the gate
    started = time.monotonic()
    adapter.close()
    took = time.monotonic() - started
    assert process.returncode == 0, "the driver was killed instead of stopping"
    assert took < 5, f"close() took {took:.1f}s"


def test_close_stops_everything_even_when_a_part_fails(docker, tmp_path, monkeypatch):
    from pytest_sandbox_conformance.adapters.base import DriverContext
    from pytest_sandbox_conformance.adapters.grpc import factory
    from pytest_sandbox_conformance.engines.docker import DockerEngine

    cmd = SERVED.replace("{poll}", "0.05")
    ctx = DriverContext(DockerEngine(docker.base_url), tmp_path, f"close-{uuid.uuid4().hex[:8]}",
                        "sbx-busybox:local", {"cmd": cmd, "poll_interval": "0.05"})
    adapter = factory(ctx)
    process, gate, folder = adapter.process.proc, adapter.gate, Path(adapter._tmp)

    def broken() -> None:
        raise RuntimeError("the watch stream would not close")

    monkeypatch.setattr(adapter, "_disconnect", broken)
    with pytest.raises(RuntimeError, match="would not close"):
        adapter.close()
    assert process.poll() is not None, "the driver still runs"
    assert not gate.socket_path.exists() and not folder.exists()


def test_a_delete_waits_for_deleted_with_the_lists_it_needs_passing(play_grpc):
    from pytest_sandbox_conformance.run.runner import RunResult

    scenario = _scenario("delete.yaml", "delete-idempotent")
    result, adapter, took = play_grpc(scenario, _pinned(scenario, "every-step"), step_timeout=3,
                                      extra_cmd=" --driver grpc_faults:DeletesInTheBackground")
    assert isinstance(result, RunResult), result
    timeline = result.timeline.render()
    assert "passed (during DeleteSandbox)" in timeline
    assert "waited" not in timeline, timeline  # the Deleted came, no wait ran out
    assert adapter.gate.observations == result.observations
    assert took < 3 * 3


# -- the plugin: a broken driver served over gRPC fails with a readable timeline ----------------


def test_a_broken_driver_served_over_grpc_fails_with_a_readable_timeline(docker, tmp_path):
    cmd = (SERVED.replace("{poll}", "0.05") + " --driver broken_drivers:TrustsLabelsFirstWins")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), str(ROOT)]))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--sandbox-driver=openshell-grpc",
         "--sandbox-engine=docker", f"--sandbox-engine-url={docker.base_url}",
         f"--sandbox-driver-cmd={cmd}", "--sandbox-poll-interval=0.05",
         "--sandbox-schedule=copied-labels-running-copy@copy-listed-first",
         f"--sandbox-report={tmp_path / 'report.json'}", "-p", "no:cacheprovider", "-q"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "OWN-2" in out, out
    for needle in ("grpc CreateSandbox -> OK", "docker API: GET", "released as observation",
                   "grpc WatchSandboxes <- sandbox", "replay:", "--sandbox-driver-cmd="):
        assert needle in out, (needle, out)


def test_a_running_driver_is_tested_through_its_socket_in_its_own_namespace(docker, short_tmp,
                                                                            tmp_path):
    """Socket mode: the suite did not start the driver, so observations are wall-clock waits
    and every run uses the driver's one namespace."""
    from pytest_sandbox_conformance.adapters.grpc import factory, probe
    from pytest_sandbox_conformance.engines.docker import DockerEngine
    from pytest_sandbox_conformance.run.runner import RunConfig, RunResult, play

    run = uuid.uuid4().hex[:8]
    namespace = f"grpc-socket-{run}"
    sock = short_tmp / "running" / "driver.sock"
    options = {"socket": str(sock), "namespace": namespace, "poll_interval": "0.2",
               "poll_margin": "0.2"}
    found = probe(options, "docker")
    assert found.timing == "approximate" and found.namespace == namespace
    assert "restart" not in found.capabilities and "list-order" not in found.capabilities
    proc = subprocess.Popen(SERVER + ["--socket", str(sock), "--state-dir", str(short_tmp / "st"),
                                      "--namespace", namespace, "--poll-interval", "0.2"],
                            cwd=ROOT, env=dict(os.environ, DOCKER_HOST=docker.base_url),
                            stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_socket(sock, proc)
        scenario = _scenario("delete.yaml", "delete-idempotent")
        config = RunConfig(driver=factory, engine=lambda: DockerEngine(docker.base_url),
                           state_root=tmp_path, ordered_lists=False, cleanup_engine=True,
                           unique_sandbox_ids=True, extra_labels={TEST_LABEL: run},
                           namespace=found.namespace, driver_options=options)
        for _ in range(2):  # two runs, one after the other, in the same namespace
            result = play(scenario, _pinned(scenario, "every-step"), config)
            assert isinstance(result, RunResult)
        assert proc.poll() is None, "the suite never stops a driver it did not start"
        from pytest_sandbox_conformance.adapters.base import DriverContext

        adapter = factory(DriverContext(DockerEngine(docker.base_url), tmp_path, namespace,
                                        "sbx-busybox:local", options))
        try:
            started = time.monotonic()
            assert adapter.get_sandbox("no-such-sandbox") is None  # NOT_FOUND is an answer
            assert time.monotonic() - started < 0.5
            assert adapter.list_sandboxes() is not None
        finally:
            adapter.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
        proc.stderr.close()
        docker.remove_all((c.id for c in docker.list({TEST_LABEL: run})), force=True)


def test_a_driver_with_only_the_required_rpcs_and_unknown_fields_is_tested(docker, short_tmp,
                                                                             tmp_path):
    """Optional RPCs answering UNIMPLEMENTED (ValidateSandboxCreate, GetCapabilities) are
    tolerated, and so are fields and payloads of a newer driver that this proto does not know."""
    from concurrent import futures

    from pytest_sandbox_conformance.adapters.grpc import factory
    from pytest_sandbox_conformance.engines.docker import DockerEngine
    from pytest_sandbox_conformance.run.runner import RunConfig, RunResult, play
    from reference_driver import ReferenceDriver
    from reference_driver.grpc_server import ComputeDriverServicer

    class Minimal(ComputeDriverServicer):
        ValidateSandboxCreate = pb_grpc.ComputeDriverServicer.ValidateSandboxCreate
        GetCapabilities = pb_grpc.ComputeDriverServicer.GetCapabilities

        def WatchSandboxes(self, request, context):
            for message in super().WatchSandboxes(request, context):
                # Field 111 (a varint) is unknown to this proto: a newer driver's addition.
                yield pb.WatchSandboxesEvent.FromString(message.SerializeToString()
                                                        + b"\xf8\x06\x01")

    run = uuid.uuid4().hex[:8]
    namespace = f"grpc-minimal-{run}"
    engine = DockerEngine(docker.base_url)
    stopping = threading.Event()
    servicer = Minimal(ReferenceDriver(engine, short_tmp / "st", namespace=namespace), stopping)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    pb_grpc.add_ComputeDriverServicer_to_server(servicer, server)
    sock = short_tmp / "driver.sock"
    server.add_insecure_port(f"unix:{sock}")
    server.start()
    poller = threading.Thread(target=servicer.poll_forever, args=(0.1,), daemon=True)
    poller.start()
    options = {"socket": str(sock), "namespace": namespace, "poll_interval": "0.1",
               "poll_margin": "0.2"}
    adapters = []

    def make(ctx):
        adapters.append(factory(ctx))
        return adapters[-1]

    try:
        scenario = _scenario("delete.yaml", "delete-idempotent")
        config = RunConfig(driver=make, engine=lambda: engine, state_root=tmp_path,
                           ordered_lists=False, cleanup_engine=True, unique_sandbox_ids=True,
                           extra_labels={TEST_LABEL: run}, namespace=namespace,
                           driver_options=options)
        result = play(scenario, _pinned(scenario, "every-step"), config)
        assert isinstance(result, RunResult)
        assert adapters[0].name == "openshell-grpc"  # no GetCapabilities: the default name
        timeline = result.timeline.render()
        assert "grpc ValidateSandboxCreate -> UNIMPLEMENTED" in timeline
        assert "grpc CreateSandbox -> OK" in timeline
    finally:
        stopping.set()
        server.stop(grace=0.5).wait(5)
        poller.join(timeout=5)
        engine.remove_all((c.id for c in engine.list({TEST_LABEL: run})), force=True)
        engine.close()


def _running(pid: int) -> bool:
    """Whether ``pid`` is a process that has not exited. A dead process stays a zombie until its
    parent reaps it: the driver's parent is the killed suite, so it is reparented to PID 1 (or a
    subreaper), which may reap late. PID 1 of this project's machines reaps orphans every ~2 s,
    later under load: ``kill(pid, 0)`` still succeeds on a zombie, and a test that waited for it
    to fail flaked. A zombie has exited: state ``Z`` in ``/proc/<pid>/stat``."""
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return status.rpartition(")")[2].split()[0] not in ("Z", "X")


def test_a_killed_suite_leaves_no_driver_process_behind(docker, tmp_path):
    """The suite started the driver; if the suite is SIGKILLed (no cleanup runs), the driver
    still goes (Linux: PR_SET_PDEATHSIG)."""
    if not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux's")
    script = tmp_path / "suite.py"
    script.write_text(f"""
import sys, time
from pathlib import Path
from pytest_sandbox_conformance.adapters.base import DriverContext
from pytest_sandbox_conformance.adapters.grpc import factory
from pytest_sandbox_conformance.engines.docker import DockerEngine
cmd = {SERVED.replace("{poll}", "0.05")!r}
ctx = DriverContext(DockerEngine({docker.base_url!r}), Path({str(tmp_path)!r}), "pdeath-test",
                    "sbx-busybox:local", {{"cmd": cmd, "poll_interval": "0.05"}})
adapter = factory(ctx)
print(adapter.process.proc.pid, flush=True)
time.sleep(120)
""")
    suite = subprocess.Popen([sys.executable, str(script)], cwd=ROOT, stdout=subprocess.PIPE,
                             text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        driver_pid = int(suite.stdout.readline())
        assert _running(driver_pid)  # the driver runs
        suite.kill()
        suite.wait(timeout=10)
        # SIGTERM starts the driver's own bounded shutdown (grpc_server.serve: up to 1 s for its
        # lock, 5 s for the server's stop, 5 s for its poller to end), slower on a loaded
        # machine: the driver has up to 30 s to go (10 s failed once in CI under load).
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if not _running(driver_pid):
                break
            time.sleep(0.05)
        else:
            os.kill(driver_pid, signal.SIGKILL)
            pytest.fail("the driver outlived the killed suite")
    finally:
        if suite.poll() is None:
            suite.kill()
        suite.stdout.close()
