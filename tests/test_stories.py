"""The generated stories' grammar (``exploration/stories.py``), their batches, the scenario
files they become (``scenario/render.py``) and shrinking (``run/story_check.py``), without
pytest's face: pure functions, the runner and the fake engine."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from pytest_sandbox_conformance.adapters.reference import factory
from pytest_sandbox_conformance.engines.fake import FakeEngine
from pytest_sandbox_conformance.exploration.stories import (
    GENERATED_REQUIREMENTS,
    Story,
    batches,
    scenario_of,
    stories,
    story_document,
)
from pytest_sandbox_conformance.plugin.suite import ENGINE_CAPABILITIES
from pytest_sandbox_conformance.run.runner import RunConfig, play
from pytest_sandbox_conformance.run.story_check import explore, failure_key
from pytest_sandbox_conformance.scenario import load_text
from pytest_sandbox_conformance.scenario.render import pinned_after, render_scenario
from pytest_sandbox_conformance.scenario.schema import with_derived

import broken_drivers

ALL = with_derived(ENGINE_CAPABILITIES["fake"] | {"restart", "journal-faults", "power-loss", "gpu"})
FEW = frozenset()  # a driver with no capability, on an engine that orders nothing

FAST = settings(max_examples=150, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(stories(ALL))
def test_every_drawn_story_loads_clean(story: Story) -> None:
    # Valid by construction: the loader (schema, names, the story's meaning) accepts it.
    sc = scenario_of(story)
    assert len(sc.story) == len(story.steps) == len(story.gaps)
    assert sc.requirements == GENERATED_REQUIREMENTS


@FAST
@given(stories(frozenset({"gpu", "gpu-gpus", "restart"})))
def test_no_gpu_sandbox_on_an_engine_that_cannot_start_every_gpu_request(story: Story) -> None:
    # A driver with GPU sandboxes on Docker without CDI or the nvidia runtime (CI's emulated
    # GPU engine; a CPU host has no style at all): its own request may not start, which is the
    # engine's doing, so the grammar declares no gpu: true sandbox there.
    assert not any(gpu for _, _, gpu in story.sandboxes)


@FAST
@given(stories(FEW))
def test_only_what_the_driver_and_engine_offer_is_drawn(story: Story) -> None:
    actions = {next(iter(s)) for s in story.steps}
    assert not actions & {"restart", "journal_fault", "engine_fault", "set_state"}
    assert not any("gpu" in s for s in story.steps)
    assert all(set(g) <= {"n"} for g in story.gaps)
    assert not any(g for _, _, g in story.sandboxes)


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(story=stories(ALL))
def test_the_reference_driver_passes_every_drawn_story(story: Story, tmp_path_factory) -> None:
    # OWN-20 and every observation against the oracle: the contract passes its own stories.
    cfg = RunConfig(driver=factory, engine=FakeEngine, state_root=tmp_path_factory.mktemp("s"))
    play(scenario_of(story), story.schedule, cfg)


@FAST
@given(stories(ALL))
def test_the_file_a_story_becomes_loads_back_to_the_same_story(story: Story) -> None:
    doc = story_document(story, "generated-x", "t",
                         schedules={"found": {"after": pinned_after(story.gaps)}}
                         if any(story.gaps) else None)
    (sc,) = load_text(render_scenario(doc, ["a comment"]), "x.yaml")
    assert [s.describe() for s in sc.story] == [s.describe() for s in scenario_of(story).story]
    if any(story.gaps):
        tokens = {"n": "newest", "o": "oldest", "R": "restart"}
        assert sc.pinned[0].gaps == tuple(tuple(tokens[t] for t in g) for g in story.gaps)


def test_batches_cover_n_stories_with_a_seed_each():
    got = batches(120, 3)
    assert [(b.label, b.size) for b in got] == [("seed3-batch1", 50), ("seed3-batch2", 50),
                                                 ("seed3-batch3", 20)]
    assert len({b.hypothesis_seed for b in got}) == 3
    assert batches(120, 3) == got and batches(120, 4)[0].hypothesis_seed != got[0].hypothesis_seed


def test_pinned_after_names_steps_from_one_and_leaves_empty_gaps_out():
    assert pinned_after(("", "nR", "", "o")) == {2: ["newest", "restart"], 4: ["oldest"]}


def _cfg(driver, tmp_path: Path) -> RunConfig:
    return RunConfig(driver=driver, engine=FakeEngine, state_root=tmp_path)


def test_a_broken_driver_is_shrunk_to_a_small_story_failing_the_same_check(tmp_path):
    # OWN-4: adopting at the first sight of a replacement; the shrunk story is small, fails the
    # check the first failing story failed, and its file replays the failure.
    (batch,) = batches(50, 0)
    out = explore(batch, _cfg(broken_drivers.adopts_on_first_sight, tmp_path), ALL)
    assert out.found is not None and out.failure is not None
    first, smallest = out.found.first.size(), out.found.smallest.size()
    assert smallest <= first and smallest[0] <= 8
    assert failure_key(out.failure)[0] == out.found.key[0] or any(
        (f.check, f.requirements[0] if f.requirements else "") == out.found.key
        for f in out.failure.failures)
    assert out.replays is True and not out.lint_problems
    (sc,) = load_text(out.yaml, "found.yaml")
    assert sc.pinned[0].name == "found"


def test_the_reference_driver_passes_a_batch(tmp_path):
    (batch,) = batches(50, 7)
    out = explore(batch, _cfg(factory, tmp_path), ALL)
    assert out.failure is None and out.refused == 0
    assert out.played == 50


@pytest.mark.parametrize("steps, gaps", [
    # OWN-15: a corrupt journal that a later adoption rewrote is read back whole at a restart.
    ([{"create": "s1", "as": "A"}, {"stop": "A"}, {"rename": "A", "to": "backup"},
      {"clone": "A", "as": "B"}, {"journal_fault": "corrupt", "sandbox": "s1"},
      {"remove": "A"}, {"restart": True}], ("", "", "", "", "nn", "", "")),
    # OWN-19, OWN-6: a GPU instance that is gone is missing, not a GPU failure.
    ([{"create": "s1", "as": "A"}, {"stop": "A"}, {"rename": "A", "to": "backup"},
      {"clone": "A", "as": "B", "gpu": "cdi"}, {"remove": "A"}, {"remove": "B"}],
     ("", "", "", "nn", "nn", "")),
])
def test_stories_generation_found_wrong_in_the_suite_now_pass(steps, gaps, tmp_path):
    story = Story((("s1", "box", False),), tuple(steps), gaps)
    play(scenario_of(story), story.schedule, _cfg(factory, tmp_path))


def test_canonical_placeholder_names_a_near_miss_on_the_engine(tmp_path):
    story = Story((("s1", "box", False),),
                  ({"create": "s1", "as": "A"}, {"rename": "A", "to": "{canonical}-old"},
                   {"run": "s1", "as": "B", "name": "{canonical}-nemoclaw-gpu-backup-"}),
                  ("n", "n", "n"))
    result = play(scenario_of(story), story.schedule, _cfg(factory, tmp_path))
    text = result.timeline.render()
    assert "A is now named openshell-box-s1-old" in text
    assert "openshell-box-s1-nemoclaw-gpu-backup- running" in text


_DRAW = """
import sys
sys.path[:0] = {paths!r}
{first}
from pathlib import Path
import broken_drivers
from pytest_sandbox_conformance.engines.fake import FakeEngine
from pytest_sandbox_conformance.exploration.stories import batches
from pytest_sandbox_conformance.run.runner import RunConfig
from pytest_sandbox_conformance.run.story_check import explore
caps = {caps!r}
(batch,) = batches(50, 3)
out = explore(batch, RunConfig(driver=broken_drivers.adopts_on_first_sight, engine=FakeEngine,
                               state_root=Path({root!r})), frozenset(caps))
print(out.played, out.shrink_plays)
print(out.yaml)
"""


def test_a_batch_depends_on_its_seed_alone(tmp_path):
    # Hypothesis would mix integers from the source of the local modules a process loaded into
    # its draws (and cache them under .hypothesis/): a module the driver or a project's tests
    # import must not change what a batch draws or finds.
    import subprocess
    import sys

    (tmp_path / "odd_constants.py").write_text(
        "ODD = [" + ", ".join(str(n) for n in (11, 13, 17, 19, 7, 9, 3, 5, 15)) + "]\n")
    tests = str(Path(__file__).resolve().parent)
    runs = []
    for first in ("", "import odd_constants"):
        code = _DRAW.format(paths=[str(tmp_path), tests, str(Path(tests).parent)], first=first,
                            caps=sorted(ALL), root=str(tmp_path))
        done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        runs.append(done.stdout)
    assert runs[0] == runs[1] and "generated-seed3-batch1" in runs[0]
    assert not (tmp_path / ".hypothesis").exists()
