"""The plan of a scenario: which items it becomes, and which schedules each item plays.

* ``pinned`` gives one item per pinned schedule, labelled with its name.
* ``exhaustive`` and ``random:N`` give one item per chunk of :data:`CHUNK` schedules,
  ``exhaustive-2of7``: tens of thousands of schedules stay a few hundred items, which
  pytest-xdist spreads over its workers; the pinned schedules follow (they are the named classic
  cases and run in every mode). An exhaustive item holds a slice of schedule numbers, decoded
  when it plays (``space.py``): planning costs one object per item, never one per schedule.
* above ``Mode.max_schedules`` (``--sandbox-max-schedules``), ``exhaustive`` plays a prioritised
  sample of that many schedules instead (``sample.py``), ``exhaustive-sample-2of7``.
* ``generate:N`` gives each scenario its pinned items; the generated stories are items of their
  own (``exploration/stories.py``, ``plugin/generated.py``).
* a replay (``--sandbox-schedule=SCENARIO@ID``) gives that one schedule only.

Pure: a function of the scenario and the mode, in a fixed order, so every xdist worker plans the
same items. No I/O, no pytest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Sequence

from ..scenario.model import Scenario
from .sample import Sample
from .schedule import DEFAULT_MAX_SCHEDULES, Schedule, decode, pinned, random_sample
from .space import space

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
    #: Above this many schedules, ``exhaustive`` plays a prioritised sample of this many.
    max_schedules: int = DEFAULT_MAX_SCHEDULES


@dataclass(frozen=True)
class PlannedItem:
    label: str
    #: A tuple, or a lazily decoded slice (``space.ScheduleSlice``).
    schedules: Sequence[Schedule]
    #: How the scenario was explored (``exploration`` of the report), on its explored items.
    exploration: dict[str, Any] | None = None


def replay_schedule(scenario: Scenario, wanted: str) -> Schedule:
    """The schedule ``wanted`` names: a pinned schedule's name (with its own expectations) or a
    schedule id (played with the scenario's default expectations, as exploration played it).
    Raises :class:`~.schedule.ScheduleError` for an id that does not fit."""
    named = {p.name: p for p in pinned(scenario) if p.name}
    if wanted in named:
        return named[wanted]
    return decode(wanted, scenario)


def exploration(scenario: Scenario, mode: Mode) -> tuple[str, Any, dict[str, Any]]:
    """How ``exhaustive`` explores ``scenario``: the item label's stem, what numbers the
    schedules (a ``Space`` or a ``Sample``, each with ``slice``) and the report's facts."""
    sp = space(scenario, mode.restarts, "no" if mode.list_orders else "n")
    facts: dict[str, Any] = {"mode": "exhaustive", "space": sp.size, "explored": sp.size,
                             "bound": mode.max_schedules, "merged_gaps": sum(sp.merged)}
    if sp.size <= mode.max_schedules:
        return "exhaustive", sp, facts
    sample = Sample(sp, scenario.id, mode.max_schedules)
    facts.update(mode="sample", explored=mode.max_schedules, **sample.facts())
    return "exhaustive-sample", sample, facts


def plan(scenario: Scenario, mode: Mode) -> Iterator[PlannedItem]:
    """The items of ``scenario`` under ``mode``, in a fixed order."""
    orders = "no" if mode.list_orders else "n"
    if mode.name == "exhaustive":
        label, source, facts = exploration(scenario, mode)
        total = facts["explored"]
        chunks = max(1, -(-total // CHUNK))
        for i in range(chunks):
            part = source.slice(i * CHUNK, min(total, (i + 1) * CHUNK))
            yield PlannedItem(f"{label}-{i + 1}of{chunks}", part, facts)
    elif mode.name == "random":  # generate: the catalog's pinned schedules only
        drawn = random_sample(scenario, mode.random_n, mode.random_seed, mode.restarts, orders)
        label = f"random{mode.random_n}-seed{mode.random_seed}"
        chunks = max(1, -(-len(drawn) // CHUNK))
        for i in range(chunks):
            yield PlannedItem(f"{label}-{i + 1}of{chunks}",
                              tuple(drawn[i * CHUNK:(i + 1) * CHUNK]))
    for sched in pinned(scenario):
        yield PlannedItem(sched.label, (sched,))
