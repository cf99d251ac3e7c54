"""Collection: scenario files become pytest items, one per planned item of a scenario.

What the items are (one per pinned schedule, one per chunk of explored schedules, or the one
replayed schedule) is decided by :func:`~pytest_sandbox_conformance.exploration.plan.plan`; this
module only turns each planned item into a :class:`ScenarioItem` (``scenario-id[label]``, so
``--lf`` reruns it). Scenario files are parsed at collection; a bad file is a collection error
naming the file, line and field, with no traceback.

The session object the items belong to is anything with the attributes of :class:`Session`
(the plugin's :class:`~.suite.Suite` is one); this module imports nothing of it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Protocol, Sequence

import pytest

from ..exploration.plan import Mode, plan, replay_schedule
from ..exploration.schedule import Schedule, ScheduleError
from ..scenario import Scenario, ScenarioErrors, load_file
from ..scenario.loader import internal_error

__all__ = ["ScenarioFile", "ScenarioItem", "Session"]


class Session(Protocol):
    """What collection and the items need of the session."""

    #: ``(scenario id, schedule id or name)`` to replay, or None.
    replay: tuple[str, str] | None
    mode: Mode
    engine_name: str
    capabilities: frozenset[str]
    gpu_emulated: bool
    settings_summary: dict[str, str]

    def decorate(self, item: "ScenarioItem") -> None: ...

    def play_item(self, item: "ScenarioItem") -> None: ...

    def run_item(self, item: "ScenarioItem") -> None: ...

    def not_collected(self, parent: str, scenario: Scenario, reason: str) -> None:
        """A scenario of ``parent`` (a file's node id) that collection leaves out."""


class ScenarioFile(pytest.File):
    """One YAML file of scenarios."""

    session_of_items: Session

    def collect(self) -> Iterator["ScenarioItem"]:
        try:
            scenarios = load_file(self.path)
        except ScenarioErrors as exc:
            raise self.CollectError(str(exc)) from None
        except Exception as exc:  # a bug of the loader: one line naming the file, no traceback
            raise self.CollectError(str(internal_error(self.path, exc))) from None
        owner = self.session_of_items
        for sc in sorted(scenarios, key=lambda s: s.id):
            if owner.replay is not None and owner.replay[0] != sc.id:
                owner.not_collected(self.nodeid, sc, "left out: --sandbox-schedule="
                                    f"{'@'.join(owner.replay)} replays another scenario")
                continue
            yield from self._items(sc)

    def _items(self, sc: Scenario) -> Iterator["ScenarioItem"]:
        owner = self.session_of_items
        if owner.replay is not None:
            try:
                sched = replay_schedule(sc, owner.replay[1])
            except ScheduleError as exc:
                raise self.CollectError(f"--sandbox-schedule: {exc}") from None
            yield self._item(sc, sched.label, (sched,))
            return
        try:
            planned_items = list(plan(sc, owner.mode))
        except ScheduleError as exc:
            raise self.CollectError(f"{self.path}:{sc.line}: --sandbox-schedules="
                                    f"{owner.mode.name}: {exc}") from None
        for planned in planned_items:
            item = self._item(sc, planned.label, planned.schedules)
            item.exploration = planned.exploration
            yield item

    def _item(self, sc: Scenario, label: str, schedules: Sequence[Schedule]) -> "ScenarioItem":
        owner = self.session_of_items
        if owner.gpu_emulated and sc.needs_gpu:
            label += "-gpu-emulated"  # never mistaken for a real GPU pass
        name = f"{sc.id}[{label}]"
        # The node id is given as a string so that pytest >= 9 parses "[label]" as the item's
        # parameters, as it does for the ids it caches (--lf, --sw); a name built by the parent
        # would keep the brackets inside the name and never equal a cached id.
        item = ScenarioItem.from_parent(self, name=name, nodeid=f"{self.nodeid}::{name}",
                                        scenario=sc, schedules=schedules)
        owner.decorate(item)
        # An explored slice says whether any of its schedules may ask for oldest first (never
        # on an engine without list orders: Mode.list_orders); it is not decoded to find out.
        oldest = getattr(schedules, "may_list_oldest_first", None)
        if "list-order" not in owner.capabilities and (
                oldest if oldest is not None else any(s.lists_oldest_first for s in schedules)):
            item.add_marker(pytest.mark.skip(
                reason=f"schedule {label} lists oldest first, and engine "
                       f"{owner.engine_name} cannot be told a list order (it lists in "
                       "its own order); it runs on the fake engine"))
        # A replayed id may restart a driver that cannot (explored slices restart only a driver
        # that can: Mode.restarts; a pinned restart makes the scenario need "restart").
        cannot_restart = "restart" not in owner.capabilities | sc.needs
        if cannot_restart and isinstance(schedules, tuple) and any(s.restarts for s in schedules):
            item.add_marker(pytest.mark.skip(
                reason=f"schedule {label} restarts the driver, and this driver cannot be "
                       "restarted (no 'restart' capability)"))
        return item


class ScenarioItem(pytest.Item):
    """One scenario under one schedule (or a chunk of schedules)."""

    def __init__(self, *, scenario: Scenario, schedules: Sequence[Schedule], **kwargs) -> None:
        super().__init__(**kwargs)
        self.scenario = scenario
        #: A tuple, or an explored slice decoded as it plays (``exploration/space.py``).
        self.schedules = schedules
        #: How exhaustive mode explored the scenario (the report's ``exploration``), or None.
        self.exploration: dict | None = None
        self.owner: Session = self.parent.session_of_items  # type: ignore[attr-defined]
        self.user_properties.extend([
            ("sandbox_scenario", scenario.id),
            ("sandbox_requirements", " ".join(scenario.requirements)),
            ("sandbox_profile", scenario.profile),
            *self.owner.settings_summary.items(),
        ])
        if len(schedules) == 1:
            self.user_properties.append(("sandbox_schedule", schedules[0].id))
        else:
            self.user_properties.append(("sandbox_schedules", str(len(schedules))))

    def setup(self) -> None:
        # The play: what keeps the item from being judged (the engine gone) is an error.
        self.owner.play_item(self)

    def runtest(self) -> None:
        # The verdict: the driver's conformance failure, if the play found one.
        self.owner.run_item(self)

    def repr_failure(self, excinfo, style=None):  # type: ignore[override]
        from ..run.failure import ConformanceFailure, StoryError

        if isinstance(excinfo.value, (ConformanceFailure, StoryError)):
            from .longrepr import FailureRepr

            exc = excinfo.value
            return FailureRepr(exc.render(), exc.summary(), str(self.path), exc.scenario.line)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, self.scenario.line - 1, f"scenario: {self.name}"


def catalog_dir() -> Path:
    """The bundled catalog, inside the installed package."""
    from importlib.resources import files

    return Path(str(files("pytest_sandbox_conformance.catalog")))


def scenario_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


def scenario_paths(builtin: bool, scenario_dirs: Sequence[Path],
                   rootpath: Path) -> list[tuple[Path, str]]:
    """(file, node id) of every scenario file: the catalog (``builtin``), then each folder of
    --sandbox-scenarios (node ids relative to ``rootpath`` where they can be)."""
    found: list[tuple[Path, str]] = []
    if builtin:
        base = catalog_dir()
        found += [(p, "sandbox-catalog/" + p.relative_to(base).as_posix())
                  for p in scenario_files(base)]
    for d in scenario_dirs:
        for p in scenario_files(d):
            try:
                nodeid = p.relative_to(rootpath).as_posix()
            except ValueError:
                nodeid = f"sandbox-scenarios/{d.name}/{p.relative_to(d).as_posix()}"
            found.append((p, nodeid))
    return found
