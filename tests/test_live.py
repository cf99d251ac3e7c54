"""Live mode, end to end: the suite on real containers (``--sandbox-engine=docker``).

What a live run promises (``pytest_sandbox_conformance/live/session.py``, ``docs/ci.md``): it touches only
the containers it created, leaves nothing behind (pass, failure or Ctrl-C) unless
``--sandbox-keep``, sweeps only the leftovers of dead sessions of this machine, and parallel
workers never see each other's containers.

Every test here is marked ``live``. The ``docker_engine`` fixture is ``tests/test_engine_fake.py``'s
engine maker: without a reachable engine, the SDK or the image, the tests skip with the reason;
under ``SANDBOX_CONFORMANCE_REQUIRE_ENGINE=1`` (CI) they fail instead. Inner runs go through
``tests/test_plugin.py``'s ``suite`` fixture (a pytester folder, only ``scen/`` as scenarios,
journals on a fast folder), except the catalog run and the Ctrl-C run (a real subprocess).

Containers this file makes itself are named ``sct-<run>-...``; they are removed in ``finally``
blocks by ID, and nothing else on the engine is ever removed by a test here (inner runs remove
their own session's containers; the sweep test sweeps with its own lock folder).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from pytest_sandbox_conformance.engines.base import Container, ContainerSpec, Engine, EngineNotFound
from pytest_sandbox_conformance.engines.image import DEFAULT_IMAGE
from pytest_sandbox_conformance.live import (
    NAMESPACE_PREFIX,
    SESSION_LABEL,
    LiveSession,
    default_lock_dir,
)
from reference_driver.naming import LabelKeys

# Shared helpers and fixtures of the other test modules (``tests/`` is on sys.path, like
# ``broken_drivers``): the engine maker that skips or fails, and the pytester-based inner runs.
from test_engine_fake import REQUIRE_ENGINE, _make_engine
from test_plugin import (  # noqa: F401 - ``suite`` and ``broken_drivers`` are fixtures used here
    BASIC,
    PLUGINS,
    broken_drivers,
    outcomes_by_item,
    scenarios,
    suite,
)

pytestmark = pytest.mark.live

KEYS = LabelKeys()
NS = KEYS.namespace
SLEEP = ("sleep", "2147483647")

#: A delete with a hand-made duplicate beside the authority (the catalog's
#: delete-duplicate-beside-authority, one sandbox): the reference driver removes both;
#: ``broken_drivers:deletes_only_one`` leaves the duplicate, so the run fails and its cleanup
#: has a container the driver left behind to remove. ``{copy}`` is the duplicate's literal
#: container name: per test, since literal names are global on a shared engine.
DUPLICATE = """
id: delete-duplicate
title: Delete removes a duplicate beside a running authority
requirements: [OWN-14]
sandboxes:
  s1: {{name: box}}
story:
  - create: s1
    as: A
  - run: s1
    as: D
    name: {copy}
  - delete: s1
    expect_removed: true
expect:
  sandboxes:
    s1: {{tracked: false}}
  containers: []
  deleted: [s1]
  warnings: {{ContainerIdentityConflict: {{max: 1}}}}
"""

#: One sandbox with a per-test name (so a test finds its containers by the name label), observed
#: once: the Ctrl-C test's driver sleeps in that observation.
ONE_OBSERVATION = """
id: one-observation
title: One sandbox, observed once by a slow driver
requirements: [OWN-1]
sandboxes:
  s1: {{name: {name}}}
story:
  - create: s1
    as: A
  - observe: newest
expect:
  sandboxes:
    s1: {{instance: A, phase: Ready}}
"""

#: A reference driver whose every observation first sleeps (``SCT_SLOW_OBSERVE`` seconds).
SLOW_ADAPTER = """
import os
import time

from pytest_sandbox_conformance.adapters.reference import ReferenceAdapter


class Slow(ReferenceAdapter):
    name = "slow"

    def observe(self):
        time.sleep(float(os.environ.get("SCT_SLOW_OBSERVE", "120")))
        return super().observe()


def factory(ctx):
    return Slow(ctx)
"""

#: What may keep a catalog item from running on Docker.
SKIP_REASON = re.compile(r"lacks capabilities: [a-z-]+(, [a-z-]+)* \(|cannot be told a list order")


# -- fixtures and helpers --------------------------------------------------------------------------


@pytest.fixture
def docker_engine():
    """A DockerEngine with the suite's image (skip, or fail when required, without one)."""
    engine = _make_engine("docker")
    yield engine
    engine.close()


