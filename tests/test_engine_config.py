"""A container's whole configuration, on every engine: create with it, inspect shows it, a clone
(``clone_spec``) preserves it, an edit changes only what it says.

The same tests run on the fake, Docker and Podman through ``tests/test_engine_fake.py``'s
``engine`` fixture (live kinds skip without their engine, or fail under
``SANDBOX_CONFORMANCE_REQUIRE_ENGINE=1`` / ``SANDBOX_CONFORMANCE_REQUIRE_PODMAN=1``). Every
container is named and labelled per test and removed by that fixture; named volumes are removed
by ``volumes``. Where Podman reports a field differently, :mod:`engines.podman` reads it back and
the tests expect what Docker reports; where it *behaves* differently (creates a missing bind
source, answers 500), the tests branch on ``is_podman`` exactly there, and docs/engines.md lists
it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from test_engine_fake import (  # noqa: F401 - fixtures and helpers shared with the engine tests
    IMAGE,
    RUN,
    SLEEP,
    engine,
    is_podman,
    mine,
    run_id,
    spec,
)

from pytest_sandbox_conformance.engines.base import (
    Container,
    ContainerSpec,
    DeviceRequest,
    Engine,
    EngineError,
    EngineInvalid,
    EngineNotFound,
    Mount,
)
from pytest_sandbox_conformance.engines.clone import clone_spec
from pytest_sandbox_conformance.engines.fake import FakeEngine
from pytest_sandbox_conformance.engines.podman import PODMAN_DEFAULT_CAPABILITIES

#: The supervisor the supervisor-style containers run: it proves it ran with its environment and
#: its second bind by writing them down, then stays up.
SUPERVISOR = """#!/bin/sh
echo "supervisor $SBX_TOKEN $(cat /etc/sbx/config)" > /tmp/started
exec sleep 2147483647
"""


@pytest.fixture
def host(tmp_path) -> Path:
    """Files on the engine's host for bind mounts (the live engines are local)."""
    tmp_path.chmod(0o755)
    (tmp_path / "config").write_text("config-1\n")
    sup = tmp_path / "supervisor"
    sup.write_text(SUPERVISOR)
    sup.chmod(0o755)
    return tmp_path


@pytest.fixture
def volumes(engine, run_id):
    """``volumes(name)``: a per-test volume name, removed (after the test's containers) at the
    end on a live engine."""
    made: list[str] = []

    def name(suffix: str) -> str:
        made.append(f"sct-{run_id}-{suffix}")
        return made[-1]

    yield name
    if made and not isinstance(engine, FakeEngine) and not getattr(engine, "closed", False):
        engine.remove_all([c.id for c in engine.list({RUN: run_id})], force=True)
        for volume in made:
            try:
                engine.api.remove_volume(volume, force=True)
            except Exception:  # noqa: BLE001 - not made (a refused create), or already gone
                pass


# -- the fields, one case each ------------------------------------------------------------------

#: case id -> the spec fields it sets (a function of the host folder and the volume namer).
CASES = {
    "entrypoint": lambda h, v: dict(entrypoint=("/bin/sh", "-c"),
                                    command=("exec sleep 2147483647",)),
    "command": lambda h, v: dict(command=("sleep", "1000000")),
    "env": lambda h, v: dict(env={"A": "1", "B": "two words", "C": ""}),
    "user": lambda h, v: dict(user="1000:1000"),
    "working-dir": lambda h, v: dict(working_dir="/tmp"),
    "hostname": lambda h, v: dict(hostname="sbx-host"),
    "tty-stdin": lambda h, v: dict(tty=True, stdin_open=True),
    "bind": lambda h, v: dict(mounts=(Mount("/etc/sbx/config", "bind", str(h / "config"), True),
                                      Mount("/srv", "bind", str(h)))),
    "named-volume": lambda h, v: dict(mounts=(Mount("/data", "volume", v("data"), True),)),
    "anonymous-volume": lambda h, v: dict(mounts=(Mount("/data", "volume"),)),
    "tmpfs": lambda h, v: dict(mounts=(Mount("/run/t", "tmpfs", options="size=1m"),)),
    "capabilities": lambda h, v: dict(cap_add=("NET_ADMIN", "sys_admin", "CAP_NET_RAW"),
                                      cap_drop=("CHOWN",)),
    "drop-all": lambda h, v: dict(cap_drop=("ALL",), cap_add=("NET_ADMIN", "SETUID")),
    "security-opt": lambda h, v: dict(security_opt=("no-new-privileges", "apparmor=unconfined")),
    "privileged": lambda h, v: dict(privileged=True),
    "network-host": lambda h, v: dict(network_mode="host"),
    "extra-hosts": lambda h, v: dict(extra_hosts=("host.openshell.internal:10.0.0.1",
                                                  "gw.example:10.0.0.2")),
    "restart-unless-stopped": lambda h, v: dict(restart_policy="unless-stopped"),
    "restart-on-failure": lambda h, v: dict(restart_policy="on-failure", restart_retries=3),
    "init": lambda h, v: dict(init=True),
    "limits": lambda h, v: dict(nano_cpus=500_000_000, memory=64 * 1024 * 1024),
}
#: Cases whose containers cannot run on the CPU machines' Docker (a privileged container needs
#: capabilities the machine does not grant: runc "unable to apply caps").
NOT_STARTED = {"privileged"}


