"""The pytest plugin, seen from a user's command line (pytester, small scenario files).

Every test writes its scenarios into ``scen/`` of a pytester folder and runs the suite with
``--sandbox-scenarios=scen --sandbox-no-builtin``, so the bundled catalog (which grows) never
changes what these tests see. The plugin is loaded as users load it, through its ``pytest11``
entry point; ``-p sandbox_conformance`` names that entry point too, so the tests also work with
``PYTEST_DISABLE_PLUGIN_AUTOLOAD`` set.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pytest_sandbox_conformance.plugin.options import OPTIONS

TESTS = Path(__file__).resolve().parent
#: Every inner run: load the plugin by its entry-point name; leave Hypothesis's plugin out (it
#: imports Hypothesis afresh in every in-process run, which costs a second each time).
PLUGINS = ("-p", "sandbox_conformance", "-p", "no:hypothesispytest")

# -- scenario files --------------------------------------------------------------------------------

BASIC = """
id: basic
title: One sandbox, created and observed
requirements: [OWN-1]
sandboxes:
  s1: {name: box}
story:
  - create: s1
    as: A
  - observe: newest
expect:
  sandboxes:
    s1: {instance: A, phase: Ready}
  containers: [A]
schedules:
  early:
    after: {A: [observe]}
  late:
    after: {A: [observe, observe]}
"""

# The same story; its 'wrong' schedule expects what no conforming driver reports, so the
# reference driver fails exactly that one item.
HALF_WRONG = """
id: half-wrong
title: One item of this scenario expects the impossible
requirements: [OWN-2]
sandboxes:
  s1: {name: box}
story:
  - create: s1
    as: A
  - observe: newest
expect:
  sandboxes:
    s1: {instance: A, phase: Ready}
schedules:
  right:
    after: {A: [observe]}
  wrong:
    after: {A: [observe, observe]}
    expect:
      sandboxes:
        s1: {phase: Error}
"""

# The GPU handoff of the real incident (a copy of the catalog's overlap scenario).
HANDOFF = """
id: handoff
title: Overlapping GPU handoff
requirements: [OWN-4, OWN-19, OWN-20]
max_observations: 2  # one exhaustive chunk (189 schedules)
restart: never
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
  warnings: {SandboxInstanceReplaced: 1}
schedules:
  backup-first:
    after: {B: [oldest, oldest]}
"""

NEEDS_RESTART = """
id: needs-restart
title: Restart transparency
requirements: [OWN-9]
needs: [restart]
sandboxes:
  s1: {name: box}
story:
  - create: s1
    as: A
  - restart: true
expect:
  sandboxes:
    s1: {instance: A, phase: Ready}
"""

GPU_MARKED = """
id: gpu-marked
title: A GPU-marked scenario
requirements: [OWN-19]
marks: [gpu]
sandboxes:
  s1: {name: box, gpu: true}
story:
  - create: s1
    as: A
expect:
  sandboxes:
    s1: {instance: A, phase: Ready}
"""

# A tiny adapter that declares no capability at all.
NO_CAPS_ADAPTER = """
from pytest_sandbox_conformance.adapters.reference import ReferenceAdapter


class NoCaps(ReferenceAdapter):
    name = "no-caps"
    capabilities = frozenset()


def factory(ctx):
    return NoCaps(ctx)
"""


@pytest.fixture
def suite(pytester: pytest.Pytester, sandbox_state_dir: Path):
    """``suite(*args)``: run pytest in the pytester folder with the plugin loaded, only ``scen/``
    as scenarios, and journals on a fast folder."""

    def run(*args: str) -> pytest.RunResult:
        return pytester.runpytest(*PLUGINS, "--sandbox-scenarios=scen", "--sandbox-no-builtin",
                                  f"--sandbox-state-dir={sandbox_state_dir}", *args)

    return run


def scenarios(pytester: pytest.Pytester, **files: str) -> None:
    pytester.makefile(".yaml", **{f"scen/{name}": text for name, text in files.items()})


def collected(result: pytest.RunResult) -> list[str]:
    """Node ids printed by ``--collect-only -q``."""
    return [line for line in result.outlines if "::" in line and " " not in line]


def outcomes_by_item(result: pytest.RunResult) -> dict[str, str]:
    """``{node id: PASSED|FAILED|...}`` from the ``-rA`` short summary."""
    out = {}
    for line in result.outlines:
        m = re.match(r"^(PASSED|FAILED|ERROR|XFAIL|XPASS) (\S+::\S+)", line)
        if m:
            out[m.group(2)] = m.group(1)
    return out


@pytest.fixture
def broken_drivers(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``tests/broken_drivers.py`` importable in inner runs (in-process or subprocess)."""
    pytester.syspathinsert(TESTS)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [
        str(TESTS), os.environ.get("PYTHONPATH", "")])))


