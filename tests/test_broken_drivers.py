"""The suite catches every deliberately broken driver, and passes the reference driver.

Each broken driver of ``tests/broken_drivers.py`` is run through the plugin over the bundled
catalog (``--sandbox-driver=broken_drivers:<name>``, with ``tests/`` on ``sys.path`` for the
inner run). The run must fail, and the failures must name the requirement the driver's bug
breaks. ``docs/broken-drivers.md`` is the full matrix (``benchmarks/broken_matrix.py``).

Inner runs are in-process (``pytester.runpytest``) and load the plugin through its entry point
(``-p sandbox_conformance`` names it, so they also work with plugin autoloading disabled); they
have no ini file of their own, so the project's ``filterwarnings = error`` does not apply there.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from broken_drivers import BROKEN, DRIVERS

TESTS = Path(__file__).resolve().parent
PLUGINS = ("-p", "sandbox_conformance", "-p", "no:hypothesispytest", "-p", "no:cacheprovider")

#: broken driver -> (the schedules that catch it, the requirements its failures must name).
#: Every one is caught by a pinned schedule of the catalog; "exhaustive" would be named here for
#: one that only exploration catches.
CAUGHT: dict[str, tuple[str, tuple[str, ...]]] = {
    "trusts_labels_last_wins": ("pinned", ("OWN-2", "OWN-3")),
    "trusts_labels_first_wins": ("pinned", ("OWN-2", "OWN-3")),
    "deleted_on_missing": ("pinned", ("OWN-10", "OWN-11")),
    "adopts_on_first_sight": ("pinned", ("OWN-4", "OWN-5")),
    "ignores_generation": ("pinned", ("OWN-7",)),
    "no_journal": ("pinned", ("OWN-9",)),
    "torn_journal": ("pinned", ("OWN-16",)),
    "undeduplicated_warnings": ("pinned", ("OWN-17",)),
    "promotes_while_pending": ("pinned", ("OWN-12",)),
    "deletes_only_one": ("pinned", ("OWN-14",)),
}

_REQUIREMENTS_LINE = re.compile(r"^requirements: (.*) broken$", re.M)


def named_requirements(text: str) -> set[str]:
    """Every OWN-n that a failure's ``requirements: ... broken`` line names."""
    return {r.strip() for line in _REQUIREMENTS_LINE.findall(text) for r in line.split(",")}


@pytest.fixture
def catalog(pytester: pytest.Pytester, sandbox_state_dir: Path, monkeypatch: pytest.MonkeyPatch):
    """``catalog(*args)``: run the bundled catalog in the pytester folder."""
    pytester.syspathinsert(TESTS)
    # The same for runs in a subprocess (pytest --runpytest=subprocess).
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [
        str(TESTS), os.environ.get("PYTHONPATH", "")])))

    def run(*args: str) -> pytest.RunResult:
        return pytester.runpytest(*PLUGINS, f"--sandbox-state-dir={sandbox_state_dir}", *args)

    return run


def test_every_broken_driver_has_an_expectation_and_a_factory() -> None:
    assert sorted(CAUGHT) == sorted(BROKEN) == sorted(DRIVERS)
    for name, cls in BROKEN.items():
        doc = cls.__doc__ or ""
        assert all(re.search(rf"\b{r}\b", doc) for r in CAUGHT[name][1]), (name, doc)
        assert DRIVERS[name].__name__ == name


@pytest.mark.parametrize("name", sorted(CAUGHT))
def test_broken_driver_is_caught(catalog, name: str) -> None:
    mode, requirements = CAUGHT[name]
    result = catalog(f"--sandbox-driver=broken_drivers:{name}", f"--sandbox-schedules={mode}",
                     "-rf")
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()[-3000:]
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) > 0 and outcomes.get("errors", 0) == 0, outcomes
    result.stdout.fnmatch_lines([f"driver {name} *: not conformant (*"])
    text = result.stdout.str()
    named = named_requirements(text)
    missing = [r for r in requirements if r not in named]
    assert not missing, (f"{name}: the failures name {sorted(named)}, not {missing}",
                         text[-4000:])


@pytest.mark.slow
def test_reference_driver_passes_every_scenario_under_exhaustive(catalog) -> None:
    result = catalog("--sandbox-driver=reference", "--sandbox-schedules=exhaustive")
    result.assert_outcomes(failed=0, errors=0, passed=result.parseoutcomes().get("passed", 0))
    assert result.parseoutcomes().get("passed", 0) > 0
    assert "skipped" not in result.parseoutcomes()
    result.stdout.fnmatch_lines(["driver reference *: conformant"])


HANDOFF = """
id: handoff
title: Overlapping GPU handoff; the old container is removed after the clone
requirements: [OWN-4, OWN-10]
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
  - remove: A
expect:
  sandboxes:
    s1: {instance: B, phase: Ready}
  containers: [B]
schedules:
  adopted-before-removal:
    after: {B: [observe, observe]}
"""


def test_exploration_catches_what_the_pinned_schedule_misses(catalog,
                                                             pytester: pytest.Pytester) -> None:
    """Its one pinned schedule adopts B before A is removed, so a driver that emits Deleted on a
    missing authority passes it; a schedule with no observation before the removal loses A
    first, and only exhaustive exploration plays it."""
    pytester.makefile(".yaml", **{"scen/handoff": HANDOFF})
    args = ("--sandbox-driver=broken_drivers:deleted_on_missing", "--sandbox-scenarios=scen",
            "--sandbox-no-builtin")
    catalog(*args, "--sandbox-schedules=pinned").assert_outcomes(passed=1)
    result = catalog(*args, "--sandbox-schedules=exhaustive")
    result.assert_outcomes(passed=1, failed=1)
    assert {"OWN-10", "OWN-11"} <= named_requirements(result.stdout.str())
    result.stdout.fnmatch_lines(["*handoff?exhaustive-1of1?*", "schedule:     1-0.0.0.0.0"])
