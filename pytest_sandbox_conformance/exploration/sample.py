"""A prioritised sample of a schedule space too large to explore (``--sandbox-max-schedules``).

Above the bound, ``exhaustive`` plays ``bound`` schedules, numbered ``0..bound-1``; number ``j``
is decoded from ``j`` alone (:meth:`Sample.at`), so every xdist worker and every item agrees on
it without anything being enumerated or stored:

1. **Bounded levels** (CHESS's preemption bounding): first every schedule with no interesting
   event (:meth:`.space.Space.weight`: an observation in a crowded gap, a second observation in
   any gap, the restart), then every one with exactly 1, then exactly 2, ...: each level
   whole, as long as it fits in the bound. The last whole level is the bound ``K`` reached
   (K = 2 plays every bug that needs two interesting events; see ``docs/scenarios.md``).
2. **PCT-style runs** for the rest, in three segments of depth ``d`` = K+1, K+2, K+3 (each an
   equal share of what the ones before left). A run of depth ``d`` draws ``d`` events, each a
   gap uniformly among the ``k`` gaps where the driver can act (PCT's change points: there the
   driver gets the priority, elsewhere it stays quiet) and a kind uniformly among that gap's
   kinds (``n``, ``o`` where the list order matters, ``R`` where a restart may fall; after a
   restart, only observations); a gap plays its events in the order drawn (the restart first,
   at most ``max_observations`` observations). A draw that a bounded level already played is
   drawn again (up to :data:`REDRAWS` times). The draw is seeded by the scenario id, the seed
   and ``j``: deterministic everywhere. A depth whose distinct draws are few (listed in at
   most :data:`WHOLE_DRAWS` draws, and no more than its share of the runs) is played
   **whole** instead, each schedule once (:attr:`Sample.segments`).

The guarantee (``docs/scenarios.md``, "Above the bound"): a bug of depth ``d`` (it shows in a
schedule of ``d`` particular events, nothing else in the story) is found by one run of depth
``d`` with probability at least ``1 / (k * c)**d``, ``c`` the most kinds of a gap (3 at most);
surely if its schedule lies in a bounded level or its depth is played whole. Pure: no I/O, no
pytest.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import random
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from .schedule import Schedule
from .space import ScheduleSlice, Space

__all__ = ["PCT_DEPTHS", "REDRAWS", "WHOLE_DRAWS", "Sample"]
#: The depths of the PCT-style runs, in turn, past the bound K reached: K+1, K+2, K+3.
PCT_DEPTHS = (1, 2, 3)
#: How many times a PCT draw that a bounded level already played is drawn again.
REDRAWS = 32
#: A depth whose draws can be listed in at most this many is listed, and played whole when its
#: distinct schedules fit in its share of the runs.
WHOLE_DRAWS = 20_000


@dataclass(frozen=True)
class Sample:
    """``bound`` schedules of ``space``: the bounded levels that fit, then PCT-style runs."""

    space: Space
    scenario_id: str
    bound: int
    seed: int = 0

    # -- the bounded levels ----------------------------------------------------------------------

    @cached_property
    def _top(self) -> int:
        """The most interesting events a schedule can hold."""
        sp = self.space
        most = sum(max(sp.option_weight(g, o) for o in sp.options[g]) for g in range(sp.gaps))
        return most + (1 if len(sp.points) > 1 else 0)

    @cached_property
    def _suffix(self) -> list[list[int]]:
        """``_suffix[g][w]``: the combinations of gaps ``g..`` holding ``w`` interesting
        observations (a polynomial product, one gap at a time)."""
        sp, top = self.space, self._top
        out = [[0] * (top + 1) for _ in range(sp.gaps + 1)]
        out[sp.gaps][0] = 1
        for g in range(sp.gaps - 1, -1, -1):
            for opt in sp.options[g]:
                w = sp.option_weight(g, opt)
                for total in range(w, top + 1):
                    out[g][total] += out[g + 1][total - w]
        return out

    def level(self, w: int) -> int:
        """How many schedules hold exactly ``w`` interesting events."""
        if not 0 <= w <= self._top:
            return 0
        s = self._suffix[0]
        return s[w] + ((len(self.space.points) - 1) * s[w - 1] if w >= 1 else 0)

    @cached_property
    def k(self) -> int | None:
        """The bound K reached: the last level played whole (None: not even level 0 fits)."""
        total, reached = 0, None
        for w in range(self._top + 1):
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
    def _kinds(self) -> dict[int, tuple[str, ...]]:
        """Per gap where the driver can act, the kinds of event it offers (``n``, ``o``,
        ``R``)."""
        sp = self.space
        restart_at = {p for p in sp.points if p is not None}
        out = {}
        for g in range(sp.gaps):
            kinds = tuple(k for k in "no" if any(k in o for o in sp.options[g]))
            kinds += ("R",) if g in restart_at else ()
            if kinds:
                out[g] = kinds
        return out

    @property
    def depths(self) -> tuple[int, ...]:
        """The depths of the runs, in turn: the :data:`PCT_DEPTHS` past the bound reached (a
        run of ``d`` events holds at most ``d`` interesting ones: at most K, it would replay a
        bounded level)."""
        past = 0 if self.k is None else self.k
        return tuple(d + past for d in PCT_DEPTHS)

    @property
    def runs(self) -> int:
        return self.bound - self.bounded

    def _build(self, events) -> Schedule:
        """The schedule of a sequence of events ``(gap, kind)``: a gap plays its observations in
        the order drawn, after the restart (the first drawn; at most one), at most
        ``max_observations`` of them."""
        seen = [""] * self.space.gaps
        restart: int | None = None
        for g, kind in events:
            if kind == "R":
                restart = g if restart is None else restart
            elif len(seen[g]) < self._room[g]:
                seen[g] += kind
        return self.space.with_restart(seen, restart)

    @cached_property
    def _room(self) -> tuple[int, ...]:
        """Per gap, the most observations it holds."""
        return tuple(max(len(o) for o in opts) for opts in self.space.options)

    def _past_k(self, sched: Schedule) -> bool:
        return self.k is None or self.space.weight(sched) > self.k

    def _draw(self, j: int, d: int) -> Schedule:
        digest = hashlib.blake2b(f"{self.seed}:{self.scenario_id}:{j}".encode(),
                                 digest_size=8).digest()
        rng = random.Random(int.from_bytes(digest, "big"))
        where = sorted(self._kinds)
        plain = {g: tuple(k for k in kinds if k != "R") for g, kinds in self._kinds.items()}
        where_plain = [g for g in where if plain[g]] or where
        sched = Schedule(tuple("" for _ in range(self.space.gaps)))
        for _ in range(REDRAWS + 1):
            events: list[tuple[int, str]] = []
            restarted = False
            for _event in range(d):
                if restarted:  # at most one restart: the next events observe
                    g = rng.choice(where_plain)
                    kind = rng.choice(plain[g] or self._kinds[g])
                else:
                    g = rng.choice(where)
                    kind = rng.choice(self._kinds[g])
                restarted = restarted or kind == "R"
                events.append((g, kind))
            sched = self._build(events)
            if self._past_k(sched):
                break
        return sched

    def _whole(self, d: int, share: int) -> tuple[Schedule, ...] | None:
        """Every distinct schedule a run of depth ``d`` can draw (past K), in a fixed order, if
        listing them takes at most :data:`WHOLE_DRAWS` draws and they are no more than
        ``share``; else None."""
        events = [(g, kind) for g in sorted(self._kinds) for kind in self._kinds[g]]
        if not events or len(events) ** d > WHOLE_DRAWS:
            return None
        found: dict[str, Schedule] = {}
        for seq in itertools.product(events, repeat=d):
            sched = self._build(seq)
            if self._past_k(sched):
                found.setdefault(sched.id, sched)
                if len(found) > share:
                    return None
        return tuple(found.values())

    @cached_property
    def segments(self) -> tuple[tuple[int, tuple[Schedule, ...] | None, int], ...]:
        """The PCT phase, in order: ``(depth, its schedules played whole or None for random
        runs, runs)``. Each depth gets an equal share of what the depths before it left; a depth
        whose distinct draws fit in its share is played whole, each schedule once (a run
        drawn at random would mostly repeat them), and leaves the rest to the deeper ones."""
        remaining, out = self.runs, []
        for i, d in enumerate(self.depths):
            share = remaining // (len(self.depths) - i)
            whole = self._whole(d, share) if share else None
            runs = len(whole) if whole is not None else share
            out.append((d, whole, runs))
            remaining -= runs
        if remaining:  # the deepest depth too was played whole
            out.append((self.depths[-1] + 1, None, remaining))
        return tuple(out)

    def guarantee(self, d: int) -> float:
        """A lower bound on the chance that one PCT-style run of depth ``d`` finds a given bug
        of depth ``d``: ``1 / (k * c)**d``."""
        k = len(self._kinds)
        c = max((len(kinds) for kinds in self._kinds.values()), default=0)
        return 1.0 / (k * c) ** d if k else 0.0

    # -- the sample ------------------------------------------------------------------------------

    def at(self, j: int) -> Schedule:
        """Schedule number ``j`` of the sample (0 <= j < bound)."""
        if not 0 <= j < self.bound:
            raise IndexError(f"schedule {j} of a sample of {self.bound}")
        if j < self.bounded:
            for w in range(self._top + 1):
                if j < self.level(w):
                    return self._in_level(w, j)
                j -= self.level(w)
        offset = j - self.bounded
        for d, whole, runs in self.segments:
            if offset < runs:
                return whole[offset] if whole is not None else self._draw(j, d)
            offset -= runs
        raise AssertionError("the segments cover the runs")  # pragma: no cover

    def slice(self, start: int, stop: int) -> ScheduleSlice:
        return ScheduleSlice(self.at, start, stop, any("o" in o for opts in self.space.options
                                                         for o in opts))

    def facts(self) -> dict[str, Any]:
        """What the report says of the sample (``docs/report.schema.json``, ``exploration``)."""
        depths: dict[str, Any] = {}
        for d, whole, runs in self.segments:
            p = self.guarantee(d)
            found = 1.0 if whole is not None or p >= 1 else (
                -math.expm1(runs * math.log1p(-p)) if runs else 0.0)
            depths[str(d)] = {"runs": runs, "whole": whole is not None, "per_run": p,
                              "at_least_once": found}
        shown = (self.k + 2) if self.k is not None else 1  # the whole levels and the next
        return {"k": self.k, "bounded": self.bounded,
                "levels": [self.level(w) for w in range(min(shown, self._top + 1))],
                "pct": {"runs": self.runs, "seed": self.seed, "gaps": len(self._kinds),
                        "kinds": max((len(k) for k in self._kinds.values()), default=0),
                        "depths": depths}}
