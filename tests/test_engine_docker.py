"""The Docker engine's own parts: endpoint resolution, error mapping, timestamps, the image helper.

The Engine behaviour itself (create, rename, list, ...) is tested on Docker and the fake alike in
``tests/test_engine_fake.py``. The tests here that need a live engine are marked ``live`` and
skip (or fail under ``SANDBOX_CONFORMANCE_REQUIRE_ENGINE=1``) without one, like the docker
params there; every container they create is labelled with a per-test run label and removed, and
every image they make has a per-test name and is removed too.
"""

from __future__ import annotations

import io
import json
import os
import sys
import tarfile
import uuid
from pathlib import Path

import pytest

from pytest_sandbox_conformance.engines.base import (
    ContainerSpec,
    EngineConflict,
    EngineError,
    EngineInvalid,
    EngineNotFound,
    EngineUnavailable,
)

docker = pytest.importorskip("docker", reason="the Docker SDK is not installed ([live] extra)")

from pytest_sandbox_conformance import cli  # noqa: E402
from pytest_sandbox_conformance.engines import image as image_mod  # noqa: E402
from pytest_sandbox_conformance.engines.docker import (  # noqa: E402
    INSTALL_HINT,
    DockerEngine,
    map_docker_errors,
    parse_created,
    resolve_endpoint,
)

RUN = "sandbox-conformance.test/run"
SLEEP = ("sleep", "2147483647")
REQUIRE_ENGINE = os.environ.get("SANDBOX_CONFORMANCE_REQUIRE_ENGINE") == "1"


# -- no engine needed ---------------------------------------------------------------------------


@pytest.mark.parametrize("value, expected", [
    ("2026-11-26T18:26:57.667680432Z", 1795717617_667680432),
    ("2026-11-26T18:26:57Z", 1795717617_000000000),
    ("2026-11-26T18:26:57.5Z", 1795717617_500000000),
    ("2026-11-26T19:26:57.667680432+01:00", 1795717617_667680432),  # Podman: local offsets
    ("2026-11-26T18:26:57.1234567891Z", 1795717617_123456789),       # beyond ns: cut
])
def test_parse_created(value, expected):
    assert parse_created(value) == expected


def test_parse_created_refuses_garbage():
    with pytest.raises(EngineError):
        parse_created("yesterday")


def _api_error(status: int, explanation: str):
    import requests

    response = requests.Response()
    response.status_code = status
    return docker.errors.APIError("boom", response=response, explanation=explanation)


@pytest.mark.parametrize("status, cls", [(404, EngineNotFound), (409, EngineConflict),
                                         (400, EngineInvalid), (500, EngineError)])
def test_api_errors_map_to_engine_errors_by_status(status, cls):
    with pytest.raises(EngineError) as exc:
        with map_docker_errors():
            raise _api_error(status, "what the engine said")
    assert type(exc.value) is cls
    assert exc.value.status == status
    assert str(exc.value) == "what the engine said"
    assert isinstance(exc.value.__cause__, docker.errors.APIError)  # kept as the cause only


@pytest.mark.parametrize("status", [502, 503, 504])
def test_a_proxy_that_cannot_reach_the_engine_is_an_unavailable_engine(status):
    with pytest.raises(EngineUnavailable) as exc:
        with map_docker_errors("the docker engine at unix:///x.sock"):
            raise _api_error(status, "upstream gone")
    assert str(exc.value) == (f"cannot reach the docker engine at unix:///x.sock: it answered "
                              f"{status}: upstream gone")
    assert exc.value.status == 503


@pytest.mark.parametrize("raised, status", [
    (lambda: docker.errors.NullResource("Resource ID was not provided"), 404),
    (lambda: docker.errors.DockerException("Error while fetching server API version: x"), 503),
    (lambda: docker.errors.InvalidVersion("device_requests needs 1.40"), 500),
    (lambda: __import__("requests").exceptions.ConnectionError("refused"), 503),
    (lambda: ConnectionResetError("reset"), 503),
])
def test_other_sdk_and_transport_errors_never_leak(raised, status):
    with pytest.raises(EngineError) as exc:
        with map_docker_errors():
            raise raised()
    assert exc.value.status == status
    assert not isinstance(exc.value, docker.errors.DockerException)