def expected(engine: Engine, s: ContainerSpec, key: str):
    """What inspect reports for field ``key`` of ``s`` on ``engine``."""
    value = getattr(s, key)
    if "ALL" in s.cap_drop and is_podman(engine):
        # Read relative to Podman's defaults: every default not kept is dropped, and only what
        # is not a default is added (see engines/podman.py).
        if key == "cap_drop":
            return tuple(sorted(PODMAN_DEFAULT_CAPABILITIES - set(s.cap_add)))
        if key == "cap_add":
            return tuple(sorted(set(s.cap_add) - PODMAN_DEFAULT_CAPABILITIES))
    return value


def check_reported(engine: Engine, c: Container, s: ContainerSpec, keys) -> None:
    for key in keys:
        if key == "env":  # Podman adds PATH, TERM and container=podman
            assert {k: c.env.get(k) for k in s.env} == dict(s.env)
            if not is_podman(engine):
                assert dict(c.env) == dict(s.env)
        else:
            assert getattr(c, key) == expected(engine, s, key), key


def same_but_hostname(source: Container, clone: Container) -> dict:
    """The fields in which ``clone``'s configuration differs from ``source``'s, besides a
    default hostname (each container's own short id)."""
    a, b = source.config(), clone.config()
    if source.hostname == source.short_id:
        assert clone.hostname == clone.short_id
        a.pop("hostname"), b.pop("hostname")
    return {k: (a[k], b[k]) for k in a if a[k] != b[k]}


@pytest.fixture(params=sorted(CASES))
def case(request, spec, host, volumes):
    return request.param, spec(request.param, **CASES[request.param](host, volumes))


def test_inspect_shows_each_field(engine, case):
    name, s = case
    c = engine.inspect(engine.create(s))
    keys = [k for k in CASES[name](Path("/"), lambda x: x)]
    check_reported(engine, c, s, keys)
    assert dict(c.labels) == dict(s.labels)


def test_a_clone_preserves_each_field(engine, case, mine, spec):
    name, s = case
    source_id = engine.create(s)
    if name not in NOT_STARTED:
        engine.start(source_id)
    source = engine.inspect(source_id)
    clone = engine.inspect(engine.create(clone_spec(source, name=spec("clone").name)))
    assert same_but_hostname(source, clone) == {}
    assert (dict(clone.labels), clone.image) == (dict(source.labels), source.image)
    if name not in NOT_STARTED:
        engine.stop(source_id)
        engine.start(clone.id)
        assert engine.inspect(clone.id).state == "running"


def test_a_list_summary_carries_no_configuration(engine, spec, host, volumes, mine):
    rich = {}
    for name in ("entrypoint", "env", "bind", "capabilities", "security-opt", "extra-hosts",
                 "restart-unless-stopped", "limits", "tty-stdin"):
        rich.update(CASES[name](host, volumes))
    cid = engine.create(spec(**rich))
    [listed] = mine()
    assert listed.id == cid
    assert listed.changed() == {}
    assert engine.inspect(cid).changed() != {}


def test_an_edit_changes_only_what_it_says(engine, spec, host, volumes):
    rich = {}
    for name in ("entrypoint", "env", "bind", "capabilities", "security-opt", "extra-hosts",
                 "restart-unless-stopped", "limits", "hostname"):
        rich.update(CASES[name](host, volumes))
    source = engine.inspect(engine.create(spec(labels={"role": "a", "keep": "k"}, **rich)))
    gpu = DeviceRequest(count=-1, capabilities=(("gpu",),))
    edited = clone_spec(source, name=spec("edited").name, labels={"role": None, "new": "n"},
                        env={"A": None, "D": "4"}, add_device_requests=(gpu,),
                        restart_policy="always")
    clone = engine.inspect(engine.create(edited))
    diff = same_but_hostname(source, clone)
    want_requests = () if is_podman(engine) else (gpu,)  # Podman drops device requests
    assert diff.pop("restart_policy") == ("unless-stopped", "always")
    assert diff.pop("env") == (source.env, clone.env)
    if want_requests:
        assert diff.pop("device_requests") == ((), want_requests)
    assert diff == {}
    assert "A" not in clone.env and clone.env["D"] == "4" and clone.env["B"] == "two words"
    assert dict(clone.labels) == {**{k: v for k, v in source.labels.items() if k != "role"},
                                  "new": "n"}
    assert clone.hostname == "sbx-host"  # one of its own: copied


