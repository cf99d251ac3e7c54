#!/usr/bin/env python3
"""How the cost of one observation pass of the reference driver grows with the sandbox count.

Run it from the repository root::

    python benchmarks/observe_scale.py            # the table, then the cost ratio
    python benchmarks/observe_scale.py --profile  # also a cProfile of the largest size

For each size (10, 1,000 and 10,000 sandboxes) it builds, untimed, a FakeEngine and a
ReferenceDriver over a temporary state folder, creates the sandboxes through the driver (one
container each), and gives a tenth of them a duplicate the way an outside client would: a second
container with the sandbox's labels copied, created and started directly on the engine. Then:

* one *first* pass, timed on its own: it sees the duplicates for the first time and raises one
  ``ContainerIdentityConflict`` warning per duplicated sandbox (OWN-3);
* several *steady* passes, each timed with ``time.perf_counter``; the table reports their median.

Checks (the script exits 1 if one fails): the steady passes write nothing to the journal (an
observation that changes nothing writes nothing) and make exactly one engine ``list`` call each.

The last line is ``cost ratio 10000/10 per sandbox: X``: the per-sandbox cost at 10,000 sandboxes
divided by the per-sandbox cost at 10. The target is X <= 2 (the pass is linear in the sandbox
count; at 10 sandboxes the fixed per-pass overhead dominates, which only lowers X). Compare only
ratios measured in one run: machines are shared and noisy, absolute figures are not comparable
across runs.

The journal folder lives under ``/dev/shm`` when it exists (the untimed setup writes two journal
files per sandbox, each fsynced; a tmpfs keeps the setup short) and under the system's temporary
folder otherwise; ``--state-parent`` overrides this. The timed passes write no files either way.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import math
import os
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

# Runnable as ``python benchmarks/observe_scale.py`` without installing the project.
_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from pytest_sandbox_conformance.api import PlatformEvent, SandboxSpec  # noqa: E402
from pytest_sandbox_conformance.engines.base import ContainerSpec  # noqa: E402
from pytest_sandbox_conformance.engines.fake import FakeEngine  # noqa: E402
from reference_driver import ReferenceDriver  # noqa: E402

SIZES = (10, 1_000, 10_000)
DUPLICATE_EVERY = 10  # a tenth of the sandboxes get a duplicate
MIN_PASSES = 7
MAX_PASSES = 1001
TARGET_SECONDS_PER_SIZE = 1.0  # time spent in steady passes per size, roughly
TARGET_RATIO = 2.0


def _state_parent(explicit: str | None) -> str | None:
    if explicit:
        return explicit
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        return str(shm)
    return None  # tempfile's default


def build(n: int, state_dir: str) -> tuple[FakeEngine, ReferenceDriver, int]:
    """N sandboxes, one container each; every tenth gets a label-copying duplicate. Untimed."""
    engine = FakeEngine(seed=f"bench-{n}")
    driver = ReferenceDriver(engine, state_dir, namespace="bench")
    duplicates = 0
    for i in range(n):
        snap = driver.create(SandboxSpec(id=f"sbx-{i:05d}", name=f"box{i}"))
        if i % DUPLICATE_EVERY == 0:
            original = engine.inspect(snap.instance_id)
            # An outside client copies every label, as the GPU handoff's clone does (contract §2).
            dup = engine.create(ContainerSpec(name=f"{original.name}-copy", image=original.image,
                                              labels=dict(original.labels),
                                              command=original.command))
            engine.start(dup)
            duplicates += 1
    return engine, driver, duplicates


def measure(n: int, state_parent: str | None, profile: bool) -> dict:
    with tempfile.TemporaryDirectory(prefix="observe-scale-", dir=state_parent) as tmp:
        engine, driver, duplicates = build(n, tmp)
        watcher = driver.watch()
        watcher.drain()  # the current snapshots and the creation backlog: not what we count

        gc.collect()
        writes0 = driver.journal.writes
        t0 = time.perf_counter()
        driver.observe()
        first = time.perf_counter() - t0
        first_writes = driver.journal.writes - writes0
        first_warnings = [e for e in watcher.drain()
                          if isinstance(e, PlatformEvent) and e.type == "Warning"]

        # Steady state: a warm-up pass (untimed), then the timed passes.
        t0 = time.perf_counter()
        driver.observe()
        warm = time.perf_counter() - t0
        passes = max(MIN_PASSES, min(MAX_PASSES, math.ceil(TARGET_SECONDS_PER_SIZE / warm)))
        watcher.drain()

        gc.collect()
        writes0 = driver.journal.writes
        lists0 = engine.calls["list"]
        calls0 = sum(engine.calls.values())
        times = []
        for _ in range(passes):
            t0 = time.perf_counter()
            driver.observe()
            times.append(time.perf_counter() - t0)
        writes = driver.journal.writes - writes0
        lists = engine.calls["list"] - lists0
        other_calls = sum(engine.calls.values()) - calls0 - lists
        steady_events = len(watcher.drain())

        profile_text = ""
        if profile:
            prof = cProfile.Profile()
            prof.enable()
            for _ in range(3):
                driver.observe()
            prof.disable()
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(15)
            profile_text = out.getvalue()
        watcher.close()

    median = statistics.median(times)
    return {
        "n": n,
        "duplicates": duplicates,
        "first": first,
        "first_writes": first_writes,
        "first_warnings": len(first_warnings),
        "passes": passes,
        "median": median,
        "us_per_sandbox": median / n * 1e6,
        "writes": writes,
        "lists_per_pass": lists / passes,
        "other_calls": other_calls,
        "steady_events": steady_events,
        "profile": profile_text,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", action="store_true",
                        help="print a cProfile of three steady passes at the largest size")
    parser.add_argument("--state-parent", default=None,
                        help="where to make the temporary journal folder (default: /dev/shm if "
                             "writable, else the system temporary folder)")
    args = parser.parse_args(argv)
    parent = _state_parent(args.state_parent)

    started = time.perf_counter()
    print(f"observe_scale: Python {sys.version.split()[0]}, {os.cpu_count()} CPU(s), "
          f"journal under {parent or tempfile.gettempdir()}")
    print(f"each sandbox has one container; every {DUPLICATE_EVERY}th also has a label-copying "
          "duplicate")
    print()
    print("first pass (sees the duplicates for the first time):")
    print(f"{'sandboxes':>10} {'duplicates':>10} {'seconds':>10} {'us/sandbox':>11} "
          f"{'warnings':>9} {'writes':>7}")
    results = []
    for n in SIZES:
        r = measure(n, parent, args.profile and n == SIZES[-1])
        results.append(r)
        print(f"{r['n']:>10,} {r['duplicates']:>10,} {r['first']:>10.6f} "
              f"{r['first'] / r['n'] * 1e6:>11.2f} {r['first_warnings']:>9,} "
              f"{r['first_writes']:>7}")
    print()
    print("steady state (median of the timed passes, after a warm-up pass):")
    print(f"{'sandboxes':>10} {'passes':>7} {'median s/pass':>14} {'us/sandbox':>11} "
          f"{'journal writes':>15} {'list calls/pass':>16} {'events':>7}")
    failures = []
    for r in results:
        print(f"{r['n']:>10,} {r['passes']:>7} {r['median']:>14.6f} {r['us_per_sandbox']:>11.2f} "
              f"{r['writes']:>15} {r['lists_per_pass']:>16g} {r['steady_events']:>7}")
        if r["writes"] != 0:
            failures.append(f"{r['n']} sandboxes: {r['writes']} journal write(s) during "
                            "observations that changed nothing (must be 0)")
        if r["lists_per_pass"] != 1:
            failures.append(f"{r['n']} sandboxes: {r['lists_per_pass']:g} engine list calls per "
                            "pass (must be 1)")
        if r["other_calls"]:
            failures.append(f"{r['n']} sandboxes: {r['other_calls']} engine calls besides list "
                            "during the timed passes")
    for r in results:
        if r["profile"]:
            print()
            print(f"cProfile of 3 steady passes at {r['n']:,} sandboxes (by own time):")
            print(r["profile"].rstrip())
    print()
    for failure in failures:
        print(f"FAILED: {failure}")
    small, large = results[0], results[-1]
    ratio = large["us_per_sandbox"] / small["us_per_sandbox"]
    verdict = "met" if ratio <= TARGET_RATIO else "MISSED (run with --profile)"
    print(f"total run time {time.perf_counter() - started:.1f} s; target ratio <= {TARGET_RATIO:g}: "
          f"{verdict}")
    print(f"cost ratio {large['n']}/{small['n']} per sandbox: {ratio:.2f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
