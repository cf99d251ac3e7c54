"""Lazy exploration: the schedule space decoded from indices, merged gaps, the prioritised sample
above ``--sandbox-max-schedules``, and what the plugin makes of them (item ids, the report,
replays of sampled schedules)."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest

from pytest_sandbox_conformance.exploration.plan import CHUNK, Mode, plan
from pytest_sandbox_conformance.exploration.sample import REDRAWS, Sample
from pytest_sandbox_conformance.exploration.schedule import (
    DEFAULT_MAX_SCHEDULES,
    Schedule,
    crowded_gaps,
    decode,
    enumerate_exhaustive,
    exhaustive_count,
)
from pytest_sandbox_conformance.exploration.space import (ScheduleSlice, invisible_steps,
                                                         restarting_steps, space)
from pytest_sandbox_conformance.plugin.collect import scenario_files
from pytest_sandbox_conformance.scenario import load_text
from pytest_sandbox_conformance.scenario.loader import load_paths

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((ROOT / "docs" / "report.schema.json").read_text())
PLUGINS = ("-p", "sandbox_conformance", "-p", "no:cacheprovider", "-p", "no:hypothesispytest")

CATALOG, _ = load_paths(scenario_files(ROOT / "scenarios"))  # this checkout's catalog
SMALL = [sc for sc in CATALOG if exhaustive_count(replace(sc, restart="anywhere")) <= 3000]

#: A 12-step story (NemoClaw's swap with a probe in another namespace, a wait loop, a rollback):
#: 1.1e10 schedules.
LONG = """\
id: long
title: long
requirements: [OWN-4, OWN-13, OWN-20]
max_observations: 3
restart: anywhere
sandboxes:
  s1: {name: box}
story:
  - create: s1
    as: A
  - run: s1
    as: P
    name: probe
    namespace: other
  - stop: A
  - rename: A
    to: backup
  - clone: A
    as: B
    name: canonical
  - stop: B
  - start: B
  - stop: B
  - remove: B
  - rename: A
    to: canonical
  - start: A
  - remove: P
expect:
  sandboxes:
    s1: {instance: A, phase: Ready}
  containers: [A]