@pytest.fixture
def live_suite(suite, docker_engine):
    """``live_suite(*args)``: the ``suite`` inner run, on the Docker engine."""

    def run(*args: str) -> pytest.RunResult:
        return suite("--sandbox-engine=docker", *args)

    return run


@pytest.fixture
def rid() -> str:
    return uuid.uuid4().hex[:8]


def session_of(result: pytest.RunResult) -> str:
    """The live session id from the report header."""
    m = re.search(r"^live engine docker at \S+, image \S+, session ([0-9a-f]{8});",
                  result.stdout.str(), re.M)
    assert m, result.stdout.str()
    return m.group(1)


def remains(engine: Engine, session: str) -> dict[str, Container]:
    """Everything of ``session`` on the engine: by the session label, and by the namespace label
    ``sbxc-<session>-*`` (``docker ps -a --filter label=...``, both ways)."""
    found = {c.id: c for c in engine.list({SESSION_LABEL: session})}
    prefix = f"{NAMESPACE_PREFIX}-{session}-"
    found.update({c.id: c for c in engine.list({NS: None}) if c.labels[NS].startswith(prefix)})
    return found


def exists(engine: Engine, cid: str) -> Container | None:
    try:
        return engine.inspect(cid)
    except EngineNotFound:
        return None


def make(engine: Engine, name: str, labels: dict[str, str], made: list[str],
         start: bool = True) -> str:
    cid = engine.create(ContainerSpec(name=name, image=DEFAULT_IMAGE, labels=labels,
                                      command=SLEEP))
    made.append(cid)
    if start:
        engine.start(cid)
    return cid


# -- 1. the catalog --------------------------------------------------------------------------------


def test_pinned_catalog_passes_on_docker(pytester: pytest.Pytester, docker_engine,
                                         sandbox_state_dir: Path) -> None:
    result = pytester.runpytest(*PLUGINS, "--sandbox-driver=reference", "--sandbox-engine=docker",
                                f"--sandbox-state-dir={sandbox_state_dir}", "-rs",
                                "--sandbox-report=report.json")
    outcomes = result.parseoutcomes()
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert outcomes.get("passed", 0) > 0 and "failed" not in outcomes and "errors" not in outcomes
    # Every item that did not run says why: a capability Docker lacks, or a list order it cannot
    # be told; in the summary and in the report alike.
    skipped = [line for line in result.outlines if line.startswith("SKIPPED")]
    assert len(skipped) <= outcomes.get("skipped", 0)
    for line in skipped:
        assert SKIP_REASON.search(line), line
    report = json.loads((pytester.path / "report.json").read_text())
    assert report["engine"] == "docker" and report["counts"]["failed"] == 0
    items = [i for s in report["scenarios"].values() for i in s["items"].values()]
    assert sum(i["outcome"] == "skipped" for i in items) == outcomes.get("skipped", 0)
    for item in items:
        if item["outcome"] == "skipped":
            assert SKIP_REASON.search(item.get("reason", "")), item
    assert remains(docker_engine, session_of(result)) == {}


# -- 2. containers of others survive ---------------------------------------------------------------


@pytest.mark.parametrize("driver, failed", [
    ("reference", 0),
    ("broken_drivers:deletes_only_one", 1),  # fails delete-duplicate (OWN-14)
])
def test_foreign_containers_survive_a_run(pytester: pytest.Pytester, live_suite, broken_drivers,
                                          docker_engine, rid: str, driver: str,
                                          failed: int) -> None:
    scenarios(pytester, basic=BASIC, dup=DUPLICATE.format(copy=f"sct-{rid}-copy"))
    made: list[str] = []
    try:
        # The identity labels of the scenarios' sandbox (id s1, name box) as another gateway's
        # driver on this engine would set them (another namespace), and a bare container.
        copied_labels = {**KEYS.identity(f"sct-foreign-{rid}", "s1", "box"),
                         KEYS.generation: str(uuid.uuid4())}
        copied = make(docker_engine, f"sct-{rid}-copied-labels", copied_labels, made)
        bare = make(docker_engine, f"sct-{rid}-no-labels", {}, made)
        result = live_suite(f"--sandbox-driver={driver}", "-rA")
        assert sum(v == "FAILED" for v in outcomes_by_item(result).values()) == failed
        result.assert_outcomes(passed=3 - failed, failed=failed)
        if failed:
            result.stdout.fnmatch_lines(["*OWN-14*"])
        for cid, labels in ((copied, copied_labels), (bare, {})):
            c = exists(docker_engine, cid)
            assert c is not None, f"the run removed a container it did not create: {cid[:12]}"
            assert (c.state, dict(c.labels)) == ("running", labels)
        assert remains(docker_engine, session_of(result)) == {}
    finally:
        docker_engine.remove_all(made, force=True)


