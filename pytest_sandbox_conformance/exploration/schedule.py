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

import random
import re
import zlib
from dataclasses import dataclass
from typing import Iterator

from ..scenario.model import Scenario

__all__ = [
    "FORMAT_VERSION",
    "MAX_EXHAUSTIVE",
    "Schedule",
    "ScheduleError",
    "decode",
    "enumerate_exhaustive",
    "DEFAULT_MAX_SCHEDULES",
    "exhaustive_count",
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


def exhaustive_count(scenario: Scenario, restarts: bool = True, orders: str = "no") -> int:
    """How many schedules exhaustive exploration holds, by formula (``space.Space.size``)."""
    from .space import space

    return space(scenario, restarts, orders).size


#: The most schedules one scenario's exploration may play: ``random:N``'s N and the largest
#: ``--sandbox-max-schedules``. (Above ``--sandbox-max-schedules``, exhaustive exploration plays
#: a prioritised sample, ``exploration/sample.py``; nothing is refused.)
MAX_EXHAUSTIVE = 100_000
#: The default ``--sandbox-max-schedules``: a scenario whose space is larger is sampled. Sized so
#: that one scenario stays under a minute on the fake engine (docs/performance.md).
DEFAULT_MAX_SCHEDULES = 6_000


def enumerate_exhaustive(scenario: Scenario, restarts: bool = True,
                         orders: str = "no") -> Iterator[Schedule]:
    """Every schedule, lazily, in a fixed order (``space.Space.at`` decodes number ``i`` of it):
    at most ``max_observations`` per gap, both list orders where a sandbox has two or more
    containers, and (when the scenario allows restarts and ``restarts`` is true) a restart at
    every gap. Schedules that differ only in the list order of an observation that cannot see
    two containers of a sandbox are one schedule; so are those that differ only on which side of
    a step the driver cannot see they fall (a merged gap, ``space.py``). ``orders`` is ``"no"``
    (both orders) or ``"n"`` (an engine that cannot be told an order lists newest first, as
    Docker does)."""
    from .space import space

    return iter(space(scenario, restarts, orders))


def random_sample(scenario: Scenario, n: int, seed: int, restarts: bool = True,
                  orders: str = "no") -> list[Schedule]:
    """``n`` distinct schedules drawn reproducibly from the exhaustive space (all of it if
    smaller). The draw depends only on ``seed`` and the scenario id."""
    total = exhaustive_count(scenario, restarts, orders)
    if total <= n:
        return list(enumerate_exhaustive(scenario, restarts, orders))
    from .space import space

    sp = space(scenario, restarts, orders)
    options, points = sp.options, sp.points
    rng = random.Random(seed * 1_000_003 + zlib.crc32(scenario.id.encode()))
    seen: dict[str, Schedule] = {}
    while len(seen) < n:
        gaps = [rng.choice(o) for o in options]
        s = sp.with_restart(gaps, rng.choice(points))
        seen.setdefault(s.id, s)
    return sorted(seen.values(), key=lambda s: s.id)

