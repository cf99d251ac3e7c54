"""Schedules: where a driver's observations, list orders and restarts fall in a story.

A story of ``n`` steps has ``n`` *gaps*, one after each step. A :class:`Schedule` says, per gap,
what happens there, as a string of tokens:

* ``n``: one observation with the engine's list newest first (Docker's default order);
* ``o``: one observation with the list oldest first;
* ``R``: the driver restarts. Exhaustive exploration puts it first in a gap; a pinned schedule
  may put it anywhere (``[observe, restart, observe]`` is ``nRn``).

After the last gap the runner lets the driver settle with quiet observations (see ``runner``).

A schedule's printable id is ``1-`` (the format version) followed by the gaps joined by ``.``,
an empty gap written ``0``: ``1-n.0.o.Rnn.0``. :func:`decode` checks the version and every gap
and refuses ids of another version, as Hypothesis refuses a blob from another version. Pure: no
I/O, no pytest.
"""

from __future__ import annotations

import itertools
import random
import re
import zlib
from dataclasses import dataclass, replace
from typing import Iterator

from ..scenario.model import Scenario

__all__ = [
    "FORMAT_VERSION",
    "MAX_EXHAUSTIVE",
    "Schedule",
    "ScheduleError",
    "decode",
    "enumerate_exhaustive",
    "exhaustive_count",
    "exploration_problem",
    "pinned",
    "random_sample",
]

FORMAT_VERSION = "1"
_GAP_RE = re.compile(r"^[Rno]*$")
_ORDER = {"n": "newest", "o": "oldest"}


class ScheduleError(ValueError):
    """A schedule id that cannot be replayed (bad syntax, other version, wrong length)."""


@dataclass(frozen=True)
class Schedule:
    """One interleaving. ``gaps[i]`` holds the tokens played after story step ``i``."""

    gaps: tuple[str, ...]
    #: The pinned schedule's name, if it came from the scenario file.
    name: str = ""

    @property
    def id(self) -> str:
        return FORMAT_VERSION + "-" + ".".join(g or "0" for g in self.gaps)

    @property
    def label(self) -> str:
        """What pytest shows in the item id: the pinned name, else the id."""
        return self.name or self.id

    @property
    def observations(self) -> int:
        return sum(len(g.replace("R", "")) for g in self.gaps)

    @property
    def lists_oldest_first(self) -> bool:
        """Whether an observation asks for the oldest-first list order (the fake engine only)."""
        return any("o" in g for g in self.gaps)

    @property
    def restarts(self) -> int:
        return sum(g.count("R") for g in self.gaps)

    def actions_after(self, step: int) -> list[tuple[str, str | None]]:
        """The gap after ``step`` as ``[("restart", None) | ("observe", "newest"|"oldest")]``."""
        out: list[tuple[str, str | None]] = []
        for tok in self.gaps[step]:
            out.append(("restart", None) if tok == "R" else ("observe", _ORDER[tok]))
        return out

    def __str__(self) -> str:
        return self.id


def decode(schedule_id: str, scenario: Scenario | None = None) -> Schedule:
    """Parse a printable id; with ``scenario``, also check it fits that scenario's story."""
    version, sep, body = schedule_id.strip().partition("-")
    if not sep or not body:
        raise ScheduleError(f"schedule id {schedule_id!r} is not of the form "
                            f"'{FORMAT_VERSION}-<gap>.<gap>...'")
    if version != FORMAT_VERSION:
        raise ScheduleError(f"schedule id {schedule_id!r} is of format version {version!r}; this "
                            f"version of the suite replays version {FORMAT_VERSION!r} only")
    gaps = tuple("" if g == "0" else g for g in body.split("."))
    for g in gaps:
        if not _GAP_RE.match(g):
            raise ScheduleError(f"schedule id {schedule_id!r}: gap {g!r} is not '0' or a "
                                "string of 'n', 'o' and 'R'")
    if scenario is not None and len(gaps) != scenario.gaps:
        raise ScheduleError(f"schedule id {schedule_id!r} has {len(gaps)} gaps but scenario "
                            f"{scenario.id!r} has {scenario.gaps} steps")
    return Schedule(gaps)


def pinned(scenario: Scenario) -> list[Schedule]:
    """The scenario's named schedules, or one observation after every step when it names none."""
    if not scenario.pinned:
        return [Schedule(tuple("n" for _ in scenario.story), name="every-step")]
    out = []
    for p in scenario.pinned:
        gaps = []
        for tokens in p.gaps:
            gaps.append("".join("R" if t == "restart" else t[0] for t in tokens))
        out.append(Schedule(tuple(gaps), name=p.name))
    return out


# -- exploration ---------------------------------------------------------------------------------


