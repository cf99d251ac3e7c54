"""``--sandbox-schedules=generate:N[:SEED]``: generated stories as pytest items.

One item per batch of :data:`~..exploration.stories.BATCH` stories,
``sandbox-generated::generated[seed0-batch3]``, planned by
:func:`~..exploration.stories.batches` (pure, so every xdist worker collects the same items). An
item draws its batch's stories with Hypothesis and plays each one
(:func:`~..run.story_check.explore`); a failing story is shrunk, and the item fails with the
smallest story's failure, its scenario file and the commands that replay it. The catalog's
scenarios run their pinned schedules beside them.
"""

from __future__ import annotations

import dataclasses
import shlex
from pathlib import Path
from typing import Iterator

import pytest

from ..exploration.stories import GENERATED_REQUIREMENTS, Batch, batches
from ..scenario.model import Expect, Scenario
from .collect import ScenarioItem, Session
from .items import keep_failure

__all__ = ["GENERATED_NODE", "GeneratedItem", "GeneratedStories", "play_generated"]

#: The collector's node id (the items' prefix).
GENERATED_NODE = "sandbox-generated"
#: Where the failure text suggests saving a generated scenario file.
SAVE_DIR = "sandbox-generated"


def placeholder(batch: Batch) -> Scenario:
    """What the reports know of a batch before it runs: the scenario ``generated``."""
    return Scenario(
        id="generated", title=f"generated stories (generate:{batch.total}:{batch.seed})",
        path="<generated>", line=1, requirements=GENERATED_REQUIREMENTS, profile="core",
        needs=frozenset(), marks=(), restart="never", max_observations=1, sandboxes={},
        story=(), expect=Expect(), pinned=(),
        description="stories drawn by Hypothesis from a grammar of real tools' actions; "
                    "every observation checked against the oracle")


class GeneratedStories(pytest.Collector):
    """The generated batches of the session."""

    session_of_items: Session

    def collect(self) -> Iterator["GeneratedItem"]:
        mode = self.session_of_items.mode
        for batch in batches(mode.random_n, mode.random_seed):
            item = GeneratedItem.from_parent(
                self, name=f"generated[{batch.label}]",
                nodeid=f"{self.nodeid}::generated[{batch.label}]", scenario=placeholder(batch),
                schedules=[], batch=batch)
            self.session_of_items.decorate(item)
            yield item


class GeneratedItem(ScenarioItem):
    """One batch of generated stories."""

    def __init__(self, *, batch: Batch, **kwargs) -> None:
        super().__init__(**kwargs)
        self.batch = batch
        self.user_properties = [(k, v) for k, v in self.user_properties
                                if k != "sandbox_schedules"]
        self.user_properties.append(("sandbox_stories", str(batch.size)))

    def reportinfo(self):
        return self.path, None, f"generated stories: {self.name}"


def batch_command(suite, item: GeneratedItem) -> str:
    """The command that plays ``item``'s batch again (drawing, playing, shrinking)."""
    from .replay import session_command

    b = item.batch
    return (f"{session_command(suite.settings)} --sandbox-schedules=generate:{b.total}:{b.seed} "
            f"-k {shlex.quote(item.name)}")


def file_command(suite, scenario: Scenario) -> str:
    """The command that runs a saved scenario file's pinned schedule ``found`` from
    :data:`SAVE_DIR`, and nothing else."""
    from ..exploration.schedule import Schedule
    from ..scenario.render import PINNED_NAME
    from .replay import replay_command

    folder = Path(SAVE_DIR)
    settings = dataclasses.replace(suite.settings, scenario_dirs=(folder,), builtin=False)
    return replay_command(settings, scenario, Schedule(("",) * len(scenario.story),
                                                      name=PINNED_NAME))


def play_generated(suite, item: GeneratedItem, cfg, progress=None) -> None:
    """Play ``item``'s batch; keep the shrunk failure for ``run_item`` and the reports."""
    from ..run.story_check import explore

    item.sandbox_conformance_failure = None
    out = explore(item.batch, cfg, suite.capabilities,
                  file_replay=lambda sc: file_command(suite, sc),
                  batch_replay=batch_command(suite, item), save_dir=SAVE_DIR,
                  progress=progress)
    item.user_properties.append(("sandbox_stories_played", str(out.played)))
    if out.refused:
        item.user_properties.append(("sandbox_stories_refused", str(out.refused)))
    if out.failure is None:
        return
    keep_failure(item, out.failure, list(out.failure.requirements), failed=1, total=out.played)
