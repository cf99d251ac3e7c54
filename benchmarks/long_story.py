"""Benchmark: exploring a 12-step story whose schedule space no run could play whole.

    python benchmarks/long_story.py [--seconds 60] [--bound 10000]

The story (:data:`STORY`, written here): NemoClaw's swap with a probe container in another
namespace, a wait loop on the clone (stopped, started, stopped again) and a rollback to the
backup, ``max_observations: 3``, ``restart: anywhere``: billions of schedules. The schedules are
played in-process (``run.runner.play``: the reference driver on the fake engine, as a pytest
item plays them, without pytest), in the order ``--sandbox-schedules=exhaustive`` plays them
above ``--sandbox-max-schedules`` (``exploration/sample.py``: the bounded levels K = 0, 1, ...,
then PCT-style runs). Prints:

* the space: its size, the merged gaps (none with restarts; the space without restarts, where
  the probe's gap is merged), the sizes of the levels;
* schedules explored per second by the reference driver (for ``--seconds``), and the bound K
  reached in that time (every level up to K played whole);
* what the default ``--sandbox-max-schedules`` explores of it: K, the PCT runs and their
  guarantee per depth;
* with :class:`NoRollback` (a broken driver whose bug needs **two** interesting observations:
  an intent, then an adoption of the clone, before it can refuse the rollback), the seconds and
  schedules until the first failure, in the sample's order and in the exhaustive enumeration
  order (index order), which reaches it only after every schedule with an earlier gap changed.

Exit status 1 if the reference driver fails a schedule or the broken driver is not caught within
the bound (those are checks, not figures).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pytest_sandbox_conformance.adapters.base import DriverContext  # noqa: E402
from pytest_sandbox_conformance.adapters.reference import ReferenceAdapter, factory  # noqa: E402
from pytest_sandbox_conformance.api import Condition  # noqa: E402
from pytest_sandbox_conformance.engines.fake import FakeEngine  # noqa: E402
from pytest_sandbox_conformance.exploration.sample import Sample  # noqa: E402
from pytest_sandbox_conformance.exploration.schedule import DEFAULT_MAX_SCHEDULES  # noqa: E402
from pytest_sandbox_conformance.exploration.space import space  # noqa: E402
from pytest_sandbox_conformance.run.failure import ConformanceFailure  # noqa: E402
from pytest_sandbox_conformance.run.runner import RunConfig, play  # noqa: E402
from pytest_sandbox_conformance.scenario.loader import load_text  # noqa: E402
from reference_driver import ReferenceDriver  # noqa: E402
from reference_driver.decision import Decision, Outcome  # noqa: E402

STORY = """\
id: long-swap-rollback
title: NemoClaw's swap with a probe container, a wait loop and a rollback
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
    namespace: nemoclaw-probe
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


class NoRollback(ReferenceDriver):
    """Never rolls back: when the adopted clone is gone and the retired backup is canonical and
    running again, it reports the instance missing instead (OWN-13). Its bug shows only after it
    adopted the clone, which takes two observations of the crowded handoff (intent, adoption)."""

    def decide(self, record, candidates, canonical: str) -> Decision:
        decision = super().decide(record, candidates, canonical)
        if decision.outcome != Outcome.ROLLBACK:
            return decision
        return Decision(Outcome.MISSING, record, None, record.authority,
                        Condition("False", "ContainerInstanceMissing", "no rollback"))


def no_rollback(ctx: DriverContext) -> ReferenceAdapter:
    return ReferenceAdapter(ctx, NoRollback, name="no_rollback")


def first_failure(sc, order, cfg: RunConfig, limit: int) -> tuple[int | None, float, str]:
    start = time.perf_counter()
    for n, sched in enumerate(order, 1):
        if n > limit:
            break
        try:
            play(sc, sched, cfg)
        except ConformanceFailure as exc:
            return n, time.perf_counter() - start, exc.summary()
    return None, time.perf_counter() - start, ""


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--bound", type=int, default=DEFAULT_MAX_SCHEDULES)
    args = ap.parse_args()
    [sc] = load_text(STORY, "long_story.yaml")
    sp = space(sc)
    sample = Sample(sp, sc.id, args.bound)
    print(f"story: {len(sc.story)} steps, max_observations {sc.max_observations}, "
          f"restart {sc.restart}")
    print(f"space: {sp.size} schedules ({sp.size:.2e}); merged gaps: {sum(sp.merged)} "
          f"(before merging: {space(sc, merge=False).size:.2e})")
    never = replace(sc, restart="never")
    print(f"without restarts: {space(never).size:.2e} schedules, {sum(space(never).merged)} "
          f"merged gaps (before merging: {space(never, merge=False).size:.2e})")
    levels = [sample.level(w) for w in range(5)]
    print(f"levels K=0..4 (schedules with exactly K interesting events): {levels}")
    with tempfile.TemporaryDirectory(dir="/dev/shm" if Path("/dev/shm").is_dir() else None) as d:
        cfg = RunConfig(driver=factory, engine=FakeEngine, state_root=Path(d))
        big = Sample(sp, sc.id, min(sp.size, 10 ** 9))
        played, start, cpu = 0, time.perf_counter(), time.process_time()
        while time.perf_counter() - start < args.seconds:
            try:
                play(sc, big.at(played), cfg)
            except ConformanceFailure as exc:
                print(f"the reference driver fails {big.at(played).id}: {exc.summary()}")
                return 1
            played += 1
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu
        rate = played / elapsed
        reached, total = None, 0
        for w in range(20):
            total += big.level(w)
            if total > played:
                break
            reached = w
        print(f"reference driver: {played} schedules in {elapsed:.1f} s: "
              f"{rate:.0f} schedules/s ({played / cpu:.0f} per CPU second: what a quiet "
              "machine gives)")
        print(f"bound K reached in {args.seconds:.0f} s: {reached} "
              f"(next level: {big.level((reached or 0) + 1)} schedules)")
        facts = sample.facts()
        print(f"--sandbox-max-schedules={args.bound}: K={facts['k']}, {facts['bounded']} "
              f"bounded + {facts['pct']['runs']} PCT runs (k={facts['pct']['gaps']} gaps, "
              f"c={facts['pct']['kinds']} kinds), about {args.bound / rate:.0f} s")
        for depth, f in facts["pct"]["depths"].items():
            print(f"  depth {depth}: {f['runs']} runs, "
                  + ("played whole (found surely)" if f["whole"] else
                     f">= {f['per_run']:.2e} per run, >= {f['at_least_once']:.3f} at least once"))
        distinct = len({sample.at(j).id for j in range(args.bound)})
        print(f"  distinct schedules among the {args.bound}: {distinct}")
        broken = RunConfig(driver=no_rollback, engine=FakeEngine, state_root=Path(d))
        n, secs, what = first_failure(sc, (sample.at(j) for j in range(args.bound)), broken,
                                      args.bound)
        if n is None:
            print(f"no_rollback: not caught in {args.bound} schedules")
            return 1
        print(f"no_rollback, sample order: first failure at schedule {n} after {secs:.1f} s "
              f"({what[:100]})")
        limit = int(rate * args.seconds)
        n2, secs2, _ = first_failure(sc, iter(sp), broken, limit)
        print("no_rollback, enumeration order: "
              + (f"first failure at schedule {n2} after {secs2:.1f} s" if n2 else
                 f"not caught in {limit} schedules ({secs2:.0f} s)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