# -- 3. the sweep ----------------------------------------------------------------------------------


def test_sweep_removes_only_the_leftovers_of_dead_sessions(docker_engine, tmp_path: Path,
                                                           rid: str) -> None:
    lock_dir = tmp_path / "locks"
    lock_dir.mkdir()
    me, dead, alive, unknown = (uuid.uuid4().hex[:8] for _ in range(4))
    (lock_dir / f"{dead}.lock").touch()  # its process is gone: nobody holds the lock
    held = os.open(lock_dir / f"{alive}.lock", os.O_CREAT | os.O_RDWR, 0o600)
    fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a live session (this test) holds it
    # ``unknown`` has no lock file here: another machine's session on a shared engine.
    made: list[str] = []
    by_session: dict[str, list[str]] = {}
    session = LiveSession(docker_engine, NS, me, lock_dir=lock_dir)
    try:
        for s in (dead, alive, unknown, me):
            ns = f"{NAMESPACE_PREFIX}-{s}-{uuid.uuid4().hex[:8]}"
            by_session[s] = [
                # what the suite creates itself (session label) ...
                make(docker_engine, f"sct-{rid}-{s}-suite", {SESSION_LABEL: s}, made,
                     start=s == dead),
                # ... and what a driver creates that does not copy sandbox labels (namespace only)
                make(docker_engine, f"sct-{rid}-{s}-driver", {NS: ns}, made, start=False),
            ]
        bare = make(docker_engine, f"sct-{rid}-no-labels", {}, made, start=False)
        session.acquire()
        result = session.sweep()
        assert sorted(result.removed) == sorted(by_session[dead])
        assert result.foreign >= 4  # alive's and unknown's (and any other session's on the engine)
        for s in (alive, unknown, me):
            assert all(exists(docker_engine, cid) for cid in by_session[s]), s
        assert exists(docker_engine, bare)
        assert not (lock_dir / f"{dead}.lock").exists()
        assert (lock_dir / f"{alive}.lock").exists() and (lock_dir / f"{me}.lock").exists()
        # A session's own cleanup removes its own containers and nothing else.
        assert sorted(c.id for c in session.leftovers()) == sorted(by_session[me])
        assert sorted(session.cleanup()) == sorted(by_session[me])
        for s in (alive, unknown):
            assert all(exists(docker_engine, cid) for cid in by_session[s]), s
        session.release()
        assert not (lock_dir / f"{me}.lock").exists()
    finally:
        session.release()
        os.close(held)
        docker_engine.remove_all(made, force=True)


# -- 4. --sandbox-keep -----------------------------------------------------------------------------


