"""Running one item: every schedule it holds, and the smallest failure."""

from __future__ import annotations

from ..run.failure import ConformanceFailure
from ..run.runner import RunConfig, play

__all__ = ["run_item"]


def run_item(item, cfg: RunConfig) -> None:
    """Play each of the item's schedules; raise the smallest failing one (fewest observations and
    restarts, then by id), as Hypothesis shows its smallest example."""
    failures: list[ConformanceFailure] = []
    for sched in item.schedules:
        try:
            play(item.scenario, sched, cfg)
        except ConformanceFailure as exc:
            failures.append(exc)
    if failures:
        smallest = min(failures, key=lambda f: (f.schedule.observations + f.schedule.restarts,
                                                f.schedule.id))
        item.user_properties.append(("sandbox_failed_schedule", smallest.schedule.id))
        item.user_properties.append(("sandbox_broken", " ".join(smallest.requirements)))
        if len(item.schedules) > 1:
            smallest.notes.append(f"({len(failures)} of {len(item.schedules)} schedules of "
                                  "this item failed; shown: the smallest)")
        raise smallest