"""


def legacy_enumeration(sc, restarts: bool = True, orders: str = "no"):
    """The enumeration of the suite before lazy exploration (no merged gaps), verbatim."""
    crowded = crowded_gaps(sc)
    n = len(crowded)

    def gap_options(crowd: bool, k: int, last: bool) -> list[str]:
        if last:
            return [""]
        alphabet = orders if crowd else "n"
        return ["".join(p) for length in range(k + 1)
                for p in itertools.product(alphabet, repeat=length)]

    options = [gap_options(crowded[i], sc.max_observations, i == n - 1) for i in range(n)]
    points: list[int | None] = [None]
    if restarts and sc.restart == "anywhere":
        points.extend(range(n))
    for point in points:
        for combo in itertools.product(*options):
            gaps = list(combo)
            if point is not None:
                gaps[point] = "R" + gaps[point]
            yield Schedule(tuple(gaps))


# -- the decoder ---------------------------------------------------------------------------------


@pytest.mark.parametrize("sc", SMALL, ids=lambda sc: sc.id)
@pytest.mark.parametrize("restart", ["never", "anywhere"])
@pytest.mark.parametrize("orders", ["no", "n"])
def test_index_to_schedule_is_the_old_enumeration_order(sc, restart, orders) -> None:
    sc = replace(sc, restart=restart)
    again = restarting_steps(sc)  # no added restart right after the story's own: see below
    old = [s for s in legacy_enumeration(sc, orders=orders)
           if not any(g.startswith("R") and again[i] for i, g in enumerate(s.gaps))]
    whole = space(sc, orders=orders, merge=False)
    assert whole.size == len(old)
    assert [whole.at(i) for i in range(whole.size)] == old == list(whole)
    merged = space(sc, orders=orders)
    assert [merged.at(i) for i in range(merged.size)] == list(merged)
    assert exhaustive_count(sc, orders=orders) == merged.size
    assert list(enumerate_exhaustive(sc, orders=orders)) == list(merged)
    assert len({s.id for s in merged}) == merged.size  # a bijection onto distinct schedules
    assert all(decode(s.id, sc) == s for s in list(merged)[:50])
    if not any(merged.merged):
        assert list(merged) == old
    else:  # the same plays, each once: see the test below
        assert {_plays(merged, s) for s in merged} == {_plays(merged, s) for s in old}


def _plays(sp, sched: Schedule) -> tuple[str, ...]:
    """What the driver sees of a schedule: per run of a visible gap and the gaps merged into it,
    the tokens played there, in order."""
    out: list[str] = []
    for g, tokens in enumerate(sched.gaps):
        if sp.merged[g]:
            out[-1] += tokens
        else:
            out.append(tokens)
    return tuple(out)


@pytest.mark.parametrize("restart", ["never", "anywhere"])
def test_merging_keeps_every_play_and_drops_only_repeats(restart) -> None:
    # delete-removes-every-exact-match with two observations a gap: the other namespace's
    # container (step 5) is invisible, so its gap's observations join step 4's.
    [sc] = [replace(s, max_observations=2, restart=restart) for s in CATALOG
            if s.id == "delete-removes-every-exact-match"]
    old = list(legacy_enumeration(sc))
    merged = space(sc)
    if restart == "anywhere":  # "nRn" across the two gaps has no place in one gap
        assert not any(merged.merged) and list(merged) == old
        return
    assert merged.merged == (False,) * 4 + (True, False)
    assert merged.options[3][-1] == "oooo"  # room for both gaps' observations
    plays = [_plays(merged, s) for s in merged]
    assert len(set(plays)) == len(plays) == merged.size < len(old)
    assert set(plays) == {_plays(merged, s) for s in old}


def test_the_count_needs_no_enumeration() -> None:
    [sc] = load_text(LONG, "long.yaml")
    sp = space(sc)
    # 7 quiet gaps of 4 options, 4 crowded ones of 15, 13 restart points (nothing is merged
    # where restarts may fall)
    assert sp.size == 10_782_720_000 == exhaustive_count(sc) == 4 ** 7 * 15 ** 4 * 13
    last = sp.at(sp.size - 1)
    assert last.gaps[-2] == "nnn" and last.gaps[-1] == "R"  # the last restart point
    # Without restarts the probe's gap joins the first (0..6 observations: 7 options).
    never = space(replace(sc, restart="never"))
    assert never.size == 7 * 4 ** 5 * 15 ** 4 == 362_880_000
    with pytest.raises(IndexError):
        sp.at(sp.size)


def test_steps_the_driver_cannot_list_are_merged_into_the_gap_before() -> None:
    [sc] = load_text(LONG, "long.yaml")
    assert invisible_steps(sc) == [False, True] + [False] * 9 + [True]
    assert not any(space(sc).merged)  # restart: anywhere
    sp = space(replace(sc, restart="never"))
    assert sp.merged == (False, True) + (False,) * 9 + (True,)
    assert sp.options[1] == ("",) and sp.options[0][-1] == "n" * 6 and sp.points == (None,)
    # The catalog's one such step: the container of another namespace beside a delete.
    [delete] = [s for s in CATALOG if s.id == "delete-removes-every-exact-match"]
    delete = replace(delete, restart="never")
    assert space(delete).merged == (False,) * 4 + (True, False)
    assert space(delete).size == 56 < space(delete, merge=False).size == 72


def test_no_restart_is_added_right_after_one_the_story_has() -> None:
    by_id = {sc.id: sc for sc in CATALOG}
    # create; journal_fault corrupt; restart: a restart after the story's adds nothing
    corrupt = by_id["journal-corrupt-fails-closed"]
    assert restarting_steps(corrupt) == [False, False, True]
    assert space(corrupt).points == (None, 0, 1)
    assert space(corrupt, merge=False).size == 3 * 4 * 4 < len(list(legacy_enumeration(corrupt)))
    # a power loss between steps restarts the driver too; one at a write step does not (yet)
    power = by_id["journal-power-loss-after-create"]
    faults = [s for s in power.story if s.action == "journal_fault"]
    assert faults and all("at" not in s.args for s in faults)
    assert [g for g, again in enumerate(restarting_steps(power)) if again] == \
        [s.index for s in faults]
    assert all(p is None or p not in {s.index for s in faults} for p in space(power).points)
    at_write = by_id["journal-power-loss-at-fsync-dir"]
    assert not any(restarting_steps(at_write))
    assert space(at_write).points == (None, *range(len(at_write.story)))
    # and without restarts (restart: never, or a driver that cannot) there is no point at all
    assert space(corrupt, restarts=False).points == space(replace(corrupt, restart="never")).points \
        == (None,)


def test_a_plan_holds_slices_never_schedules() -> None:
    [sc] = load_text(LONG, "long.yaml")
    items = list(plan(sc, Mode("exhaustive", max_schedules=1000)))
    explored = [i for i in items if i.label.startswith("exhaustive")]
    assert [i.label for i in explored] == [f"exhaustive-sample-{k}of5" for k in range(1, 6)]
    assert all(isinstance(i.schedules, ScheduleSlice) and len(i.schedules) == CHUNK
               for i in explored)
    facts = explored[0].exploration
    assert facts["mode"] == "sample" and facts["space"] == 10_782_720_000
    assert facts["explored"] == facts["bound"] == 1000 and facts["merged_gaps"] == 0
    small = list(plan(sc, Mode("exhaustive", max_schedules=DEFAULT_MAX_SCHEDULES)))
    assert len(small) == DEFAULT_MAX_SCHEDULES // CHUNK + 1  # and the default pinned one


# -- the sample ----------------------------------------------------------------------------------


@pytest.mark.parametrize("sc", SMALL[::4], ids=lambda sc: sc.id)
def test_the_levels_are_counted_and_decoded_exactly(sc) -> None:
    sp = space(replace(sc, restart="anywhere"))
    weights = [sp.weight(s) for s in sp]
    whole = Sample(sp, sc.id, sp.size)
    assert whole.k == max(weights) and whole.bounded == sp.size and whole.runs == 0
    for w in range(max(weights) + 1):
        assert whole.level(w) == weights.count(w)
    played = [whole.at(j) for j in range(sp.size)]
    assert sorted(s.id for s in played) == sorted(s.id for s in sp)  # each schedule once
    assert [sp.weight(s) for s in played] == sorted(weights)  # fewest interesting events first


def test_the_sample_is_bounded_levels_then_pct_runs_deterministically() -> None:
    [sc] = load_text(LONG, "long.yaml")
    sp = space(sc)
    sample = Sample(sp, sc.id, 5000)
    assert sample.k == 1 and sample.bounded == sample.level(0) + sample.level(1) == 3136
    assert sample.depths == (2, 3, 4) and sample.runs == 5000 - 3136
    again = Sample(space(sc), sc.id, 5000)
    ids = [sample.at(j).id for j in range(0, 5000, 7)]
    assert ids == [again.at(j).id for j in range(0, 5000, 7)]  # any worker, any order
    allowed = [set(o) for o in sp.options]
    for j in range(sample.bounded, 5000, 3):
        s = sample.at(j)
        assert all(g.replace("R", "", 1) in allowed[i] for i, g in enumerate(s.gaps))
        assert s.restarts <= 1
        # What a bounded level already played is drawn again (but a draw may stay after
        # REDRAWS tries): almost every run is past K.
    past = sum(sp.weight(sample.at(j)) > 1 for j in range(sample.bounded, 5000))
    assert past >= (5000 - 3136) * 0.99 and REDRAWS > 0
    assert Sample(sp, sc.id, 5000, seed=1).at(4000) != sample.at(4000) or \
        Sample(sp, sc.id, 5000, seed=1).at(4001) != sample.at(4001)
    with pytest.raises(IndexError):
        sample.at(5000)


def test_sampled_schedules_stay_in_the_space_where_gaps_are_merged() -> None:
    [sc] = load_text(LONG, "long.yaml")
    sp = space(replace(sc, restart="never"))  # gap 0 holds 6 observations, the others 3
    sample = Sample(sp, sc.id, 3000)
    allowed = [set(o) for o in sp.options]
    assert sample.runs > 0
    for j in range(3000):
        s = sample.at(j)
        assert all(g in allowed[i] for i, g in enumerate(s.gaps)), s.id


def test_the_guarantee_follows_the_formula() -> None:
    [sc] = load_text(LONG, "long.yaml")
    sample = Sample(space(sc), sc.id, 10000)
    facts = sample.facts()
    k, c = facts["pct"]["gaps"], facts["pct"]["kinds"]
    assert (k, c) == (12, 3)  # every gap (the last: a restart only); n, o and R
    depths = facts["pct"]["depths"]
    assert [(d, f["whole"]) for d, f in depths.items()] == [("2", True), ("3", True),
                                                             ("4", False)]
    for d, f in depths.items():
        assert f["per_run"] == pytest.approx(1 / (k * c) ** int(d))
        expected = 1.0 if f["whole"] else 1 - (1 - f["per_run"]) ** f["runs"]
        assert f["at_least_once"] == pytest.approx(expected)
    assert sum(f["runs"] for f in depths.values()) == facts["pct"]["runs"]


def test_a_depth_with_few_draws_is_played_whole_each_schedule_once() -> None:
    [sc] = load_text(LONG, "long.yaml")
    sp = space(sc)
    sample = Sample(sp, sc.id, DEFAULT_MAX_SCHEDULES)
    [(d2, whole2, n2), (d3, random3, n3), (d4, random4, n4)] = sample.segments
    assert (d2, d3, d4) == (2, 3, 4) and random3 is random4 is None
    assert n2 + n3 + n4 == sample.runs and (n2, n3, n4) == (136, 1364, 1364)
    for d, whole in ((2, whole2),):
        ids = [s.id for s in whole]
        assert len(set(ids)) == len(ids)
        # every schedule of d events (past K = 1): d observations and restarts, some of them
        # free (a first look where a sandbox has one container)
        assert all(s.observations + s.restarts <= d and sp.weight(s) > 1 for s in whole)
    played = [sample.at(j) for j in range(DEFAULT_MAX_SCHEDULES)]
    assert len({s.id for s in played}) > 0.85 * DEFAULT_MAX_SCHEDULES


def _one_event(sp) -> set[str]:
    """Brute force: the schedules of exactly one event, an interesting one."""
    return {s.id for s in sp if s.observations + s.restarts == 1 and sp.weight(s) == 1}


@pytest.mark.parametrize("sc", [
    sc for sc in SMALL if (lambda sp: 3 * len(_one_event(sp)) + 3 < Sample(sp, "", 1).level(1))(
        space(replace(sc, restart="anywhere")))][:4], ids=lambda sc: sc.id)
def test_a_whole_depth_is_every_schedule_of_that_many_interesting_events(sc) -> None:
    sp = space(replace(sc, restart="anywhere"))
    brute = _one_event(sp)
    # K = 0 whole, level 1 does not fit; depth 1 (its third of the runs) fits whole
    sample = Sample(sp, sc.id, Sample(sp, sc.id, 1).level(0) + 3 * len(brute) + 3)
    assert sample.k == 0
    d, whole, runs = sample.segments[0]
    assert d == 1 and whole is not None
    assert {s.id for s in whole} == brute and runs == len(brute) == len(whole)


def test_a_bug_of_two_interesting_events_is_in_level_two() -> None:
    # An intent and an adoption of the clone: two observations in the crowded handoff.
    [sc] = load_text(LONG, "long.yaml")
    sp = space(sc)
    witness = decode("1-0.0.0.0.nn.0.0.0.0.0.0.0", sc)
    assert sp.weight(witness) == 2
    assert sp.weight(decode("1-n.0.0.0.0.0.0.0.0.n.0.0", sc)) == 0  # one look at one container
    assert sp.weight(decode("1-nn.0.0.0.0.0.0.0.0.0.0.0", sc)) == 1
    assert sp.weight(decode("1-R.0.0.0.0.0.0.0.0.0.0.0", sc)) == 1
    sample = Sample(sp, sc.id, 31000)
    assert sample.k == 2
    assert witness in [sample.at(j) for j in range(sample.level(0) + sample.level(1),
                                                   sample.bounded)]


# -- the plugin ----------------------------------------------------------------------------------


@pytest.fixture
def long_story(pytester: pytest.Pytester, sandbox_state_dir: Path):
    pytester.makefile(".yaml", **{"scen/long": LONG})

    def run(*args: str) -> pytest.RunResult:
        return pytester.runpytest(*PLUGINS, "--sandbox-driver=reference",
                                  f"--sandbox-state-dir={sandbox_state_dir}",
                                  "--sandbox-scenarios=scen", "--sandbox-no-builtin", *args)

    return run


def test_sampled_items_are_named_and_reported(long_story, pytester) -> None:
    result = long_story("--sandbox-schedules=exhaustive", "--sandbox-max-schedules=400",
                        "--sandbox-report=r.json", "-v")
    assert result.ret == 0, result.stdout.str()[-3000:]
    result.stdout.fnmatch_lines(["*schedules exhaustive (a sample of 400 above 400 schedules)",
                                 "*long[[]exhaustive-sample-1of2[]] PASSED*",
                                 "*long[[]exhaustive-sample-2of2[]] PASSED*"])
    result.stdout.fnmatch_lines(["sampled: long: 400 of 10782720000 schedules (more than "
                                 "--sandbox-max-schedules=400): every schedule of at most K=0 "
                                 "interesting events, then 272 PCT-style runs (*)"])
    report = json.loads((pytester.path / "r.json").read_text())
    jsonschema.validate(report, SCHEMA)
    scenario = report["scenarios"]["long"]
    exploration = scenario["exploration"]
    assert exploration["mode"] == "sample" and exploration["space"] == 10_782_720_000
    assert exploration["explored"] == exploration["bound"] == 400
    assert exploration["k"] == 0 and exploration["bounded"] == 128
    assert exploration["levels"] == [128, 3008]
    assert exploration["pct"]["runs"] == 272 and set(exploration["pct"]["depths"]) == {"1", "2",
                                                                                        "3"}
    assert scenario["schedules"] == 400 + 1  # and the default pinned schedule


def test_xdist_workers_plan_the_same_sample(long_story, pytester) -> None:
    # Every worker decodes the same items (xdist stops on "Different tests were collected").
    result = long_story("--sandbox-schedules=exhaustive", "--sandbox-max-schedules=400",
                        "--sandbox-report=r.json", "-n", "2")
    assert result.ret == 0, result.stdout.str()[-3000:]
    assert result.parseoutcomes()["passed"] == 3
    report = json.loads((pytester.path / "r.json").read_text())
    assert report["scenarios"]["long"]["exploration"]["explored"] == 400


def test_a_space_under_the_bound_is_reported_whole(run_catalog_file) -> None:
    report = run_catalog_file("gap.yaml")
    exploration = report["scenarios"]["gap-missed"]["exploration"]
    # 16 ways the observations fall, times 4 restart points (none, or right after one of the
    # 3 steps: restart anywhere is the default, and the reference driver can restart)
    assert exploration == {"mode": "exhaustive", "space": 64, "explored": 64,
                           "bound": DEFAULT_MAX_SCHEDULES, "merged_gaps": 0}
    assert "exploration" not in report["scenarios"]["gap-missed"]["items"][
        next(iter(report["scenarios"]["gap-missed"]["items"]))]


@pytest.fixture
def run_catalog_file(pytester: pytest.Pytester, sandbox_state_dir: Path):
    def run(name: str) -> dict:
        (pytester.path / "scen").mkdir()
        (pytester.path / "scen" / name).write_text((ROOT / "scenarios" / name).read_text())
        result = pytester.runpytest(*PLUGINS, "--sandbox-driver=reference",
                                    f"--sandbox-state-dir={sandbox_state_dir}",
                                    "--sandbox-scenarios=scen", "--sandbox-no-builtin",
                                    "--sandbox-schedules=exhaustive", "--sandbox-report=r.json")
        assert result.ret == 0, result.stdout.str()[-3000:]
        report = json.loads((pytester.path / "r.json").read_text())
        jsonschema.validate(report, SCHEMA)
        return report

    return run


def test_a_sampled_schedule_replays(long_story) -> None:
    [sc] = load_text(LONG, "long.yaml")
    sample = Sample(space(sc), sc.id, 400)
    pct = sample.at(399)  # a PCT-style run, decoded from its number alone
    assert sample.space.weight(pct) > 0
    result = long_story(f"--sandbox-schedule=long@{pct.id}", "-v")
    assert result.ret == 0, result.stdout.str()[-3000:]
    result.stdout.fnmatch_lines([f"*long[[]{pct.id}[]] PASSED*"])
    outcomes = result.parseoutcomes()  # warnings are no outcome: an in-process run may collect
    assert outcomes.pop("passed") == 1 and set(outcomes) <= {"warnings"}, outcomes  # some


@pytest.mark.parametrize("args, message", [
    (("--sandbox-schedules=exhaustive", "--sandbox-max-schedules=0"),
     "--sandbox-max-schedules=0: give a whole number of schedules, 1 to 100000*"),
    (("--sandbox-schedules=exhaustive", "--sandbox-max-schedules=many"),
     "--sandbox-max-schedules=many: give a whole number*"),
    (("--sandbox-max-schedules=500",),
     "*--sandbox-max-schedules=500 applies to --sandbox-schedules=exhaustive; with pinned it "
     "would be ignored*"),
])
def test_bad_bounds_are_usage_errors(long_story, args, message) -> None:
    result = long_story(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*" + message])


def test_a_scenario_file_is_parsed_once_per_process(tmp_path: Path, monkeypatch) -> None:
    from pytest_sandbox_conformance.scenario import loader

    path = tmp_path / "long.yaml"
    path.write_text(LONG)
    calls = []
    real = loader.load_text
    monkeypatch.setattr(loader, "load_text", lambda *a, **k: calls.append(a) or real(*a, **k))
    first = loader.load_file(path)
    assert loader.load_file(path) == first and len(calls) == 1
    path.write_text(LONG.replace("title: long", "title: longer"))  # same size class, new text
    assert loader.load_file(path)[0].title == "longer" and len(calls) == 2