def test_engine_errors_pass_through_the_mapping():
    original = EngineConflict("ours")
    with pytest.raises(EngineConflict) as exc:
        with map_docker_errors():
            raise original
    assert exc.value is original


def test_missing_sdk_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "docker", None)  # import docker -> ImportError
    with pytest.raises(ImportError, match=r"pip install 'pytest-sandbox-conformance\[live\]'"):
        DockerEngine()
    assert "[live]" in INSTALL_HINT


@pytest.fixture
def docker_config(tmp_path, monkeypatch):
    """An empty docker config folder (``DOCKER_CONFIG``), no DOCKER_HOST, no DOCKER_CONTEXT."""
    folder = tmp_path / "docker-config"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    monkeypatch.setenv("DOCKER_CONFIG", str(folder))
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    monkeypatch.delenv("DOCKER_TLS_VERIFY", raising=False)
    monkeypatch.delenv("DOCKER_CERT_PATH", raising=False)
    return folder


def _add_context(folder: Path, name: str, host: str, current: bool = False) -> None:
    """Write a context as ``docker context create NAME --docker host=HOST`` does."""
    import hashlib

    meta = folder / "contexts" / "meta" / hashlib.sha256(name.encode()).hexdigest()
    meta.mkdir(parents=True)
    (meta / "meta.json").write_text(json.dumps({
        "Name": name, "Metadata": {},
        "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": False}}}))
    if current:
        config = json.loads((folder / "config.json").read_text())
        config["currentContext"] = name
        (folder / "config.json").write_text(json.dumps(config))


def test_endpoint_explicit_url_wins(docker_config, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "tcp://elsewhere:2375")
    assert resolve_endpoint("unix:///run/podman/podman.sock")[::2] == (
        "unix:///run/podman/podman.sock", "base_url")


def test_endpoint_docker_host_wins_over_the_context(docker_config, monkeypatch):
    _add_context(docker_config, "remote", "tcp://remote.example:2375", current=True)
    monkeypatch.setenv("DOCKER_HOST", "tcp://from-env:2375")
    url, tls, source = resolve_endpoint()
    assert (url, source) == ("tcp://from-env:2375", "DOCKER_HOST")
    assert not tls


def test_endpoint_from_the_current_context(docker_config):
    _add_context(docker_config, "remote", "tcp://remote.example:2375", current=True)
    url, _, source = resolve_endpoint()
    assert url == "tcp://remote.example:2375"
    assert source == "docker context 'remote'"


def test_endpoint_docker_context_variable_wins_over_the_config(docker_config, monkeypatch):
    _add_context(docker_config, "remote", "tcp://remote.example:2375", current=True)
    _add_context(docker_config, "other", "tcp://other.example:2375")
    monkeypatch.setenv("DOCKER_CONTEXT", "other")
    assert resolve_endpoint()[0] == "tcp://other.example:2375"


def test_endpoint_unknown_context_is_an_engine_error(docker_config, monkeypatch):
    monkeypatch.setenv("DOCKER_CONTEXT", "no-such-context")
    with pytest.raises(EngineError, match="no-such-context"):
        resolve_endpoint()


def test_endpoint_default_socket(docker_config):
    assert resolve_endpoint()[::2] == ("unix:///var/run/docker.sock", "docker context 'default'")


def test_unreachable_engine_is_a_503_and_leaks_nothing(tmp_path):
    with pytest.raises(EngineError) as exc:
        DockerEngine(f"unix://{tmp_path}/no.sock")
    assert exc.value.status == 503
    assert "cannot reach" in str(exc.value) and "no.sock" in str(exc.value)


