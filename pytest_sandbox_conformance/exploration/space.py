"""The schedule space of a scenario, never enumerated: counted by formula, decoded from indices.

A scenario's exhaustive space is a mixed-radix number: a restart point (none, or one gap), then
one option per gap (the observations there, ``""``, ``n``, ``o``, ``nn``, ...). Schedule number
``i`` is decoded digit by digit (:meth:`Space.at`), in the order ``itertools.product`` enumerates
(the restart point outermost, the last gap fastest), so an item of the plan decodes its own slice
of indices (:class:`ScheduleSlice`) and collection costs one object per item, not one per
schedule.

Gaps that the driver cannot tell apart from the one before are **merged**: after a step that
changes nothing the driver lists (a ``run`` into another namespace, and every later step on such
a container: it carries another namespace label, so the driver's namespace-filtered list never
shows it), the engine lists what it listed before the step, so observations there are ones the
gap before can play: that gap takes their room (``max_observations`` more, up to
:data:`MAX_MERGED` in all) and the merged gap holds none (its option is ``""``). Merging needs a
space without restarts: a restart between two observations of one state (``nRn`` across the
two gaps) has no place in a gap whose restart comes first, so with restarts nothing is merged.
The first step's gap is never merged, nor one that would take the gap before past
:data:`MAX_MERGED`.

The restart points: every gap (``restart: anywhere``, the default, with a driver that can
restart), but one right after a step that restarts the driver itself (:func:`restarting_steps`).

*Interesting* events (:meth:`Space.weight`), the preemptions of CHESS's preemption bounding:
each observation in a crowded gap (a sandbox may have two or more containers there: list order
and timing decide what the driver sees), each observation after the first in a gap that is not
crowded (the second look at one container is what lets a driver act on what it saw: a
two-observation adoption), and the restart. A first observation where a sandbox has one
container is free, as CHESS's non-preemptive switches are. ``exploration/sample.py`` explores
the schedules of at most K interesting events first. Pure: no I/O, no pytest.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cached_property
from typing import Callable, Iterator, Sequence

from ..scenario.model import Scenario
from .schedule import Schedule, crowded_gaps

__all__ = ["MAX_MERGED", "ScheduleSlice", "Space", "invisible_steps", "restarting_steps",
           "space"]

#: The most observations a gap holds with the room of the gaps merged into it.
MAX_MERGED = 9


def invisible_steps(scenario: Scenario) -> list[bool]:
    """Per story step: does it change nothing the driver can list? A ``run`` with
    ``namespace:`` (its container carries another namespace label), a ``clone`` of such a
    container (the clone copies its labels) and every external step on one of them."""
    foreign: set[str] = set()
    out = []
    for step in scenario.story:
        hidden = False
        if step.action == "run" and "namespace" in step.args:
            foreign.add(step.binds)
            hidden = True
        elif step.action == "clone" and step.target in foreign:
            foreign.add(step.binds)
            hidden = True
        elif step.action in ("stop", "start", "kill", "remove", "rename", "set_state") \
                and step.target in foreign:
            hidden = True
        out.append(hidden)
    return out


def restarting_steps(scenario: Scenario) -> list[bool]:
    """Per story step: does it restart the driver itself? A ``restart`` step, and a power loss
    between steps (``journal_fault: power-loss`` without ``at:``: the driver restarts from what
    its folder made durable). A restart the schedule adds right after one of those (first in
    its gap) restarts a driver that has seen nothing since it started: the same start, over
    the same journal and the same containers, so exploration puts none there."""
    return [step.action == "restart" or step.action == "journal_fault"
            and step.target == "power-loss" and "at" not in step.args
            for step in scenario.story]


def _options(alphabet: str, most: int) -> tuple[str, ...]:
    return tuple("".join(p) for length in range(most + 1)
                  for p in itertools.product(alphabet, repeat=length))


@dataclass(frozen=True)
class Space:
    """The exhaustive schedule space: per gap its options, and the restart points."""

    options: tuple[tuple[str, ...], ...]
    #: None (no restart) first, then the gaps a restart may open.
    points: tuple[int | None, ...]
    crowded: tuple[bool, ...]
    merged: tuple[bool, ...]

    @cached_property
    def combos(self) -> int:
        """How many ways the observations fall (the product of the gaps' option counts)."""
        total = 1
        for o in self.options:
            total *= len(o)
        return total

    @cached_property
    def size(self) -> int:
        """How many schedules (an int of any size: ``len()`` would overflow past 2**63)."""
        return self.combos * len(self.points)

    @property
    def gaps(self) -> int:
        return len(self.options)

    def at(self, index: int) -> Schedule:
        """Schedule number ``index`` (0 <= index < size) of the enumeration order."""
        if not 0 <= index < self.size:
            raise IndexError(f"schedule {index} of a space of {self.size}")
        point, rest = divmod(index, self.combos)
        gaps = [""] * len(self.options)
        for g in range(len(self.options) - 1, -1, -1):
            rest, digit = divmod(rest, len(self.options[g]))
            gaps[g] = self.options[g][digit]
        return self.with_restart(gaps, self.points[point])

    @staticmethod
    def with_restart(gaps: list[str], point: int | None) -> Schedule:
        if point is not None:
            gaps[point] = "R" + gaps[point]
        return Schedule(tuple(gaps))

    def __iter__(self) -> Iterator[Schedule]:
        """Every schedule in index order, lazily (as :meth:`at` decodes them, only faster)."""
        for point in self.points:
            for combo in itertools.product(*self.options):
                yield self.with_restart(list(combo), point)

    def option_weight(self, gap: int, option: str) -> int:
        """The interesting observations of ``option`` (no ``R``) in ``gap``."""
        return len(option) if self.crowded[gap] else max(0, len(option) - 1)

    def weight(self, schedule: Schedule) -> int:
        """How many interesting events the schedule holds (crowded observations, the restart)."""
        return schedule.restarts + sum(self.option_weight(g, tok.replace("R", ""))
                                       for g, tok in enumerate(schedule.gaps))

    def slice(self, start: int, stop: int) -> "ScheduleSlice":
        return ScheduleSlice(self.at, start, stop, any("o" in o for opts in self.options
                                                         for o in opts))


def space(scenario: Scenario, restarts: bool = True, orders: str = "no",
          merge: bool = True) -> Space:
    """The space of ``scenario``: at most ``max_observations`` per gap (more in a gap that
    others are merged into), both list orders (with ``orders="no"``; ``"n"``: an engine that
    lists newest first only) in crowded gaps, none in the last gap (the settle phase observes
    anyway), and a restart point at every gap when the scenario and the driver allow restarts
    (but right after a step that restarts the driver itself: :func:`restarting_steps`).
    ``merge=False`` keeps every gap (the space before merging, for tests)."""
    crowded = crowded_gaps(scenario)
    n = len(crowded)
    most = scenario.max_observations
    with_restarts = restarts and scenario.restart == "anywhere"
    hidden = invisible_steps(scenario) if merge and not with_restarts else [False] * n
    room = [most] * n
    merged = [False] * n
    visible = 0
    for i in range(1, n):
        if hidden[i] and i < n - 1 and room[visible] + most <= MAX_MERGED:
            merged[i] = True
            room[visible] += most
        elif hidden[i] and i == n - 1:
            merged[i] = True  # the last gap holds nothing anyway
        else:
            visible = i
    options = tuple(("",) if i == n - 1 or merged[i] else
                    _options(orders if crowded[i] else "n", room[i]) for i in range(n))
    points: list[int | None] = [None]
    if with_restarts:
        points.extend(g for g, again in enumerate(restarting_steps(scenario)) if not again)
    return Space(options, tuple(points), tuple(crowded), tuple(merged))


class ScheduleSlice(Sequence):
    """Schedules ``start..stop-1`` of a numbering, decoded when asked for (never stored)."""

    def __init__(self, decode: Callable[[int], Schedule], start: int, stop: int,
                 may_list_oldest_first: bool) -> None:
        self.decode = decode
        self.start = start
        self.stop = stop
        #: False when no schedule of the slice can ask for the oldest-first order.
        self.may_list_oldest_first = may_list_oldest_first

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self.decode(self.start + i)

    def __iter__(self) -> Iterator[Schedule]:
        for i in range(self.start, self.stop):
            yield self.decode(i)

    def __repr__(self) -> str:
        return f"ScheduleSlice({self.start}..{self.stop})"
