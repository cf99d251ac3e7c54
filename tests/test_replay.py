"""The printed replay command runs exactly the one schedule, from any folder (docs/scenarios.md,
*The schedule id*): it carries the PYTHONPATH its driver needs, absolute scenario folders and
``-p no:cacheprovider``, and a replay collects nothing but its scenario's item."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from pytest_sandbox_conformance.plugin.replay import pythonpath_for

TESTS = Path(__file__).resolve().parent
PLUGINS = ("-p", "sandbox_conformance", "-p", "no:hypothesispytest")

HANDOFF = """
id: handoff
title: Overlapping GPU handoff
requirements: [OWN-4, OWN-19, OWN-20]
sandboxes:
  s1: {name: box}
story:
  - create: s1
    as: A
  - stop: A
  - rename: A
    to: backup
  - clone: A
    as: B
    name: canonical
    gpu: cdi
  - remove: A
expect:
  sandboxes:
    s1: {instance: B, phase: Ready}
  containers: [B]
schedules:
  backup-first:
    after: {B: [oldest, oldest]}
"""


def test_the_printed_replay_runs_from_an_empty_folder(pytester: pytest.Pytester,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path_factory) -> None:
    pytester.makefile(".yaml", **{"scen/handoff": HANDOFF})
    pytester.makepyfile(test_plain="def test_slow_unit_test():\n    assert True\n")
    monkeypatch.setenv("PYTHONPATH", str(TESTS))  # broken_drivers lives in tests/
    pytester.syspathinsert(TESTS)
    first = pytester.runpytest(*PLUGINS, "--sandbox-driver=broken_drivers:adopts_on_first_sight",
                               "--sandbox-scenarios=scen", "--sandbox-no-builtin", "-p",
                               "no:cacheprovider")
    first.assert_outcomes(failed=1, passed=1)
    line = first.stdout.str().split("\nreplay:\n", 1)[1].splitlines()[0].strip()
    assert line.startswith(f"PYTHONPATH={TESTS} ")
    assert f"--sandbox-scenarios={pytester.path / 'scen'}" in line
    empty = tmp_path_factory.mktemp("elsewhere")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    again = subprocess.run(["bash", "-c", line], cwd=empty, env=env, capture_output=True,
                           text=True, timeout=300)
    assert again.returncode == 1, again.stdout + again.stderr
    assert "1 failed in" in again.stdout and "passed" not in again.stdout.splitlines()[-1]
    failed = [ln for ln in again.stdout.splitlines() if ln.startswith("FAILED [")]
    assert failed == [ln for ln in first.stdout.lines if ln.startswith("FAILED [")]
    assert list(empty.iterdir()) == []  # nothing left behind (no .pytest_cache)


def test_a_replay_collects_nothing_but_its_scenario(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", **{"scen/handoff": HANDOFF})
    pytester.makepyfile(test_plain="def test_other():\n    assert False\n")
    result = pytester.runpytest(*PLUGINS, "--sandbox-scenarios=scen", "--sandbox-no-builtin",
                                "--sandbox-schedule=handoff@backup-first", "test_plain.py")
    result.assert_outcomes(passed=1)
    assert "test_plain" not in result.stdout.str()


def test_pythonpath_only_when_needed() -> None:
    assert pythonpath_for("reference") == []
    assert pythonpath_for("os.path:join") == []  # importable anywhere
    assert pythonpath_for("pytest_sandbox_conformance.adapters.reference:factory") == []
