"""``sandbox-conformance lint`` and the loader on bad input: bounded YAML, every file reported,
the story's meaning (``scenario/meaning.py``), the exploration bound and the rehearsal against
the contract. Each case names the message and the line it must carry."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pytest_sandbox_conformance.cli import lint_paths, main
from pytest_sandbox_conformance.exploration.schedule import DEFAULT_MAX_SCHEDULES, exhaustive_count
from pytest_sandbox_conformance.scenario import ScenarioErrors, load_text
from pytest_sandbox_conformance.scenario.yamlsource import MAX_DEPTH, MAX_NODES

HEAD = """\
id: t
title: t
requirements: [OWN-4]
sandboxes:
  s1: {name: box}
"""


def scenario(story: str, expect: str = "expect: {}", extra: str = "") -> str:
    return HEAD + extra + "story:\n" + story + expect + "\n"


def errors_of(text: str) -> list[str]:
    try:
        load_text(text, "f.yaml")
    except ScenarioErrors as exc:
        return [str(e) for e in exc.errors]
    return []


# -- bounded YAML --------------------------------------------------------------------------------


def _bomb(levels: int) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("text, expected", [
    (_bomb(9), f"f.yaml:1: the file expands to more than {MAX_NODES} values"),
    ("id: &a [*a]\n", "f.yaml:1: the alias *a refers to a value that contains it"),
    ("a: &a {b: {c: *a}}\n", "f.yaml:1: the alias *a refers to a value that contains it"),
    ("id: " + "[" * 1000 + "]" * 1000 + "\n", f"f.yaml:1: the YAML is nested deeper than "
                                              f"{MAX_DEPTH} levels"),
    ("a: 1\nb: *nothing\n", "f.yaml:2: the alias *nothing names no anchor defined before it"),
    ("a: &x 1\nb: &x 2\n", "f.yaml:2: the anchor &x is defined twice (first on line 1)"),
    ("id: " + "9" * 5000 + "\n", "f.yaml:1: id: cannot read the value '99999"),
    ("id: 2001-13-45\n", "f.yaml:1: id: cannot read the value '2001-13-45': month must be"),
    ("id: x\ntitle: a\x00b\n", "f.yaml:2: the character U+0000 is not allowed in YAML"),
    ("? [a, b]\n: 1\n", "f.yaml:1: a mapping key must be a plain scalar, not a list"),
    ("id: !!python/object/apply:os.system ['true']\n",
     "f.yaml:1: id: the tag !!python/object/apply:os.system is not allowed here"),
    ("id: !!python/name:os.getcwd\n", "f.yaml:1: id: cannot read this value: could not "
                                      "determine a constructor"),
    ("id: !!set {a, b}\n", "f.yaml:1: id: the tag !!set is not allowed here"),
])
def test_bad_yaml_is_a_clear_error_with_a_line(text: str, expected: str) -> None:
    errors = errors_of(text)
    assert errors and errors[0].startswith(expected), errors


def test_aliases_within_the_bound_still_work() -> None:
    text = scenario("  - create: s1\n    as: A\n",
                    "expect:\n  sandboxes:\n    s1: &ready {instance: A, phase: Ready}\n"
                    "schedules:\n  again:\n    after: {1: [observe]}\n    expect:\n"
                    "      sandboxes:\n        s1: *ready\n")
    [sc] = load_text(text, "f.yaml")
    assert sc.pinned[0].expect.sandboxes["s1"].phase == "Ready"


def test_a_merge_key_merges_and_explicit_keys_win() -> None:
    text = scenario("  - create: s1\n    as: A\n",
                    "expect:\n  sandboxes:\n    s1: {<<: {instance: A, phase: Error}, "
                    "phase: Ready}\n")
    [sc] = load_text(text, "f.yaml")
    assert sc.expect.sandboxes["s1"].phase == "Ready"


# -- lint: every file, every problem ------------------------------------------------------------


def test_lint_reports_every_file_and_exits_non_zero(tmp_path: Path, capsys) -> None:
    (tmp_path / "a-bomb.yaml").write_text(_bomb(9))
    (tmp_path / "b-deep.yaml").write_text("id: " + "[" * 1000 + "]" * 1000 + "\n")
    (tmp_path / "c-bytes.yaml").write_bytes(b"id: caf\xe9\n")
    (tmp_path / "d-good.yaml").write_text(scenario("  - create: s1\n    as: A\n"))
    (tmp_path / "e-semantic.yaml").write_text(scenario("  - create: s1\n    as: A\n"
                                                       "  - set_state: A\n"))
    (tmp_path / "folder.yaml").mkdir()  # a folder named like a file is no file
    assert main(["lint", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert [line.split(":")[0].rsplit("/", 1)[-1] for line in out.splitlines()] == [
        "a-bomb.yaml", "b-deep.yaml", "c-bytes.yaml", "e-semantic.yaml"]
    assert "c-bytes.yaml:1: cannot read the file: it is not UTF-8 (byte 0xe9" in out
    assert "'state' is a required property" in out
    assert "5 file(s), 1 scenario(s) clean, 4 problem(s) in 4 file(s)" in err
    assert "Traceback" not in out + err


def test_a_loader_bug_names_the_file_and_lint_goes_on(tmp_path: Path, monkeypatch, capsys):
    from pytest_sandbox_conformance.scenario import loader

    (tmp_path / "a.yaml").write_text(scenario("  - create: s1\n    as: A\n"))
    (tmp_path / "b.yaml").write_text(scenario("  - create: s1\n    as: A\n"))
    real = loader.load_text

    def flaky(text, source, story=True):
        if source.endswith("a.yaml"):
            raise RecursionError("maximum recursion depth exceeded")
        return real(text, source, story)

    monkeypatch.setattr(loader, "load_text", flaky)
    assert main(["lint", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert "a.yaml: the loader failed on this file (RecursionError" in out
    assert "please report it" in out and "1 scenario(s) clean" in err


def test_lint_runs_as_a_command_without_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "bomb.yaml").write_text(_bomb(9))
    result = subprocess.run([sys.executable, "-m", "pytest_sandbox_conformance.cli", "lint",
                             str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "an alias bomb?" in result.stdout and "Traceback" not in result.stderr


# -- the story's meaning ----------------------------------------------------------------------------

A = "  - create: s1\n    as: A\n"


@pytest.mark.parametrize("story, expect, expected", [
    (A + "  - set_state: A\n", "expect: {}", "f.yaml:9: story[1]: 'state' is a required"),
    (A + "  - engine_fault: list\n    times: 1000000000000\n", "expect: {}",
     "f.yaml:10: story[1].times: 1000000000000 is greater than the maximum of 100"),
    (A + "  - rename: A\n    to: '-bad name'\n", "expect: {}",
     "f.yaml:10: story[1].to: '-bad name' is not a valid container name"),
    (A + "  - rename: A\n    to: x\n", "expect: {}", "'x' is not a valid container name"),
    (A + "  - rename: A\n    to: '{canonical}/old'\n", "expect: {}",
     "f.yaml:10: story[1].to: 'openshell-box-s1/old' is not a valid container name"),
    (A + "  - rename: A\n    to: '{canonical}-old'\n  - clone: A\n    as: B\n"
         "    name: '{canonical}-old'\n", "expect: {}",
     "f.yaml:13: story[2].name: clone: the container name openshell-box-s1-old is in use by A"),
    (A + "  - rename: A\n    to: '{canonical}'\n", "expect: {}",
     "story[1].to: container A is already named openshell-box-s1"),
    (A + "  - rename: A\n    to: canonical\n", "expect: {}",
     "story[1].to: container A is already named openshell-box-s1"),
    (A + "  - remove: A\n  - stop: A\n", "expect: {}",
     "f.yaml:10: story[2].stop: container A is gone (removed at step 2)"),
    (A + "  - delete: s1\n  - start: A\n", "expect: {}",
     "container A is gone (deleted with sandbox s1 at step 2)"),
    (A + "  - set_state: A\n    state: paused\n  - start: A\n", "expect: {}",
     "story[2].start: container A is paused: the engine refuses to start"),
    (A + "  - stop: A\n  - kill: A\n", "expect: {}",
     "story[2].kill: container A is exited: the engine refuses to kill"),
    (A + "  - set_state: A\n    state: removing\n  - remove: A\n", "expect: {}",
     "story[2].remove: container A is in state removing"),
    (A + "  - clone: A\n    as: B\n", "expect: {}",
     "story[1]: clone: the container name openshell-box-s1 is in use by A (step 1)"),
    (A + "  - clone: A\n    as: B\n    name: c1\n  - clone: A\n    as: C\n    name: c1\n",
     "expect: {}", "story[2].name: clone: the container name c1 is in use by B (step 2)"),
    ("  - run: s1\n    as: R\n    name: box-r\n" + A, "expect: {}",
     "story[1].create: create: s1 while R (step 1) already carries sandbox s1's identity"),
    ("  - run: s1\n    as: R\n" + A, "expect: {}",
     "story[1].create: the driver's create of s1 needs its canonical name openshell-box-s1"),
    (A, "expect:\n  warnings: {ContainerIdentityConflict: {min: 5, max: 1}}",
     "expect.warnings.ContainerIdentityConflict: min 5 is above max 1"),
    (A, "expect:\n  sandboxes:\n    s1: {reason: AllGood}",
     "expect.sandboxes.s1.reason: 'AllGood' is not one of"),
    (A, "expect:\n  sandboxes:\n    s1: {phase: Ready, reason: ContainerExited}",
     "expect.sandboxes.s1.phase: reason ContainerExited comes with phase Error, not Ready"),
    (A, "expect:\n  deleted: [s1]", "expect.deleted[0]: no step deletes sandbox s1"),
    ("  - delete: s1\n", "expect: {}",
     "story[0].delete: sandbox s1 is deleted before any step creates it"),
    ("  - delete: s1\n" + A, "expect: {}", "sandbox s1 is deleted before any step creates it"),
    ("  - journal_fault: write-fail\n" + A, "expect: {}",
     "story[1]: the journal_fault: write-fail of step 1 may still be armed here and would "
     "fail the driver's create"),
    (A + "  - engine_fault: create\n  - clone: A\n    as: B\n    name: c1\n", "expect: {}",
     "story[2]: the engine_fault: create of step 2 may still be armed here and would fail the "
     "suite's own create of the clone"),
    (A + "  - engine_fault: list\n    times: 2\n  - observe: newest\n  - delete: s1\n",
     "expect: {}", "story[3]: the engine_fault: list of step 2 may still be armed here and "
                   "would fail the driver's delete"),
    ("  - journal_fault: corrupt\n    sandbox: s1\n" + A, "expect: {}",
     "story[0].sandbox: sandbox s1 has no journal to corrupt here (it is not created yet)"),
    (A + "  - journal_fault: crash\n    at: rename\n    times: 3\n", "expect: {}",
     "story[1].times: journal_fault: crash takes no 'times'"),
    (A + "  - journal_fault: power-loss\n    times: 2\n", "expect: {}",
     "story[1].times: journal_fault: power-loss takes no 'times'"),
    ("  - journal_fault: power-loss\n    at: rename\n" + A, "expect: {}",
     "the journal_fault: power-loss of step 1 may still be armed here and would fail the "
     "driver's create"),
    (A + "  - journal_fault: write-fail\n  - journal_fault: crash\n    at: fsync-dir\n",
     "expect: {}", "story[2].journal_fault: journal_fault: crash while the write-fail of step 2 "
                   "may still be armed"),
    (A + "  - remove: A\n", "expect:\n  containers: [A]",
     "expect.containers: the story leaves no bound container at the end"),
    ("  - create: s1\n", "expect:\n  containers: []",
     "the container of step 1 (s1-instance) is still there at the end but has no 'as:' name"),
    (A + "  - delete: s1\n", "expect:\n  sandboxes:\n    s1: {tracked: true}",
     "expect.sandboxes.s1.tracked: tracked: true, but it is deleted at step 2"),
    (A + "  - delete: s1\n", "expect:\n  sandboxes:\n    s1: {phase: Ready}",
     "expect.sandboxes.s1.phase: sandbox s1 is not tracked at the end"),
    (A, "expect:\n  sandboxes:\n    s1: {instance: null}",
     "expect.sandboxes.s1.instance: instance: null, but sandbox s1 always has"),
    (A + "  - remove: A\n  - delete: s1\n    expect_removed: true\n", "expect: {}",
     "story[2].expect_removed: expect_removed: true, but the delete finds no container"),
    ("  - supervisor: s1\n" + A, "expect: {}", "story[0].supervisor: sandbox s1 is not created"),
    # the language of issue 10, item 5: label edits, fails: start, repeat, foreign journals
    (A + "  - run: s1\n    as: C\n    name: box-copy\n    labels: {sandbox-id: nope}\n",
     "expect: {}", "story[1].labels.sandbox-id: unknown sandbox 'nope': sandbox-id writes the id "
                   "of a declared sandbox"),
    (A + "  - run: s1\n    as: C\n    name: box-copy\n    labels: {generation: x}\n",
     "expect: {}", "story[1].labels"),
    (A + "  - run: s1\n    as: C\n    name: box-copy\n    fails: start\n    state: exited\n",
     "expect: {}", "story[1].state: fails: start leaves the container created"),
    (A + "  - run: s1\n    as: C\n    name: box-copy\n    labels: {sandbox-id: null}\n"
         "  - rename: C\n    to: canonical\n", "expect: {}",
     "story[2].to: 'canonical' is relative to a sandbox's canonical name, but this container "
     "carries no declared sandbox's sandbox-id label"),
    (A + "  - run: s1\n    as: C\n    name: box-copy\n    labels: {sandbox-name: web}\n",
     "expect:\n  sandboxes:\n    s1: {instance: C}",
     "expect.sandboxes.s1.instance: C carries the sandbox-name label 'web': it can never be "
     "sandbox s1's instance"),
    (A + "  - run: s1\n    as: C\n    name: box-copy\n    fails: start\n  - start: C\n",
     "expect: {}", "story[2].start: container C was made with fails: start at step 2: its "
                   "executable is missing"),
    (A + "  - run: s1\n    as: C\n    name: box-copy\n    fails: start\n"
         "  - clone: C\n    as: D\n    name: box-d\n", "expect: {}",
     "story[2].clone: container C was made with fails: start: a clone copies its missing "
     "executable"),
    (A + "  - observe: newest\n    repeat: 500\n", "expect: {}", "story[1].repeat"),
    (A + "  - engine_fault: list\n    times: 2\n  - observe: newest\n    repeat: 2\n"
         "  - delete: s1\n", "expect: {}", "NO ERROR"),
    (A + "  - journal_fault: foreign-namespace\n", "expect: {}",
     "story[1]: journal_fault: foreign-namespace needs a 'sandbox'"),
    ("  - journal_fault: foreign-version\n    sandbox: s1\n" + A, "expect: {}",
     "story[0].sandbox: sandbox s1 has no journal to replace here (it is not created yet)"),
    (A + "  - journal_fault: foreign-sandbox\n    sandbox: s1\n  - restart: true\n",
     "expect:\n  sandboxes:\n    s1: {instance: null}", "NO ERROR"),
    (A, "expect: {}\nschedules:\n  s:\n    after: {99: [observe]}",
     "schedules.s.after[99]: no step 99: use a step number (1..1)"),
    (A, "expect: {}\nschedules:\n  s:\n    after: {1: [" + ", ".join(["observe"] * 30) + "]}",
     "is too long"),
])
def test_lint_refuses_what_would_crash_or_fail_a_correct_driver(story, expect, expected):
    errors = errors_of(scenario(story, expect))
    if expected == "NO ERROR":  # the counterpart of a refusal above: what the file may say
        assert errors == []
        return
    assert any(expected in e for e in errors), errors
    assert all(e.startswith("f.yaml:") and e.split(":")[1].isdigit() for e in errors), errors


def test_the_catalog_means_what_it_says() -> None:
    files, scenarios, errors = lint_paths([str(Path(__file__).parent.parent / "scenarios")])
    assert not errors and len(scenarios) >= 45


# -- large spaces and the rehearsal ----------------------------------------------------------

LONG = "".join([A] + ["  - stop: A\n  - start: A\n"] * 6)


def test_a_story_too_large_to_explore_whole_is_linted_and_listed_as_sampled(
        tmp_path: Path, capsys) -> None:
    text = scenario(LONG, extra="max_observations: 3\nrestart: anywhere\n")
    [sc] = load_text(text, "f.yaml")
    assert exhaustive_count(sc) == 234881024 > DEFAULT_MAX_SCHEDULES
    (tmp_path / "long.yaml").write_text(text)
    assert main(["lint", str(tmp_path)]) == 0  # a large space is sampled, never refused
    capsys.readouterr()
    assert main(["list", str(tmp_path)]) == 0
    assert (f"exhaustive=234881024 (over {DEFAULT_MAX_SCHEDULES}: exhaustive mode plays a "
            "sample)") in capsys.readouterr().out


def test_collection_samples_it_in_exhaustive_mode(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", **{"scen/long": scenario(
        LONG, extra="max_observations: 3\nrestart: anywhere\n")})
    args = ("-p", "sandbox_conformance", "-p", "no:cacheprovider", "--sandbox-driver=reference",
            "--sandbox-scenarios=scen", "--sandbox-no-builtin", "--collect-only", "-q")
    exhaustive = pytester.runpytest(*args, "--sandbox-schedules=exhaustive")
    assert exhaustive.ret == 0
    items = DEFAULT_MAX_SCHEDULES // 200
    exhaustive.stdout.fnmatch_lines([f"*t[[]exhaustive-sample-1of{items}[]]",
                                     f"*t[[]exhaustive-sample-{items}of{items}[]]"])
    assert "MemoryError" not in exhaustive.stdout.str()
    small = pytester.runpytest(*args, "--sandbox-schedules=exhaustive",
                               "--sandbox-max-schedules=400")
    small.stdout.fnmatch_lines(["*t[[]exhaustive-sample-2of2[]]"])
    pinned = pytester.runpytest(*args)
    assert pinned.ret == 0
    random = pytester.runpytest(*args, "--sandbox-schedules=random:5")
    assert random.ret == 0 and "t[random5-seed0-1of1]" in random.stdout.str()


def test_lint_rehearses_the_expectations_against_the_contract(tmp_path: Path, capsys) -> None:
    (tmp_path / "wrong.yaml").write_text(scenario(
        A + "  - stop: A\n", "expect:\n  sandboxes:\n    s1: {instance: A, phase: Ready}"))
    assert main(["lint", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert ("wrong.yaml:10: expect: under schedule every-step, a driver that follows the "
            "contract gives otherwise: sandbox s1: phase Error (ContainerExited), expected "
            "Ready") in out
    assert main(["lint", "--no-contract", str(tmp_path)]) == 0


def test_the_rehearsal_finds_a_base_count_that_depends_on_the_polls(tmp_path: Path,
                                                                    capsys) -> None:
    # Every pinned schedule sees the gap; the schedule with no poll in the story does not.
    (tmp_path / "gap.yaml").write_text(scenario(
        A + "  - remove: A\n  - run: s1\n    as: B\n",
        "expect:\n  sandboxes:\n    s1: {instance: B, phase: Ready}\n"
        "  warnings: {ContainerInstanceMissing: 1}"))
    assert main(["lint", str(tmp_path)]) == 1
    assert ("gap.yaml:12: expect: under schedule 1-0.0.0 (explored: the base expect must hold in "
            "every schedule), a driver that follows the contract gives otherwise: 0 Warning(s) "
            "ContainerInstanceMissing; the scenario expects 1") in capsys.readouterr().out
