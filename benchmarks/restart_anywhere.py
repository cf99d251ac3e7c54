"""Benchmark: what ``restart: anywhere`` as every scenario's default would cost the catalog.

    python benchmarks/restart_anywhere.py

Plays the catalog's exhaustive schedules (this checkout's ``scenarios/``) in-process (``run.runner.play``: the reference
driver on the fake engine, as pytest items play them, without pytest) twice: as the scenarios
declare ``restart`` (``never`` unless they say ``anywhere``), and with every scenario set to
``restart: anywhere``. Prints per run the schedules, the seconds and schedules/s, the ratio of
the two, and the scenarios whose expectations the reference driver does not meet once a restart
can fall anywhere (with the count of failing schedules and the first one). ``docs/scenarios.md``
("Restarts") and ``docs/performance.md`` record why ``never`` stays the default.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pytest_sandbox_conformance.adapters.reference import factory  # noqa: E402
from pytest_sandbox_conformance.engines.fake import FakeEngine  # noqa: E402
from pytest_sandbox_conformance.exploration.space import space  # noqa: E402
from pytest_sandbox_conformance.plugin.collect import scenario_files  # noqa: E402
from pytest_sandbox_conformance.run.failure import ConformanceFailure  # noqa: E402
from pytest_sandbox_conformance.run.runner import RunConfig, play  # noqa: E402
from pytest_sandbox_conformance.scenario.loader import load_paths  # noqa: E402


def sweep(scenarios, cfg: RunConfig) -> tuple[int, float, Counter, dict[str, str]]:
    played, failed, first = 0, Counter(), {}
    start = time.perf_counter()
    for sc in scenarios:
        for sched in space(sc):
            played += 1
            try:
                play(sc, sched, cfg)
            except ConformanceFailure as exc:
                failed[sc.id] += 1
                first.setdefault(sc.id, exc.summary())
    return played, time.perf_counter() - start, failed, first


def main() -> int:
    scenarios, errors = load_paths(scenario_files(ROOT / "scenarios"))  # this checkout's
    if errors:
        raise SystemExit("\n".join(map(str, errors)))
    scenarios = [sc for sc in scenarios if "live" not in sc.needs]
    shm = Path("/dev/shm")
    with tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else None) as d:
        cfg = RunConfig(driver=factory, engine=FakeEngine, state_root=Path(d))
        declared = sweep(scenarios, cfg)
        anywhere = sweep([replace(sc, restart="anywhere") for sc in scenarios], cfg)
    for name, (n, secs, failed, _) in (("as declared", declared), ("restart: anywhere", anywhere)):
        print(f"{name:18}: {n} schedules in {secs:.1f} s ({n / secs:.0f} schedules/s), "
              f"{sum(failed.values())} failing")
    print(f"schedules anywhere / declared: {anywhere[0] / declared[0]:.2f}; "
          f"time: {anywhere[1] / declared[1]:.2f}")
    print(f"scenarios the reference driver fails once restarts fall anywhere: {len(anywhere[2])}")
    for sid, count in sorted(anywhere[2].items()):
        print(f"  {sid}: {count} schedules, e.g. {anywhere[3][sid][:150]}")
    return 1 if declared[2] else 0


if __name__ == "__main__":
    raise SystemExit(main())