# -- on, off, options ------------------------------------------------------------------------------


def test_suite_is_off_without_a_driver(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_ok():\n    assert True\n")
    scenarios(pytester, basic=BASIC)
    result = pytester.runpytest(*PLUGINS, "-v")
    result.assert_outcomes(passed=1)
    text = result.stdout.str()
    assert "sandbox conformance" not in text
    assert "sandbox-catalog" not in text and "basic[" not in text
    # A scenarios folder alone does not turn it on either.
    result = pytester.runpytest(*PLUGINS, "--sandbox-scenarios=scen", "-v")
    result.assert_outcomes(passed=1)
    assert "basic[" not in result.stdout.str()


def test_help_shows_the_sandbox_group_and_every_option(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(*PLUGINS, "--help")
    assert result.ret == 0
    text = result.stdout.str()
    assert "sandbox driver conformance (pytest-sandbox-conformance):" in text
    for opt in OPTIONS:
        assert opt.flag in text, opt.flag
        assert re.search(rf"^\s+{opt.ini} \(", text, re.M), opt.ini


def test_ini_twin_turns_the_suite_on(pytester: pytest.Pytester,
                                     sandbox_state_dir: Path) -> None:
    scenarios(pytester, basic=BASIC)
    pytester.makeini(f"""
        [pytest]
        sandbox_driver = reference
        sandbox_scenarios = scen
        sandbox_no_builtin = true
        sandbox_schedules = pinned
        sandbox_state_dir = {sandbox_state_dir}
    """)
    result = pytester.runpytest(*PLUGINS, "-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["sandbox conformance: driver reference*schedules pinned*",
                                 "*driver reference 1: incomplete (the bundled catalog was "
                                 "not run)*"])
    # The command line wins over the ini file.
    result = pytester.runpytest(*PLUGINS, "--sandbox-schedules=random:3:9", "--collect-only")
    result.stdout.fnmatch_lines(["sandbox conformance: *schedules random 3 seed 9"])


def test_ini_scenario_folder_is_relative_to_the_ini_file(pytester: pytest.Pytester,
                                                         sandbox_state_dir: Path) -> None:
    scenarios(pytester, basic=BASIC)
    pytester.makeini(f"""
        [pytest]
        sandbox_driver = reference
        sandbox_scenarios = scen
        sandbox_no_builtin = true
        sandbox_state_dir = {sandbox_state_dir}
    """)
    sub = pytester.mkdir("sub")
    sub.joinpath("test_nothing.py").write_text("def test_ok():\n    pass\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(sub)
        result = pytester.runpytest(*PLUGINS, "-q")
    result.assert_outcomes(passed=3)


def test_bad_schedules_mode_is_a_usage_error(pytester: pytest.Pytester, suite) -> None:
    scenarios(pytester, basic=BASIC)
    result = suite("--sandbox-driver=reference", "--sandbox-schedules=everything")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --sandbox-schedules=everything: use pinned, *"])


# -- items, node ids, selection --------------------------------------------------------------------


def test_pinned_gives_one_item_per_pinned_schedule(pytester: pytest.Pytester, suite) -> None:
    scenarios(pytester, basic=BASIC, gpu=GPU_MARKED)
    result = suite("--sandbox-driver=reference", "--collect-only", "-q")
    assert collected(result) == [
        "scen/basic.yaml::basic[early]",
        "scen/basic.yaml::basic[late]",
        # No pinned schedule: one observation after every step.
        "scen/gpu.yaml::gpu-marked[every-step]",
    ]


def test_last_failed_reruns_exactly_the_failed_item(pytester: pytest.Pytester, suite) -> None:
    scenarios(pytester, basic=BASIC, wrong=HALF_WRONG)
    first = suite("--sandbox-driver=reference", "-rA")
    first.assert_outcomes(passed=3, failed=1)
    assert [k for k, v in outcomes_by_item(first).items() if v == "FAILED"] == [
        "scen/wrong.yaml::half-wrong[wrong]"]
    again = suite("--sandbox-driver=reference", "--lf", "-rA")
    outcomes = again.parseoutcomes()
    assert outcomes["failed"] == 1 and "passed" not in outcomes, outcomes
    assert outcomes_by_item(again) == {"scen/wrong.yaml::half-wrong[wrong]": "FAILED"}
    again.stdout.fnmatch_lines(["run-last-failure: rerun previous 1 failure*"])


def test_last_failed_reruns_scenario_items_outside_the_rootdir_too(
        pytester: pytest.Pytester, suite, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Beside a failed test module, --lf once skipped every scenario file outside the rootdir
    (the catalog among them): their node ids are not paths it can map back to files."""
    outside = tmp_path_factory.mktemp("outside-scenarios")
    (outside / "wrong.yaml").write_text(HALF_WRONG)
    scenarios(pytester, basic=BASIC)
    pytester.makepyfile(test_plain="def test_bad():\n    assert False\n")
    args = ("--sandbox-driver=reference", f"--sandbox-scenarios={outside}", "-rA")
    first = suite(*args)
    first.assert_outcomes(passed=3, failed=2)
    failed = {k for k, v in outcomes_by_item(first).items() if v == "FAILED"}
    assert failed == {"test_plain.py::test_bad",
                      f"sandbox-scenarios/{outside.name}/wrong.yaml::half-wrong[wrong]"}
    again = suite(*args, "--lf")
    assert set(outcomes_by_item(again)) == failed
    assert again.parseoutcomes()["failed"] == 2 and "passed" not in again.parseoutcomes()


def test_sandbox_schedule_replays_one_item(pytester: pytest.Pytester, suite) -> None:
    scenarios(pytester, basic=BASIC, handoff=HANDOFF)
    # A pinned schedule's name replays it (with its own expectations)...
    result = suite("--sandbox-driver=reference", "--sandbox-schedule=basic@late",
                   "--collect-only", "-q")
    assert collected(result) == ["scen/basic.yaml::basic[late]"]
    # ...while its id replays the same interleaving as exploration ran it (default expectations).
    result = suite("--sandbox-driver=reference", "--sandbox-schedule=basic@1-nn.0",
                   "--collect-only", "-q")
    assert collected(result) == ["scen/basic.yaml::basic[1-nn.0]"]
    # Any other schedule of the right length is its own item, named by its id.
    result = suite("--sandbox-driver=reference",
                   "--sandbox-schedule=handoff@1-n.0.on.0.0", "-rA")
    assert outcomes_by_item(result) == {"scen/handoff.yaml::handoff[1-n.0.on.0.0]": "PASSED"}
    # --sandbox-schedule alone turns the suite on (with the reference driver).
    result = suite("--sandbox-schedule=basic@1-n.n", "--collect-only", "-q")
    assert collected(result) == ["scen/basic.yaml::basic[1-n.n]"]


@pytest.mark.parametrize("value, message", [
    ("basic@1-n", "*--sandbox-schedule: schedule id '1-n' has 1 gaps but scenario 'basic' "
                  "has 2 steps*"),
    ("basic@2-n.n", "*--sandbox-schedule: schedule id '2-n.n' is of format version '2'*"),
    ("basic@1-x.n", "*--sandbox-schedule: schedule id '1-x.n': gap 'x' is not *"),
])
def test_bad_schedule_id_is_a_clear_error(pytester: pytest.Pytester, suite, value: str,
                                          message: str) -> None:
    scenarios(pytester, basic=BASIC)
    result = suite(f"--sandbox-schedule={value}")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines([message])
    assert "Traceback" not in result.stdout.str()


@pytest.mark.parametrize("value, message", [
    ("basic", "ERROR: --sandbox-schedule=basic: use SCENARIO@SCHEDULE_ID, as a failure prints it"),
    ("nosuch@1-n.n", "ERROR: --sandbox-schedule=nosuch@1-n.n: no scenario 'nosuch'*"),
])
def test_bad_schedule_option_is_a_usage_error(pytester: pytest.Pytester, suite, value: str,
                                              message: str) -> None:
    scenarios(pytester, basic=BASIC)
    result = suite(f"--sandbox-schedule={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


SHOW_SCHEDULES = """
def pytest_collection_finish(session):
    for item in session.items:
        ids = ",".join(s.id for s in getattr(item, "schedules", ()))
        print(f"SCHEDULES {item.nodeid} {ids}")
"""


def _schedules_shown(result: pytest.RunResult) -> list[str]:
    return [line for line in result.outlines if line.startswith("SCHEDULES ")]


def test_random_mode_is_reproducible(pytester: pytest.Pytester, suite) -> None:
    scenarios(pytester, handoff=HANDOFF)
    pytester.makeconftest(SHOW_SCHEDULES)
    runs = [_schedules_shown(suite("--sandbox-driver=reference", "--collect-only",
                                   "-q", "-s", f"--sandbox-schedules={mode}"))
            for mode in ("random:7:3", "random:7:3", "random:7:4")]
    assert runs[0] == runs[1]
    # One chunk item of 7 schedules, then the pinned one.
    assert [line.split()[1] for line in runs[0]] == [
        "scen/handoff.yaml::handoff[random7-seed3-1of1]",
        "scen/handoff.yaml::handoff[backup-first]"]
    assert len(runs[0][0].split()[2].split(",")) == 7
    assert runs[2] != runs[0]  # another seed draws other schedules


@pytest.mark.slow
def test_xdist_gives_the_same_outcomes(pytester: pytest.Pytester, suite) -> None:
    pytest.importorskip("xdist")
    scenarios(pytester, basic=BASIC, wrong=HALF_WRONG, handoff=HANDOFF)
    args = ("--sandbox-driver=reference", "--sandbox-schedules=random:30:1", "-rA", "-p", "xdist")
    serial = suite(*args, "-n", "0", "--sandbox-report=serial.json")
    parallel = suite(*args, "-n", "2", "--sandbox-report=parallel.json")
    assert outcomes_by_item(serial) == outcomes_by_item(parallel)
    assert "FAILED" in outcomes_by_item(serial).values()
    assert serial.parseoutcomes() == parallel.parseoutcomes()
    # The controller writes one report, with every worker's results.
    reports = [json.loads((pytester.path / f).read_text()) for f in ("serial.json",
                                                                     "parallel.json")]

    def comparable(report: dict) -> dict:
        """The scenarios without what differs between two runs of the same items: durations,
        and the timelines' texts (each run has its own namespace)."""
        out = json.loads(json.dumps(report["scenarios"]))
        for s in out.values():
            for e in s["items"].values():
                e.pop("duration", None)
                if "failure" in e:
                    e["failure"]["timeline"] = [m["kind"] for m in e["failure"]["timeline"]]
        return out

    assert comparable(reports[0]) == comparable(reports[1])
    assert reports[0]["counts"] == reports[1]["counts"]
    assert reports[0]["requirements"] == reports[1]["requirements"]


# -- bad scenario files ----------------------------------------------------------------------------


BAD_FILES = {
    "syntax": ("id: bad\ntitle: [unclosed\nrequirements: [OWN-1]\n", 3, "YAML syntax error: "),
    "unknown-field": (BASIC.strip().replace("title: One", "colour: red\ntitle: One"), 2,
                      "colour: unknown field"),
    "wrong-type": (BASIC.strip().replace("requirements: [OWN-1]",
                                         "requirements: [OWN-1]\nmax_observations: two"), 4,
                   "max_observations: 'two' is not of type 'integer'"),
    "unknown-container": (BASIC.strip().replace("  - observe: newest", "  - stop: Z"), 9,
                          "story[1].stop: unknown container 'Z'"),
    "unknown-capability": (BASIC.strip().replace("requirements: [OWN-1]",
                                                 "requirements: [OWN-1]\nneeds:\n  - teleport"),
                           5, "needs[0]: unknown capability 'teleport'"),
    "unknown-mark": (BASIC.strip().replace("requirements: [OWN-1]",
                                           "requirements: [OWN-1]\nmarks: [fast]"), 4,
                     "marks[0]: unknown mark 'fast'"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_scenario_file_is_a_collection_error(pytester: pytest.Pytester, suite,
                                                 case: str) -> None:
    text, line, message = BAD_FILES[case]
    scenarios(pytester, basic=BASIC, bad=text)
    result = suite("--sandbox-driver=reference")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*ERROR collecting scen/bad.yaml*"])
    out = result.stdout.str()
    assert "Traceback" not in out and "raise " not in out
    expected = re.escape(message) if message else r"\S"
    assert re.search(rf"^\S*/scen/bad\.yaml:{line}: {expected}", out, re.M), out


# -- capabilities and marks ------------------------------------------------------------------------


def test_missing_capability_skips_with_a_reason(pytester: pytest.Pytester, suite) -> None:
    scenarios(pytester, basic=BASIC, restart=NEEDS_RESTART)
    pytester.makepyfile(nocaps=NO_CAPS_ADAPTER)
    pytester.syspathinsert()
    result = suite("--sandbox-driver=nocaps:factory", "-rs")
    result.assert_outcomes(passed=2, skipped=1)
    result.stdout.fnmatch_lines([
        "sandbox conformance: driver no-caps* (capabilities: none), engine fake*",
        "driver no-caps 1: incomplete (1 skipped; the bundled catalog was not run)",
        "SKIPPED * scen/restart.yaml: nocaps:factory on engine fake lacks capabilities: restart "
        "(restart: *",
    ])


def test_restarts_fall_anywhere_by_default_only_for_a_driver_that_can_restart(
        pytester: pytest.Pytester, suite) -> None:
    # BASIC says nothing of restarts: exploration restarts the reference driver after each of
    # its 2 steps, and a driver without the capability runs it too, without restarts.
    scenarios(pytester, basic=BASIC)
    pytester.makepyfile(nocaps=NO_CAPS_ADAPTER)
    pytester.syspathinsert()
    spaces = {}
    for driver in ("reference", "nocaps:factory"):
        result = suite(f"--sandbox-driver={driver}", "--sandbox-schedules=exhaustive",
                       "--sandbox-report=r.json")
        result.assert_outcomes(passed=3)  # the explored item and the 2 pinned ones
        report = json.loads((pytester.path / "r.json").read_text())
        spaces[driver] = report["scenarios"]["basic"]["exploration"]["space"]
    # 4 ways the observations fall after the create (0 to 3), none after the last step
    assert spaces == {"reference": 4 * 3, "nocaps:factory": 4}
    # a replayed schedule that restarts is skipped for a driver that cannot restart
    result = suite("--sandbox-driver=nocaps:factory", "--sandbox-schedule=basic@1-Rn.0", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED * schedule 1-Rn.0 restarts the driver, and this "
                                 "driver cannot be restarted*"])
    suite("--sandbox-driver=reference", "--sandbox-schedule=basic@1-Rn.0").assert_outcomes(
        passed=1)


def test_gpu_mark_selects_gpu_scenarios(pytester: pytest.Pytester, suite) -> None:
    scenarios(pytester, basic=BASIC, gpu=GPU_MARKED)
    result = suite("--sandbox-driver=reference", "-m", "gpu", "--strict-markers",
                   "-rA")
    result.assert_outcomes(passed=1, deselected=2)
    assert outcomes_by_item(result) == {"scen/gpu.yaml::gpu-marked[every-step]": "PASSED"}
    result = suite("--sandbox-driver=reference", "-m", "not gpu and core",
                   "--strict-markers", "--collect-only", "-q")
    assert collected(result) == ["scen/basic.yaml::basic[early]", "scen/basic.yaml::basic[late]"]


# -- reports ---------------------------------------------------------------------------------------


def test_json_report_for_a_conformant_driver(pytester: pytest.Pytester, suite) -> None:
    scenarios(pytester, basic=BASIC, handoff=HANDOFF)
    result = suite("--sandbox-driver=reference", "--sandbox-report=out/report.json")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["report: out/report.json"])
    report = json.loads(pytester.path.joinpath("out/report.json").read_text())
    # Everything passed, but without the bundled catalog the core profile is not covered.
    assert report["verdict"] == "incomplete"
    assert report["verdict_reasons"] == ["the bundled catalog was not run"]
    assert report["profiles"]["core"]["result"] == "passed"
    assert report["driver"]["spec"] == "reference"
    assert report["counts"] == {"passed": 3, "failed": 0, "skipped": 0, "error": 0,
                                "not_run": 0}
    assert {k: s["outcome"] for k, s in report["scenarios"].items()} == {
        "basic": "passed", "handoff": "passed"}
    item = report["scenarios"]["handoff"]["items"]["scen/handoff.yaml::handoff[backup-first]"]
    assert (item["outcome"], item["label"], item["schedules"]) == ("passed", "backup-first", 1)
    assert {k: r["outcome"] for k, r in report["requirements"].items()
            if r["outcome"] != "not-run"} == {
        "OWN-1": "passed", "OWN-4": "passed", "OWN-19": "passed", "OWN-20": "passed"}


def test_json_report_for_a_broken_driver(pytester: pytest.Pytester, suite,
                                         broken_drivers) -> None:
    scenarios(pytester, basic=BASIC, handoff=HANDOFF)
    result = suite("--sandbox-driver=broken_drivers:adopts_on_first_sight",
                   "--sandbox-report=report.json")
    result.assert_outcomes(passed=2, failed=1)
    report = json.loads(pytester.path.joinpath("report.json").read_text())
    assert report["verdict"] == "not conformant"
    assert report["driver"]["name"].startswith("adopts_on_first_sight")
    assert report["scenarios"]["basic"]["outcome"] == "passed"
    handoff = report["scenarios"]["handoff"]
    assert handoff["outcome"] == "failed"
    item = handoff["items"]["scen/handoff.yaml::handoff[backup-first]"]
    # The pinned backup-first (two polls after the clone), reduced to the one poll that still
    # fails it (--sandbox-reduce=auto on the fake engine; tests/test_reduce.py).
    assert item["failed_schedule"] == "1-0.0.0.o.0"
    assert "OWN-4" in item["broken"]
    assert report["requirements"]["OWN-4"]["outcome"] == "failed"
    assert report["requirements"]["OWN-1"]["outcome"] == "passed"


def test_junitxml_carries_the_sandbox_properties(pytester: pytest.Pytester, suite) -> None:
    scenarios(pytester, basic=BASIC)
    result = suite("--sandbox-driver=reference", "--junitxml=junit.xml")
    result.assert_outcomes(passed=2)
    tree = ET.parse(pytester.path / "junit.xml")
    cases = tree.getroot().findall(".//testcase")
    assert len(cases) == 2
    for case in cases:
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        assert props["sandbox_scenario"] == "basic"
        assert props["sandbox_requirements"] == "OWN-1"
        assert props["sandbox_schedule"] in ("1-n.0", "1-nn.0")


# -- failures --------------------------------------------------------------------------------------


def test_failure_output_and_replay(pytester: pytest.Pytester, suite, broken_drivers,
                                   sandbox_state_dir: Path) -> None:
    scenarios(pytester, handoff=HANDOFF)
    result = suite("--sandbox-driver=broken_drivers:adopts_on_first_sight")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    result.stdout.fnmatch_lines([
        "schedule:     1-0.0.0.o.0",   # the pinned backup-first, reduced (tests/test_reduce.py)
        "requirements: OWN-4*broken",
        "FAILED ?OWN-4*? instance-matches-contract: *",
        "timeline:",
        "step 4: clone A as=B name=canonical gpu=cdi",
        "(reduced in * plays from schedule 1-0.0.0.oo.0 (pinned backup-first)*",
        "replay:",
    ])
    assert "Traceback" not in out
    replay = out.split("\nreplay:\n", 1)[1].splitlines()[0].strip()
    argv = shlex.split(replay)
    # [PYTHONPATH=...] pytest|python -m pytest -p no:cacheprovider --sandbox-...
    start = argv.index("no:cacheprovider") - 1
    assert argv[start - 1] == "pytest" or argv[start - 2:start] == ["-m", "pytest"], argv
    assert "--sandbox-schedule=handoff@1-0.0.0.o.0" in argv
    again = pytester.runpytest(*PLUGINS,
                               f"--sandbox-state-dir={sandbox_state_dir}", *argv[start + 2:])
    again.assert_outcomes(failed=1)
    again.stdout.fnmatch_lines(["schedule:     1-0.0.0.o.0",
                                "requirements: OWN-4*broken"])
    assert "reduced in" not in again.stdout.str()  # nothing smaller fails it

    def failed_checks(text: str) -> list[str]:
        return [line for line in text.splitlines() if line.startswith("FAILED [")]

    assert failed_checks(again.stdout.str()) == failed_checks(out)


REFUSED_STEP = """
id: refused-step
title: A step the engine refuses, which no reading of the file foresees
requirements: [OWN-4]
sandboxes:
  s1: {name: box}
story:
  - create: s1
    as: A
  - run: s1
    as: R
    name: box-elsewhere
expect:
  sandboxes:
    s1: {instance: A, phase: Ready}
"""

# A driver that names its container its own way: the story's literal name is free by the file,
# taken on the engine.
OWN_NAMES_ADAPTER = """
from pytest_sandbox_conformance.adapters.reference import ReferenceAdapter


class OwnNames(ReferenceAdapter):
    def create(self, spec):
        snap = super().create(spec)
        self.ctx.engine.rename(snap.instance_id, "box-elsewhere")
        return snap


def factory(ctx):
    return OwnNames(ctx)
"""


def test_a_refused_story_step_is_rendered_without_a_traceback(pytester: pytest.Pytester,
                                                                suite) -> None:
    scenarios(pytester, refused=REFUSED_STEP)
    pytester.makepyfile(own_names=OWN_NAMES_ADAPTER)
    pytester.syspathinsert()
    result = suite("--sandbox-driver=own_names:factory")
    result.assert_outcomes(errors=1)  # an error of the item (its setup plays), not a failure
    result.stdout.fnmatch_lines([
        "error:        the story could not be played (an error, not a failure of the driver; "
        "no requirement judged)",
        "step 2 (run s1 as=R name=box-elsewhere, *refused.yaml:9) was refused by the engine "
        "(409):",
        "*is already in use*",
        "timeline:",
        "    REFUSED by the engine (409): *",
        "replay:",
    ])
    assert "Traceback" not in result.stdout.str()


def test_a_story_lint_refuses_is_a_collection_error_naming_the_line(pytester: pytest.Pytester,
                                                                   suite) -> None:
    scenarios(pytester, removed=REFUSED_STEP.replace(
        "  - run: s1\n    as: R\n    name: box-elsewhere\n", "  - remove: A\n  - stop: A\n"))
    result = suite("--sandbox-driver=reference")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*removed.yaml:10: story?2?.stop: container A is gone (removed "
                                 "at step 2): the engine cannot stop it*"])
    assert "Traceback" not in result.stdout.str()


def test_failure_in_an_exhaustive_chunk_names_the_smallest_schedule(
        pytester: pytest.Pytester, suite, broken_drivers) -> None:
    scenarios(pytester, handoff=HANDOFF)
    result = suite("--sandbox-driver=broken_drivers:deleted_on_missing",
                   "--sandbox-schedules=exhaustive")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*handoff?exhaustive-1of1?*",
                                 "schedule:     1-0.0.0.0.0",
                                 "requirements: OWN-10, OWN-11 broken",
                                 "*(* of * schedules of this item failed; shown: the smallest)*",
                                 "replay:",
                                 "*'--sandbox-schedule=handoff@1-0.0.0.0.0'"])