def test_busybox_rootfs_tar_layout(tmp_path):
    fake_busybox = tmp_path / "busybox"
    fake_busybox.write_bytes(b"\x7fELF-not-really")
    with tarfile.open(fileobj=io.BytesIO(image_mod.busybox_rootfs_tar(fake_busybox))) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members["bin/busybox"].isfile() and members["bin/busybox"].mode == 0o755
    assert members["tmp"].isdir() and members["tmp"].mode == 0o1777
    for applet in ("sh", "sleep", "cat", "echo", "ls", "env", "head", "grep", "true"):
        assert members[f"bin/{applet}"].issym() and members[f"bin/{applet}"].linkname == "busybox"


def test_static_elf_detection(tmp_path):
    if Path("/bin/ls").is_file():
        assert not image_mod.is_static_elf("/bin/ls")  # dynamically linked everywhere we run
    not_elf = tmp_path / "script"
    not_elf.write_text("#!/bin/sh\n")
    assert not image_mod.is_static_elf(not_elf)
    assert not image_mod.is_static_elf(tmp_path / "missing")
    with pytest.raises(EngineError, match="busybox-static"):
        image_mod.find_static_busybox(not_elf)
    with pytest.raises(EngineError, match="busybox-static"):
        image_mod.find_static_busybox(tmp_path / "missing")


def test_make_image_cli_reports_a_bad_busybox(tmp_path, capsys):
    not_static = tmp_path / "busybox"
    not_static.write_text("#!/bin/sh\n")
    assert cli.main(["make-image", "--busybox", str(not_static), "--ref", "x:y"]) == 1
    err = capsys.readouterr().err
    assert "make-image" in err and "busybox-static" in err


# -- a live engine ------------------------------------------------------------------------------


