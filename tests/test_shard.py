"""``--sandbox-shard=K/N`` and ``sandbox-conformance merge-reports``: a run cut into parts on several
machines gives, once its parts' reports are merged, the verdict and counts of one run.

* :func:`split` (pure): every item in exactly one part, the same parts for the same items in any
  order, parts balanced by schedule count.
* Through pytest (pytester, the catalog on the fake engine, a deliberately broken driver and the
  reference driver): each part's report records its part and the other parts' items, its verdict
  alone is ``incomplete`` (even when every core item it ran passed); the merged report's verdict,
  counts, requirements and items are those of the unsharded run, and it fits the schema; with
  ``-k`` and under xdist too.
* ``merge-reports`` refuses, naming the file: a report that is no shard's, parts of different runs
  (driver, schedules, suite version), a part missing or given twice, different N, different
  plans, unreadable or foreign files.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from pytest_sandbox_conformance.cli import main as cli
from pytest_sandbox_conformance.plugin.shard import split

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
SCHEMA = json.loads((ROOT / "docs" / "report.schema.json").read_text())
PLUGINS = ("-p", "sandbox_conformance", "-p", "no:hypothesispytest")
BROKEN = "--sandbox-driver=broken_drivers:trusts_labels_last_wins"


# -- the split ------------------------------------------------------------------------------------


def test_every_item_is_in_exactly_one_part_whatever_the_order():
    weights = [(f"f.yaml::s{i}[x]", (i * 37) % 11 + 1) for i in range(40)]
    parts = split(weights, 3)
    assert sorted(set(parts)) == [0, 1, 2]
    by_id = dict(zip((w[0] for w in weights), parts))
    shuffled = weights[7:] + weights[:7]
    assert dict(zip((w[0] for w in shuffled), split(shuffled, 3))) == by_id
    assert split(weights, 1) == [0] * 40


def test_parts_are_balanced_by_schedules():
    weights = [("a[exhaustive-1of1]", 200), *((f"p{i}[pinned]", 1) for i in range(200))]
    parts = split(weights, 2)
    loads = [sum(w for (_, w), k in zip(weights, parts) if k == part) for part in (0, 1)]
    assert loads == [200, 200]
    # Round-robin over the ids would put 100 pinned items beside the 200 schedules (300 / 100).
    many = [(f"i{i:03}", 1 + i % 5) for i in range(100)]
    loads = [0, 0, 0, 0]
    for (_, w), k in zip(many, split(many, 4)):
        loads[k] += w
    assert max(loads) - min(loads) <= 5  # within the heaviest item


def test_more_parts_than_items_leaves_some_parts_empty():
    assert sorted(split([("a", 1), ("b", 1)], 5)) == [0, 1]


# -- through pytest -------------------------------------------------------------------------------


@pytest.fixture
def run(pytester: pytest.Pytester, sandbox_state_dir: Path):
    pytester.syspathinsert(TESTS)

    def go(*args: str) -> pytest.RunResult:
        return pytester.runpytest(*PLUGINS, "-o", f"pythonpath={TESTS}",
                                  f"--sandbox-state-dir={sandbox_state_dir}", *args)

    return go


def load(pytester: pytest.Pytester, name: str) -> dict:
    report = json.loads((pytester.path / name).read_text())
    jsonschema.validate(report, SCHEMA)
    return report


def items(report: dict) -> dict[str, dict]:
    return {k: {kk: vv for kk, vv in v.items() if kk != "duration"}
            for s in report["scenarios"].values() for k, v in s["items"].items()}


def merge(pytester: pytest.Pytester, *names: str, out: str = "merged.json",
          extra: tuple[str, ...] = ()) -> int:
    return cli(["merge-reports", *(str(pytester.path / n) for n in names),
                "-o", str(pytester.path / out), *extra])


def test_two_shards_merged_give_the_verdict_and_counts_of_one_run(run, pytester, capsys):
    whole = run(BROKEN, "--sandbox-report=whole.json")
    parts = [run(BROKEN, f"--sandbox-shard={k}/2", f"--sandbox-report=s{k}.json")
             for k in (1, 2)]
    whole_report = load(pytester, "whole.json")
    reports = [load(pytester, f"s{k}.json") for k in (1, 2)]
    planned = set(items(whole_report))
    ran = []
    for k, (result, report) in enumerate(zip(parts, reports), 1):
        assert report["shard"]["index"] == k and report["shard"]["total"] == 2
        mine = {n for n, i in items(report).items()
                if not i.get("reason", "").startswith("in another shard")}
        assert set(report["shard"]["deselected"]) == planned - mine
        ran.append(mine)
        assert report["verdict"] == "not conformant"
        assert f"shard {k}/2 alone: merge the shards' reports" in report["verdict_reasons"]
        result.stdout.fnmatch_lines([f"sandbox conformance: shard {k}/2: {len(mine)} item(s) "
                                     f"here, {len(planned - mine)} in the other shard(s)"])
    assert ran[0] | ran[1] == planned and not ran[0] & ran[1]
    assert abs(len(ran[0]) - len(ran[1])) <= 3  # balanced (pinned items weigh one schedule)
    assert whole.ret == parts[0].ret == parts[1].ret == pytest.ExitCode.TESTS_FAILED
    capsys.readouterr()
    status = merge(pytester, "s2.json", "s1.json",
                   extra=("--html", str(pytester.path / "m.html"),
                          "--claim", str(pytester.path / "m.yaml")))
    printed = capsys.readouterr().out
    assert status == 1, printed  # not conformant
    merged = load(pytester, "merged.json")
    for key in ("verdict", "verdict_reasons", "verdict_text", "counts", "profiles",
                "requirements"):
        assert merged[key] == whole_report[key], key
    assert items(merged) == items(whole_report)
    assert [m["shard"] for m in merged["merged"]] == ["1/2", "2/2"]
    assert "shard" not in merged
    assert f"2 shard report(s) merged: {whole_report['verdict_text']}" in printed
    page = (pytester.path / "m.html").read_text()
    assert "<html" in page and "--sandbox-shard=2/2" in page  # each shard's command
    claim = yaml.safe_load((pytester.path / "m.yaml").read_text())
    assert [c.split("--sandbox-shard=")[1][:3] for c in claim["reproduce"]["shards"]] \
        == ["1/2", "2/2"]


def test_a_shard_alone_is_never_conformant(run, pytester, capsys):
    for k in (1, 2):
        result = run("--sandbox-driver=reference", f"--sandbox-shard={k}/2",
                     f"--sandbox-report=s{k}.json")
        assert result.ret == pytest.ExitCode.OK
        report = load(pytester, f"s{k}.json")
        assert report["counts"]["failed"] == 0 and report["verdict"] == "incomplete"
    # Even a shard that happens to hold every core item the run selects.
    result = run("--sandbox-driver=reference", "--sandbox-shard=1/3", "-k", "gap-missed",
                 "--sandbox-report=alone.json")
    report = load(pytester, "alone.json")
    assert report["verdict"] == "incomplete"
    assert "shard 1/3 alone: merge the shards' reports" in report["verdict_reasons"]
    capsys.readouterr()
    assert merge(pytester, "s1.json", "s2.json") == 0  # conformant, as one run
    assert load(pytester, "merged.json")["verdict"] == "conformant"


def test_shards_of_a_k_selection_and_under_xdist_merge(run, pytester, capsys):
    pytest.importorskip("xdist")
    selection = ("-k", "overlap or gap", "--sandbox-schedules=exhaustive")
    run(BROKEN, *selection, "--sandbox-report=whole.json")
    run(BROKEN, *selection, "--sandbox-shard=1/2", "--sandbox-report=s1.json")
    run(BROKEN, *selection, "--sandbox-shard=2/2", "--sandbox-report=s2.json",
        "-p", "xdist", "-n", "2")
    s2 = load(pytester, "s2.json")
    assert s2["shard"]["deselected"]  # the workers' plans carried the other shard's items
    capsys.readouterr()
    assert merge(pytester, "s1.json", "s2.json") == 1
    merged, whole = load(pytester, "merged.json"), load(pytester, "whole.json")
    assert merged["counts"] == whole["counts"] and merged["verdict_text"] == whole["verdict_text"]
    assert items(merged) == items(whole)


@pytest.mark.parametrize("value, message", [
    ("3/2", "K must be 1 to N (2)"),
    ("0/2", "K must be 1 to N (2)"),
    ("1/0", "N must be 1 to 1000"),
    ("half", "use K/N"),
])
def test_a_bad_shard_is_one_usage_error(run, value, message):
    result = run("--sandbox-driver=reference", f"--sandbox-shard={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: --sandbox-shard={value}: {message}*"])


def test_a_shard_needs_the_suite_and_no_replay(run):
    result = run("--sandbox-shard=1/2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --sandbox-shard splits the conformance suite's items*"])
    result = run("--sandbox-shard=1/2", "--sandbox-schedule=gap-missed@no-poll-in-gap")
    result.stderr.fnmatch_lines(["ERROR: --sandbox-shard=1/2 beside --sandbox-schedule=*"])


# -- merge-reports' refusals ----------------------------------------------------------------------


@pytest.fixture
def shards(run, pytester):
    """Two shards of one run (the reference driver, pinned, -k gap) and their reports."""
    for k in (1, 2):
        run("--sandbox-driver=reference", "-k", "gap", f"--sandbox-shard={k}/2",
            f"--sandbox-report=s{k}.json")
    return [load(pytester, f"s{k}.json") for k in (1, 2)]


def _write(pytester, name: str, report: dict) -> str:
    (pytester.path / name).write_text(json.dumps(report))
    return name


def _refused(pytester, capsys, *names: str) -> str:
    capsys.readouterr()
    assert merge(pytester, *names) == 3
    assert not (pytester.path / "merged.json").exists()
    return capsys.readouterr().err


def test_merge_refuses_reports_of_different_runs(shards, pytester, capsys):
    other = dict(shards[1], driver={**shards[1]["driver"], "spec": "mine:factory"})
    err = _refused(pytester, capsys, "s1.json", _write(pytester, "other.json", other))
    assert "other.json: the driver is {" in err and "merge only the shards of one run" in err
    other = dict(shards[1], schedules="exhaustive")
    err = _refused(pytester, capsys, "s1.json", _write(pytester, "other.json", other))
    assert "other.json: the schedules mode is 'exhaustive', but" in err
    other = dict(shards[1], suite={**shards[1]["suite"], "version": "9.9.9"})
    err = _refused(pytester, capsys, "s1.json", _write(pytester, "other.json", other))
    assert "other.json: the suite's version is '9.9.9'" in err


def test_a_shard_that_did_not_know_its_plan_makes_the_merge_incomplete(shards, pytester,
                                                                        capsys):
    assert shards[0]["plan_known"] is True and shards[1]["plan_known"] is True
    unknown = dict(shards[1], plan_known=False)
    assert merge(pytester, "s1.json", _write(pytester, "u.json", unknown)) != 3
    merged = load(pytester, "merged.json")
    assert merged["verdict"] == "incomplete" and merged["plan_known"] is False
    # A report written before the field existed says so only in its reasons.
    old = {k: v for k, v in unknown.items() if k != "plan_known"}
    old["verdict_reasons"] = ["the plan of items is unknown"]
    merge(pytester, "s1.json", _write(pytester, "old.json", old))
    assert load(pytester, "merged.json")["verdict"] == "incomplete"


def test_merge_refuses_missing_repeated_or_foreign_shards(shards, pytester, capsys):
    err = _refused(pytester, capsys, "s1.json")
    assert "shard(s) 2/2 missing: got 1/2 (" in err
    err = _refused(pytester, capsys, "s1.json", "s1.json")
    assert "s1.json: shard 1/2 again (also " in err
    three = dict(shards[1], shard={**shards[1]["shard"], "total": 3})
    err = _refused(pytester, capsys, "s1.json", _write(pytester, "three.json", three))
    assert "three.json: shard 2/3, but " in err and "is a shard of 2" in err
    whole = {k: v for k, v in shards[0].items() if k != "shard"}
    err = _refused(pytester, capsys, "s1.json", _write(pytester, "whole.json", whole))
    assert "whole.json: not a shard's report (its run had no --sandbox-shard=K/N)" in err


def test_merge_refuses_different_plans_and_bad_files(shards, pytester, capsys):
    other = json.loads(json.dumps(shards[1]))
    scenario = next(iter(other["scenarios"]))
    del other["scenarios"][scenario]
    err = _refused(pytester, capsys, "s1.json", _write(pytester, "less.json", other))
    assert "less.json: its plan of items differs from " in err and "only in " in err
    (pytester.path / "junk.json").write_text("{not json")
    err = _refused(pytester, capsys, "s1.json", "junk.json")
    assert "junk.json: not JSON" in err
    _write(pytester, "foreign.json", {"hello": 1})
    assert "foreign.json: not a conformance report" in _refused(pytester, capsys, "s1.json",
                                                                "foreign.json")
    assert "nowhere.json: cannot read it" in _refused(pytester, capsys, "s1.json",
                                                      "nowhere.json")
