"""Engine behaviour, written against the :class:`Engine` interface (Docker's semantics).

Every test outside :class:`TestFakeSteering` uses only the ``Engine`` methods, through the
``engine`` fixture, which is parametrized over the engine kinds in :data:`ENGINE_KINDS`: the
in-memory fake and real Docker (``DockerEngine`` on ``DOCKER_HOST`` or the current docker context,
with the image made by ``sandbox-conformance make-image``). The docker params are marked ``live``;
without a reachable engine (or without the image) they skip with the reason, and with
``SANDBOX_CONFORMANCE_REQUIRE_ENGINE=1`` (CI) they fail instead. To be safe on a shared engine,
every test names its containers with a per-test prefix, labels them with a per-test run label,
lists only through that label, and the fixture removes what a test left behind; parallel workers
(``-n``) never share a name or a label value.

Where Docker's answers depend on the host (a runtime or a device driver it has not configured),
the tests ask the engine what it has (``runtimes()``) or accept exactly the two answers Docker
gives; ``docs/engines.md`` lists every difference between the fake and Docker.

:class:`TestFakeSteering` holds the fake-only steering (list orders, faults, ``set_state``,
``before`` hooks, call counters); it uses the ``fake`` fixture, never ``engine``.
"""

from __future__ import annotations

import os
import re
import uuid

import pytest

from pytest_sandbox_conformance.engines.base import (
    ALL_STATES,
    ContainerSpec,
    DeviceRequest,
    Engine,
    EngineConflict,
    EngineError,
    EngineInvalid,
    EngineNotFound,
    EngineUnavailable,
    MISSING_EXECUTABLE,
    valid_container_name,
)
from pytest_sandbox_conformance.engines.fake import EMPTY_ID, FakeEngine, ids_of, order_first
from pytest_sandbox_conformance.engines.image import DEFAULT_IMAGE

#: The image the suite runs sandboxes from by default (the ``image`` option).
IMAGE = DEFAULT_IMAGE  # "sbx-busybox:local"
SLEEP = ("sleep", "2147483647")
RUN = "sandbox-conformance.test/run"
ROLE = "sandbox-conformance.test/role"
HEX64 = re.compile(r"^[0-9a-f]{64}$")


#: ``SANDBOX_CONFORMANCE_REQUIRE_ENGINE=1``: a live engine that is not there fails, not skips.
REQUIRE_ENGINE = os.environ.get("SANDBOX_CONFORMANCE_REQUIRE_ENGINE") == "1"


def _fake() -> Engine:
    return FakeEngine(seed=uuid.uuid4().hex)


_unavailable: dict[str, str] = {}  # live kind -> why it cannot run (asked once per process)

from conftest import ENGINE_UNAVAILABLE  # noqa: E402

#: Where the ``podman`` kind finds Podman's Docker-compatible API (``.ci/engines.sh`` starts it).
PODMAN_URL = os.environ.get("SANDBOX_PODMAN_URL") or "unix:///run/podman/podman.sock"
#: ``SANDBOX_CONFORMANCE_REQUIRE_PODMAN=1``: a Podman that does not answer fails, not skips.
REQUIRE_PODMAN = os.environ.get("SANDBOX_CONFORMANCE_REQUIRE_PODMAN") == "1"


def _real(kind: str, url: str | None) -> Engine:
    if kind in _unavailable:
        raise EngineError(_unavailable[kind])
    from pytest_sandbox_conformance.engines.docker import DockerEngine
    from pytest_sandbox_conformance.engines.image import ensure_image

    try:
        eng = DockerEngine(url, name=kind)
    except ImportError as exc:
        _unavailable[kind] = str(exc)
        raise EngineError(_unavailable[kind]) from exc
    except EngineError as exc:
        _unavailable[kind] = f"no reachable {kind} engine: {exc}"
        raise EngineError(_unavailable[kind]) from exc
    try:
        ensure_image(eng, IMAGE)
    except EngineError as exc:
        eng.close()
        _unavailable[kind] = str(exc)
        raise
    return eng


def _docker() -> Engine:
    return _real("docker", None)


def _podman() -> Engine:
    return _real("podman", PODMAN_URL)


#: The engine kinds the interface tests run on, and how to make each.
ENGINE_KINDS = {"fake": _fake, "docker": _docker, "podman": _podman}
#: The kinds that need a real engine (marked ``live``; skipped when it is not there).
LIVE_KINDS = frozenset({"docker", "podman"})
#: The variable that turns each live kind's skip into a failure.
REQUIRED = {"docker": REQUIRE_ENGINE, "podman": REQUIRE_PODMAN}
REQUIRE_VARIABLE = {"docker": "SANDBOX_CONFORMANCE_REQUIRE_ENGINE",
                    "podman": "SANDBOX_CONFORMANCE_REQUIRE_PODMAN"}


def _make_engine(kind: str, node: pytest.Item | None = None) -> Engine:
    """An engine of ``kind``; a live one that is not there skips the test (or fails it, when
    required), and ``node`` is stashed with the reason so that ``-ra`` shows it once."""
    if kind not in LIVE_KINDS:
        return ENGINE_KINDS[kind]()
    try:
        return ENGINE_KINDS[kind]()
    except (ImportError, EngineError) as exc:
        reason = f"{kind}: {exc}"
    if REQUIRED[kind]:  # outside the except: no chained traceback, just the reason
        pytest.fail(f"{reason} ({REQUIRE_VARIABLE[kind]}=1 requires it)", pytrace=False)
    if node is not None:
        node.stash[ENGINE_UNAVAILABLE] = reason  # conftest.py folds these skips into one line
    pytest.skip(reason)