def crowded_gaps(scenario: Scenario) -> list[bool]:
    """Per gap: may some sandbox have two or more containers there (so list order matters)?

    Worked out from the story alone (creates, clones and runs add a container, removes and
    deletes take them away), without touching an engine.
    """
    owner: dict[str, str] = {}
    count: dict[str, int] = {}
    out = []
    for step in scenario.story:
        if step.action == "create":
            owner[step.binds or f"#{step.index}"] = step.target
            count[step.target] = count.get(step.target, 0) + 1
        elif step.action == "clone":
            sb = owner.get(step.target)
            if sb is not None:
                owner[step.binds] = sb
                count[sb] = count.get(sb, 0) + 1
        elif step.action == "run" and "namespace" not in step.args:
            owner[step.binds] = step.target
            count[step.target] = count.get(step.target, 0) + 1
        elif step.action == "remove":
            sb = owner.pop(step.target, None)
            if sb is not None:
                count[sb] -= 1
        elif step.action == "delete":
            count[step.target] = 0
            for name in [n for n, sb in owner.items() if sb == step.target]:
                del owner[name]
        out.append(any(c >= 2 for c in count.values()))
    return out


def _gap_options(crowded: bool, k: int, last: bool, orders: str) -> list[str]:
    if last:
        return [""]  # the settle phase observes after the last step anyway
    alphabet = orders if crowded else "n"
    return ["".join(p) for length in range(k + 1) for p in itertools.product(alphabet, repeat=length)]


def _space(scenario: Scenario, restarts: bool,
           orders: str = "no") -> tuple[list[list[str]], list[int | None]]:
    crowded = crowded_gaps(scenario)
    n = len(crowded)
    options = [_gap_options(crowded[i], scenario.max_observations, i == n - 1, orders)
               for i in range(n)]
    restart_points: list[int | None] = [None]
    if restarts and scenario.restart == "anywhere":
        restart_points.extend(range(n))
    return options, restart_points


def exhaustive_count(scenario: Scenario, restarts: bool = True, orders: str = "no") -> int:
    options, points = _space(scenario, restarts, orders)
    total = 1
    for o in options:
        total *= len(o)
    return total * len(points)


#: The most schedules one scenario's exhaustive exploration (and ``random:N``'s N) may hold: 500
#: items of 200 schedules, minutes of run on the fake engine. Above it collection refuses the
#: scenario in exhaustive mode and ``sandbox-conformance lint`` reports it, with the count.
MAX_EXHAUSTIVE = 100_000


def exploration_problem(scenario: Scenario, restarts: bool = True,
                        orders: str = "no") -> str | None:
    """Why ``scenario`` cannot be explored exhaustively (its count is over
    :data:`MAX_EXHAUSTIVE`) and what to change, or None. From the count formula alone: nothing
    is enumerated."""
    total = exhaustive_count(scenario, restarts, orders)
    if total <= MAX_EXHAUSTIVE:
        return None
    options = []
    if scenario.max_observations > 1:
        n = exhaustive_count(replace(scenario, max_observations=1), restarts, orders)
        options.append(f"max_observations: 1 gives {n}")
    if restarts and scenario.restart == "anywhere":
        n = exhaustive_count(replace(scenario, restart="never"), restarts, orders)
        options.append(f"restart: never gives {n}")
        if scenario.max_observations > 1:
            n = exhaustive_count(replace(scenario, restart="never", max_observations=1),
                                 restarts, orders)
            options.append(f"both give {n}")
    options.append("a shorter story multiplies less (each step multiplies the count)")
    return (f"exhaustive exploration would play {total} schedules, more than the "
            f"{MAX_EXHAUSTIVE} the suite explores for one scenario ({len(scenario.story)} steps, "
            f"max_observations: {scenario.max_observations}, restart: {scenario.restart}); "
            + "; ".join(options))


def enumerate_exhaustive(scenario: Scenario, restarts: bool = True,
                         orders: str = "no") -> Iterator[Schedule]:
    """Every schedule, in a fixed order: at most ``max_observations`` per gap, both list orders
    where a sandbox has two or more containers, and (when the scenario allows restarts and
    ``restarts`` is true) a restart at every gap. Schedules that differ only in the list order
    of an observation that cannot see two containers of a sandbox are one schedule. ``orders``
    is ``"no"`` (both orders) or ``"n"`` (an engine that cannot be told an order lists newest
    first, as Docker does)."""
    options, points = _space(scenario, restarts, orders)
    for point in points:
        for combo in itertools.product(*options):
            if point is None:
                yield Schedule(tuple(combo))
            else:
                gaps = list(combo)
                gaps[point] = "R" + gaps[point]
                yield Schedule(tuple(gaps))


def random_sample(scenario: Scenario, n: int, seed: int, restarts: bool = True,
                  orders: str = "no") -> list[Schedule]:
    """``n`` distinct schedules drawn reproducibly from the exhaustive space (all of it if
    smaller). The draw depends only on ``seed`` and the scenario id."""
    total = exhaustive_count(scenario, restarts, orders)
    if total <= n:
        return list(enumerate_exhaustive(scenario, restarts, orders))
    rng = random.Random(seed * 1_000_003 + zlib.crc32(scenario.id.encode()))
    options, points = _space(scenario, restarts, orders)
    seen: dict[str, Schedule] = {}
    while len(seen) < n:
        gaps = [rng.choice(o) for o in options]
        point = rng.choice(points)
        if point is not None:
            gaps[point] = "R" + gaps[point]
        s = Schedule(tuple(gaps))
        seen.setdefault(s.id, s)
    return sorted(seen.values(), key=lambda s: s.id)