def test_keep_keeps_the_containers_and_says_how_to_remove_them(pytester: pytest.Pytester,
                                                               live_suite, docker_engine) -> None:
    if shutil.which("docker") is None:
        reason = "the removal command --sandbox-keep prints needs the docker CLI on PATH"
        if REQUIRE_ENGINE:
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    scenarios(pytester, basic=BASIC)
    result = live_suite("--sandbox-driver=reference", "--sandbox-keep")
    result.assert_outcomes(passed=2)
    session = session_of(result)
    kept = remains(docker_engine, session)
    try:
        assert len(kept) == 2  # one sandbox container per item
        assert all(c.labels.get(SESSION_LABEL) == session for c in kept.values())
        text = result.stdout.str()
        assert "kept 2 container(s) (--sandbox-keep); remove them with:" in text
        m = re.search(r"remove them with:\n\s+(docker rm -f .+)$", text, re.M)
        assert m and session in m.group(1), text
        done = subprocess.run(["sh", "-c", m.group(1)], capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, done.stderr
        assert remains(docker_engine, session) == {}
    finally:
        docker_engine.remove_all(list(kept), force=True)


def test_a_quiet_run_still_names_its_session(pytester: pytest.Pytester, live_suite,
                                             docker_engine) -> None:
    """pytest -q prints no header; the live session's id (which names its containers) is
    printed all the same."""
    scenarios(pytester, basic=BASIC)
    result = live_suite("--sandbox-driver=reference", "-q")
    result.assert_outcomes(passed=2)
    assert remains(docker_engine, session_of(result)) == {}


# -- 5. a missing image ----------------------------------------------------------------------------


def test_missing_image_is_one_usage_error(pytester: pytest.Pytester, live_suite) -> None:
    scenarios(pytester, basic=BASIC)
    result = live_suite("--sandbox-driver=reference", "--sandbox-image=sbx-absent:none")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.errlines if line.startswith("ERROR:")]
    assert len(errors) == 1, result.errlines
    assert errors[0].startswith("ERROR: --sandbox-engine=docker: the image sbx-absent:none ")
    text = result.stdout.str() + result.stderr.str()
    assert "sandbox-conformance make-image --ref sbx-absent:none" in text
    assert "Traceback" not in text and "raise " not in text
    assert "passed" not in result.stdout.str()


# -- 6. parallel workers ---------------------------------------------------------------------------


def test_parallel_workers_never_see_each_others_containers(pytester: pytest.Pytester, live_suite,
                                                           docker_engine, rid: str) -> None:
    pytest.importorskip("xdist")
    # Every item expects exactly its own containers (``containers: [A]``, ``containers: []``):
    # one of another worker's would fail it.
    scenarios(pytester, basic=BASIC, dup=DUPLICATE.format(copy=f"sct-{rid}-copy"))
    result = live_suite("--sandbox-driver=reference", "-p", "xdist", "-n", "2", "-rA")
    result.assert_outcomes(passed=3)
    assert set(outcomes_by_item(result).values()) == {"PASSED"}
    result.stdout.fnmatch_lines(["created: 2/2 workers"])
    assert remains(docker_engine, session_of(result)) == {}


# -- 7. Ctrl-C -------------------------------------------------------------------------------------


def test_interrupted_run_leaves_nothing(pytester: pytest.Pytester, docker_engine, rid: str,
                                        sandbox_state_dir: Path) -> None:
    name = f"sct-{rid}-slow"
    scenarios(pytester, slow=ONE_OBSERVATION.format(name=name))
    pytester.makepyfile(slow_adapter=SLOW_ADAPTER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [
        str(pytester.path), os.environ.get("PYTHONPATH", "")])), "SCT_SLOW_OBSERVE": "120"}
    out = pytester.path / "out.txt"
    cmd = [sys.executable, "-m", "pytest", *PLUGINS, "-p", "no:cacheprovider",
           "--sandbox-driver=slow_adapter:factory", "--sandbox-engine=docker",
           "--sandbox-scenarios=scen", "--sandbox-no-builtin",
           f"--sandbox-state-dir={sandbox_state_dir}"]
    with out.open("w") as sink:
        proc = subprocess.Popen(cmd, cwd=pytester.path, env=env, stdout=sink,
                                stderr=subprocess.STDOUT)
    mine: list[Container] = []
    try:
        deadline = time.monotonic() + 60
        # Until the driver's container runs (it is listed a moment before, as "created").
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
            mine = [c for c in docker_engine.list({KEYS.sandbox_name: name})
                    if c.state == "running"]
            if mine:
                break
        assert mine, f"the run's container never ran:\n{out.read_text()}"
        session = mine[0].labels[SESSION_LABEL]
        proc.send_signal(signal.SIGINT)  # Ctrl-C, while the driver sleeps in observe()
        assert proc.wait(timeout=60) == pytest.ExitCode.INTERRUPTED, out.read_text()
        text = out.read_text()
        assert "KeyboardInterrupt" in text
        assert remains(docker_engine, session) == {}, text
        assert docker_engine.list({KEYS.sandbox_name: name}) == []
        assert not (default_lock_dir() / f"{session}.lock").exists()  # the session released it
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        # What the interrupted run made (it carries this test's sandbox name), should it be left.
        docker_engine.remove_all([c.id for c in docker_engine.list({KEYS.sandbox_name: name})],
                                 force=True)
