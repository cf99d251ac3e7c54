"""``--sandbox-concurrency`` on real containers: the same failures as one by one, nothing left
behind (pass, failure, Ctrl-C), and driver processes served per play behind their gates.

Marked ``live``; the engine fixtures skip (or fail under ``SANDBOX_CONFORMANCE_REQUIRE_ENGINE=1``)
without Docker and the image, as ``tests/test_live.py``'s do, whose helpers these tests share.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pytest_sandbox_conformance.engines.base import Container
from pytest_sandbox_conformance.live import SESSION_LABEL, default_lock_dir

from test_live import (  # noqa: F401 - fixtures
    KEYS,
    SLOW_ADAPTER,
    docker_engine,
    live_suite,
    remains,
    rid,
    session_of,
)
from test_plugin import PLUGINS, broken_drivers, scenarios, suite  # noqa: F401

pytestmark = pytest.mark.live

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
#: Container ids (12 or 64 hex digits) and run suffixes differ between any two live runs.
_IDS = re.compile(r"\b[0-9a-f]{64}\b|\b[0-9a-f]{12}\b|-[0-9a-f]{8}\b")

#: A story of several schedules (exhaustive: 8 on a plain engine), with a per-test sandbox name.
SEVERAL = """
id: several
title: A sandbox stopped and started, observed anywhere
requirements: [OWN-1]
max_observations: 1
sandboxes:
  s1: {{name: {name}}}
story:
  - create: s1
    as: A
  - stop: A
  - start: A
  - observe: newest
expect:
  sandboxes:
    s1: {{instance: A, phase: Ready}}
"""


def _failures(path: Path) -> dict[str, dict]:
    """Per item: its outcome, failed schedule, broken requirements and failures (container ids
    masked)."""
    report = json.loads(path.read_text())
    out = {}
    for s in report["scenarios"].values():
        for nodeid, item in s["items"].items():
            failure = item.get("failure") or {}
            out[nodeid] = {
                "outcome": item["outcome"], "failed_schedule": item.get("failed_schedule"),
                "broken": item.get("broken"),
                "failed_schedules": failure.get("failed_schedules"),
                "failures": [(f["check"], f["requirements"], _IDS.sub("-ID", f["message"]))
                             for f in failure.get("failures", ())]}
    return out


def test_a_broken_driver_fails_the_same_schedules_at_once_on_docker(
        pytester: pytest.Pytester, docker_engine, broken_drivers, sandbox_state_dir: Path):
    def run(concurrency: int) -> dict[str, dict]:
        result = pytester.runpytest(
            *PLUGINS, "-o", f"pythonpath={TESTS}", f"--sandbox-state-dir={sandbox_state_dir}",
            "--sandbox-driver=broken_drivers:trusts_labels_last_wins", "--sandbox-engine=docker",
            "--sandbox-schedules=exhaustive", "-k", "copied-labels-wrong-generation",
            f"--sandbox-concurrency={concurrency}", f"--sandbox-report=r{concurrency}.json")
        assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
        assert remains(docker_engine, session_of(result)) == {}
        return _failures(pytester.path / f"r{concurrency}.json")

    one, four = run(1), run(4)
    exhaustive = one["sandbox-catalog/copied-labels.yaml::copied-labels-wrong-generation"
                     "[exhaustive-1of1]"]
    assert exhaustive["outcome"] == "failed" and exhaustive["failed_schedules"] >= 4
    assert four == one


def test_the_reference_driver_passes_at_once_and_leaves_nothing(live_suite, pytester,
                                                                docker_engine, rid: str):
    scenarios(pytester, several=SEVERAL.format(name=f"sct-{rid}"))
    result = live_suite("--sandbox-driver=reference", "--sandbox-schedules=exhaustive",
                        "--sandbox-concurrency=4", "-rA")
    result.assert_outcomes(passed=2)  # the exhaustive item, and the default pinned one
    result.stdout.fnmatch_lines(["sandbox conformance: driver *, 4 at once"])
    assert remains(docker_engine, session_of(result)) == {}


def test_ctrl_c_with_plays_at_once_leaves_nothing(pytester: pytest.Pytester, docker_engine,
                                                  rid: str, sandbox_state_dir: Path) -> None:
    name = f"sct-{rid}-slow"
    scenarios(pytester, several=SEVERAL.format(name=name))
    pytester.makepyfile(slow_adapter=SLOW_ADAPTER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [
        str(pytester.path), os.environ.get("PYTHONPATH", "")])), "SCT_SLOW_OBSERVE": "120"}
    out = pytester.path / "out.txt"
    cmd = [sys.executable, "-m", "pytest", *PLUGINS, "-p", "no:cacheprovider",
           "--sandbox-driver=slow_adapter:factory", "--sandbox-engine=docker",
           "--sandbox-scenarios=scen", "--sandbox-no-builtin", "--sandbox-schedules=exhaustive",
           "--sandbox-concurrency=4", f"--sandbox-state-dir={sandbox_state_dir}"]
    with out.open("w") as sink:
        proc = subprocess.Popen(cmd, cwd=pytester.path, env=env, stdout=sink,
                                stderr=subprocess.STDOUT)
    mine: list[Container] = []
    try:
        deadline = time.monotonic() + 90
        # Until four plays have made their sandbox (each is then in its slow observation).
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
            mine = docker_engine.list({KEYS.sandbox_name: name})
            if len(mine) >= 4:
                break
        assert len(mine) >= 4, f"four plays never ran at once:\n{out.read_text()}"
        time.sleep(1.0)
        session = mine[0].labels[SESSION_LABEL]
        proc.send_signal(signal.SIGINT)
        # Each play abandons its slow observe at once (not after the 30 s watchdog), cleans up.
        assert proc.wait(timeout=25) == pytest.ExitCode.INTERRUPTED, out.read_text()
        text = out.read_text()
        assert "KeyboardInterrupt" in text
        assert remains(docker_engine, session) == {}, text
        assert docker_engine.list({KEYS.sandbox_name: name}) == []
        assert not (default_lock_dir() / f"{session}.lock").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        docker_engine.remove_all([c.id for c in docker_engine.list({KEYS.sandbox_name: name})],
                                 force=True)


def _driver_processes(marker: str) -> list[int]:
    """Processes whose command line contains ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if marker in cmdline and state not in ("Z", "X"):
            found.append(int(entry.name))
    return found