def is_podman(engine: Engine) -> bool:
    """Podman's Docker-compatible API, where it legitimately answers differently from Docker."""
    return getattr(engine, "name", "") == "podman" and not isinstance(engine, FakeEngine)


# Podman 4.3's Docker-compatible API differs from Docker in ways a driver can notice; the tests
# below branch on ``is_podman`` exactly there (docs/engines.md, "Podman and the emulated GPU
# engine", lists them). The ones shared by many tests:

def refused(engine: Engine, docker_class: type[EngineError]):
    """``pytest.raises`` for a refusal Docker answers with ``docker_class`` (409 or 400). Podman
    4.3 answers most of them 500 (libpod's "container state improper", "name is already in use",
    "names must match ..."), so there the status is the engine's 500 and the class the base."""
    return pytest.raises(EngineError if is_podman(engine) else docker_class)


def refusal_status(engine: Engine, docker_status: int) -> int:
    return 500 if is_podman(engine) else docker_status


def list_order(engine: Engine, newest_first: list[str]) -> list[str]:
    """The order ``list`` returns these containers in: newest first on Docker and the fake;
    **container ID order** on Podman 4.3 (its compatible list walks its database by ID, whatever
    the creation order, so a second-old container can come before a new one)."""
    return sorted(newest_first) if is_podman(engine) else list(newest_first)


def image_names(engine: Engine) -> set[str]:
    """What inspect's ``Config.Image`` may say: Podman reports the full name it stored the image
    under (``docker.io/library/...`` through the compatible import, ``localhost/...`` through
    ``podman import``), not the reference the container was created with."""
    if is_podman(engine):
        return {IMAGE, f"docker.io/library/{IMAGE}", f"localhost/{IMAGE}"}
    return {IMAGE}


@pytest.fixture
def run_id() -> str:
    return uuid.uuid4().hex[:12]


@pytest.fixture(params=[pytest.param(kind, marks=[pytest.mark.live] if kind in LIVE_KINDS else [])
                        for kind in sorted(ENGINE_KINDS)])
def engine(request, run_id):
    eng = _make_engine(request.param, request.node)
    try:
        yield eng
    finally:
        # A test may have closed its engine; clean up through a fresh one then.
        cleaner = _make_engine(request.param) if getattr(eng, "closed", False) else eng
        try:
            cleaner.remove_all([c.id for c in cleaner.list({RUN: run_id})], force=True)
        finally:
            cleaner.close()
            eng.close()


@pytest.fixture
def spec(run_id):
    """``spec("web", role="x", ...)``: a ContainerSpec with a per-test name and run label."""

    def make(suffix: str = "c", *, labels=None, **kwargs) -> ContainerSpec:
        all_labels = {RUN: run_id, **(labels or {})}
        kwargs.setdefault("image", IMAGE)
        kwargs.setdefault("command", SLEEP)
        return ContainerSpec(name=f"sct-{run_id}-{suffix}", labels=all_labels, **kwargs)

    return make


@pytest.fixture
def mine(engine, run_id):
    """This test's containers, as ``engine.list`` returns them (newest first by default)."""
    return lambda **labels: engine.list({RUN: run_id, **labels})


# -- IDs and create -------------------------------------------------------------------------------


def test_create_returns_a_64_hex_id(engine, spec):
    cid = engine.create(spec())
    assert HEX64.match(cid)


def test_ids_are_unique(engine, spec):
    ids = [engine.create(spec(f"c{i}")) for i in range(5)]
    assert len(set(ids)) == 5


def test_create_makes_a_created_container_not_a_running_one(engine, spec, mine):
    cid = engine.create(spec())
    assert engine.inspect(cid).state == "created"
    assert [(c.id, c.state) for c in mine()] == [(cid, "created")]


def test_inspect_reports_what_was_created(engine, spec):
    s = spec("web", labels={ROLE: "web"}, env={"A": "1"})
    c = engine.inspect(engine.create(s))
    assert (c.name, c.command) == (s.name, SLEEP)
    assert c.image in image_names(engine)
    assert dict(c.labels) == dict(s.labels)
    assert c.env["A"] == "1"
    assert not c.name.startswith("/")
    assert c.short_id == c.id[:12]
    assert c.runtime is None  # the engine's default runtime (Docker reports "runc")
    assert c.device_requests == ()


DEVICE_REQUESTS = {
    "cdi": (DeviceRequest(driver="cdi", device_ids=("nvidia.com/gpu=all",)),),
    "gpus-all": (DeviceRequest(count=-1, capabilities=(("gpu",),)),),
    "gpus-by-id": (DeviceRequest(driver="nvidia", device_ids=("0", "1"),
                                 capabilities=(("gpu", "utility"),)),),
}


@pytest.mark.parametrize("requests", DEVICE_REQUESTS.values(), ids=DEVICE_REQUESTS.keys())
def test_device_requests_are_recorded(engine, spec, requests):  # OWN-19
    c = engine.inspect(engine.create(spec(device_requests=requests)))
    if is_podman(engine):
        # Podman 4.3 silently drops HostConfig.DeviceRequests: accepted, not recorded, not in
        # effect (a GPU handoff through its compatible API looks done but is not).
        assert c.device_requests == ()
        return
    assert c.device_requests == requests
    assert all(r.is_gpu for r in c.device_requests)


