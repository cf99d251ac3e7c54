"""Engine behaviour, written against the :class:`Engine` interface (Docker's semantics).

Every test outside :class:`TestFakeSteering` uses only the ``Engine`` methods, through the
``engine`` fixture, which is parametrized over the engine kinds in :data:`ENGINE_KINDS`. Only the
in-memory fake exists today; a Docker engine joins by adding its kind there. To be safe on a
shared engine, every test names its containers with a per-test prefix, labels them with a per-test
run label, lists only through that label, and the fixture removes what a test left behind.

:class:`TestFakeSteering` holds the fake-only steering (list orders, faults, ``set_state``,
``before`` hooks, call counters); it uses the ``fake`` fixture, never ``engine``.
"""

from __future__ import annotations

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
    valid_container_name,
)
from pytest_sandbox_conformance.engines.fake import EMPTY_ID, FakeEngine, ids_of, order_first

#: The image the suite runs sandboxes from by default (the ``image`` option).
IMAGE = "sbx-busybox:local"
SLEEP = ("sleep", "2147483647")
RUN = "sandbox-conformance.test/run"
ROLE = "sandbox-conformance.test/role"
HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _fake() -> Engine:
    return FakeEngine(seed=uuid.uuid4().hex)


#: The engine kinds the interface tests run on, and how to make each.
ENGINE_KINDS = {"fake": _fake}


@pytest.fixture
def run_id() -> str:
    return uuid.uuid4().hex[:12]


@pytest.fixture(params=sorted(ENGINE_KINDS))
def engine(request, run_id):
    eng = ENGINE_KINDS[request.param]()
    try:
        yield eng
    finally:
        try:
            eng.remove_all([c.id for c in eng.list({RUN: run_id})], force=True)
        finally:
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
    assert (c.name, c.image, c.command) == (s.name, IMAGE, SLEEP)
    assert dict(c.labels) == dict(s.labels)
    assert c.env["A"] == "1"
    assert not c.name.startswith("/")
    assert c.short_id == c.id[:12]


DEVICE_REQUESTS = {
    "cdi": (DeviceRequest(driver="cdi", device_ids=("nvidia.com/gpu=all",)),),
    "gpus-all": (DeviceRequest(count=-1, capabilities=(("gpu",),)),),
    "gpus-by-id": (DeviceRequest(driver="nvidia", device_ids=("0", "1"),
                                 capabilities=(("gpu", "utility"),)),),
}


@pytest.mark.parametrize("requests", DEVICE_REQUESTS.values(), ids=DEVICE_REQUESTS.keys())
def test_device_requests_are_recorded(engine, spec, requests):  # OWN-19
    c = engine.inspect(engine.create(spec(device_requests=requests)))
    assert c.device_requests == requests
    assert all(r.is_gpu for r in c.device_requests)


def test_runtime_is_recorded(engine, spec):  # OWN-19
    # On a live engine this needs the nvidia runtime configured (Docker refuses unknown runtimes).
    c = engine.inspect(engine.create(spec(runtime="nvidia",
                                          env={"NVIDIA_VISIBLE_DEVICES": "all"})))
    assert c.runtime == "nvidia"
    assert c.env["NVIDIA_VISIBLE_DEVICES"] == "all"
    assert c.device_requests == ()


def test_created_orders_containers_by_creation(engine, spec):
    first = engine.inspect(engine.create(spec("first")))
    second = engine.inspect(engine.create(spec("second")))
    assert first.created < second.created


def test_inspected_container_is_a_snapshot(engine, spec):
    cid = engine.create(spec())
    before = engine.inspect(cid)
    engine.start(cid)
    assert before.state == "created"
    assert engine.inspect(cid).state == "running"


# -- names --------------------------------------------------------------------------------------


def test_create_onto_a_taken_name_conflicts(engine, spec, mine):
    first = engine.create(spec("web"))
    with pytest.raises(EngineConflict) as exc:
        engine.create(spec("web", labels={ROLE: "second"}))
    assert exc.value.status == 409
    assert ids_of(mine()) == [first]


def test_name_of_a_stopped_container_is_still_taken(engine, spec):
    cid = engine.create(spec("web"))
    engine.start(cid)
    engine.stop(cid)
    with pytest.raises(EngineConflict):
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


def test_rename_to_the_current_name_is_invalid(engine, spec):
    a = engine.create(spec("a"))
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
    with pytest.raises(EngineInvalid) as exc:
        engine.create(ContainerSpec(name=name, image=IMAGE, labels=spec().labels))
    assert exc.value.status == 400
    assert mine() == []


@pytest.mark.parametrize("name", INVALID_NAMES)
def test_rename_to_an_invalid_name_is_invalid(engine, spec, name):
    a = engine.create(spec("a"))
    with pytest.raises(EngineInvalid):
        engine.rename(a, name)
    assert engine.inspect(a).name == spec("a").name


@pytest.mark.parametrize("name", VALID_NAMES)
def test_valid_names_are_accepted(engine, spec, run_id, name):
    full = f"{name}-{run_id}"  # unique on a shared engine, and still valid
    cid = engine.create(ContainerSpec(name=full, image=IMAGE, labels=spec().labels))
    assert engine.inspect(cid).name == full


# -- start, stop, kill ----------------------------------------------------------------------------


def test_start_runs_a_created_container(engine, spec):
    cid = engine.create(spec())
    engine.start(cid)
    assert engine.inspect(cid).state == "running"


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
    with pytest.raises(EngineConflict) as exc:
        engine.kill(cid)
    assert exc.value.status == 409
    assert engine.inspect(cid).state == state


# -- remove -------------------------------------------------------------------------------------


def test_remove_of_a_running_container_without_force_conflicts(engine, spec, mine):
    cid = engine.create(spec())
    engine.start(cid)
    with pytest.raises(EngineConflict) as exc:
        engine.remove(cid)
    assert exc.value.status == 409
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
    assert ids_of(mine()) == ids[::-1]


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
    assert ids_of(mine(**{ROLE: None})) == [db, web]


def test_list_filters_need_every_label(engine, spec, mine):
    both = engine.create(spec("both", labels={ROLE: "web", "tier": "front"}))
    back = engine.create(spec("back", labels={ROLE: "web", "tier": "back"}))
    engine.create(spec("untiered", labels={ROLE: "web"}))
    assert ids_of(mine(**{ROLE: "web", "tier": "front"})) == [both]
    assert ids_of(mine(**{ROLE: "web", "tier": None})) == [back, both]


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
    with pytest.raises(EngineError):
        engine.inspect(shared)


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


def _spec(name: str, **labels: str) -> ContainerSpec:
    return ContainerSpec(name=name, image=IMAGE, labels=labels, command=SLEEP)


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
