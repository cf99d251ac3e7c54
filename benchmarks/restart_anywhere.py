"""Benchmark: what ``restart: anywhere``, every scenario's default, costs the catalog.

    python benchmarks/restart_anywhere.py [--pytest] [--workers 2]

Plays the catalog's exhaustive exploration (this checkout's ``scenarios/``: for each scenario
the schedules ``--sandbox-schedules=exhaustive`` plays, a prioritised sample of
``--sandbox-max-schedules`` above the bound) in-process (``run.runner.play``: the reference
driver on the fake engine, as pytest items play them, without pytest) twice, in one run: with
every scenario set to ``restart: never``, and as the scenarios say (``anywhere`` unless they say
``never``). Prints per sweep the schedules, the seconds and schedules/s, the failing schedules,
the ratios of the two and the slowest scenarios with restarts (a scenario's target: under a
minute), and any scenario whose expectations the reference driver does not meet (with the count
of failing schedules and the first one). With ``--pytest`` it also times the catalog's main job
(``pytest --sandbox-driver=reference --sandbox-schedules=exhaustive -n WORKERS``) on a copy of
the catalog set to ``restart: never`` and on the catalog itself. ``docs/performance.md``
records the figures.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _pytest_run import time_pytest  # noqa: E402
from pytest_sandbox_conformance.adapters.reference import factory  # noqa: E402
from pytest_sandbox_conformance.engines.fake import FakeEngine  # noqa: E402
from pytest_sandbox_conformance.exploration.plan import Mode, exploration  # noqa: E402
from pytest_sandbox_conformance.plugin.collect import scenario_files  # noqa: E402
from pytest_sandbox_conformance.run.failure import ConformanceFailure  # noqa: E402
from pytest_sandbox_conformance.run.runner import RunConfig, play  # noqa: E402
from pytest_sandbox_conformance.scenario.loader import load_paths  # noqa: E402


def sweep(scenarios, cfg: RunConfig):
    """(schedules, seconds, failing per scenario, first failure per scenario, seconds per
    scenario) of the exhaustive exploration of ``scenarios``."""
    played, failed, first, per = 0, Counter(), {}, {}
    start = time.perf_counter()
    for sc in scenarios:
        t = time.perf_counter()
        _, source, facts = exploration(sc, Mode("exhaustive"))
        for sched in source.slice(0, facts["explored"]):
            played += 1
            try:
                play(sc, sched, cfg)
            except ConformanceFailure as exc:
                failed[sc.id] += 1
                first.setdefault(sc.id, exc.summary())
        per[sc.id] = (facts["explored"], time.perf_counter() - t)
    return played, time.perf_counter() - start, failed, first, per


def never_copy(folder: Path) -> Path:
    """The catalog's files with every scenario set to ``restart: never``."""
    out = folder / "never"
    out.mkdir()
    for path in scenario_files(ROOT / "scenarios"):
        text = re.sub(r"^restart: \w+\n", "", path.read_text(), flags=re.M)
        text = re.sub(r"^(id: .*)$", r"\1\nrestart: never", text, flags=re.M)
        (out / path.name).write_text(text)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pytest", action="store_true", help="also time the catalog through pytest")
    ap.add_argument("--workers", type=int, default=2, help="pytest -n for --pytest (default 2)")
    args = ap.parse_args()
    scenarios, errors = load_paths(scenario_files(ROOT / "scenarios"))  # this checkout's
    if errors:
        raise SystemExit("\n".join(map(str, errors)))
    scenarios = [sc for sc in scenarios if "live" not in sc.needs]
    shm = Path("/dev/shm")
    with tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else None) as d:
        cfg = RunConfig(driver=factory, engine=FakeEngine, state_root=Path(d))
        never = sweep([replace(sc, restart="never") for sc in scenarios], cfg)
        default = sweep(scenarios, cfg)
    for name, (n, secs, failed, _, _) in (("restart: never", never), ("as declared", default)):
        print(f"{name:15}: {n} schedules in {secs:.1f} s ({n / secs:.0f} schedules/s), "
              f"{sum(failed.values())} failing")
    print(f"default / never: schedules {default[0] / never[0]:.2f}, "
          f"time {default[1] / never[1]:.2f}")
    slowest = sorted(default[4].items(), key=lambda kv: -kv[1][1])[:3]
    print("slowest with restarts: " + ", ".join(f"{sid} ({n} schedules, {s:.1f} s)"
                                                for sid, (n, s) in slowest))
    print(f"scenarios the reference driver fails with restarts: {len(default[2])}")
    for sid, count in sorted(default[2].items()):
        print(f"  {sid}: {count} schedules, e.g. {default[3][sid][:150]}")
    if args.pytest:
        env = dict(os.environ, PYTHONPATH=str(ROOT))  # this checkout's suite
        base = ["--sandbox-driver=reference", "--sandbox-schedules=exhaustive",
                "--sandbox-no-builtin"]
        with tempfile.TemporaryDirectory() as d:
            folder = never_copy(Path(d))
            t_never = time_pytest(base + [f"--sandbox-scenarios={folder}"], args.workers,
                                  "the catalog, restart: never", env=env)
            t_default = time_pytest(base + [f"--sandbox-scenarios={ROOT / 'scenarios'}"],
                                    args.workers, "the catalog as declared", env=env)
        print(f"catalog through pytest -n {args.workers}: restart: never {t_never:.1f} s, "
              f"as declared {t_default:.1f} s, ratio {t_default / t_never:.2f}")
    return 1 if never[2] or default[2] else 0


if __name__ == "__main__":
    raise SystemExit(main())
