"""A failing pinned or explored schedule, reduced (``run/reduce.py``, ``--sandbox-reduce``):
the fewest observations and restarts that still fail the same check, judged by the base
``expect``; and what the item then shows."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_sandbox_conformance.adapters.reference import factory as reference
from pytest_sandbox_conformance.engines.fake import FakeEngine
from pytest_sandbox_conformance.exploration.schedule import Schedule
from pytest_sandbox_conformance.plugin.collect import catalog_dir, scenario_files
from pytest_sandbox_conformance.run.failure import ConformanceFailure
from pytest_sandbox_conformance.run.reduce import reduce_schedule
from pytest_sandbox_conformance.run.runner import RunConfig, play
from pytest_sandbox_conformance.run.story_check import failure_key
from pytest_sandbox_conformance.scenario.loader import load_paths

import broken_drivers

pytest_plugins = ["pytester"]


def _catalog(scenario_id: str):
    scenarios, errors = load_paths(scenario_files(catalog_dir()))
    assert not errors
    return next(sc for sc in scenarios if sc.id == scenario_id)


def _failure(sc, schedule: Schedule, cfg: RunConfig) -> ConformanceFailure:
    with pytest.raises(ConformanceFailure) as caught:
        play(sc, schedule, cfg)
    return caught.value


def test_a_pinned_failure_is_reduced_to_what_still_fails_the_same_check(tmp_path: Path):
    sc = _catalog("overlap-backup-first")
    pinned = next(p for p in sc.pinned if p.name == "backup-first")
    schedule = Schedule(tuple("".join("o" if t == "oldest" else "n" for t in g if t != "restart")
                              for g in pinned.gaps), name=pinned.name)
    broken = RunConfig(driver=broken_drivers.trusts_labels_last_wins, engine=FakeEngine,
                       state_root=tmp_path)
    failure = _failure(sc, schedule, broken)
    reduced, plays = reduce_schedule(sc, failure, broken)
    assert 0 < plays <= 40
    assert reduced.schedule.observations < schedule.observations and not reduced.schedule.name
    assert failure_key(reduced) == failure_key(failure)
    # The reduced schedule fails the driver again, by its id alone, and not the contract.
    again = _failure(sc, Schedule(reduced.schedule.gaps), broken)
    assert failure_key(again) == failure_key(failure)
    play(sc, reduced.schedule, RunConfig(driver=reference, engine=FakeEngine,
                                         state_root=tmp_path))


def test_a_schedule_nothing_smaller_of_which_fails_is_kept(tmp_path: Path):
    sc = _catalog("overlap-backup-first")
    broken = RunConfig(driver=broken_drivers.trusts_labels_last_wins, engine=FakeEngine,
                       state_root=tmp_path)
    smallest = Schedule(("", "", "", "o", ""))
    failure = _failure(sc, smallest, broken)
    reduced, plays = reduce_schedule(sc, failure, broken)
    assert reduced is failure and plays == 1  # the one token, dropped, fails no more


def test_the_item_shows_the_reduced_schedule_unless_off(pytester: pytest.Pytester,
                                                        monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))
    args = ("--sandbox-driver=broken_drivers:trusts_labels_last_wins", "-p", "no:cacheprovider",
            "-k", "overlap-backup-first")
    on = pytester.runpytest_subprocess(*args)
    on.stdout.fnmatch_lines(["schedule:     1-0.0.0.o.0",
                             "*(reduced in * plays from schedule 1-0.0.0.oo.0 (pinned "
                             "backup-first), 2 observations and 0 restarts, to 1 and 0*",
                             "*--sandbox-schedule=overlap-backup-first@1-0.0.0.o.0*"])
    off = pytester.runpytest_subprocess(*args, "--sandbox-reduce=off")
    off.stdout.fnmatch_lines(["schedule:     1-0.0.0.oo.0 (pinned: backup-first)*"])
    assert "reduced in" not in off.stdout.str()
    bad = pytester.runpytest_subprocess(*args, "--sandbox-reduce=maybe")
    bad.stderr.fnmatch_lines(["*--sandbox-reduce=maybe: use auto or on or off*"])
