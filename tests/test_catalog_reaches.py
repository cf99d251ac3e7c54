"""``reaches:``, the catalog's "sometimes" assertions: each scenario that declares outcomes its
exploration must reach is explored exhaustively against the reference driver on the fake engine,
and the *scenario* fails when no schedule reaches one of them (``run/reaches.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reference_driver.decision import Outcome

from pytest_sandbox_conformance.exploration.schedule import exhaustive_count
from pytest_sandbox_conformance.plugin.collect import scenario_files
from pytest_sandbox_conformance.run.reaches import unreached
from pytest_sandbox_conformance.scenario import ScenarioErrors, load_file, load_text
from pytest_sandbox_conformance.scenario.schema import OUTCOMES

#: The catalog of this checkout (the installed package's may be another checkout's).
CATALOG = [sc for path in scenario_files(Path(__file__).resolve().parent.parent / "scenarios")
           for sc in load_file(path)]
REACHING = [sc for sc in CATALOG if sc.reaches]


@pytest.mark.parametrize("sc", REACHING, ids=[sc.id for sc in REACHING])
def test_each_scenario_reaches_what_it_declares(sc):
    missing, played = unreached(sc)
    assert not missing, (
        f"{sc.path}:{sc.line}: scenario {sc.id} declares reaches: {list(sc.reaches)}, but none "
        f"of its {played} explored schedules reaches {missing}: the story or its schedule space "
        "cannot get there (max_observations, an observe step, restart: anywhere)")


def test_rollback_scenarios_declare_what_they_are_about():
    # OWN-13: the rollback scenarios' explored schedules really roll back (or refuse to).
    by_id = {sc.id: sc for sc in CATALOG}
    assert "rollback" in by_id["rollback-to-retired"].reaches
    assert "conflict" in by_id["rollback-refused-never-owned"].reaches
    assert len(REACHING) >= 8


OLD_ROLLBACK = """\
id: old-rollback-to-retired
title: rollback-to-retired before it had an observe step
requirements: [OWN-13]
max_observations: 1
reaches: [adopt, rollback]
sandboxes:
  s1: {name: box}
story:
  - {create: s1, as: A}
  - {stop: A}
  - {rename: A, to: backup}
  - {clone: A, as: B}
  - {stop: B}
  - {remove: B}
  - {rename: A, to: canonical}
  - {start: A}
expect: {}
"""


def test_a_story_whose_exploration_never_adopts_fails_its_reaches():
    # One observation per gap cannot record an intent and adopt while B runs: no explored
    # schedule adopts, so none rolls back (what the issue found in rollback-to-retired).
    (sc,) = load_text(OLD_ROLLBACK, "old.yaml")
    missing, played = unreached(sc)
    assert missing == ["adopt", "rollback"]
    assert played == exhaustive_count(sc)


def test_reaches_names_only_the_contracts_outcomes():
    assert set(OUTCOMES) == {v for k, v in vars(Outcome).items() if k.isupper()}
    with pytest.raises(ScenarioErrors) as info:
        load_text(OLD_ROLLBACK.replace("[adopt, rollback]", "[adopt, rolback]"), "f.yaml")
    assert "f.yaml:5: reaches[1]: 'rolback' is not one of" in str(info.value)
