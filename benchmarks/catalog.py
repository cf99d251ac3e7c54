"""Benchmark: the bundled catalog under exhaustive schedules, in one process and with -n 2.

    python benchmarks/catalog.py [--driver reference] [--repeat 1] [--catalog scenarios]

Prints the number of scenarios and schedules, what one process pays before it runs anything
(``--collect-only``, in CPU seconds: start-up and collection, which every xdist worker pays
once, and the same with the suite off, start-up alone), the wall time of the whole catalog
with -n 0 and -n 2 (each a full pytest run in a subprocess, in the same run so the ratio is
fair on a noisy machine),
scenario-schedule runs per second, and the ratios -n 2 / -n 0 (wall time) and -n 0 / -n 2 (the
speed-up). The targets (docs/performance.md): the exhaustive catalog within 60 s, and -n 2 at
least 1.6 times faster.
"""

from __future__ import annotations

import argparse
import resource
from pathlib import Path

from _pytest_run import time_pytest
from pytest_sandbox_conformance.plugin.collect import catalog_dir, scenario_files
from pytest_sandbox_conformance.scenario.loader import load_paths
from pytest_sandbox_conformance.exploration.schedule import exhaustive_count, pinned


#: ``--catalog DIR``: run the scenario files of DIR instead of the bundled catalog.
CATALOG: list[str] = []


def run(driver: str, workers: int) -> float:
    return time_pytest([f"--sandbox-driver={driver}", "--sandbox-schedules=exhaustive",
                        *CATALOG], workers, "the catalog")


def collect(driver: str | None) -> float:
    """CPU seconds of one process's start-up and collection of the exhaustive catalog
    (``--collect-only``; CPU time, which a busy machine disturbs less than wall time); without a
    driver the suite is off: start-up alone."""
    args = ["--collect-only"] + ([f"--sandbox-driver={driver}",
                                  "--sandbox-schedules=exhaustive", *CATALOG] if driver else [])
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    time_pytest(args, 0, "collection", expect=(0, 5))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--driver", default="reference")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--catalog", help="a folder of scenario files instead of the bundled "
                    "catalog (a checkout's scenarios/)")
    args = ap.parse_args()
    folder = catalog_dir()
    if args.catalog:
        folder = Path(args.catalog).resolve()
        CATALOG[:] = ["--sandbox-no-builtin", f"--sandbox-scenarios={folder}"]
    scenarios, errors = load_paths(scenario_files(folder))
    if errors:
        raise SystemExit("\n".join(map(str, errors)))
    schedules = sum(exhaustive_count(s) + len(pinned(s)) for s in scenarios)
    print(f"scenarios: {len(scenarios)}")
    print(f"schedules (exhaustive + pinned): {schedules}")
    collecting = min(collect(args.driver) for _ in range(3))
    starting = min(collect(None) for _ in range(3))
    print(f"one process, --collect-only: {collecting:.2f} s CPU "
          f"(start-up alone, suite off: {starting:.2f} s; collection: "
          f"{collecting - starting:.2f} s)")
    serial = min(run(args.driver, 0) for _ in range(args.repeat))
    parallel = min(run(args.driver, 2) for _ in range(args.repeat))
    print(f"wall time -n 0: {serial:.1f} s")
    print(f"wall time -n 2: {parallel:.1f} s")
    print(f"runs per second (-n 0): {schedules / serial:.0f}")
    print(f"wall time ratio -n 2 / -n 0: {parallel / serial:.2f}")
    print(f"speed-up -n 2 vs -n 0: {serial / parallel:.2f}")


if __name__ == "__main__":
    main()