@pytest.mark.parametrize("requests", DEVICE_REQUESTS.values(), ids=DEVICE_REQUESTS.keys())
def test_start_with_device_requests_needs_a_device_driver(engine, spec, requests):  # OWN-19
    # Docker accepts any device request at create and selects a device driver at start. Without
    # one for the request (no NVIDIA container toolkit; no CDI before Docker 25, as on the CPU
    # machines' Docker 20.10) start answers 500 and the container stays created, its request
    # still recorded. The fake is a GPU host unless built with device_drivers=().
    cid = engine.create(spec(device_requests=requests))
    try:
        engine.start(cid)
    except EngineError as exc:
        assert exc.status == 500
        assert "could not select device driver" in str(exc)
        started = False
    else:
        started = True
    c = engine.inspect(cid)
    assert c.state == ("running" if started else "created")
    if is_podman(engine):  # dropped at create, so nothing to select a driver for: it runs
        assert started and c.device_requests == ()
        return
    assert c.device_requests == requests
    if isinstance(engine, FakeEngine):
        assert started


def test_runtime_is_recorded(engine, spec, mine):  # OWN-19
    s = spec(runtime="nvidia", env={"NVIDIA_VISIBLE_DEVICES": "all"})
    if is_podman(engine):
        # Podman 4.3's compatible API ignores HostConfig.Runtime: created (and runs) on its
        # default runtime, which inspect reports as "oci" (None here), whatever was asked.
        c = engine.inspect(engine.create(s))
        assert (c.runtime, c.env["NVIDIA_VISIBLE_DEVICES"]) == (None, "all")
        return
    if "nvidia" not in engine.runtimes():
        # Docker refuses a runtime it has not configured, at create, and creates nothing.
        with pytest.raises(EngineInvalid, match="Unknown runtime specified nvidia"):
            engine.create(s)
        assert mine() == []
        return
    c = engine.inspect(engine.create(s))
    assert c.runtime == "nvidia"
    assert c.env["NVIDIA_VISIBLE_DEVICES"] == "all"
    assert c.device_requests == ()


def test_unknown_runtime_is_refused_at_create(engine, spec, mine):
    if is_podman(engine):  # the runtime is ignored (see test_runtime_is_recorded): no 400
        cid = engine.create(spec(runtime="sct-no-such-runtime"))
        engine.start(cid)
        assert engine.inspect(cid).runtime is None
        assert engine.inspect(cid).state == "running"
        return
    with pytest.raises(EngineInvalid) as exc:
        engine.create(spec(runtime="sct-no-such-runtime"))
    assert exc.value.status == 400
    assert "Unknown runtime specified sct-no-such-runtime" in str(exc.value)
    assert mine() == []


def test_list_returns_summaries_and_inspect_the_details(engine, spec, mine):
    # One list request per observation: Docker's list endpoint has no command, environment,
    # device requests or runtime, so list results carry none and inspect carries all.
    s = spec("gpu", labels={ROLE: "gpu"}, env={"A": "1"}, device_requests=DEVICE_REQUESTS["cdi"])
    cid = engine.create(s)
    [listed] = mine()
    full = engine.inspect(cid)
    assert (listed.id, listed.name, listed.image, listed.state, dict(listed.labels)) == (
        full.id, full.name, full.image, full.state, dict(full.labels))
    assert (listed.command, dict(listed.env), listed.device_requests, listed.runtime) == (
        (), {}, (), None)
    expected_requests = () if is_podman(engine) else s.device_requests  # Podman drops them
    assert (full.command, full.env["A"], full.device_requests) == (SLEEP, "1", expected_requests)
    # Docker's list reports whole seconds; inspect nanoseconds. Both order like creation.
    assert listed.created <= full.created
    assert listed.created // 10**9 == full.created // 10**9


def test_created_orders_containers_by_creation(engine, spec, mine):
    first = engine.inspect(engine.create(spec("first")))
    second = engine.inspect(engine.create(spec("second")))
    assert first.created < second.created
    listed = {c.id: c for c in mine()}
    assert list(listed) == list_order(engine, [second.id, first.id])
    assert listed[second.id].created >= listed[first.id].created  # list's seconds may tie


def test_inspected_container_is_a_snapshot(engine, spec):
    cid = engine.create(spec())
    before = engine.inspect(cid)
    engine.start(cid)
    assert before.state == "created"
    assert engine.inspect(cid).state == "running"


# -- names --------------------------------------------------------------------------------------


def test_create_onto_a_taken_name_conflicts(engine, spec, mine):
    first = engine.create(spec("web"))
    with refused(engine, EngineConflict) as exc:  # Podman: 500 "that name is already in use"
        engine.create(spec("web", labels={ROLE: "second"}))
    assert exc.value.status == refusal_status(engine, 409)
    assert ids_of(mine()) == [first]


def test_name_of_a_stopped_container_is_still_taken(engine, spec):
    cid = engine.create(spec("web"))
    engine.start(cid)
    engine.stop(cid)
    with refused(engine, EngineConflict):
        engine.create(spec("web"))


def test_name_is_free_again_after_remove(engine, spec):
    engine.remove(engine.create(spec("web")))
    cid = engine.create(spec("web"))
    assert engine.inspect(cid).name == spec("web").name


def test_rename_onto_a_taken_name_conflicts(engine, spec):
    a = engine.create(spec("a"))
    b = engine.create(spec("b"))
    with pytest.raises(EngineConflict) as exc:
        engine.rename(a, spec("b").name)
    assert exc.value.status == 409
    assert engine.inspect(a).name == spec("a").name
    assert engine.inspect(b).name == spec("b").name


