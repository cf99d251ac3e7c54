"""Sensitivity: how many broken drivers the suite was *not* written against does it catch?

    python benchmarks/sensitivity.py                     # the catalog, exhaustive schedules
    python benchmarks/sensitivity.py --generate 200:1    # also generated stories (200, seed 1)
    python benchmarks/sensitivity.py --only no_dir_fsync # one driver
    python benchmarks/sensitivity.py --set holdout       # the held-out set, same table

For every driver of ``tests/sensitivity_drivers.py`` (invented before the suite's next checks and
frozen since, see that module), or with ``--set holdout`` of
``tests/sensitivity_drivers_holdout.py`` (the second frozen set, written after the catalog was
extended against the first), runs the bundled catalog in an empty temporary folder::

    python -m pytest --sandbox-driver=<module>:<name> --sandbox-schedules=exhaustive \
        -n 2 --sandbox-report=<tmp>/report.json -p no:cacheprovider -q

with ``PYTHONPATH=<repo>/tests:<repo>`` and the checkout's own catalog (``--sandbox-no-builtin
--sandbox-scenarios=<repo>/scenarios``: the installed catalog may be another checkout's, as with
an editable install made from another worktree), and prints one line per driver: caught or not, the
requirements its failures name (the JSON report's failed items' ``broken``), how many items
failed, and the seconds the run took. ``--generate N[:SEED]`` runs each driver a second time with
``--sandbox-schedules=generate:N:SEED`` and counts the failed generated items only (the
catalog's pinned schedules run beside them and are counted in the catalog column); if the suite
refuses that option the generated column says so, with the suite's reason, and is not counted. The last line is always::

    caught X/Y with the catalog, Z/Y with generated stories

(``Z`` is ``-`` when generated stories were not run). The reference driver is run first the same
way and must pass: exit status 1 if it does not (the counts would mean nothing), 0 otherwise;
how many drivers are caught is a figure, not a check. ``docs/sensitivity.md`` records a run.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
#: ``--set``: the module of ``tests/`` holding the frozen set, and its name -> (class,
#: requirements, category) table.
SETS = {
    "first": ("sensitivity_drivers", "SENSITIVITY"),
    "holdout": ("sensitivity_drivers_holdout", "HOLDOUT"),
}
#: A run that takes longer than this is stopped and reported as such.
TIMEOUT_S = 1800


@dataclass
class Run:
    """One pytest run of the catalog against one driver."""

    seconds: float
    exit_status: int
    report: dict | None
    output: str
    failed: list[tuple[str, list[str]]] = field(default_factory=list)  # (item, broken)

    @property
    def caught(self) -> bool:
        return bool(self.failed)

    @property
    def requirements(self) -> list[str]:
        return own_sorted(r for _, broken in self.failed for r in broken)

    @property
    def unjudged(self) -> int:
        """Failed items that name no requirement (the driver or the story itself failed)."""
        return sum(1 for _, broken in self.failed if not broken)


def own_sorted(reqs) -> list[str]:
    return sorted(set(reqs), key=lambda r: int(r.split("-")[1]))


def run_catalog(driver: str, schedules: str, workers: int, only: str | None = None) -> Run:
    """``pytest`` over the bundled catalog in an empty folder; the run and its JSON report.
    ``only``: count the failed items of that scenario alone (``generated``: the generated
    stories, not the catalog's pinned schedules that run beside them)."""
    with tempfile.TemporaryDirectory(prefix="sbx-sensitivity-") as folder:
        report = Path(folder) / "report.json"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), str(ROOT),
                                                          env.get("PYTHONPATH", "")]))
        cmd = [sys.executable, "-m", "pytest", f"--sandbox-driver={driver}",
               f"--sandbox-schedules={schedules}", f"--sandbox-report={report}",
               "--sandbox-no-builtin", f"--sandbox-scenarios={ROOT / 'scenarios'}",
               "-p", "no:cacheprovider", "-q"]
        if workers:
            cmd += ["-n", str(workers)]
        started = time.perf_counter()
        try:
            proc = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True,
                                  timeout=TIMEOUT_S)
            status, output = proc.returncode, proc.stdout + proc.stderr
        except subprocess.TimeoutExpired as exc:
            status = -1
            output = f"timed out after {TIMEOUT_S} s\n" + str(exc.stdout or "")[-3000:]
        seconds = time.perf_counter() - started
        data = json.loads(report.read_text()) if report.exists() else None
    run = Run(seconds, status, data, output)
    if data is not None:
        for sid, scenario in data["scenarios"].items():
            if only is not None and sid != only:
                continue
            for item, result in sorted(scenario["items"].items()):
                if result.get("outcome") == "failed":
                    run.failed.append((item, list(result.get("broken", []))))
    return run


