"""What a failed play tells people: :class:`ConformanceFailure`, :class:`StoryError`, and
:class:`EngineOutage` for a play the suite's own engine cut short.

A play records every broken check as it goes (a *soft* failure: the story goes on, so a driver
is reported for everything it does wrong, not only for the first thing), and ends with one
:class:`ConformanceFailure` carrying all of them in the order they were first seen, the
timeline, the driver's last snapshots and the command that replays it. The first failure leads
the summary line.

A story step the engine refuses (a clone that cannot start, a rename onto a taken or invalid
name, a step on a container that is gone) is no failure of the driver: the story cannot be
played. The play then ends with a :class:`StoryError` (``kind = "story"``), an *error* of the
scenario or of its environment, with the step, the engine's message and the timeline so far.

An :class:`EngineOutage` (``kind = "engine"``) is no failure of the driver either: the engine the
suite plays the story on (and an in-process driver uses) could not be reached or stopped
answering. It carries the timeline so far, but prints as one short block: what the suite was
doing, the engine, the error. Pure: no pytest.
"""

from __future__ import annotations

import time
from typing import Sequence

from ..exploration.schedule import Schedule
from ..scenario.model import Scenario, Step
from .checks import Failure
from .timeline import Timeline

__all__ = ["ENVIRONMENT_KINDS", "ConformanceFailure", "EngineOutage", "StoryError"]

#: The ``kind`` of an exception that is the suite's environment failing, never the driver: the
#: item is an error (``story``: the story could not be played; ``engine``: the engine is gone).
ENVIRONMENT_KINDS = ("story", "engine")


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


class StoryError(Exception):
    """A story step the engine refused: the scenario could not be played under this schedule.

    Not a :class:`ConformanceFailure` (reports and verdicts count it as an *error*, not a
    failure of the driver), and never a subclass of one. ``kind`` is ``"story"``; ``step`` the
    refused step, ``message`` and ``status`` the engine's answer, ``container`` what the step
    acted on (a binding and what is known of it), ``failures`` the checks that had failed before
    (soft failures; they are real, but the play ended before the story did).
    """

    kind = "story"

    def __init__(self, scenario: Scenario, schedule: Schedule, step: Step, message: str,
                 status: int | None, timeline: Timeline, replay: str, driver: str,
                 failures: Sequence[Failure] = (), context: str = "") -> None:
        self.scenario = scenario
        self.schedule = schedule
        self.step = step
        self.message = message
        self.status = status
        self.timeline = timeline
        self.replay = replay
        self.driver = driver
        self.failures = list(failures)
        #: What the runner knows about why (for example "A was removed by step 3").
        self.context = context
        #: Notes added after the play, as on a ConformanceFailure.
        self.notes: list[str] = []
        super().__init__(self.summary())

    def summary(self) -> str:
        """One line: the scenario, the schedule, the step and the engine's answer."""
        status = f" ({self.status})" if self.status else ""
        return (f"{self.scenario.id} [{self.schedule.label}] step {self.step.index + 1} "
                f"({self.step.describe()}) was refused by the engine{status}: {self.message}")

    def render(self) -> str:
        s = self.schedule
        lines = [
            f"scenario:     {self.scenario.id} ({self.scenario.path}:{self.scenario.line})",
            f"              {self.scenario.title}",
            f"schedule:     {s.id}" + (f" (pinned: {s.name})" if s.name else ""),
            f"driver:       {self.driver}",
            "error:        the story could not be played (an error, not a failure of the "
            "driver; no requirement judged)",
            "",
            f"step {self.step.index + 1} ({self.step.describe()}, "
            f"{self.scenario.path}:{self.step.line}) was refused by the engine"
            + (f" ({self.status})" if self.status else "") + ":",
            f"  {self.message}",
        ]
        if self.context:
            lines.append(f"  {self.context}")
        if self.failures:
            lines += ["", "failed before the step was refused:"]
            lines += [f"FAILED {f}" + (f"  (at {f.at})" if f.at else "") for f in self.failures]
        lines += ["", "timeline:", self.timeline.render()]
        lines += self.notes
        lines += ["", "replay:", f"  {self.replay}"]
        return "\n".join(lines)

    __str__ = render


class EngineOutage(Exception):
    """The suite's engine could not be reached or did not answer during a play (or before it).

    ``kind`` is ``"engine"``: an environment failure, never the driver's; reports give the run
    the verdict ``incomplete (engine unavailable)``. ``doing`` says what the suite was doing
    (``scenario gap-missed [no-poll-in-gap], step 3 (stop A)``), ``engine`` names the engine and
    where it listens, ``error`` is the engine's one-line error, ``since`` the monotonic time at
    which the engine stopped answering, ``timeline`` what the play did up to then (None for an
    item that was not played), ``left`` the containers of the play the suite could not remove.
    """

    kind = "engine"

    def __init__(self, error: str, *, doing: str, engine: str, since: float | None = None,
                 timeline: Timeline | None = None, scenario: Scenario | None = None,
                 schedule: Schedule | None = None, left: int | None = None) -> None:
        self.error = error
        self.doing = doing
        self.engine = engine
        self.since = since if since is not None else time.monotonic()
        self.timeline = timeline
        self.scenario = scenario
        self.schedule = schedule
        self.left = left
        #: Lines the session adds (how long the engine has been gone, what happens next).
        self.notes: list[str] = []
        super().__init__(self.summary())

    def summary(self) -> str:
        """One line."""
        return f"engine unavailable: {self.error}"

    def render(self) -> str:
        lines = [self.summary(), f"  while:  {self.doing}", f"  engine: {self.engine}"]
        if self.left:
            lines.append(f"  left:   {self.left} container(s) of this run could not be removed "
                         "(the session removes them when the engine answers again, else the "
                         "next run on this machine sweeps them)")
        lines += [f"  {note}" for note in self.notes]
        lines.append("  not judged: this is the suite's environment failing, not the driver")
        return "\n".join(lines)

    __str__ = render