def test_rename_frees_the_old_name(engine, spec):
    a = engine.create(spec("a"))
    engine.rename(a, spec("backup").name)
    assert engine.inspect(a).name == spec("backup").name
    assert engine.inspect(spec("backup").name).id == a
    b = engine.create(spec("a"))
    assert engine.inspect(spec("a").name).id == b


def test_rename_keeps_id_state_and_labels(engine, spec):
    a = engine.create(spec("a", labels={ROLE: "x"}))
    engine.start(a)
    before = engine.inspect(a)
    engine.rename(a, spec("renamed").name)
    after = engine.inspect(a)
    assert (after.id, after.state, dict(after.labels)) == (before.id, "running", dict(before.labels))


def test_rename_keeps_the_list_position(engine, spec, mine):
    a = engine.create(spec("a"))
    b = engine.create(spec("b"))
    engine.rename(a, spec("a-renamed").name)
    assert ids_of(mine()) == list_order(engine, [b, a])


def test_rename_to_the_current_name_is_invalid(engine, spec):
    a = engine.create(spec("a"))
    if is_podman(engine):  # Podman accepts it and does nothing
        engine.rename(a, spec("a").name)
        assert engine.inspect(a).name == spec("a").name
        return
    with pytest.raises(EngineInvalid) as exc:
        engine.rename(a, spec("a").name)
    assert exc.value.status == 400


# Docker's rule: ^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$ (at least two characters). The leading slash is
# outside the interface (names have none), so it is left out of both tables.
INVALID_NAMES = ["", "a", "-lead", ".lead", "_lead", "has space", "a/b", "ünïcode", "x:y",
                 "tab\there", "new\nline", "semi;colon"]
VALID_NAMES = ["ab", "A1", "0x", "a.b_c-d", "UPPER.lower_9-x", "x" * 60]


@pytest.mark.parametrize("name", INVALID_NAMES)
def test_valid_container_name_refuses(name):
    assert not valid_container_name(name)


@pytest.mark.parametrize("name", VALID_NAMES)
def test_valid_container_name_accepts(name):
    assert valid_container_name(name)


@pytest.mark.parametrize("name", INVALID_NAMES)
def test_create_with_an_invalid_name_is_invalid(engine, spec, mine, name):
    make = lambda: engine.create(  # noqa: E731
        ContainerSpec(name=name, image=IMAGE, labels=spec().labels, command=SLEEP))
    if name and is_podman(engine):
        _podman_name_rule(engine, name, make)
        return
    with pytest.raises(EngineInvalid) as exc:  # "" is refused by DockerEngine itself
        make()
    assert exc.value.status == 400
    assert mine() == []


def _podman_name_rule(engine, name, act):
    # Podman's rule is [a-zA-Z0-9][a-zA-Z0-9_.-]* (one character is enough) and it refuses the
    # rest with 500 "names must match ...", not 400.
    if len(name) == 1 and name.isalnum():
        try:
            act()
        except EngineConflict:  # another run on this engine holds the name right now
            pass
        return
    with pytest.raises(EngineError, match="names must match") as exc:
        act()
    assert exc.value.status == 500


@pytest.mark.parametrize("name", INVALID_NAMES)
def test_rename_to_an_invalid_name_is_invalid(engine, spec, name):
    a = engine.create(spec("a"))
    if is_podman(engine):  # "" too is Podman's 500 "names must match"
        _podman_name_rule(engine, name, lambda: engine.rename(a, name))
        if len(name) != 1:
            assert engine.inspect(a).name == spec("a").name
        return
    with pytest.raises(EngineInvalid):
        engine.rename(a, name)
    assert engine.inspect(a).name == spec("a").name


@pytest.mark.parametrize("name", VALID_NAMES)
def test_valid_names_are_accepted(engine, spec, run_id, name):
    full = f"{name}-{run_id}"  # unique on a shared engine, and still valid
    cid = engine.create(ContainerSpec(name=full, image=IMAGE, labels=spec().labels, command=SLEEP))
    assert engine.inspect(cid).name == full


# -- start, stop, kill ----------------------------------------------------------------------------


def test_start_runs_a_created_container(engine, spec):
    cid = engine.create(spec())
    engine.start(cid)
    assert engine.inspect(cid).state == "running"


def test_start_of_an_executable_no_image_holds_is_refused_and_leaves_it_created(engine, spec):
    # A scenario's ``fails: start`` (a docker run whose container cannot start), on every engine.
    cid = engine.create(spec(entrypoint=(MISSING_EXECUTABLE,), command=()))
    with pytest.raises(EngineError) as err:
        engine.start(cid)
    assert not isinstance(err.value, EngineUnavailable), err.value
    assert "no such file or directory" in str(err.value).lower() or "not found" in str(err.value)
    assert engine.inspect(cid).state in ("created", "exited")  # Podman may call it exited


def test_start_of_a_running_container_does_nothing(engine, spec):
    cid = engine.create(spec())
    engine.start(cid)
    engine.start(cid)
    assert engine.inspect(cid).state == "running"


def test_start_of_an_exited_container_runs_it_again(engine, spec):
    cid = engine.create(spec())
    engine.start(cid)
    engine.stop(cid)
    engine.start(cid)
    assert engine.inspect(cid).state == "running"


def test_stop_makes_a_running_container_exited(engine, spec):
    cid = engine.create(spec())
    engine.start(cid)
    engine.stop(cid)
    assert engine.inspect(cid).state == "exited"