def refusal(run: Run) -> str | None:
    """Why pytest refused the command line (a usage error), or None if it ran."""
    if run.report is not None or run.exit_status != 4:
        return None
    lines = [ln.strip() for ln in run.output.splitlines() if ln.strip()]
    said = [ln for ln in lines if "error" in ln.lower()] or lines or ["(no output)"]
    return re.sub(r"^(ERROR|error):\s*", "", said[-1])


def describe(run: Run) -> str:
    if run.report is None:
        tail = run.output.strip().splitlines()[-1:] or ["no output"]
        return f"NO REPORT (exit status {run.exit_status}: {tail[0][:100]})"
    head = f"{'caught' if run.caught else 'not caught':10}  failed {len(run.failed):3}  " \
           f"{run.seconds:6.1f} s"
    if not run.caught:
        return head
    note = f" ({run.unjudged} failed items name none)" if run.unjudged else ""
    return f"{head}  {', '.join(run.requirements) or '-'}{note}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--generate", metavar="N[:SEED]",
                    help="also run --sandbox-schedules=generate:N:SEED (SEED defaults to 0)")
    ap.add_argument("--set", dest="driver_set", choices=sorted(SETS), default="first",
                    help="which frozen set: first (tests/sensitivity_drivers.py, the default) "
                         "or holdout (tests/sensitivity_drivers_holdout.py)")
    ap.add_argument("--only", metavar="NAME", action="append",
                    help="only this sensitivity driver (may be repeated)")
    ap.add_argument("-n", "--workers", type=int, default=2, help="pytest-xdist workers (2)")
    args = ap.parse_args()

    sys.path[:0] = [str(TESTS), str(ROOT)]
    module_name, table_name = SETS[args.driver_set]
    drivers = getattr(importlib.import_module(module_name), table_name)

    names = list(drivers)
    if args.only:
        unknown = [n for n in args.only if n not in drivers]
        if unknown:
            ap.error(f"no sensitivity driver named {', '.join(unknown)}; "
                     f"known: {', '.join(names)}")
        names = args.only
    generate = None
    if args.generate:
        m = re.fullmatch(r"(\d+)(?::(\d+))?", args.generate)
        if not m:
            ap.error("--generate takes N or N:SEED")
        generate = f"generate:{m.group(1)}:{m.group(2) or 0}"

    reference = run_catalog("reference", "exhaustive", args.workers)
    ok = (reference.report is not None and not reference.failed
          and reference.report.get("counts", {}).get("passed", 0) > 0)
    print(f"reference driver, catalog exhaustive: "
          f"{'conformant' if ok else 'NOT CONFORMANT'} "
          f"({reference.report['counts'] if reference.report else 'no report'}, "
          f"{reference.seconds:.1f} s)")
    if not ok:
        print(reference.output[-3000:], file=sys.stderr)
        print(f"caught -/{len(names)} with the catalog, -/{len(names)} with generated stories")
        return 1

    caught = caught_generated = 0
    generated_refused: str | None = None
    generated_runs = 0
    width = max(len(n) for n in names)
    for name in names:
        _, requirements, category = drivers[name]
        spec = f"{module_name}:{name}"
        catalog = run_catalog(spec, "exhaustive", args.workers)
        caught += catalog.caught
        own = bool(set(requirements) & set(catalog.requirements))
        line = f"{name:{width}}  {category:11}  catalog: {describe(catalog)}"
        if catalog.caught and not own:
            line += f"  [its own {', '.join(requirements)} not named]"
        if generate and generated_refused is None:
            gen = run_catalog(spec, generate, args.workers, only="generated")
            generated_refused = refusal(gen)
            if generated_refused is None:
                generated_runs += 1
                caught_generated += gen.caught
                line += f"  | generated: {describe(gen)}"
        print(line, flush=True)

    if generate and generated_refused is not None:
        print(f"generated stories: column not available: pytest refuses "
              f"--sandbox-schedules={generate} (usage error, exit status 4): "
              f"{generated_refused!r}")
    total = len(names)
    z = str(caught_generated) if generate and generated_refused is None and generated_runs else "-"
    print(f"caught {caught}/{total} with the catalog, {z}/{total} with generated stories")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
