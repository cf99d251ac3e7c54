"""Collection: scenario files become pytest items, one per (scenario, schedule or chunk).

* ``pinned`` gives one item per schedule, ``scenario-id[schedule-name]``, so ``--lf`` reruns it.
* ``exhaustive`` and ``random:N`` give one item per chunk of :data:`CHUNK` schedules,
  ``scenario-id[exhaustive-2of7]``: tens of thousands of schedules stay a few hundred items, and
  pytest-xdist spreads the chunks over workers. A chunk plays all its schedules and, if any fail,
  reports the smallest failing one (fewest observations and restarts), as Hypothesis shrinks.
* ``--sandbox-schedule=SCENARIO@ID`` gives that one item only.

Everything is sorted and enumerated in a fixed order, so every xdist worker collects the same
items. Scenario files are parsed at collection; a bad file is a collection error naming the file,
line and field, with no traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import pytest

from .scenario import Scenario, ScenarioErrors, load_file
from .schedule import (
    Schedule,
    ScheduleError,
    decode,
    enumerate_exhaustive,
    exhaustive_count,
    pinned,
    random_sample,
)

if TYPE_CHECKING:
    from .plugin import Suite

__all__ = ["CHUNK", "ScenarioFile", "ScenarioItem"]

#: Schedules per item in exhaustive and random modes.
CHUNK = 200


class ScenarioFile(pytest.File):
    """One YAML file of scenarios."""

    suite: "Suite"

    def collect(self) -> Iterator["ScenarioItem"]:
        try:
            scenarios = load_file(self.path)
        except ScenarioErrors as exc:
            raise self.CollectError(str(exc)) from None
        suite = self.suite
        for sc in sorted(scenarios, key=lambda s: s.id):
            if suite.settings.replay is not None and suite.settings.replay[0] != sc.id:
                continue
            yield from self._items(sc)

    def _items(self, sc: Scenario) -> Iterator["ScenarioItem"]:
        s = self.suite.settings
        restarts = "restart" in self.suite.capabilities
        orders = "no" if "list-order" in self.suite.capabilities else "n"
        if s.replay is not None:
            # A pinned schedule's name replays it with its own expectations; an id replays that
            # interleaving with the scenario's default expectations (as exhaustive ran it).
            named = {p.name: p for p in pinned(sc) if p.name}
            if s.replay[1] in named:
                sched = named[s.replay[1]]
            else:
                try:
                    sched = decode(s.replay[1], sc)
                except ScheduleError as exc:
                    raise self.CollectError(f"--sandbox-schedule: {exc}") from None
            yield self._item(sc, sched.label, [sched])
            return
        if s.mode == "exhaustive":
            total = exhaustive_count(sc, restarts, orders)
            label = "exhaustive"
            source = enumerate_exhaustive(sc, restarts, orders)
        elif s.mode == "random":
            schedules = random_sample(sc, s.random_n, s.random_seed, restarts, orders)
            total = len(schedules)
            label = f"random{s.random_n}-seed{s.random_seed}"
            source = iter(schedules)
        if s.mode != "pinned":
            chunks = max(1, -(-total // CHUNK))
            for i in range(chunks):
                part = [next(source) for _ in range(min(CHUNK, total - i * CHUNK))]
                yield self._item(sc, f"{label}-{i + 1}of{chunks}", part)
        # Pinned schedules run in every mode: they are the named classic cases.
        for sched in pinned(sc):
            yield self._item(sc, sched.label, [sched])

    def _item(self, sc: Scenario, label: str, schedules: list[Schedule]) -> "ScenarioItem":
        if self.suite.gpu_emulated and sc.needs_gpu:
            label += "-gpu-emulated"  # never mistaken for a real GPU pass
        name = f"{sc.id}[{label}]"
        # The node id is given as a string so that pytest >= 9 parses "[label]" as the item's
        # parameters, as it does for the ids it caches (--lf, --sw); a name built by the parent
        # would keep the brackets inside the name and never equal a cached id.
        item = ScenarioItem.from_parent(self, name=name, nodeid=f"{self.nodeid}::{name}",
                                        scenario=sc, schedules=schedules)
        self.suite.decorate(item)
        if "list-order" not in self.suite.capabilities and any(
                s.lists_oldest_first for s in schedules):
            item.add_marker(pytest.mark.skip(
                reason=f"schedule {label} lists oldest first, and engine "
                       f"{self.suite.settings.engine} cannot be told a list order (it lists in "
                       "its own order); it runs on the fake engine"))
        return item


class ScenarioItem(pytest.Item):
    """One scenario under one schedule (or a chunk of schedules)."""

    def __init__(self, *, scenario: Scenario, schedules: list[Schedule], **kwargs) -> None:
        super().__init__(**kwargs)
        self.scenario = scenario
        self.schedules = schedules
        self.suite: "Suite" = self.parent.suite  # type: ignore[attr-defined]
        self.user_properties.extend([
            ("sandbox_scenario", scenario.id),
            ("sandbox_requirements", " ".join(scenario.requirements)),
            ("sandbox_profile", scenario.profile),
            ("sandbox_driver", self.suite.settings.driver),
            ("sandbox_engine", self.suite.settings.engine),
        ])
        if len(schedules) == 1:
            self.user_properties.append(("sandbox_schedule", schedules[0].id))
        else:
            self.user_properties.append(("sandbox_schedules", str(len(schedules))))

    def runtest(self) -> None:
        self.suite.run_item(self)

    def repr_failure(self, excinfo, style=None):  # type: ignore[override]
        from .runner import ConformanceFailure

        if isinstance(excinfo.value, ConformanceFailure):
            return excinfo.value.render()
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, self.scenario.line - 1, f"scenario: {self.name}"


def catalog_dir() -> Path:
    """The bundled catalog, inside the installed package."""
    from importlib.resources import files

    return Path(str(files("pytest_sandbox_conformance.catalog")))


def scenario_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
