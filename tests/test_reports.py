"""The session's reports, seen as a user sees them: the verdict (it covers the whole core
profile), the JSON report and its schema, JUnit, the Gateway-API-shaped claim, the HTML report's
structure, the terminal's requirement table and progress.

Most tests run the bundled catalog (pinned: about a second in-process) against a deliberately
broken driver (``tests/broken_drivers.py``), because the verdict's rules are about the catalog.
The HTML report seen in a real browser is ``tests/test_reports_browser.py``.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import jsonschema
import pytest
import yaml

from pytest_sandbox_conformance.reports import contract
from pytest_sandbox_conformance.reports.contract_text import REQUIREMENTS
from pytest_sandbox_conformance.reports.verdict import REQUIREMENTS as OWN, verdict

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
SCHEMA = json.loads((ROOT / "docs" / "report.schema.json").read_text())
PLUGINS = ("-p", "sandbox_conformance", "-p", "no:hypothesispytest")
LABELS = "--sandbox-driver=broken_drivers:trusts_labels_last_wins"
#: A catalog scenario the label-trusting driver passes.
PASSING = "create-authority-persisted"

ENV_ADAPTER = """
from pytest_sandbox_conformance.adapters.reference import ReferenceAdapter


class EngineGone(Exception):
    kind = "engine"


class StoryBroken(Exception):
    kind = "story"


class Faulty(ReferenceAdapter):
    raises = EngineGone

    def observe(self):
        raise self.raises("cannot reach the docker engine at unix:///nowhere")


def engine_down(ctx):
    return Faulty(ctx)


def story_broken(ctx):
    adapter = Faulty(ctx)
    adapter.raises = StoryBroken
    return adapter