def test_a_clone_of_a_default_hostname_gets_its_own(engine, spec):
    source = engine.inspect(engine.create(spec()))
    assert source.hostname == source.short_id
    clone = engine.inspect(engine.create(clone_spec(source, name=spec("clone").name)))
    assert clone.hostname == clone.short_id


def test_clone_spec_refuses_a_summary_and_unknown_fields(engine, spec, mine):
    engine.create(spec())
    [listed] = mine()
    with pytest.raises(TypeError, match="not container fields: colour"):
        clone_spec(engine.inspect(listed.id), name="x", colour="red")
    with pytest.raises(ValueError, match="inspected"):
        clone_spec(replace(listed, id=""), name="x")


# -- the supervisor-style container (OpenShell's Docker driver) -----------------------------------


def supervisor_spec(spec, host: Path, suffix: str = "sup") -> ContainerSpec:
    """A container like OpenShell's Docker driver makes: its supervisor as entrypoint from a
    bind-mounted file, a second bind, an environment, capabilities, a security option, root,
    restart unless-stopped, no network."""
    return spec(suffix, entrypoint=("/opt/openshell/bin/openshell-sandbox",), command=(),
                user="0", env={"SBX_TOKEN": "t-1", "OPENSHELL_SANDBOX_ID": "s1"},
                mounts=(Mount("/opt/openshell/bin/openshell-sandbox", "bind",
                              str(host / "supervisor"), True),
                        Mount("/etc/sbx/config", "bind", str(host / "config"), True)),
                cap_add=("SYS_ADMIN", "NET_ADMIN", "SYS_PTRACE", "SYSLOG"),
                security_opt=("no-new-privileges",), network_mode="none",
                restart_policy="unless-stopped",
                extra_hosts=("host.openshell.internal:10.0.0.1",))


def started_line(engine: Engine, cid: str) -> str | None:
    """What the supervisor wrote when it started (None on an engine without processes)."""
    if isinstance(engine, FakeEngine):
        return None
    code, out = engine.exec(cid, ["cat", "/tmp/started"])
    assert code == 0, out
    return out.strip()


def main_process(engine: Engine, cid: str) -> list[str] | None:
    if isinstance(engine, FakeEngine):
        return None
    code, out = engine.exec(cid, ["cat", "/proc/1/cmdline"])
    assert code == 0, out
    return out.split("\0")[:-1]


def test_a_supervisor_style_clone_starts_and_runs_the_same_entrypoint(engine, spec, host):
    source_id = engine.create(supervisor_spec(spec, host))
    engine.start(source_id)
    source = engine.inspect(source_id)
    assert source.state == "running"
    assert source.entrypoint == ("/opt/openshell/bin/openshell-sandbox",)
    # The GPU tool's handoff: stop the original, run a copy of it with a GPU.
    engine.stop(source_id)
    clone_id = engine.create(clone_spec(source, name=spec("sup-clone").name))
    engine.start(clone_id)
    clone = engine.inspect(clone_id)
    assert clone.state == "running"
    assert same_but_hostname(source, clone) == {}
    if not isinstance(engine, FakeEngine):
        assert main_process(engine, clone_id) == ["sleep", "2147483647"]  # exec'd by it
        assert started_line(engine, clone_id) == "supervisor t-1 config-1"
        engine.start(source_id)
        assert started_line(engine, source_id) == started_line(engine, clone_id)


def test_a_clone_whose_bind_source_vanished_is_refused(engine, spec, host, mine):
    source = engine.inspect(engine.create(supervisor_spec(spec, host)))
    (host / "config").unlink()
    clone = clone_spec(source, name=spec("clone").name)
    if is_podman(engine):
        # Podman creates a missing bind source (an empty directory there), as `-v` does.
        engine.create(clone)
        assert (host / "config").is_dir()
        return
    with pytest.raises(EngineInvalid) as exc:
        engine.create(clone)
    assert exc.value.status == 400
    assert f"bind source path does not exist: {host / 'config'}" in str(exc.value)
    assert [c.id for c in mine()] == [source.id]