def test_served_drivers_play_at_once_behind_their_gates(pytester: pytest.Pytester,
                                                        docker_engine, tmp_path: Path) -> None:
    pytest.importorskip("grpc")
    state = Path(f"/tmp/sct-conc-{os.getpid()}")  # short: the driver's sockets live below
    marker = f"{state}/sbx-session-"  # in a driver's --state-dir, not in pytest's own command
    served = (f"{shlex.quote(sys.executable)} -m reference_driver.grpc_server --socket {{socket}} "
              "--state-dir {state_dir} --namespace {namespace} --poll-interval 0.05")
    seen: list[int] = []
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(TESTS)]))
    cmd = [sys.executable, "-m", "pytest", *PLUGINS, "-p", "no:cacheprovider",
           "--sandbox-driver=openshell-grpc", "--sandbox-engine=docker",
           f"--sandbox-driver-cmd={served}", "--sandbox-poll-interval=0.05",
           # A busy shared engine takes seconds per call: this test is not about time limits.
           "--sandbox-step-timeout=20",
           "--sandbox-schedules=exhaustive", "-k", "gap-missed and exhaustive",
           "--sandbox-concurrency=4", f"--sandbox-state-dir={state}", "-q",
           f"--sandbox-report={tmp_path / 'r.json'}"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        while proc.poll() is None:
            seen.append(len(_driver_processes(marker)))
            time.sleep(0.1)
        out = proc.stdout.read()
        assert proc.returncode == 0, out
        assert max(seen) >= 2, f"never two driver processes at once: {seen}"
        assert max(seen) <= 4
        report = json.loads((tmp_path / "r.json").read_text())
        assert report["counts"]["passed"] == 1 and report["counts"]["failed"] == 0
        assert _driver_processes(marker) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        subprocess.run(["rm", "-rf", str(state)], check=False)
