"""The rehearsal: a scenario's pinned schedules played against the contract itself, for lint.

``sandbox-conformance lint`` plays every pinned schedule of a scenario that loaded, and a sample
of :data:`SAMPLE` explored ones, against the reference driver (the contract, executable) on the fake engine, in memory, before any driver
under test sees it. An expectation the contract does not meet is the file's mistake, not a
driver's: it is reported as ``file:line: field: message`` on the ``expect`` section that states
it, with what a conforming driver does instead. A contract check the reference driver fails on
the story is a story lint's symbolic run (``scenario/meaning.py``) should have refused: it is
reported too, as a bug to report. Pure apart from a state folder in memory (``/dev/shm``) or
the temporary folder.
"""

from __future__ import annotations


from ..exploration.schedule import Schedule, pinned, random_sample
from ..scenario.errors import ScenarioError
from ..scenario.model import Scenario
from .checks import Failure
from .failure import ConformanceFailure, StoryError
from .runner import play, reference_config

__all__ = ["is_expectation", "rehearse"]

#: What the rehearsal cannot play: the fake engine and the reference driver offer the rest.
UNPLAYABLE_NEEDS = frozenset({"live"})
#: Explored schedules played besides the pinned ones: the one with no poll inside the story,
#: and those ``random:8:0`` draws. The base ``expect`` must hold in every schedule, and a count
#: that depends on where polls fall is the classic mistake.
SAMPLE = 8


def is_expectation(failure: Failure) -> bool:
    """Whether a failure is of the scenario's own expectations (``expect``, ``expect_removed``)
    rather than of the contract's checks."""
    return (failure.check == "final-expectations"
            or (failure.check == "warnings-deduplicated" and "the scenario expects"
                in failure.message)
            or (failure.check == "delete" and failure.message.startswith("delete returned")))


def _where(sc: Scenario, sched: Schedule) -> tuple[int, str]:
    for p in sc.pinned:
        if p.name == sched.name and p.expect is not sc.expect:
            return p.expect.line, f"schedules.{p.name}.expect"
    return sc.expect.line, "expect"


def rehearse(sc: Scenario) -> list[ScenarioError]:
    """Every pinned schedule of ``sc``, and :data:`SAMPLE` explored ones, against the reference
    driver on the fake engine: the problems found, as errors of the file (none when every
    schedule passes). Explored schedules are played with the base ``expect``."""
    if sc.needs & UNPLAYABLE_NEEDS:
        return []
    errors: list[ScenarioError] = []
    schedules = pinned(sc)
    quiet = Schedule(tuple("" for _ in sc.story))  # no poll inside the story at all
    schedules += [quiet] + [s for s in random_sample(sc, SAMPLE, 0) if s != quiet]
    with reference_config("sbx-lint-") as cfg:
        for sched in schedules:
            try:
                play(sc, sched, cfg)
            except ConformanceFailure as exc:
                line, field = _where(sc, sched)
                for f in exc.failures:
                    if is_expectation(f):
                        kind = "" if sched.name else " (explored: the base expect must hold in " \
                                                     "every schedule)"
                        errors.append(ScenarioError(
                            sc.path, line, field, f"under schedule {sched.label}{kind}, a driver "
                            f"that follows the contract gives otherwise: {f.message}"))
                    else:
                        errors.append(ScenarioError(
                            sc.path, sc.line, "story", f"under schedule {sched.label} the "
                            f"reference driver fails the contract's check {f.check} "
                            f"({f.message}): lint's reading of the story missed a problem; "
                            "please report it"))
            except StoryError as exc:  # the engine refused a step the symbolic run accepted
                errors.append(ScenarioError(
                    sc.path, exc.step.line, f"story[{exc.step.index}]", f"under schedule "
                    f"{sched.label} the engine refuses this step ({exc.message}): lint's "
                    "reading of the story missed it; please report it"))
            except Exception as exc:  # a crash of the run on a story lint accepted
                errors.append(ScenarioError(
                    sc.path, sc.line, "story", f"under schedule {sched.label} the run fails "
                    f"({type(exc).__name__}: {exc}): lint's reading of the story missed a "
                    "problem; please report it"))
    return errors