def test_stop_of_a_stopped_container_does_nothing(engine, spec):
    cid = engine.create(spec())
    engine.start(cid)
    engine.stop(cid)
    engine.stop(cid)
    assert engine.inspect(cid).state == "exited"


def test_stop_of_a_created_container_leaves_it_created(engine, spec):
    cid = engine.create(spec())
    engine.stop(cid)
    assert engine.inspect(cid).state == "created"


def test_kill_makes_a_running_container_exited(engine, spec):
    cid = engine.create(spec())
    engine.start(cid)
    engine.kill(cid)
    assert engine.inspect(cid).state == "exited"


@pytest.mark.parametrize("started", [False, True], ids=["created", "exited"])
def test_kill_of_a_container_that_is_not_running_conflicts(engine, spec, started):
    cid = engine.create(spec())
    if started:
        engine.start(cid)
        engine.stop(cid)
    state = engine.inspect(cid).state
    with refused(engine, EngineConflict) as exc:  # Podman: 500 "can only kill running containers"
        engine.kill(cid)
    assert exc.value.status == refusal_status(engine, 409)
    assert engine.inspect(cid).state == state


def _pause(engine: Engine, cid: str) -> None:
    """Pause a running container: ``set_state`` on the fake, ``docker pause`` on Docker."""
    if isinstance(engine, FakeEngine):
        engine.set_state(cid, "paused")
        return
    from pytest_sandbox_conformance.engines.docker import map_docker_errors

    try:
        with map_docker_errors():
            engine.api.pause(cid)
    except EngineError as exc:
        pytest.skip(f"this engine cannot pause containers: {exc}")


def test_paused_container_answers_like_docker(engine, spec, mine):
    # The states set_state reaches on the fake, checked where Docker can reach them too.
    a, b, c = (engine.create(spec(x)) for x in ("a", "b", "c"))
    for cid in (a, b, c):
        engine.start(cid)
        _pause(engine, cid)
        assert engine.inspect(cid).state == "paused"
    with refused(engine, EngineConflict):  # "cannot start a paused container, try unpause"
        engine.start(a)
    with refused(engine, EngineConflict):  # "You cannot remove a paused container"
        engine.remove(a)
    assert engine.inspect(a).state == "paused"
    if is_podman(engine):
        # Podman refuses to stop a paused container (500 "is running or paused, refusing to
        # clean up"); kill works there as on Docker.
        with pytest.raises(EngineError, match="paused") as exc:
            engine.stop(a)
        assert exc.value.status == 500 and engine.inspect(a).state == "paused"
        engine.kill(a)
    else:
        engine.stop(a)
    engine.kill(b)
    assert engine.inspect(a).state == engine.inspect(b).state == "exited"
    engine.remove(c, force=True)
    assert sorted(ids_of(mine())) == sorted([a, b])


# -- remove -------------------------------------------------------------------------------------


def test_remove_of_a_running_container_without_force_conflicts(engine, spec, mine):
    cid = engine.create(spec())
    engine.start(cid)
    with refused(engine, EngineConflict) as exc:  # Podman: 500 "... cannot be removed without force"
        engine.remove(cid)
    assert exc.value.status == refusal_status(engine, 409)
    assert engine.inspect(cid).state == "running"
    assert ids_of(mine()) == [cid]


def test_remove_of_a_running_container_with_force_removes_it(engine, spec, mine):
    cid = engine.create(spec())
    engine.start(cid)
    engine.remove(cid, force=True)
    assert mine() == []
    with pytest.raises(EngineNotFound):
        engine.inspect(cid)


@pytest.mark.parametrize("started", [False, True], ids=["created", "exited"])
def test_remove_of_a_stopped_container_needs_no_force(engine, spec, mine, started):
    cid = engine.create(spec())
    if started:
        engine.start(cid)
        engine.stop(cid)
    engine.remove(cid)
    assert mine() == []


def test_remove_all_skips_containers_already_gone(engine, spec, mine):
    a = engine.create(spec("a"))
    b = engine.create(spec("b"))
    engine.start(b)
    engine.remove(a)
    assert engine.remove_all([a, b]) == [b]
    assert mine() == []


# -- list ---------------------------------------------------------------------------------------


def test_list_includes_stopped_containers(engine, spec, mine):
    created = engine.create(spec("created"))
    running = engine.create(spec("running"))
    exited = engine.create(spec("exited"))
    engine.start(running)
    engine.start(exited)
    engine.stop(exited)
    states = {c.id: c.state for c in mine()}
    assert states == {created: "created", running: "running", exited: "exited"}


def test_list_is_newest_first(engine, spec, mine):
    ids = [engine.create(spec(f"c{i}")) for i in range(4)]
    assert ids_of(mine()) == list_order(engine, ids[::-1])


def test_list_filters_by_label_value(engine, spec, mine):
    web = engine.create(spec("web", labels={ROLE: "web"}))
    engine.create(spec("db", labels={ROLE: "db"}))
    engine.create(spec("none"))
    assert ids_of(mine(**{ROLE: "web"})) == [web]
    assert mine(**{ROLE: "cache"}) == []


def test_list_filters_by_label_presence(engine, spec, mine):
    web = engine.create(spec("web", labels={ROLE: "web"}))
    db = engine.create(spec("db", labels={ROLE: "db"}))
    engine.create(spec("none"))
    assert ids_of(mine(**{ROLE: None})) == list_order(engine, [db, web])


