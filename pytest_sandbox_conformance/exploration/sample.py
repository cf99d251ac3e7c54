"""A prioritised sample of a schedule space too large to explore (``--sandbox-max-schedules``).

Above the bound, ``exhaustive`` plays ``bound`` schedules, numbered ``0..bound-1``; number ``j``
is decoded from ``j`` alone (:meth:`Sample.at`), so every xdist worker and every item agrees on
it without anything being enumerated or stored:

1. **Bounded levels** (CHESS's preemption bounding): first every schedule with no interesting
   event (:meth:`.space.Space.weight`: an observation in a crowded gap, or the restart), then
   every one with exactly 1, then exactly 2 (:data:`MAX_K`): each level whole, as long as it
   fits in the bound. The last whole level is the bound ``K`` reached.
2. **PCT-style runs** for the rest: run ``j`` draws a depth ``d`` (1, 2, 3 in turn), ``d``
   distinct gaps uniformly among the ``k`` gaps where the driver can act (PCT's change
   points: there the driver gets the priority, elsewhere it stays quiet), and in each one
   content uniformly among that gap's non-empty contents (its observations with their list
   orders, with a restart before them where restarts are allowed; at most one restart). A draw
   that a bounded level already played is drawn again (up to :data:`REDRAWS` times). The draw
   is seeded by the scenario id, the seed and ``j``: deterministic everywhere.

The guarantee (``docs/scenarios.md``, "Above the bound"): a bug of depth ``d`` (it shows when
``d`` particular gaps hold particular contents and the others are empty) is found by one run of
depth ``d`` with probability at least ``1 / (C(k, d) * m**d)``, ``m`` the most contents of a
gap; and surely if its witness lies in a bounded level. Pure: no I/O, no pytest.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from .schedule import Schedule
from .space import ScheduleSlice, Space

__all__ = ["MAX_K", "PCT_DEPTHS", "REDRAWS", "Sample"]

#: The largest bounded level (K = 0, 1, 2 in order, each whole).
MAX_K = 2
#: The depths of the PCT-style runs, in turn.
PCT_DEPTHS = (1, 2, 3)
#: How many times a PCT draw that a bounded level already played is drawn again.
REDRAWS = 32


@dataclass(frozen=True)
class Sample:
    """``bound`` schedules of ``space``: the bounded levels that fit, then PCT-style runs."""

    space: Space
    scenario_id: str
    bound: int
    seed: int = 0

    # -- the bounded levels ----------------------------------------------------------------------

    @cached_property
    def _suffix(self) -> list[list[int]]:
        """``_suffix[g][w]``: the combinations of gaps ``g..`` holding ``w`` interesting
        observations (w <= MAX_K)."""
        sp = self.space
        out = [[0] * (MAX_K + 1) for _ in range(sp.gaps + 1)]
        out[sp.gaps][0] = 1
        for g in range(sp.gaps - 1, -1, -1):
            for opt in sp.options[g]:
                w = sp.option_weight(g, opt)
                for total in range(w, MAX_K + 1):
                    out[g][total] += out[g + 1][total - w]
        return out

    def level(self, w: int) -> int:
        """How many schedules hold exactly ``w`` interesting events (w <= MAX_K)."""
        s = self._suffix[0]
        return s[w] + ((len(self.space.points) - 1) * s[w - 1] if w >= 1 else 0)

    @cached_property
    def k(self) -> int | None:
        """The bound K reached: the last level played whole (None: not even level 0 fits)."""
        total, reached = 0, None
        for w in range(MAX_K + 1):
            total += self.level(w)
            if total > self.bound:
                break
            reached = w
        return reached

    @cached_property
    def bounded(self) -> int:
        """How many schedules the bounded levels hold."""
        return 0 if self.k is None else sum(self.level(w) for w in range(self.k + 1))

    def _in_level(self, w: int, j: int) -> Schedule:
        sp, s = self.space, self._suffix
        point, target = None, w
        if j >= s[0][w]:
            j -= s[0][w]
            point = sp.points[1 + j // s[0][w - 1]]
            j, target = j % s[0][w - 1], w - 1
        gaps = [""] * sp.gaps
        for g in range(sp.gaps):
            for opt in sp.options[g]:
                ow = sp.option_weight(g, opt)
                if ow > target:
                    continue
                block = s[g + 1][target - ow]
                if j < block:
                    gaps[g] = opt
                    target -= ow
                    break
                j -= block
        return sp.with_restart(gaps, point)

    # -- the PCT-style runs ----------------------------------------------------------------------

    @cached_property
    def _contents(self) -> dict[int, tuple[tuple[str, ...], tuple[str, ...]]]:
        """Per gap where the driver can act: (its non-empty contents, those without restart)."""
        sp = self.space
        restart_at = {p for p in sp.points if p is not None}
        out = {}
        for g in range(sp.gaps):
            plain = tuple(o for o in sp.options[g] if o)
            every = plain + (tuple("R" + o for o in sp.options[g]) if g in restart_at else ())
            if every:
                out[g] = (every, plain)
        return out

    @property
    def depths(self) -> tuple[int, ...]:
        return tuple(d for d in PCT_DEPTHS if d <= len(self._contents)) or (1,)

    @property
    def runs(self) -> int:
        return self.bound - self.bounded

    def _draw(self, j: int) -> Schedule:
        digest = hashlib.blake2b(f"{self.seed}:{self.scenario_id}:{j}".encode(),
                                 digest_size=8).digest()
        rng = random.Random(int.from_bytes(digest, "big"))
        depths = self.depths
        d = depths[(j - self.bounded) % len(depths)]
        where = sorted(self._contents)
        sched = Schedule(tuple("" for _ in range(self.space.gaps)))
        for _ in range(REDRAWS + 1):
            gaps = [""] * self.space.gaps
            restarted = False
            for g in sorted(rng.sample(where, min(d, len(where)))):
                every, plain = self._contents[g]
                pool = plain if restarted else every
                if pool:
                    gaps[g] = rng.choice(pool)
                    restarted = restarted or gaps[g].startswith("R")
            sched = Schedule(tuple(gaps))
            if self.k is None or self.space.weight(sched) > self.k:
                break
        return sched

    # -- the sample ------------------------------------------------------------------------------

    def at(self, j: int) -> Schedule:
        """Schedule number ``j`` of the sample (0 <= j < bound)."""
        if not 0 <= j < self.bound:
            raise IndexError(f"schedule {j} of a sample of {self.bound}")
        if j < self.bounded:
            for w in range(MAX_K + 1):
                if j < self.level(w):
                    return self._in_level(w, j)
                j -= self.level(w)
        return self._draw(j)

    def slice(self, start: int, stop: int) -> ScheduleSlice:
        return ScheduleSlice(self.at, start, stop, any("o" in o for opts in self.space.options
                                                         for o in opts))

    def guarantee(self, d: int) -> float:
        """A lower bound on the chance that one PCT-style run of depth ``d`` finds a given bug
        of depth ``d``: ``1 / (C(k, d) * m**d)``."""
        k = len(self._contents)
        m = max((len(every) for every, _ in self._contents.values()), default=1)
        return 1.0 / (math.comb(k, d) * m ** d) if d <= k else 0.0

    def facts(self) -> dict[str, Any]:
        """What the report says of the sample (``docs/report.schema.json``, ``exploration``)."""
        k = len(self._contents)
        depths: dict[str, Any] = {}
        for i, d in enumerate(self.depths):
            runs = len(range(i, self.runs, len(self.depths)))
            p = self.guarantee(d)
            found = 1.0 if p >= 1 else -math.expm1(runs * math.log1p(-p)) if runs else 0.0
            depths[str(d)] = {"runs": runs, "per_run": p, "at_least_once": found}
        return {"k": self.k, "max_k": MAX_K, "bounded": self.bounded,
                "levels": [self.level(w) for w in range(MAX_K + 1)],
                "pct": {"runs": self.runs, "seed": self.seed, "gaps": k,
                        "contents": max((len(e) for e, _ in self._contents.values()),
                                        default=0),
                        "depths": depths}}