# -- loading the driver ----------------------------------------------------------------------------


@pytest.mark.parametrize("spec, message", [
    ("nope", "ERROR: --sandbox-driver=nope: no driver named 'nope'; registered drivers: "
             "*'reference'*"),
    ("mod:missing", "ERROR: --sandbox-driver=mod:missing: module 'mod' has no attribute "
                    "'missing'"),
    ("nosuchmodule:factory", "ERROR: --sandbox-driver=nosuchmodule:factory: cannot import module "
                             "'nosuchmodule'*"),
    ("mod:VALUE", "ERROR: --sandbox-driver=mod:VALUE: 42 is not callable*"),
])
def test_unloadable_driver_is_a_one_line_usage_error(pytester: pytest.Pytester, suite,
                                                    spec: str, message: str) -> None:
    pytester.makepyfile(mod="VALUE = 42\n")
    pytester.syspathinsert()
    scenarios(pytester, basic=BASIC)
    result = suite(f"--sandbox-driver={spec}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.strip()]
    assert len(errors) == 1, errors
    result.stderr.fnmatch_lines([message])
    assert "Traceback" not in result.stdout.str()


# -- openshell-grpc: options are checked before anything starts -------------------------------------


@pytest.mark.parametrize("args, message", [
    ([], "ERROR: --sandbox-driver=openshell-grpc: openshell-grpc needs exactly one of "
         "--sandbox-driver-socket*"),
    (["--sandbox-driver-cmd=true {socket}"], "ERROR: --sandbox-driver=openshell-grpc: a driver "
                                            "process works on a real engine*"),
    (["--sandbox-driver-cmd=true", "--sandbox-driver-socket=/tmp/x.sock"],
     "ERROR: --sandbox-driver-cmd and --sandbox-driver-socket exclude each other*"),
    (["--sandbox-driver-socket=/tmp/x.sock", "--sandbox-gate=off"],
     "ERROR: --sandbox-gate=off applies to a driver the suite starts (--sandbox-driver-cmd)*"),
    (["--sandbox-driver-cmd=true", "--sandbox-poll-interval=0"],
     "ERROR: --sandbox-poll-interval=0: give a number of seconds above 0 and at most 600*"),
    (["--sandbox-driver-cmd=true", "--sandbox-step-timeout=soon"],
     "ERROR: --sandbox-step-timeout=soon: give a number of seconds above 0 and at most 600*"),
    (["--sandbox-driver-cmd=true", "--sandbox-gate=maybe"],
     "ERROR: --sandbox-gate=maybe: use auto or off"),
    (["--sandbox-driver-cmd=true", "--sandbox-driver-option=colour=blue"],
     "ERROR: --sandbox-driver=openshell-grpc: openshell-grpc: unknown option(s) colour*"),
])
def test_openshell_grpc_bad_options_are_usage_errors(pytester: pytest.Pytester, suite,
                                                     args: list[str], message: str) -> None:
    scenarios(pytester, basic=BASIC)
    result = suite("--sandbox-driver=openshell-grpc", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "Traceback" not in result.stdout.str()


def test_openshell_grpc_probe_needs_no_process():
    from pytest_sandbox_conformance.adapters.grpc import probe

    gated = probe({"cmd": "drv {socket}"}, "docker")
    assert gated.capabilities == {"gpu", "restart", "list-order"} and gated.timing == "exact"
    off = probe({"cmd": "drv", "gate": "off"}, "podman")
    assert off.capabilities == {"gpu", "restart"} and off.timing == "approximate"
    running = probe({"socket": "/s", "namespace": "ns"}, "docker")
    assert running.capabilities == {"gpu"} and running.namespace == "ns"
    with pytest.raises(ValueError, match="namespace is for a running driver"):
        probe({"cmd": "drv", "namespace": "ns"}, "docker")
    with pytest.raises(ValueError, match="start_timeout='x': not a number"):
        probe({"cmd": "drv", "start_timeout": "x"}, "docker")
