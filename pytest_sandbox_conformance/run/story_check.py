"""Generated stories against a driver: one batch of ``--sandbox-schedules=generate:N[:SEED]``
drawn, played, and a failure shrunk to a ready-to-commit scenario file.

:func:`explore` runs Hypothesis over :func:`~..exploration.stories.stories` (``@given`` with the
batch's own ``@seed``, no example database, so a batch replays exactly), plays each story under
its schedule through the runner (every observation against the oracle, the invariants, the
settle and convergence, the story's own ``expect``), and stops at the first failing story.
Hypothesis' shrinker then reduces it (fewer moves and steps first, then fewer and emptier gaps)
to the smallest story that still fails **the same check** (the same check name and leading
requirement: :func:`failure_key`); other failures met while shrinking count as passes.

The smallest story becomes a scenario file (``reports/yaml_scenario.py``): its schedule as the
pinned schedule ``found``, with the ``expect`` the oracle computes for it (the reference driver
played on the fake engine, in memory, gives the contract's final state), checked as lint checks
it (the loader and the rehearsal) and played again against the driver under test to confirm it
reproduces the failure; all of that goes into the failure's text.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from ..exploration.schedule import Schedule
from ..exploration.stories import (
    GENERATED_REQUIREMENTS,
    SANDBOXES,
    Batch,
    Story,
    scenario_of,
    stories,
    story_document,
    story_expect,
)
from ..scenario.render import PINNED_NAME, pinned_after, render_scenario
from ..scenario.errors import ScenarioErrors
from ..scenario.loader import load_text
from ..scenario.model import Scenario
from .checks import Failure
from .failure import ConformanceFailure, EngineOutage, StoryError
from .runner import RunConfig, RunResult, play, reference_config

__all__ = ["BatchOutcome", "MAX_SHRINK_PLAYS", "explore", "failure_key", "failure_matches"]

#: The most plays shrinking may take (each is one story against the driver); past it the
#: smallest story found so far is reported.
MAX_SHRINK_PLAYS = 2000
#: The most plays of the greedy pass after Hypothesis' shrinker (steps, then gaps).
MAX_TRIM_PLAYS = 300


def _key(f: Failure) -> tuple[str, str]:
    return f.check, (f.requirements[0] if f.requirements else "")


def failure_key(failure: ConformanceFailure) -> tuple[str, str]:
    """What "the same failure" means while shrinking: the first failure's check and leading
    requirement (the rest, OWN-9 after a restart or OWN-19 beside a GPU, may go with the steps
    that shrinking removes)."""
    return _key(failure.first)


def failure_matches(failure: ConformanceFailure, key: tuple[str, str]) -> bool:
    """Whether ``failure`` fails the check of ``key`` with its leading requirement."""
    return any(_key(f) == key for f in failure.failures)


@dataclass
class Found:
    """A generated story that failed, before and after shrinking."""

    key: tuple[str, str]
    first: Story
    smallest: Story
    failure: ConformanceFailure


@dataclass
class BatchOutcome:
    """What one batch did: stories played (generation and shrinking), stories the engine could
    not play (refused steps: ``StoryError``), and the failure found, if any, with its file."""

    batch: Batch
    played: int = 0
    shrink_plays: int = 0
    refused: int = 0
    found: Found | None = None
    failure: ConformanceFailure | None = None
    yaml: str = ""
    replays: bool | None = None
    lint_problems: list[str] = field(default_factory=list)


def _scenario(story: Story, batch: Batch) -> Scenario:
    return scenario_of(story, f"generated-{batch.label}", "a generated story")


def explore(batch: Batch, cfg: RunConfig, capabilities: frozenset[str], *,
            file_replay: Callable[[Scenario], str] | None = None, batch_replay: str = "",
            save_dir: str = "",
            progress: Callable[[int, int], None] | None = None) -> BatchOutcome:
    """Play ``batch``'s stories against ``cfg``'s driver; shrink the first failure. Raises
    :class:`EngineOutage` when the engine went away (an error, not the driver's failure).
    ``file_replay(scenario)`` gives the command that runs the printed scenario file."""
    from hypothesis import HealthCheck, Phase, Verbosity, given, reject, seed, settings
    from hypothesis.errors import HypothesisException

    out = BatchOutcome(batch)
    state: dict[str, Any] = {"key": None, "best": None, "outage": None}

    def attempt(story: Story) -> None:
        if state["outage"] is not None:
            reject()
        shrinking = state["key"] is not None
        if shrinking and out.shrink_plays >= MAX_SHRINK_PLAYS and story != state["best"][0]:
            return  # shrinking has had its plays: only the smallest so far still fails
        try:
            sc = _scenario(story, batch)
        except ScenarioErrors:
            reject()  # the grammar drew a story lint refuses: not played (tests keep it rare)
        if shrinking:
            out.shrink_plays += 1
        else:
            out.played += 1
            if progress is not None:
                progress(out.played, 0)
        try:
            play(sc, story.schedule, cfg)
        except ConformanceFailure as exc:
            if state["key"] is None:
                state["key"] = failure_key(exc)
                state["first"] = story
            if failure_matches(exc, state["key"]):
                best = state["best"]
                if best is None or story.size() <= best[0].size():
                    state["best"] = (story, exc)
                raise _Failed(exc) from None
        except StoryError:
            out.refused += 1
            reject()
        except EngineOutage as exc:
            state["outage"] = exc
            reject()

    test = settings(max_examples=batch.size, database=None, deadline=None,
                    derandomize=False, phases=(Phase.generate, Phase.shrink),
                    suppress_health_check=list(HealthCheck), report_multiple_bugs=False,
                    verbosity=Verbosity.quiet, print_blob=False)(
        seed(batch.hypothesis_seed)(given(stories(capabilities))(attempt)))
    smallest: ConformanceFailure | None = None
    try:
        with _seed_alone():
            test()
    except _Failed as failed:
        smallest = failed.failure
    except HypothesisException:
        pass  # every story rejected (an outage): said below
    if state["outage"] is not None:
        raise state["outage"]
    if smallest is None:
        return out
    story = state["best"][0] if state["best"] is not None else state["first"]
    if state["best"] is not None and state["best"][1] is not smallest:
        smallest = state["best"][1]
    story, smallest = _trim(story, smallest, state["key"], batch, cfg, out)
    out.found = Found(state["key"], state["first"], story, smallest)
    _write_up(out, cfg, file_replay, batch_replay, save_dir)
    return out


def _trim(story: Story, failure: ConformanceFailure, key: tuple[str, str], batch: Batch,
               cfg: RunConfig, out: BatchOutcome) -> tuple[Story, ConformanceFailure]:
    """After Hypothesis, a greedy pass: each step dropped (with its gap), then each gap
    emptied, else its tokens dropped one at a time, then each ``observe`` step's ``repeat:``
    cut (to 1, a quarter, a half, one less), each change kept where the story still
    loads and fails ``key`` (Hypothesis shrinks the choices that drew the story, and a shorter
    choice sequence can still hold a step nothing needs, or longer gaps). At most
    :data:`MAX_TRIM_PLAYS` plays."""
    plays = 0

    def fails(candidate: Story) -> ConformanceFailure | None:
        nonlocal plays
        plays += 1
        out.shrink_plays += 1
        try:
            play(_scenario(candidate, batch), candidate.schedule, cfg)
        except ConformanceFailure as exc:
            return exc if failure_matches(exc, key) else None
        except (StoryError, ScenarioErrors):
            return None
        return None

    used = {str(v) for step in story.steps for v in step.values()}
    decls = tuple(d for d in story.sandboxes if d[0] in used)  # undeclare what no step names
    plain = tuple((k, n, False) for k, n, _ in decls)  # and a GPU sandbox nothing needs
    named = tuple((k, SANDBOXES.get(k, n), g) for k, n, g in plain)  # and a name as typed
    for sandboxes in dict.fromkeys([decls, plain, named]):
        if sandboxes != story.sandboxes:
            trial = Story(sandboxes, story.steps, story.gaps, story.moves)
            got = fails(trial)
            if got is not None:
                story, failure = trial, got
    changed = True
    while changed and plays < MAX_TRIM_PLAYS:  # fewer steps first: drop one, with its gap
        changed = False
        for i in range(len(story.steps) - 1, 0, -1):
            if plays >= MAX_TRIM_PLAYS:
                break
            trial = Story(story.sandboxes, story.steps[:i] + story.steps[i + 1:],
                          story.gaps[:i] + story.gaps[i + 1:], story.moves)
            got = fails(trial)
            if got is not None:
                story, failure, changed = trial, got, True
                break
    gaps = list(story.gaps)
    for i in range(len(gaps)):
        changed = True
        while changed and gaps[i] and plays < MAX_TRIM_PLAYS:
            changed = False
            g = gaps[i]
            for shorter in dict.fromkeys(["", *(g[:j] + g[j + 1:] for j in range(len(g)))]):
                if plays >= MAX_TRIM_PLAYS:
                    break
                trial = Story(story.sandboxes, story.steps,
                              tuple(gaps[:i] + [shorter] + gaps[i + 1:]), story.moves)
                got = fails(trial)
                if got is not None:
                    gaps[i], story, failure, changed = shorter, trial, got, True
                    break
    for i in range(len(story.steps)):  # then fewer observations in each quiet stretch
        changed = True
        while changed and story.steps[i].get("repeat", 1) > 1 and plays < MAX_TRIM_PLAYS:
            changed = False
            r = story.steps[i]["repeat"]
            for fewer in sorted({1, r // 4, r // 2, r - 1} - {0}):
                if plays >= MAX_TRIM_PLAYS:
                    break
                step = {k: v for k, v in story.steps[i].items() if k != "repeat"}
                if fewer > 1:
                    step["repeat"] = fewer
                trial = Story(story.sandboxes, story.steps[:i] + (step,) + story.steps[i + 1:],
                              story.gaps, story.moves)
                got = fails(trial)
                if got is not None:
                    story, failure, changed = trial, got, True
                    break
    return story, failure


@contextmanager
def _seed_alone() -> Iterator[None]:
    """While a batch draws: no constants from "local" source files in what Hypothesis draws.

    Hypothesis mixes integers found in the source of the local modules loaded (the driver's, a
    project's tests) into its draws, and caches them under ``.hypothesis/``: a batch would then
    depend on what else the process imported (a worker, a replay, another machine) and leave a
    folder behind. A batch must be a function of its seed and the suite's code alone. This
    reaches into Hypothesis' internals; where they are not as expected it does nothing."""
    try:
        from hypothesis.internal.conjecture import providers

        empty = providers.Constants()
        saved = (providers._get_local_constants, providers.CONSTANTS_CACHE)
        cache = type(providers.CONSTANTS_CACHE)(1024)
    except (ImportError, AttributeError, TypeError):  # another Hypothesis: nothing to do
        yield
        return
    providers._get_local_constants, providers.CONSTANTS_CACHE = (lambda: empty), cache
    try:
        yield
    finally:
        providers._get_local_constants, providers.CONSTANTS_CACHE = saved


class _Failed(Exception):
    """Raised inside Hypothesis' test for a failing story (Hypothesis shrinks on it)."""

    def __init__(self, failure: ConformanceFailure) -> None:
        super().__init__(failure.summary())
        self.failure = failure


# -- the write-up ------------------------------------------------------------------------------------


def reference_expect(story: Story, scenario: Scenario, schedule: Schedule) -> dict[str, Any]:
    """The ``expect`` of ``story`` under ``schedule`` as the contract computes it: the reference
    driver played on the fake engine in memory; the oracle's last word on each sandbox (its
    instance, phase and reason) and what the story decides (containers, deleted, tracked)."""
    base = story_expect(story)
    with reference_config("sbx-generated-") as cfg:
        result: RunResult = play(scenario, schedule, cfg)
    last: dict[str, dict[str, Any]] = {}
    for m in result.timeline:
        if m.kind == "report":
            last[m.data["sandbox"]] = m.data["contract"]
    bindings = set(base["containers"]) | {s["as"] for s in story.steps if "as" in s}
    sandboxes = dict(base["sandboxes"])
    for key, contract in last.items():
        if not sandboxes.get(key, {}).get("tracked"):
            continue
        entry: dict[str, Any] = {}
        if contract["instance"] in bindings:
            entry["instance"] = contract["instance"]
        entry["phase"] = contract["phase"]
        entry["reason"] = contract["reason"]
        sandboxes[key] = entry
    return {**base, "sandboxes": sandboxes}


def _write_up(out: BatchOutcome, cfg: RunConfig, file_replay: Callable[[Scenario], str] | None,
              batch_replay: str, save_dir: str) -> None:
    """The smallest story as a scenario file, checked as lint checks it and played again
    against the driver; the failure's text gets the file and the commands."""
    from .rehearsal import rehearse

    found = out.found
    assert found is not None
    batch, story, failure = out.batch, found.smallest, found.failure
    sid = f"generated-{batch.label}"
    generated_sc = _scenario(story, batch)
    requirements = tuple(failure.requirements) or GENERATED_REQUIREMENTS
    try:
        expect = reference_expect(story, generated_sc, story.schedule)
    except (ConformanceFailure, StoryError) as exc:  # the reference fails it: a suite bug
        expect = story_expect(story)
        out.lint_problems.append(f"the reference driver fails this story too: {exc.summary()}")
    check, req = found.key
    before, after = found.first.size(), story.size()
    description = (
        f"Found by --sandbox-schedules=generate:{batch.total}:{batch.seed} (batch {batch.index}) "
        f"against {failure.driver}: it fails {check}" + (f" ({req})" if req else "")
        + f". Drawn as: {', '.join(story.moves) or 'the creates only'}. Shrunk from {before[0]} "
        f"steps, {before[1]} observations and {before[2]} restarts to {after[0]}, {after[1]} "
        f"and {after[2]}.")
    doc = story_document(story, sid, f"Generated: {check} after {len(story.steps)} steps",
                         description=description, requirements=requirements,
                         expect=story_expect(story),
                         schedules={PINNED_NAME: {"after": pinned_after(story.gaps),
                                                  "expect": expect}})
    if not doc["schedules"][PINNED_NAME]["after"]:
        doc["schedules"][PINNED_NAME].pop("after")
    header = [f"{sid}.yaml: a generated story that fails {check}"
              + (f" ({req})" if req else "") + ",",
              "shrunk by Hypothesis; the pinned schedule 'found' reproduces it."]
    text = render_scenario(doc, header)
    try:
        (printed,) = load_text(text, f"{sid}.yaml")
    except ScenarioErrors as exc:
        out.lint_problems.append(str(exc))
        printed = None
    if printed is not None:
        out.lint_problems += [str(e) for e in rehearse(printed)]
        pinned_schedule = Schedule(story.gaps, name=PINNED_NAME)
        try:
            play(printed, pinned_schedule, cfg)
            out.replays = False
        except ConformanceFailure as exc:
            out.replays = failure_matches(exc, found.key)
        except StoryError:
            out.replays = False
    out.yaml = text
    notes = [
        "",
        f"generated story: batch {batch.label} of generate:{batch.total}:{batch.seed}, after "
        f"{out.played} stories; shrunk in {out.shrink_plays} plays from {before[0]} steps, "
        f"{before[1]} observations, {before[2]} restarts to {after[0]} steps, {after[1]} "
        f"observations, {after[2]} restarts (still failing {check}"
        + (f", {req}" if req else "") + ")",
        f"the scenario file below {'replays the failure' if out.replays else 'DOES NOT replay the failure' if out.replays is False else 'could not be loaded'}"
        + ("" if not out.lint_problems else "; lint says:\n  " + "\n  ".join(out.lint_problems)),
        "",
        f"--- save as {save_dir}/{sid}.yaml ---" if save_dir else f"--- save as {sid}.yaml ---",
        text.rstrip("\n"),
        "---",
    ]
    if batch_replay:
        notes += ["", "the batch again (drawing, playing and shrinking as here):",
                  f"  {batch_replay}"]
    if printed is not None and file_replay is not None:
        notes += ["", "replay (the command at the end) runs the saved file's schedule 'found'"]
        failure.replay = file_replay(printed)
    failure.notes.extend(notes)
    out.failure = failure
