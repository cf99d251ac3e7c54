"""Generated stories: how fast, how false, how small.

    python benchmarks/generated.py                       # 2000 stories, seed 0, reference
    python benchmarks/generated.py --stories 5000:1
    python benchmarks/generated.py --drivers             # also each sensitivity driver
    python benchmarks/generated.py --drivers --only backup_name_any_suffix

In-process, on the fake engine (no pytest): the reference driver against ``--stories N[:SEED]``
generated stories, batch by batch exactly as ``--sandbox-schedules=generate:N:SEED`` plays
them (``run/story_check.explore``). Prints the stories played, the steps and observations they
held, false failures (failures and refused stories: both must be 0, else exit status 1) and
stories per second. Then, with ``--drivers``, each driver of ``tests/sensitivity_drivers.py``
(and ``tests/broken_drivers.py`` with ``--broken``) against the same batches until one fails:
caught or not, the check and requirement, how many stories it took, the failing story's size
before and after shrinking (steps, observations, restarts), the plays shrinking took, and
whether the printed scenario file lints clean and replays the failure. ``docs/performance.md``
and ``docs/sensitivity.md`` record a run.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]

from pytest_sandbox_conformance.adapters.reference import factory  # noqa: E402
from pytest_sandbox_conformance.engines.fake import FakeEngine  # noqa: E402
from pytest_sandbox_conformance.exploration.stories import batches  # noqa: E402
from pytest_sandbox_conformance.plugin.suite import ENGINE_CAPABILITIES  # noqa: E402
from pytest_sandbox_conformance.run.runner import RunConfig  # noqa: E402
from pytest_sandbox_conformance.run.story_check import explore  # noqa: E402

#: What the reference driver's adapter offers on the fake engine.
CAPABILITIES = ENGINE_CAPABILITIES["fake"] | {"restart", "journal-faults", "gpu"}


def _config(driver, root: Path) -> RunConfig:
    return RunConfig(driver=driver, engine=FakeEngine, state_root=root)


def reference(n: int, seed: int, root: Path) -> int:
    played = refused = failed = 0
    started = time.perf_counter()
    for batch in batches(n, seed):
        out = explore(batch, _config(factory, root), CAPABILITIES)
        played += out.played
        refused += out.refused
        if out.failure is not None:
            failed += 1
            print(f"FALSE FAILURE in {batch.label}:\n{out.failure.render()[:4000]}")
    seconds = time.perf_counter() - started
    print(f"reference driver: {played} generated stories (generate:{n}:{seed}), "
          f"{failed} failed, {refused} refused by the engine, {seconds:.1f} s, "
          f"{played / seconds:.1f} stories/s")
    return 1 if failed or refused or played < n else 0


def drivers(names: list[str], module, n: int, seed: int, root: Path) -> None:
    caught = 0
    width = max(len(x) for x in names)
    for name in names:
        fn = getattr(module, name)
        started = time.perf_counter()
        played = 0
        found = None
        for batch in batches(n, seed):
            out = explore(batch, _config(fn, root), CAPABILITIES)
            played += out.played
            if out.found is not None:
                found = out
                break
        seconds = time.perf_counter() - started
        if found is None:
            print(f"{name:{width}}  not caught   {played:5d} stories  {seconds:6.1f} s", flush=True)
            continue
        caught += 1
        f = found.found
        check, req = f.key
        (s0, o0, r0), (s1, o1, r1) = f.first.size(), f.smallest.size()
        lint = "lint clean" if not found.lint_problems else "LINT: " + re.sub(
            r"\s+", " ", found.lint_problems[0])[:80]
        print(f"{name:{width}}  caught       {played:5d} stories  {seconds:6.1f} s  {check} "
              f"{req or '-'}; {s0} steps/{o0} obs/{r0} restarts -> {s1}/{o1}/{r1} in "
              f"{found.shrink_plays} plays; replays: {'yes' if found.replays else 'NO'}; {lint}",
              flush=True)
    print(f"caught {caught}/{len(names)} with generate:{n}:{seed}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stories", default="2000", metavar="N[:SEED]")
    ap.add_argument("--drivers", action="store_true", help="also each sensitivity driver")
    ap.add_argument("--broken", action="store_true", help="also each broken driver")
    ap.add_argument("--driver-stories", default="200", metavar="N[:SEED]",
                    help="stories per driver (default 200)")
    ap.add_argument("--only", action="append", metavar="NAME")
    args = ap.parse_args()
    m = re.fullmatch(r"(\d+)(?::(\d+))?", args.stories)
    d = re.fullmatch(r"(\d+)(?::(\d+))?", args.driver_stories)
    if not m or not d:
        ap.error("give N or N:SEED")
    shm = Path("/dev/shm")
    root = Path(tempfile.mkdtemp(prefix="sbx-bench-", dir=shm if shm.is_dir() else None))
    try:
        status = reference(int(m.group(1)), int(m.group(2) or 0), root) \
            if int(m.group(1)) else 0
        dn, ds = int(d.group(1)), int(d.group(2) or 0)
        if args.drivers:
            import sensitivity_drivers

            names = args.only or list(sensitivity_drivers.SENSITIVITY)
            drivers(names, sensitivity_drivers, dn, ds, root)
        if args.broken:
            import broken_drivers

            drivers(args.only or list(broken_drivers.BROKEN), broken_drivers, dn, ds, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
