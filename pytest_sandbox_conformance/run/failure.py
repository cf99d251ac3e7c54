"""What a failed play tells people: :class:`ConformanceFailure`.

A play records every broken check as it goes (a *soft* failure: the story goes on, so a driver
is reported for everything it does wrong, not only for the first thing), and ends with one
:class:`ConformanceFailure` carrying all of them in the order they were first seen, the
timeline, the driver's last snapshots and the command that replays it. The first failure leads
the summary line. Pure: no pytest.
"""

from __future__ import annotations

from typing import Sequence

from ..exploration.schedule import Schedule
from ..scenario.model import Scenario
from .checks import Failure
from .timeline import Timeline

__all__ = ["ConformanceFailure"]


class ConformanceFailure(Exception):
    """A scenario failed under a schedule: the facts a person needs to understand and replay it."""

    def __init__(self, scenario: Scenario, schedule: Schedule, failures: Sequence[Failure],
                 timeline: Timeline, replay: str, driver: str, snapshots: str) -> None:
        if not failures:
            raise ValueError("a ConformanceFailure needs at least one failure")
        self.scenario = scenario
        self.schedule = schedule
        self.failures = list(failures)
        self.timeline = timeline
        self.replay = replay
        self.driver = driver
        self.snapshots = snapshots
        #: Notes added after the play (for example how many schedules of an item failed).
        self.notes: list[str] = []
        super().__init__(self.summary())

    @property
    def first(self) -> Failure:
        return self.failures[0]

    @property
    def requirements(self) -> list[str]:
        """Every requirement the failures name, in the order they were first named."""
        out: list[str] = []
        for f in self.failures:
            for r in f.requirements:
                if r not in out:
                    out.append(r)
        return out

    @property
    def driver_failed(self) -> bool:
        """Whether the driver itself failed (crashed, hung, refused): no requirement judged."""
        return not self.requirements

    def summary(self) -> str:
        """One line: the scenario, the schedule, the first failure, and how many more."""
        first = self.first
        more = len(self.failures) - 1
        tail = f" (+{more} more failure{'s' if more > 1 else ''})" if more else ""
        if self.driver_failed:
            return (f"{self.scenario.id} [{self.schedule.label}] {first.check}: "
                    f"{first.message}{tail}")
        return (f"{self.scenario.id} [{self.schedule.label}] broke "
                f"{', '.join(first.requirements)}: {first.message}{tail}")

    def render(self) -> str:
        s = self.schedule
        lines = [
            f"scenario:     {self.scenario.id} ({self.scenario.path}:{self.scenario.line})",
            f"              {self.scenario.title}",
            f"schedule:     {s.id}" + (f" (pinned: {s.name})" if s.name else ""),
            f"driver:       {self.driver}",
            f"requirements: {', '.join(self.requirements) or 'none judged (the driver failed)'}"
            + (" broken" if self.requirements else ""),
            "",
        ]
        for f in self.failures:
            lines.append(f"FAILED {f}" + (f"  (at {f.at})" if f.at else ""))
        lines += ["", "timeline:", self.timeline.render()]
        lines += self.notes
        lines += ["", "driver's snapshots at the end:", self.snapshots or "  (none)", "",
                  "replay:", f"  {self.replay}"]
        return "\n".join(lines)

    __str__ = render