def test_list_filters_need_every_label(engine, spec, mine):
    both = engine.create(spec("both", labels={ROLE: "web", "tier": "front"}))
    back = engine.create(spec("back", labels={ROLE: "web", "tier": "back"}))
    engine.create(spec("untiered", labels={ROLE: "web"}))
    assert ids_of(mine(**{ROLE: "web", "tier": "front"})) == [both]
    assert ids_of(mine(**{ROLE: "web", "tier": None})) == list_order(engine, [back, both])


def test_label_value_match_is_exact(engine, spec, mine):
    engine.create(spec("web", labels={ROLE: "web-1"}))
    assert mine(**{ROLE: "web"}) == []
    assert mine(**{ROLE: "WEB-1"}) == []


def test_list_reflects_renames_and_removals(engine, spec, mine):
    a = engine.create(spec("a"))
    b = engine.create(spec("b"))
    engine.rename(a, spec("a2").name)
    engine.remove(b)
    assert [(c.id, c.name) for c in mine()] == [(a, spec("a2").name)]


# -- inspect and unknown containers -------------------------------------------------------------


def test_inspect_by_id_prefix_and_name(engine, spec):
    cid = engine.create(spec("web"))
    assert engine.inspect(cid).id == cid
    assert engine.inspect(cid[:12]).id == cid
    assert engine.inspect(spec("web").name).id == cid


def test_ambiguous_id_prefix_is_an_error(engine, spec):
    ids: list[str] = []
    while True:  # pigeonhole: two of any 17 IDs share a first hex digit
        ids.append(engine.create(spec(f"c{len(ids)}")))
        firsts = [i[0] for i in ids]
        shared = next((f for f in firsts if firsts.count(f) > 1), None)
        if shared is not None:
            break
    with pytest.raises(EngineError) as exc:
        engine.inspect(shared)
    if is_podman(engine):
        # Podman 4.3 answers 404 "more than one result for container ID ...": a driver that
        # takes every 404 for "gone" must not inspect by prefix there.
        assert isinstance(exc.value, EngineNotFound) and "more than one result" in str(exc.value)
        return
    # The container exists: an ambiguous prefix is not a 404 (Docker 20.10 answers 500).
    assert not isinstance(exc.value, EngineNotFound)


UNKNOWN = "0" * 64

OPERATIONS = {
    "start": lambda e, ref: e.start(ref),
    "stop": lambda e, ref: e.stop(ref),
    "kill": lambda e, ref: e.kill(ref),
    "rename": lambda e, ref: e.rename(ref, f"renamed-{uuid.uuid4().hex[:8]}"),
    "remove": lambda e, ref: e.remove(ref),
    "remove-force": lambda e, ref: e.remove(ref, force=True),
    "inspect": lambda e, ref: e.inspect(ref),
}


@pytest.mark.parametrize("op", OPERATIONS.values(), ids=OPERATIONS.keys())
@pytest.mark.parametrize("ref", [UNKNOWN, "no-such-container-name"], ids=["id", "name"])
def test_unknown_container_is_not_found(engine, op, ref):
    with pytest.raises(EngineNotFound) as exc:
        op(engine, ref)
    assert exc.value.status == 404


@pytest.mark.parametrize("op", OPERATIONS.values(), ids=OPERATIONS.keys())
def test_removed_container_is_not_found(engine, spec, op):
    cid = engine.create(spec())
    engine.remove(cid)
    with pytest.raises(EngineNotFound):
        op(engine, cid)


def test_engine_errors_share_one_base_with_statuses():
    assert issubclass(EngineNotFound, EngineError) and EngineNotFound.status == 404
    assert issubclass(EngineConflict, EngineError) and EngineConflict.status == 409
    assert issubclass(EngineInvalid, EngineError) and EngineInvalid.status == 400
    assert EngineError("x").status == 500
    assert EngineError("x", status=503).status == 503


def test_close_is_idempotent(engine):
    engine.close()
    engine.close()


# -- fake-only steering -----------------------------------------------------------------------------


def _spec(name: str, labels_: dict | None = None, **kwargs) -> ContainerSpec:
    """A fake-only spec: keyword arguments that are ContainerSpec fields go there, others are
    labels (``_spec("aa", role="x")``)."""
    fields = {k: kwargs.pop(k) for k in ("env", "runtime", "device_requests") if k in kwargs}
    return ContainerSpec(name=name, image=IMAGE, labels={**(labels_ or {}), **kwargs},
                         command=SLEEP, **fields)


@pytest.fixture
def fake():
    with FakeEngine() as eng:
        yield eng


