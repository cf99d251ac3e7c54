"""The plan of a scenario: which items it becomes, and which schedules each item plays.

* ``pinned`` gives one item per pinned schedule, labelled with its name.
* ``exhaustive`` and ``random:N`` give one item per chunk of :data:`CHUNK` schedules,
  ``exhaustive-2of7``: tens of thousands of schedules stay a few hundred items, which
  pytest-xdist spreads over its workers; the pinned schedules follow (they are the named classic
  cases and run in every mode).
* ``generate:N`` gives each scenario its pinned items; the generated stories are items of their
  own (``exploration/stories.py``, ``plugin/generated.py``).
* a replay (``--sandbox-schedule=SCENARIO@ID``) gives that one schedule only.

Pure: a function of the scenario and the mode, in a fixed order, so every xdist worker plans the
same items. No I/O, no pytest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from ..scenario.model import Scenario
from .schedule import (
    Schedule,
    decode,
    enumerate_exhaustive,
    ScheduleError,
    exhaustive_count,
    exploration_problem,
    pinned,
    random_sample,
)

__all__ = ["CHUNK", "Mode", "PlannedItem", "plan"]

#: Schedules per item in exhaustive and random modes.
CHUNK = 200


@dataclass(frozen=True)
class Mode:
    """How a session explores: ``pinned``, ``exhaustive``, ``random`` or ``generate`` (with
    ``random_n`` and ``random_seed``: schedules drawn, or stories generated), and whether the
    driver and engine can restart and order lists."""

    name: str = "pinned"
    random_n: int = 0
    random_seed: int = 0
    restarts: bool = True
    list_orders: bool = True


@dataclass(frozen=True)
class PlannedItem:
    label: str
    schedules: tuple[Schedule, ...]


def replay_schedule(scenario: Scenario, wanted: str) -> Schedule:
    """The schedule ``wanted`` names: a pinned schedule's name (with its own expectations) or a
    schedule id (played with the scenario's default expectations, as exploration played it).
    Raises :class:`~.schedule.ScheduleError` for an id that does not fit."""
    named = {p.name: p for p in pinned(scenario) if p.name}
    if wanted in named:
        return named[wanted]
    return decode(wanted, scenario)


def plan(scenario: Scenario, mode: Mode) -> Iterator[PlannedItem]:
    """The items of ``scenario`` under ``mode``, in a fixed order."""
    orders = "no" if mode.list_orders else "n"
    if mode.name in ("exhaustive", "random"):  # generate: the catalog's pinned schedules
        if mode.name == "exhaustive":
            problem = exploration_problem(scenario, mode.restarts, orders)
            if problem is not None:
                raise ScheduleError(f"scenario {scenario.id}: {problem}")
            total = exhaustive_count(scenario, mode.restarts, orders)
            label = "exhaustive"
            source: Iterator[Schedule] = enumerate_exhaustive(scenario, mode.restarts, orders)
        else:
            drawn = random_sample(scenario, mode.random_n, mode.random_seed, mode.restarts,
                                  orders)
            total = len(drawn)
            label = f"random{mode.random_n}-seed{mode.random_seed}"
            source = iter(drawn)
        chunks = max(1, -(-total // CHUNK))
        for i in range(chunks):
            part = tuple(next(source) for _ in range(min(CHUNK, total - i * CHUNK)))
            yield PlannedItem(f"{label}-{i + 1}of{chunks}", part)
    for sched in pinned(scenario):
        yield PlannedItem(sched.label, (sched,))