# -- what Docker refuses, the fake refuses --------------------------------------------------------


REFUSED = {
    # case: (spec fields, Docker's class and message, Podman's answer: None = accepted)
    "relative-mount-target": (dict(mounts=(Mount("etc/x", "tmpfs"),)), EngineInvalid,
                              "invalid mount path: 'etc/x' mount path must be absolute", 500),
    "unknown-capability": (dict(cap_add=("NO_SUCH_CAP",)), EngineInvalid,
                           'invalid CapAdd: unknown capability: "CAP_NO_SUCH_CAP"', 500),
    "unknown-restart-policy": (dict(restart_policy="sometimes"), EngineInvalid,
                               "invalid restart policy 'sometimes'", 500),
    "retries-without-on-failure": (dict(restart_policy="always", restart_retries=2),
                                   EngineInvalid, "maximum retry count cannot be used with "
                                   "restart policy 'always'", None),
    "malformed-security-opt": (dict(security_opt=("bogus",)), EngineError,
                               'invalid --security-opt 1: "bogus"', 500),
    "unknown-security-opt": (dict(security_opt=("foo=bar",)), EngineError,
                             'invalid --security-opt 2: "foo=bar"', 500),
    "tiny-memory": (dict(memory=1000), EngineInvalid, "Minimum memory limit allowed is 6MB",
                    None),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_configurations(engine, spec, mine, name):
    fields_, cls, message, podman_status = REFUSED[name]
    s = spec(name, **fields_)
    if is_podman(engine):
        if podman_status is None:
            engine.create(s)
            return
        with pytest.raises(EngineError) as exc:
            engine.create(s)
        assert exc.value.status == podman_status
        assert mine() == []
        return
    with pytest.raises(cls) as exc:
        engine.create(s)
    assert message in str(exc.value)
    assert exc.value.status == (500 if cls is EngineError else 400)
    assert mine() == []


def test_an_unknown_network_fails_at_start(engine, spec):
    s = spec(network_mode="sct-no-such-network")
    if is_podman(engine):  # Podman refuses it at create
        with pytest.raises(EngineError, match="network not found"):
            engine.create(s)
        return
    cid = engine.create(s)
    with pytest.raises(EngineNotFound, match="network sct-no-such-network not found"):
        engine.start(cid)
    assert engine.inspect(cid).state == "created"


def test_an_image_mount(engine, spec):
    s = spec(mounts=(Mount("/opt/img", "image", IMAGE, True),))
    if not is_podman(engine) and not isinstance(engine, FakeEngine):
        # Docker before API 1.48 (28.0) has no image mounts.
        with pytest.raises(EngineInvalid, match='type "image": mount type unknown'):
            engine.create(s)
        return
    source = engine.inspect(engine.create(s))
    assert source.mounts == s.mounts
    clone = engine.inspect(engine.create(clone_spec(source, name=spec("clone").name)))
    assert clone.mounts == s.mounts
    engine.start(clone.id)
    if is_podman(engine):
        code, out = engine.exec(clone.id, ["ls", "/opt/img/bin/busybox"])
        assert code == 0, out


def test_podman_reads_back_as_docker_on_a_plain_container(engine, spec):
    # Podman reports CapDrop [AUDIT_WRITE, MKNOD, NET_RAW], HOSTNAME in Env, "" restart policy:
    # read back, a container that asked for nothing has nothing (docs/engines.md).
    c = engine.inspect(engine.create(spec()))
    assert (c.cap_add, c.cap_drop, c.security_opt, c.mounts) == ((), (), (), ())
    assert (c.restart_policy, c.restart_retries, c.init, c.network_mode) == ("no", 0, None,
                                                                            "none")
    assert "HOSTNAME" not in c.env
    assert c.command == SLEEP and c.entrypoint == ()
    assert c.working_dir == ("/" if is_podman(engine) else "")


def test_the_fake_checks_bind_sources_where_it_is_told():
    seen = []
    fake = FakeEngine(path_exists=lambda p: seen.append(p) or p == "/there")
    fake.create(ContainerSpec(name="ok", image=IMAGE, mounts=(Mount("/x", source="/there"),)))
    with pytest.raises(EngineInvalid, match="bind source path does not exist: /gone"):
        fake.create(ContainerSpec(name="no", image=IMAGE, mounts=(Mount("/x", source="/gone"),)))
    assert seen == ["/there", "/gone"]
    with pytest.raises(EngineInvalid, match="Duplicate mount point: /x"):
        fake.create(ContainerSpec(name="dup", image=IMAGE, mounts=(
            Mount("/x", "tmpfs"), Mount("/x", "volume"))))


# -- a container Podman made itself (OpenShell's Podman driver) ------------------------------------


@pytest.fixture
def podman(run_id):
    """Podman's compatible API (skips without it), cleaned of this test's containers, volumes
    and networks at the end."""
    from test_engine_fake import _make_engine

    eng = _make_engine("podman")
    made: dict[str, list[str]] = {"volumes": [], "networks": []}
    eng.made = made  # type: ignore[attr-defined]
    try:
        yield eng
    finally:
        eng.remove_all([c.id for c in eng.list({RUN: run_id})], force=True)
        for volume in made["volumes"]:
            try:
                eng.api.remove_volume(volume, force=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
        for network in made["networks"]:
            try:
                eng.api.remove_network(network)
            except Exception:  # noqa: BLE001 - already gone
                pass
        eng.close()


def libpod_create(eng, body: dict) -> str:
    """Create through Podman's own API (``POST /libpod/containers/create``), as OpenShell's
    Podman driver does."""
    import json

    answer = eng.api.post(eng.api.base_url + "/v4.0.0/libpod/containers/create",
                          data=json.dumps(body), headers={"Content-Type": "application/json"})
    assert answer.status_code == 201, answer.text
    return answer.json()["Id"]


@pytest.mark.live
def test_a_clone_of_a_container_podman_made_starts(podman, run_id):
    volume, network = f"sct-{run_id}-ws", f"sct-{run_id}-net"
    podman.made["volumes"].append(volume)
    podman.made["networks"].append(network)
    podman.api.create_network(network)
    probe = "ls /opt/openshell/bin/busybox > /tmp/started && exec sleep 2147483647"
    source_id = libpod_create(podman, {
        "name": f"sct-{run_id}-pod", "image": IMAGE, "labels": {RUN: run_id, "role": "sbx"},
        "env": {"SBX_TOKEN": "t-1"}, "entrypoint": ["/bin/sh", "-c", probe], "command": [],
        "user": "0", "work_dir": "/",
        "image_volumes": [{"source": IMAGE, "destination": "/opt/openshell", "rw": False}],
        "volumes": [{"name": volume, "dest": "/sandbox", "options": []}],
        "mounts": [{"type": "tmpfs", "source": "tmpfs", "destination": "/run/t",
                    "options": ["size=1m"]}],
        "cap_drop": ["ALL"], "cap_add": ["SYS_ADMIN", "NET_ADMIN", "SETUID", "NET_RAW"],
        "no_new_privileges": True, "hostname": "sbx-1",
        "hostadd": ["host.containers.internal:10.0.0.2"],
        "netns": {"nsmode": "bridge"}, "networks": {network: {}},
    })
    podman.start(source_id)
    source = podman.inspect(source_id)
    # What Podman reported, read back (engines/podman.py): the image volume once, as an image
    # mount (its overlay bind dropped); the network by name; capabilities relative to
    # Podman's defaults, NET_RAW included; no HOSTNAME in the environment.
    assert [m.describe() for m in source.mounts] == [
        f"image {IMAGE}:/opt/openshell ro", "tmpfs /run/t (size=1m)", f"volume {volume}:/sandbox"]
    assert source.network_mode == network
    assert source.cap_add == ("NET_ADMIN", "NET_RAW", "SYS_ADMIN")
    assert source.cap_drop == tuple(sorted(PODMAN_DEFAULT_CAPABILITIES - {"SETUID"}))
    assert source.security_opt == ("no-new-privileges",)
    assert (source.hostname, source.entrypoint[:2], source.user) == ("sbx-1", ("/bin/sh", "-c"),
                                                                      "0")
    assert "HOSTNAME" not in source.env and source.env["SBX_TOKEN"] == "t-1"
    podman.stop(source_id)
    clone_id = podman.create(clone_spec(source, name=f"sct-{run_id}-pod-clone"))
    podman.start(clone_id)
    clone = podman.inspect(clone_id)
    assert clone.state == "running"
    assert same_but_hostname(source, clone) == {}
    code, out = podman.exec(clone_id, ["cat", "/tmp/started", "/proc/self/status"])
    assert code == 0 and out.startswith("/opt/openshell/bin/busybox"), out
    # The clone's process has exactly the source's capabilities.
    podman.start(source_id)
    caps = [podman.exec(cid, ["grep", "CapEff", "/proc/1/status"])[1] for cid in (source_id,
                                                                                clone_id)]
    assert caps[0] == caps[1], caps