class TestFakeSteering:
    """Fake-only: what a schedule steers and a real engine cannot offer on demand."""

    # list orders

    def test_oldest_list_order(self, fake):
        ids = [fake.create(_spec(f"c{i}")) for i in range(3)]
        fake.list_order = "oldest"
        assert ids_of(fake.list()) == ids
        assert ids_of(fake.list()) == ids

    def test_list_order_at_construction(self):
        eng = FakeEngine(list_order="oldest")
        ids = [eng.create(_spec(f"c{i}")) for i in range(3)]
        assert ids_of(eng.list()) == ids

    def test_function_list_order(self, fake):
        a = fake.create(_spec("aa", role="backup"))
        b = fake.create(_spec("bb", role="main"))
        c = fake.create(_spec("cc", role="backup"))
        fake.list_order = order_first(lambda x: x.labels["role"] == "main")
        assert ids_of(fake.list()) == [b, c, a]

    def test_function_order_applies_after_the_label_filter(self, fake):
        a = fake.create(_spec("aa", role="x"))
        fake.create(_spec("bb", role="y"))
        seen = []
        fake.list_order = lambda cs: seen.append(ids_of(cs)) or cs
        assert ids_of(fake.list({"role": "x"})) == [a]
        assert seen == [[a]]

    def test_function_order_must_keep_the_containers(self, fake):
        fake.create(_spec("aa"))
        fake.create(_spec("bb"))
        fake.list_order = lambda cs: cs[:1]
        with pytest.raises(ValueError):
            fake.list()

    def test_unknown_order_name_is_refused(self, fake):
        with pytest.raises(ValueError):
            fake.queue_list_orders("random")
        fake.create(_spec("aa"))
        fake.list_order = "random"
        with pytest.raises(ValueError):
            fake.list()

    def test_queued_orders_apply_to_the_next_calls_only(self, fake):
        ids = [fake.create(_spec(f"c{i}")) for i in range(3)]
        newest, oldest = ids[::-1], ids
        fake.queue_list_orders("oldest", "newest", "oldest")
        assert [ids_of(fake.list()) for _ in range(5)] == [oldest, newest, oldest, newest, newest]

    def test_queued_orders_then_fall_back_to_the_default(self, fake):
        ids = [fake.create(_spec(f"c{i}")) for i in range(3)]
        fake.list_order = "oldest"
        fake.queue_list_orders("newest")
        assert ids_of(fake.list()) == ids[::-1]
        assert ids_of(fake.list()) == ids

    def test_queued_function_order(self, fake):
        a = fake.create(_spec("aa", role="x"))
        b = fake.create(_spec("bb", role="y"))
        fake.queue_list_orders(order_first(lambda c: c.labels["role"] == "x"))
        assert ids_of(fake.list()) == [a, b]
        assert ids_of(fake.list()) == [b, a]

    # faults

    def test_armed_list_failure_fails_the_next_call_only(self, fake):
        fake.create(_spec("aa"))
        fake.faults.arm("list")
        with pytest.raises(EngineError) as exc:
            fake.list()
        assert exc.value.status == 500
        assert len(fake.list()) == 1

    def test_armed_failure_times(self, fake):
        fake.faults.arm("list", times=2)
        assert fake.faults.pending("list") == 2
        for _ in range(2):
            with pytest.raises(EngineError):
                fake.list()
        assert fake.list() == []
        assert fake.faults.pending("list") == 0

    def test_armed_custom_error(self, fake):
        fake.faults.arm("list", EngineConflict("busy"))
        with pytest.raises(EngineConflict, match="busy"):
            fake.list()

    def test_armed_remove_failure_leaves_the_container(self, fake):
        cid = fake.create(_spec("aa"))
        fake.faults.arm("remove")
        with pytest.raises(EngineError):
            fake.remove(cid, force=True)
        assert ids_of(fake.list()) == [cid]
        fake.remove(cid, force=True)
        assert fake.list() == []

    def test_armed_remove_failure_in_remove_all(self, fake):
        cid = fake.create(_spec("aa"))
        fake.faults.arm("remove")
        with pytest.raises(EngineError):
            fake.remove_all([cid])
        assert ids_of(fake.list()) == [cid]

    def test_empty_id_from_create_creates_nothing(self, fake):
        fake.faults.arm("create", EMPTY_ID)
        assert fake.create(_spec("aa")) == ""
        assert fake.snapshot() == []
        cid = fake.create(_spec("aa"))  # the name was never taken
        assert HEX64.match(cid)

    def test_armed_create_error(self, fake):
        fake.faults.arm("create", EngineError("disk full", status=500))
        with pytest.raises(EngineError, match="disk full"):
            fake.create(_spec("aa"))
        assert fake.snapshot() == []

    def test_faults_clear(self, fake):
        fake.faults.arm("list")
        fake.faults.arm("remove", times=3)
        fake.faults.clear()
        assert fake.faults.pending("list") == fake.faults.pending("remove") == 0
        assert fake.list() == []

    def test_faults_of_one_operation_leave_others_alone(self, fake):
        fake.faults.arm("remove")
        cid = fake.create(_spec("aa"))
        fake.start(cid)
        assert fake.inspect(cid).state == "running"
        assert fake.faults.pending("remove") == 1

    # set_state

    @pytest.mark.parametrize("state", ALL_STATES)
    def test_set_state_to_any_docker_state(self, fake, state):
        cid = fake.create(_spec("aa"))
        fake.set_state(cid, state)
        assert fake.inspect(cid).state == state
        assert fake.list()[0].state == state

    def test_set_state_refuses_unknown_states(self, fake):
        cid = fake.create(_spec("aa"))
        with pytest.raises(EngineInvalid):
            fake.set_state(cid, "sleeping")
        with pytest.raises(EngineNotFound):
            fake.set_state(UNKNOWN, "dead")

    # Docker's answers in the states only set_state reaches.

    @pytest.mark.parametrize("state", ["paused", "removing", "dead"])
    def test_start_in_a_state_that_cannot_start_conflicts(self, fake, state):
        cid = fake.create(_spec("aa"))
        fake.set_state(cid, state)
        with pytest.raises(EngineConflict):
            fake.start(cid)
        assert fake.inspect(cid).state == state

    @pytest.mark.parametrize("state", ["paused", "restarting"])
    def test_stop_and_kill_act_on_active_states(self, fake, state):
        a = fake.create(_spec("aa"))
        b = fake.create(_spec("bb"))
        fake.set_state(a, state)
        fake.set_state(b, state)
        fake.stop(a)
        fake.kill(b)
        assert fake.inspect(a).state == fake.inspect(b).state == "exited"

    @pytest.mark.parametrize("state", ["paused", "restarting"])
    def test_remove_of_an_active_container_needs_force(self, fake, state):
        cid = fake.create(_spec("aa"))
        fake.set_state(cid, state)
        with pytest.raises(EngineConflict):
            fake.remove(cid)
        fake.remove(cid, force=True)
        assert fake.snapshot() == []

    def test_remove_during_removal_conflicts_even_with_force(self, fake):
        cid = fake.create(_spec("aa"))
        fake.set_state(cid, "removing")
        with pytest.raises(EngineConflict):
            fake.remove(cid, force=True)

    def test_dead_container_is_removed_without_force(self, fake):
        cid = fake.create(_spec("aa"))
        fake.set_state(cid, "dead")
        fake.remove(cid)
        assert fake.snapshot() == []

    # GPU host or not, runtimes (Docker's answers, for hosts the fake stands for)

    @pytest.mark.parametrize("requests", DEVICE_REQUESTS.values(), ids=DEVICE_REQUESTS.keys())
    def test_without_device_drivers_start_fails_like_docker(self, requests):
        eng = FakeEngine(device_drivers=())
        cid = eng.create(_spec("aa", device_requests=requests))
        with pytest.raises(EngineError) as exc:
            eng.start(cid)
        req = requests[0]
        caps = "[" + " ".join("[" + " ".join(c) + "]" for c in req.capabilities) + "]"
        assert exc.value.status == 500 and not isinstance(exc.value, EngineNotFound)
        assert str(exc.value) == (
            f'could not select device driver "{req.driver}" with capabilities: {caps}')
        assert eng.inspect(cid).state == "created"
        assert eng.inspect(cid).device_requests == requests
        plain = eng.create(_spec("bb"))
        eng.start(plain)
        assert eng.inspect(plain).state == "running"

    def test_device_driver_selection(self):
        gpus = DeviceRequest(count=-1, capabilities=(("gpu",),))
        cdi = DeviceRequest(driver="cdi", device_ids=("nvidia.com/gpu=all",))
        odd = DeviceRequest(count=1, capabilities=(("tpu",),))
        eng = FakeEngine(device_drivers={"cdi"})
        started = {}
        for name, req in (("gpus", gpus), ("cdi", cdi), ("odd", odd)):
            cid = eng.create(_spec(name + "0", device_requests=(req,)))
            try:
                eng.start(cid)
            except EngineError:
                started[name] = False
            else:
                started[name] = True
        assert started == {"gpus": False, "cdi": True, "odd": False}

    def test_runtimes(self):
        assert "nvidia" in FakeEngine().runtimes()
        eng = FakeEngine(runtimes={"runc"})
        with pytest.raises(EngineInvalid, match="Unknown runtime specified nvidia"):
            eng.create(_spec("aa", runtime="nvidia"))
        assert eng.snapshot() == []

    def test_snapshot_is_full_where_list_is_a_summary(self, fake):
        cid = fake.create(_spec("aa", env={"A": "1"}, runtime="nvidia"))
        [full] = fake.snapshot()
        [listed] = fake.list()
        assert (full.id, full.runtime, dict(full.env), full.command) == (
            cid, "nvidia", {"A": "1"}, SLEEP)
        assert (listed.id, listed.runtime, dict(listed.env), listed.command) == (cid, None, {}, ())

    # before hooks

    def test_before_hook_runs_once_with_the_call_arguments(self, fake):
        seen = []
        fake.before("create", seen.append)
        s1, s2 = _spec("aa"), _spec("bb")
        fake.create(s1)
        fake.create(s2)
        assert seen == [s1]

    def test_before_hook_every_call(self, fake):
        seen = []
        fake.before("rename", lambda cid, name: seen.append(name), once=False)
        cid = fake.create(_spec("aa"))
        fake.rename(cid, "bb")
        fake.rename(cid, "cc")
        assert seen == ["bb", "cc"]

    def test_before_hook_can_race_the_call(self, fake):
        cid = fake.create(_spec("aa"))
        fake.before("inspect", lambda ref: fake.remove(ref, force=True))
        with pytest.raises(EngineNotFound):
            fake.inspect(cid)

    def test_before_hook_runs_before_an_armed_fault(self, fake):
        seen = []
        fake.before("list", seen.append)
        fake.faults.arm("list")
        with pytest.raises(EngineError):
            fake.list({"k": "v"})
        assert seen == [{"k": "v"}]

    # counters and inspection helpers

    def test_calls_count_every_operation_including_failures(self, fake):
        cid = fake.create(_spec("aa"))
        fake.start(cid)
        fake.list()
        fake.list()
        with pytest.raises(EngineConflict):
            fake.remove(cid)
        with pytest.raises(EngineNotFound):
            fake.inspect(UNKNOWN)
        assert dict(fake.calls) == {"create": 1, "start": 1, "list": 2, "remove": 1,
                                    "inspect": 1}

    def test_snapshot_is_oldest_first_and_not_counted(self, fake):
        ids = [fake.create(_spec(f"c{i}")) for i in range(3)]
        assert ids_of(fake.snapshot()) == ids
        assert "list" not in fake.calls and "inspect" not in fake.calls

    def test_ids_are_deterministic_per_seed(self):
        one, two, other = FakeEngine(seed="s"), FakeEngine(seed="s"), FakeEngine(seed="t")
        assert one.create(_spec("aa")) == two.create(_spec("aa")) != other.create(_spec("aa"))