@pytest.fixture
def live():
    """A DockerEngine on the current endpoint; skip (or fail, when required) without one."""
    try:
        eng = DockerEngine()
    except (ImportError, EngineError) as exc:
        reason = f"docker: no reachable Docker engine: {exc}"
    else:
        yield eng
        eng.close()
        return
    if REQUIRE_ENGINE:
        pytest.fail(f"{reason} (SANDBOX_CONFORMANCE_REQUIRE_ENGINE=1 requires it)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def run_id(live):
    rid = uuid.uuid4().hex[:12]
    yield rid
    live.remove_all([c.id for c in live.list({RUN: rid})], force=True)


@pytest.fixture
def local_image(live):
    """The suite's image on the live engine (skip, or fail when required, if it is absent)."""
    try:
        return image_mod.ensure_image(live, image_mod.DEFAULT_IMAGE)
    except EngineError as exc:
        if REQUIRE_ENGINE:
            pytest.fail(str(exc), pytrace=False)
        pytest.skip(str(exc))


@pytest.mark.live
def test_ensure_image_says_how_to_make_a_missing_image(live):
    ref = f"sct-absent-{uuid.uuid4().hex[:8]}:local"
    with pytest.raises(image_mod.ImageMissing) as exc:
        image_mod.ensure_image(live, ref)
    message = str(exc.value)
    assert isinstance(exc.value, EngineError) and exc.value.status == 404
    assert f"sandbox-conformance make-image --ref {ref}" in message
    assert "busybox-static" in message and "could not be pulled" in message


@pytest.mark.live
def test_make_busybox_image_runs_the_applets(live, run_id):
    try:
        busybox = image_mod.find_static_busybox()
    except EngineError as exc:
        pytest.skip(str(exc))
    ref = f"sct-made-{run_id}:local"
    image_id = image_mod.make_busybox_image(ref, busybox, engine=live)
    try:
        assert image_mod.ensure_image(live, ref, pull=False) == image_id
        config = live.api.inspect_image(ref)["Config"]
        assert config["Cmd"] == list(image_mod.DEFAULT_COMMAND)
        assert not config.get("Labels") and not config.get("Env")  # nothing leaks into containers
        script = ("echo hi | grep hi && head -c0 /dev/null && cat /dev/null && ls / >/dev/null "
                  "&& env >/dev/null && true && sleep 0")
        cid = live.create(ContainerSpec(name=f"sct-{run_id}-made", image=ref,
                                        labels={RUN: run_id}, command=("sh", "-c", script)))
        live.start(cid)
        exit_code = live.api.wait(cid, timeout=30)["StatusCode"]
        assert exit_code == 0
        assert live.inspect(cid).state == "exited"
        live.remove(cid)
    finally:
        with map_docker_errors():
            live.api.remove_image(image_id, force=True)


@pytest.mark.live
def test_list_is_one_request_whatever_the_number_of_containers(live, run_id, local_image):
    for i in range(5):
        live.create(ContainerSpec(name=f"sct-{run_id}-{i}", image=image_mod.DEFAULT_IMAGE,
                                  labels={RUN: run_id}, command=SLEEP))
    responses = []
    live.api.hooks["response"].append(lambda r, *a, **k: responses.append(r.request.path_url))
    before_calls, before_seconds = live.calls["list"], live.api_seconds
    assert len(live.list({RUN: run_id})) == 5
    assert len(responses) == 1
    assert responses[0].startswith(f"/v{live.api.api_version}/containers/json")
    assert live.calls["list"] == before_calls + 1
    assert live.api_seconds > before_seconds


@pytest.mark.live
def test_missing_image_at_create_is_not_found(live, run_id):
    # The fake has no images: it creates from any reference (a difference, docs/engines.md).
    with pytest.raises(EngineNotFound, match="No such image"):
        live.create(ContainerSpec(name=f"sct-{run_id}-x", image=f"sct-absent-{run_id}:local",
                                  labels={RUN: run_id}, command=SLEEP))


@pytest.mark.live
def test_empty_references_are_not_found_and_empty_names_invalid(live, run_id, local_image):
    with pytest.raises(EngineNotFound):
        live.inspect("")
    with pytest.raises(EngineInvalid):  # the API would invent a random name
        live.create(ContainerSpec(name="", image=image_mod.DEFAULT_IMAGE, labels={RUN: run_id},
                                  command=SLEEP))
    assert live.list({RUN: run_id}) == []


@pytest.mark.live
def test_a_closed_engine_refuses_calls(live):
    live.close()
    with pytest.raises(EngineError, match="closed"):
        live.list()


@pytest.mark.live
def test_engine_through_the_current_context(live, docker_config):
    # The same engine, reached through a docker context instead of the default path (``live``
    # connects before ``docker_config`` clears DOCKER_HOST).
    if not live.base_url.startswith("unix://"):
        pytest.skip("needs a unix-socket engine (a context without TLS material)")
    _add_context(docker_config, "sct-ctx", live.base_url, current=True)
    with DockerEngine() as eng:
        assert eng.endpoint_source == "docker context 'sct-ctx'"
        assert isinstance(eng.list({RUN: uuid.uuid4().hex}), list)


@pytest.mark.live
def test_calls_wait_until_the_list_shows_their_effect(live, run_id, local_image, monkeypatch):
    """Docker 26 answers a stop before its list says so: the engine waits (bounded) until the
    list agrees, so the next client that lists (a driver's poll) sees the stop."""
    from pytest_sandbox_conformance.engines import docker as docker_mod

    cid = live.create(ContainerSpec(name=f"sct-{run_id}-lag", image=image_mod.DEFAULT_IMAGE,
                                    labels={RUN: run_id}, command=SLEEP))
    live.start(cid)
    real = live._api.containers
    stale = {"left": 3}

    def lagging(*args, **kwargs):  # the next 3 lists by id still say "running"
        rows = real(*args, **kwargs)
        if (kwargs.get("filters") or {}).get("id") and stale["left"]:
            stale["left"] -= 1
            return [dict(r, State="running") for r in rows]
        return rows

    monkeypatch.setattr(live._api, "containers", lagging)
    before = live.calls["settle"]
    live.stop(cid)
    assert stale["left"] == 0 and live.calls["settle"] == before + 4
    assert [c.state for c in live.list({RUN: run_id})] == ["exited"]

    stale["left"] = 10**6  # a list that never agrees: the call still returns, after the bound
    monkeypatch.setattr(docker_mod, "LIST_SETTLE_TIMEOUT", 0.2)
    live.start(cid)
    live.kill(cid)