"""

ONE = """
id: one
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
"""

HANDOFF = """
id: handoff
title: Overlapping GPU handoff
requirements: [OWN-4, OWN-19, OWN-20]
max_observations: 2
restart: never  # one exhaustive item of 189 schedules
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
"""


@pytest.fixture
def run(pytester: pytest.Pytester, sandbox_state_dir: Path):
    """``run(*args)``: the suite in the pytester folder (the catalog included unless the args
    say otherwise), with ``tests/broken_drivers.py`` importable in-process and in workers."""
    pytester.syspathinsert(TESTS)

    def go(*args: str) -> pytest.RunResult:
        # The pythonpath ini value reaches xdist's workers too (PYTHONPATH does not, from an
        # in-process run).
        # --sandbox-reduce=off: these tests are about what the reports say of the failure of
        # a pinned schedule as its author wrote it (tests/test_reduce.py: reduced ones).
        return pytester.runpytest(*PLUGINS, "-o", f"pythonpath={TESTS}",
                                  f"--sandbox-state-dir={sandbox_state_dir}",
                                  "--sandbox-reduce=off", *args)

    return go


def load(pytester: pytest.Pytester, name: str = "r.json") -> dict:
    report = json.loads((pytester.path / name).read_text())
    jsonschema.validate(report, SCHEMA)
    return report


def items(report: dict) -> dict[str, dict]:
    return {k: v for s in report["scenarios"].values() for k, v in s["items"].items()}


# -- the verdict covers the whole core profile ------------------------------------------------------


@pytest.mark.parametrize("select", [
    ("-k", PASSING),
    ("-m", "core and not gpu"),
    ("--deselect", "sandbox-catalog/overlap.yaml::overlap-backup-first[backup-first]",
     "-k", PASSING + " or overlap-backup-first"),
    (f"--sandbox-schedule={PASSING}@every-step",),
], ids=["-k", "-m", "--deselect", "--sandbox-schedule"])
def test_a_passing_selection_is_incomplete_never_conformant(run, pytester, select) -> None:
    # Issue 11: a broken driver, a selection of what it passes: once said "conformant".
    driver = ("--sandbox-driver=reference",) if select[0].startswith("-m") else (LABELS,)
    result = run(*driver, *select, "--sandbox-report=r.json")
    assert result.ret == 0
    report = load(pytester)
    assert report["verdict"] == "incomplete"
    not_run = report["counts"]["not_run"]
    assert not_run > 0
    core_not_run = report["profiles"]["core"]["counts"]["not_run"]
    assert f"{core_not_run} not run" in report["verdict_reasons"]
    result.stdout.fnmatch_lines([f"driver *: incomplete ({core_not_run} not run*"])
    skipped = [e for e in items(report).values() if e["outcome"] == "not-run"]
    assert len(skipped) == not_run and all(e["reason"] for e in skipped)
    if select[0].startswith("--sandbox-schedule"):
        assert "a replay of one schedule" in report["verdict_reasons"]
        assert all("replays another scenario" in e["reason"] for e in skipped)
    else:
        assert all(e["reason"].startswith("deselected") for e in skipped)


def test_last_failed_rerun_of_fixed_items_is_incomplete(run, pytester) -> None:
    run(LABELS)  # fails most of the catalog, and pytest's cache remembers which
    result = run("--sandbox-driver=reference", "--lf", "--sandbox-report=r.json")
    assert result.ret == 0
    report = load(pytester)
    assert report["verdict"] == "incomplete"
    assert report["counts"]["passed"] > 0 and report["counts"]["not_run"] > 0


def test_x_stops_the_run_and_its_broken_requirements_are_reported(run, pytester) -> None:
    result = run(LABELS, "-x", "--sandbox-report=r.json")
    assert result.ret == 1
    report = load(pytester)
    failed = [e for e in items(report).values() if e["outcome"] == "failed"]
    assert len(failed) == 1
    assert report["verdict"] == "not conformant"
    assert f"{report['profiles']['core']['counts']['not_run']} not run" in \
        report["verdict_reasons"]
    for req in failed[0]["broken"]:  # e.g. OWN-7: its scenario may not even list it
        assert report["requirements"][req]["outcome"] == "failed"
    reasons = {e["reason"] for e in items(report).values() if e["outcome"] == "not-run"}
    assert reasons and all(r.startswith("not reached") for r in reasons)


def test_requirements_say_what_the_failures_broke(run, pytester) -> None:
    run(LABELS, "--sandbox-report=r.json")
    report = load(pytester)
    everything = items(report)
    broken = {r for e in everything.values() if e["outcome"] == "failed" for r in e["broken"]}
    for req, row in report["requirements"].items():
        assert (row["outcome"] == "failed") == (req in broken), req
        assert row["broken_by"] == sorted(k for k, e in everything.items()
                                          if req in e.get("broken", []))
        assert row["title"] == REQUIREMENTS[req]["title"]
    # Scenarios that list a requirement and failed, but not on it: listed, and it held.
    held = [req for req, row in report["requirements"].items() if row["outcome"] == "passed"
            and "failed" in row["exercised_by"].values()]
    assert held, "expected a requirement exercised by a failed scenario yet not broken"


@pytest.mark.parametrize("factory, reason", [("engine_down", "engine unavailable"),
                                              ("story_broken", "1 error")])
def test_environment_errors_are_never_the_drivers_failure(run, pytester, factory,
                                                          reason) -> None:
    pytester.makepyfile(envfaults=ENV_ADAPTER)
    pytester.syspathinsert()
    pytester.makefile(".yaml", **{"scen/one": ONE})
    result = run(f"--sandbox-driver=envfaults:{factory}", "--sandbox-scenarios=scen",
                 "--sandbox-no-builtin", "--sandbox-report=r.json")
    report = load(pytester)
    (entry,) = items(report).values()
    assert entry["outcome"] == "error"
    assert entry["error_kind"] == ("engine" if factory == "engine_down" else "story")
    assert "cannot reach the docker engine" in entry["error"]
    assert report["verdict"] == "incomplete" and reason in report["verdict_reasons"]
    assert report["counts"]["failed"] == 0
    assert all(r["outcome"] != "failed" for r in report["requirements"].values())
    result.stdout.fnmatch_lines([f"driver *: incomplete ({reason}*",
                                 "error (*): *one*: *cannot reach the docker engine*"])


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

# A driver that names its container its own way: the story's literal name is free by the file
# (lint accepts the story: it refuses the steps it can foresee), taken on the engine.
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


@pytest.mark.parametrize("workers", ["0", "2"])
def test_a_story_the_engine_refuses_is_an_error_in_every_report(run, pytester, workers) -> None:
    pytest.importorskip("xdist")
    pytester.makefile(".yaml", **{"scen/refused": REFUSED_STEP})
    pytester.makepyfile(own_names=OWN_NAMES_ADAPTER)
    pytester.syspathinsert()
    result = run("--sandbox-driver=own_names:factory", "--sandbox-scenarios=scen",
                 "--sandbox-no-builtin", "--sandbox-report=r.json", "--junitxml=j.xml", "-rE",
                 "-p", "xdist", "-n", workers, "-o", f"pythonpath={TESTS} {pytester.path}")
    report = load(pytester)
    (entry,) = items(report).values()
    assert (entry["outcome"], entry["error_kind"]) == ("error", "story")
    assert entry["error"].startswith("refused-step [every-step] step 2 (run s1 as=R "
                                     "name=box-elsewhere) was refused by the engine (409): ")
    assert "'--sandbox-schedule=refused-step@every-step'" in entry["replay"]
    assert report["verdict"] == "incomplete" and "1 error" in report["verdict_reasons"]
    assert report["requirements"]["OWN-4"]["outcome"] == "not-run"
    # An error of the item (it plays in its setup phase), not a failure: JUnit's <error>.
    error = ET.parse(pytester.path / "j.xml").getroot().find(".//testcase/error")
    assert error.get("message") == f'failed on setup with "{entry["error"]}"'  # pytest's words
    assert "the story could not be played" in error.text
    # The short summary gives the one line too (cut to the terminal's width).
    result.stdout.fnmatch_lines(["ERROR scen/refused.yaml::refused-step?every-step? - "
                                 "refused-step ?every-step*"])


def test_verdict_rules() -> None:
    def item(outcome: str, profile: str = "core", **kw) -> dict:
        return {"item": "x", "scenario": "s", "profile": profile, "requirements": [],
                "outcome": outcome, **kw}

    assert str(verdict([item("passed")])) == "conformant"
    assert str(verdict([item("passed"), item("failed", "extended")])) == "conformant"
    assert str(verdict([item("passed"), item("not-run")])) == "incomplete (1 not run)"
    assert str(verdict([item("failed"), item("not-run")])) == \
        "not conformant (1 of 2 core items failed; 1 not run)"
    assert str(verdict([item("error", error_kind="engine"), item("error", error_kind="story"),
                        item("skipped")])) == \
        "incomplete (engine unavailable; 1 error; 1 skipped)"
    assert str(verdict([item("passed")], replay=True)) == \
        "incomplete (a replay of one schedule)"
    assert str(verdict([item("passed")], catalog=False)) == \
        "incomplete (the bundled catalog was not run)"
    assert str(verdict([item("passed", "extended")])) == "incomplete (no core item planned)"
    assert str(verdict([], plan_known=False)) == \
        "incomplete (the plan of items is unknown; no core item planned)"


# -- the JSON report ---------------------------------------------------------------------------------


def test_json_report_carries_the_failure_and_fits_its_schema(run, pytester) -> None:
    run("--sandbox-driver=reference", "--sandbox-report=ok.json")
    ok = load(pytester, "ok.json")
    assert ok["verdict"] == "conformant" and ok["verdict_reasons"] == []
    assert ok["format"] == 2 and ok["counts"]["failed"] == 0
    run(LABELS, "-k", "overlap-backup-first", "--sandbox-report=r.json")
    report = load(pytester)
    entry = items(report)["sandbox-catalog/overlap.yaml::overlap-backup-first[backup-first]"]
    f = entry["failure"]
    assert f["message"].startswith("overlap-backup-first [backup-first] broke OWN-4, OWN-19: ")
    assert "\n" not in f["message"]
    assert f["schedule"] == entry["failed_schedule"] == "1-0.0.0.oo.0"
    assert f["schedule_name"] == "backup-first"
    assert f["requirements"][:2] == ["OWN-4", "OWN-19"] and "OWN-12" in entry["broken"]
    assert "'--sandbox-schedule=overlap-backup-first@backup-first'" in f["replay"]
    kinds = [m["kind"] for m in f["timeline"]]
    assert kinds[0] == "run" and {"step", "container", "observe", "report", "finding"} <= set(kinds)
    observe = next(m for m in f["timeline"] if m["kind"] == "observe")
    assert [c["binding"] for c in observe["data"]["containers"]] == ["A", "B"]
    first = next(m for m in f["timeline"] if m["kind"] == "report")
    assert first["data"]["agrees"] is False
    assert first["data"]["driver"]["instance"] == "B"
    assert first["data"]["contract"]["instance"] == "A"
    assert f["snapshots"] == ["s1: instance=B Ready=True ContainerRunning"]
    assert {x["moment"] for x in f["failures"]} <= {m["seq"] for m in f["timeline"]}


def test_xdist_controller_gets_the_plan_and_the_failures(run, pytester) -> None:
    pytest.importorskip("xdist")
    args = (LABELS, "-k", "overlap or " + PASSING, "-p", "xdist")
    run(*args, "-n", "0", "--sandbox-report=serial.json", "--junitxml=serial.xml")
    run(*args, "-n", "2", "--sandbox-report=parallel.json", "--junitxml=parallel.xml")
    serial, parallel = load(pytester, "serial.json"), load(pytester, "parallel.json")
    assert serial["counts"] == parallel["counts"] and serial["counts"]["not_run"] > 0
    assert serial["verdict_text"] == parallel["verdict_text"]
    assert serial["requirements"] == parallel["requirements"]
    for name, e in items(serial).items():
        p = items(parallel)[name]
        assert (p["outcome"], p.get("reason"), p.get("broken")) == \
            (e["outcome"], e.get("reason"), e.get("broken"))
        if "failure" in e:
            assert p["failure"]["message"] == e["failure"]["message"]
            assert len(p["failure"]["timeline"]) == len(e["failure"]["timeline"])
    assert junit_failures(pytester.path / "serial.xml") == \
        junit_failures(pytester.path / "parallel.xml")


# -- JUnit -------------------------------------------------------------------------------------------


def junit_failures(path: Path) -> dict[str, tuple[str, dict[str, str]]]:
    out = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        failure = case.find("failure")
        if failure is None:
            continue
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        message = failure.get("message")
        assert "\n" not in message, message
        assert "timeline:" in failure.text and "replay:" in failure.text
        assert props["sandbox_scenario"] in message
        out[case.get("name")] = (message, {k: props[k] for k in (
            "sandbox_scenario", "sandbox_failed_schedule", "sandbox_broken")})
    return out


def test_junit_message_is_the_one_line_summary(run, pytester) -> None:
    run(LABELS, "-k", "overlap-backup-first", "--junitxml=j.xml")
    (message, props), = junit_failures(pytester.path / "j.xml").values()
    assert message.startswith("overlap-backup-first [backup-first] broke OWN-4, OWN-19: sandbox "
                              "s1: the driver reports instance B")
    assert "the contract says A" in message
    assert props["sandbox_failed_schedule"] == "1-0.0.0.oo.0"
    assert props["sandbox_broken"].split()[:2] == ["OWN-4", "OWN-19"]


# -- the claim (Gateway API ConformanceReport) ---------------------------------------------------------


def test_claim_has_the_gateway_api_shape(run, pytester) -> None:
    result = run(LABELS, "--sandbox-claim=claim.yaml", "--sandbox-implementation=organization=ACME",
                 "--sandbox-implementation=project=acme-driver",
                 "--sandbox-implementation=url=https://example.com/acme",
                 "--sandbox-implementation=version=v1.2.3",
                 "--sandbox-implementation=contact=@acme/maintainers")
    result.stdout.fnmatch_lines(["claim: claim.yaml"])
    claim = yaml.safe_load((pytester.path / "claim.yaml").read_text())
    assert claim["kind"] == "ConformanceReport" and claim["apiVersion"] == "sandbox-conformance/v1"
    assert claim["implementation"] == {"organization": "ACME", "project": "acme-driver",
                                       "url": "https://example.com/acme", "version": "v1.2.3",
                                       "contact": ["@acme/maintainers"]}
    (profile,) = claim["profiles"]
    core = profile["core"]
    assert core["result"] == "failure"
    stats = core["statistics"]
    assert stats["Failed"] == len(core["failedTests"]) > 0 and stats["Passed"] > 0
    assert "overlap-backup-first[backup-first]" in core["failedTests"]
    assert profile["extended"]["result"] in ("failure", "partial", "success")
    replays = {f["test"]: f["replay"] for f in claim["reproduce"]["failures"]}
    assert "overlap-backup-first@backup-first" in replays["overlap-backup-first[backup-first]"]
    assert claim["reproduce"]["command"].startswith("pytest ")


def test_a_passing_selection_claims_partial(run, pytester) -> None:
    run(LABELS, "-k", PASSING, "--sandbox-claim=claim.yaml")
    core = yaml.safe_load((pytester.path / "claim.yaml").read_text())["profiles"][0]["core"]
    assert core["result"] == "partial" and core["statistics"]["Skipped"] > 0
    assert core["statistics"]["Failed"] == 0


@pytest.mark.parametrize("value", ["colour=red", "organization", "url="])
def test_bad_implementation_option_is_a_usage_error(run, value) -> None:
    result = run("--sandbox-driver=reference", f"--sandbox-implementation={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: --sandbox-implementation={value}: use KEY=VALUE*"])


def test_an_output_path_that_is_a_folder_is_a_usage_error(run, pytester) -> None:
    (pytester.path / "out").mkdir()
    result = run("--sandbox-driver=reference", "--sandbox-html=out")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --sandbox-html=out: is a folder*"])


# -- the HTML report's structure (what a browser shows: test_reports_browser.py) -----------------------


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data):
        self.text.append(data)


def test_html_report_is_self_contained_and_draws_the_failure(run, pytester) -> None:
    run(LABELS, "--sandbox-html=r.html", "--sandbox-report=r.json")
    html = (pytester.path / "r.html").read_text()
    page = _Page()
    page.feed(html)
    tags = page.tags
    # Nothing is fetched: no external style sheet, script, image or font.
    assert not [t for t in tags if t[0] in ("link", "img", "iframe")]
    assert not [t for t in tags if t[0] == "script" and t[1].get("src")]
    assert "url(" not in html and "@import" not in html
    report = load(pytester)
    failed = [k for k, e in items(report).items() if e["outcome"] == "failed"]
    lanes = [a for t, a in tags if t == "table" and a.get("data-swimlanes")]
    assert len(lanes) == len(failed)
    assert sum(1 for _, a in tags if a.get("data-first-divergence")) == len(failed)
    assert sum(1 for t, a in tags if t == "button" and "copy" in a.get("class", "")) == len(failed)
    text = "".join(page.text)
    assert "'--sandbox-schedule=overlap-backup-first@backup-first'" in text
    assert REQUIREMENTS["OWN-4"]["title"] in text
    # The matrix: one row per requirement, one column per scenario.
    heads = [a for t, a in tags if t == "th" and a.get("class") == "req"]
    assert len(heads) == 20
    assert sum(1 for t, a in tags if t == "th" and a.get("class") == "sc") == \
        len(report["scenarios"])
    # Every scenario is listed with its schedule count, with an anchor the matrix links to.
    ids = {a.get("id") for _, a in tags}
    for sid in report["scenarios"]:
        assert f"scenario-{sid}" in ids
    assert f"{report['verdict_text']}" in text


def test_swimlanes_fold_diagnostics_under_their_moment_and_mark_the_first_divergence() -> None:
    from pytest_sandbox_conformance.reports.html_lanes import first_divergence, lanes

    def moment(seq, kind, text, **data):
        return {"seq": seq, "kind": kind, "text": text, "indent": 1, "step": 0, "data": data}

    ctr = {"binding": "A", "id": "a" * 64, "name": "box", "state": "running", "gpu": False}
    moments = [
        moment(0, "step", "step 1: create s1 as=A", index=0, action="create", target="s1",
               args={}),
        moment(1, "observe", "observe (newest): ...", number=1, order="newest",
               containers=[ctr]),
        moment(2, "diagnostic", "docker API: GET /containers/json -> 200", source="docker API"),
        moment(3, "diagnostic", "grpc WatchSandboxes <- sandbox s1", source="grpc WatchS"),
        moment(4, "report", "driver: ...", sandbox="s1", agrees=True,
               driver={"instance": "A", "status": "True", "reason": "ContainerRunning",
                       "phase": "Ready"},
               contract={"instance": "A", "status": "True", "reason": "ContainerRunning",
                         "phase": "Ready", "outcome": "authoritative", "requirements": []}),
        moment(5, "finding", "FAILED [OWN-17] warnings-deduplicated: ...", check="w",
               requirements=["OWN-17"], message="..."),
    ]
    assert first_divergence(moments) == 5
    html = lanes(moments, "f1")
    rows = html.split("<tr")
    observe = next(i for i, r in enumerate(rows) if 'id="f1-m1"' in r)
    assert "<details>" in rows[observe + 1] and "2 diagnostic lines (docker API 1, grpc 1)" \
        in rows[observe + 1] and 'id="f1-m4"' in rows[observe + 2]
    (marked,) = [r for r in rows if "data-first-divergence" in r]
    assert 'id="f1-m5"' in marked and "first divergence" in marked


def test_html_stays_small_when_only_failures_are_drawn(run, pytester) -> None:
    run("--sandbox-driver=reference", "--sandbox-schedules=exhaustive", "-k", "overlap",
        "--sandbox-html=r.html")
    html = (pytester.path / "r.html").read_text()
    assert "data-swimlanes" not in html.replace('"data-swimlanes"', "")
    assert len(html.encode()) < 200_000


# -- the terminal ------------------------------------------------------------------------------------


def test_terminal_prints_a_table_per_requirement(run) -> None:
    result = run(LABELS, "-k", "overlap-backup-first or " + PASSING)
    result.stdout.fnmatch_lines([
        "*- sandbox conformance -*",
        "requirement  passed  failed skipped not run  *",
        "OWN-1 * 1 * 0 * 0 * * *Authority comes from create*",
        "OWN-4 * 0 * 1 * 0 * *BROKEN *",
        "driver trusts_labels_last_wins*: not conformant (1 of * core items failed; * not run)",
        "items: 1 passed, 1 failed, 0 skipped, 0 errors, * not run (core: failed, * items)",
    ])


def test_long_items_show_progress_with_v(run, pytester, monkeypatch) -> None:
    from pytest_sandbox_conformance.plugin import items as items_module

    monkeypatch.setattr(items_module, "PROGRESS_EVERY", 0.0)
    pytester.makefile(".yaml", **{"scen/handoff": HANDOFF})
    args = ("--sandbox-driver=reference", "--sandbox-scenarios=scen", "--sandbox-no-builtin",
            "--sandbox-schedules=exhaustive")
    result = run(*args, "-v")
    result.stdout.fnmatch_lines(["  handoff[exhaustive-1of1]: 1 / 189 schedules",
                                 "  handoff[exhaustive-1of1]: 188 / 189 schedules",
                                 "*handoff?exhaustive-1of1? PASSED*"])
    quiet = run(*args)
    assert "/ 189 schedules" not in quiet.stdout.str()


# -- the contract's text, bundled ----------------------------------------------------------------------


def test_schema_knows_every_moment_kind() -> None:
    from pytest_sandbox_conformance.run.timeline import KINDS

    assert SCHEMA["$defs"]["moment"]["properties"]["kind"]["enum"] == list(KINDS)


def test_bundled_contract_text_is_current() -> None:
    found = contract.extract((ROOT / "docs" / "contract.md").read_text(encoding="utf-8"))
    assert list(found) == list(OWN)
    assert found == REQUIREMENTS, ("pytest_sandbox_conformance/reports/contract_text.py is not "
                                   "current: regenerate it with `python -m "
                                   "pytest_sandbox_conformance.reports.contract docs/contract.md`")
    assert contract.render_module(found) == contract.MODULE.read_text(encoding="utf-8")
