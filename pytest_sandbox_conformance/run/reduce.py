"""A failing schedule, reduced: the fewest observations and restarts that still fail the same
check (``docs/scenarios.md``, *A failing schedule, reduced*).

A pinned or explored schedule that fails is played again with its gaps emptied, else its tokens
dropped one at a time, greedily, keeping each change under which the driver still fails the
same check with the same leading requirement (``story_check.failure_key``), within a budget of
plays: the schedule a person reads and replays is then as small as the failure allows, as a
generated story is shrunk. A reduced schedule has no pinned name, so it is judged by the
scenario's base ``expect``, which lint rehearses in every schedule of the space: its failure is
the driver's, not the pinned expectation's. A play the engine refuses (a story error) is no
reduction; an engine outage ends the item as it would have. A failure in which the driver
itself failed (check ``driver``: it raised, or hung past the watchdog) is not reduced.
"""

from __future__ import annotations

from ..exploration.schedule import Schedule
from ..scenario.model import Scenario
from .failure import ConformanceFailure, StoryError
from .runner import RunConfig, play
from .story_check import failure_key, failure_matches

__all__ = ["MAX_REDUCE_PLAYS", "reduce_schedule"]

#: The most plays one reduction makes (a schedule of the catalog has a few dozen tokens).
MAX_REDUCE_PLAYS = 40


def reduce_schedule(scenario: Scenario, failure: ConformanceFailure, cfg: RunConfig, *,
                    budget: int = MAX_REDUCE_PLAYS) -> tuple[ConformanceFailure, int]:
    """The smallest failure found from ``failure`` by dropping tokens of its schedule, and how
    many plays it took (``failure`` itself when nothing smaller fails the same way)."""
    if any(f.check == "driver" for f in failure.failures):
        return failure, 0  # the driver raised or hung: no schedule question, and replays cost
    key = failure_key(failure)
    best, plays = failure, 0
    gaps = list(failure.schedule.gaps)
    for i in range(len(gaps)):
        changed = True
        while changed and gaps[i] and plays < budget:
            changed = False
            g = gaps[i]
            for shorter in dict.fromkeys(["", *(g[:j] + g[j + 1:] for j in range(len(g)))]):
                if plays >= budget:
                    break
                trial = Schedule(tuple(gaps[:i] + [shorter] + gaps[i + 1:]))
                plays += 1
                try:
                    play(scenario, trial, cfg)
                except ConformanceFailure as exc:
                    if failure_matches(exc, key):
                        gaps[i], best, changed = shorter, exc, True
                        break
                except StoryError:
                    pass
    return best, plays
