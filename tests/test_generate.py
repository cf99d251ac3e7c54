"""``--sandbox-schedules=generate:N[:SEED]`` from a user's command line (pytester): generated
batches as items, the reference driver passing them, a broken driver failing with a shrunk,
ready-to-commit scenario file that fails it again from ``--sandbox-scenarios=DIR`` and that the
reference driver passes.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pytest_sandbox_conformance.cli import main as cli_main

from test_plugin import PLUGINS, broken_drivers, collected, scenarios  # noqa: F401 (fixture)

BASIC = """
id: basic
title: A created sandbox
requirements: [OWN-1]
sandboxes:
  s1: {name: box}
story:
  - create: s1
    as: A
expect:
  sandboxes:
    s1: {instance: A, phase: Ready}
"""


@pytest.fixture
def run(pytester: pytest.Pytester, sandbox_state_dir: Path):
    def go(*args: str) -> pytest.RunResult:
        return pytester.runpytest(*PLUGINS, f"--sandbox-state-dir={sandbox_state_dir}", *args)

    return go


def saved_file(text: str) -> tuple[str, str]:
    """The scenario file a failure prints, and the name it says to save it as."""
    m = re.search(r"^--- save as (\S+) ---\n(.*?)\n---$", text, re.S | re.M)
    assert m, text[-3000:]
    return m.group(1), m.group(2) + "\n"


def test_generate_plans_one_item_per_batch_beside_the_pinned_schedules(pytester, run):
    scenarios(pytester, basic=BASIC)
    result = run("--sandbox-driver=reference", "--sandbox-scenarios=scen",
                 "--sandbox-no-builtin", "--sandbox-schedules=generate:120:3",
                 "--collect-only", "-q")
    assert collected(result) == [
        "scen/basic.yaml::basic[every-step]",
        "sandbox-generated::generated[seed3-batch1]",
        "sandbox-generated::generated[seed3-batch2]",
        "sandbox-generated::generated[seed3-batch3]",
    ]


@pytest.mark.parametrize("mode, said", [
    ("generate:0", "N must be 1 to 100000 (generate:N draws N stories)"),
    ("generate:100001", "N must be 1 to 100000"),
    ("generate:ten", "use pinned, exhaustive, random:N[:SEED] or generate:N[:SEED]"),
    ("generate:5:x", "use pinned, exhaustive, random:N[:SEED] or generate:N[:SEED]"),
])
def test_generate_refuses_a_bad_count_or_seed(pytester, run, mode, said):
    scenarios(pytester, basic=BASIC)
    result = run("--sandbox-driver=reference", "--sandbox-scenarios=scen",
                 "--sandbox-no-builtin", f"--sandbox-schedules={mode}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert said in result.stderr.str()


def test_reference_driver_passes_generated_stories(pytester, run):
    # OWN-20: every generated story settles and converges under the reference driver.
    scenarios(pytester, basic=BASIC)
    result = run("--sandbox-driver=reference", "--sandbox-scenarios=scen",
                 "--sandbox-no-builtin", "--sandbox-schedules=generate:100:1", "-q")
    result.assert_outcomes(passed=3)


def test_shrunk_failure_prints_a_scenario_file_that_fails_the_same_check(
        pytester, run, broken_drivers):  # noqa: F811
    # OWN-2: a driver trusting labels (the last one listed wins) is caught by generated
    # stories; the shrunk story, saved as a file, fails it again and passes the reference.
    scenarios(pytester, basic=BASIC)
    driver = "--sandbox-driver=broken_drivers:trusts_labels_last_wins"
    first = run(driver, "--sandbox-scenarios=scen", "--sandbox-no-builtin",
                "--sandbox-schedules=generate:50", "-k", "generated", "-q")
    first.assert_outcomes(failed=1, deselected=1)
    text = first.stdout.str()
    name, yaml_text = saved_file(text)
    check = re.search(r"still failing ([a-z-]+)", text).group(1)
    assert "the scenario file below replays the failure" in text
    assert "--sandbox-schedules=generate:50:0 -k 'generated[seed0-batch1]'" in text
    assert name == "sandbox-generated/generated-seed0-batch1.yaml"

    saved = pytester.path / name
    saved.parent.mkdir()
    saved.write_text(yaml_text)
    assert cli_main(["lint", str(saved.parent)]) == 0

    again = run(driver, "--sandbox-scenarios=sandbox-generated", "--sandbox-no-builtin", "-q")
    again.assert_outcomes(failed=1)
    again.stdout.fnmatch_lines([f"FAILED*generated-seed0-batch1*found*"])
    assert f"] {check}: " in again.stdout.str()
    replay = re.search(r"^replay:\n  (.*)$", text, re.M).group(1)
    assert "--sandbox-scenarios=sandbox-generated --sandbox-no-builtin" in replay
    assert "'--sandbox-schedule=generated-seed0-batch1@found'" in replay

    reference = run("--sandbox-driver=reference", "--sandbox-scenarios=sandbox-generated",
                    "--sandbox-no-builtin", "-q")
    reference.assert_outcomes(passed=1)


def test_a_batch_replays_alone_as_it_ran_among_the_others(pytester, run, broken_drivers):  # noqa: F811
    scenarios(pytester, basic=BASIC)
    driver = "--sandbox-driver=broken_drivers:trusts_labels_last_wins"
    both = run(driver, "--sandbox-scenarios=scen", "--sandbox-no-builtin",
               "--sandbox-schedules=generate:100", "-k", "generated", "-q")
    both.assert_outcomes(failed=2, deselected=1)
    alone = run(driver, "--sandbox-scenarios=scen", "--sandbox-no-builtin",
                "--sandbox-schedules=generate:100", "-k", "generated[seed0-batch2]", "-q")
    alone.assert_outcomes(failed=1, deselected=2)
    files = re.findall(r"^--- save as \S+ ---\n.*?\n---$", both.stdout.str(), re.S | re.M)
    assert len(files) == 2
    assert saved_file(alone.stdout.str())[1] in files[1] + "\n"
