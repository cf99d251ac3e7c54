"""``reaches:``: the outcomes a scenario's exploration must reach at least once.

A scenario's base ``expect`` must hold in every schedule; ``reaches:`` is its "sometimes"
assertion: a decision outcome of the contract (``rollback``, ``adopt``, ``conflict``, ...) that
at least one schedule of its exhaustive exploration must reach, for some sandbox at some
observation. It checks the *scenario*, not a driver: a story whose explored schedules never
adopt can never roll back, however many schedules it has. :func:`unreached` plays the
exhaustive exploration against the reference driver on the fake engine, in memory, and reads the
oracle's outcome of every observation off the timeline; ``tests/test_catalog_reaches.py`` runs
it over the catalog.
"""

from __future__ import annotations

from ..exploration.schedule import enumerate_exhaustive
from ..scenario.model import Scenario
from .runner import play, reference_config

__all__ = ["outcomes_of", "unreached"]


def outcomes_of(timeline) -> set[str]:
    """The contract's outcomes at every observation of a play's timeline."""
    return {m.data["contract"]["outcome"] for m in timeline if m.kind == "report"}


def unreached(sc: Scenario) -> tuple[list[str], int]:
    """The outcomes of ``sc.reaches`` that no schedule of its exhaustive exploration (with
    restarts and both list orders, as on the fake engine with the reference driver) reaches,
    and how many schedules were played (the exploration stops once every outcome is reached)."""
    wanted = set(sc.reaches)
    if not wanted:
        return [], 0
    played = 0
    with reference_config("sbx-reaches-") as cfg:
        for sched in enumerate_exhaustive(sc, True, "no"):
            played += 1
            wanted -= outcomes_of(play(sc, sched, cfg).timeline)
            if not wanted:
                break
    return [o for o in sc.reaches if o in wanted], played
