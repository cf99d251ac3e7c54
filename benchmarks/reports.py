"""Benchmark: what the reports cost, in time and in bytes.

    python benchmarks/reports.py [--repeat 2]

1. **Time added** to the exhaustive catalog (a whole pytest run in a subprocess, ``-n 0``) by
   the reports, for the reference driver (no failure) and for ``trusts_labels_last_wins`` (most
   items fail, each one drawn in full). Measured two ways:

   * *inside the run* (the headline): the run is instrumented (``--inner``) to add up the CPU
     time of everything the reports do: each failure's data (``failure_to_json``), recording
     outcomes (``Results.pytest_runtest_logreport``), and at the end building the report and
     writing the JSON, the HTML and the claim (``Results.pytest_sessionfinish``) and the terminal
     table; the ratio is ``run / (run - reports)`` (target: at most 1.05);
   * *A/B*: whole runs with and without ``--sandbox-report``, ``--sandbox-html`` and
     ``--sandbox-claim`` alternate, the best of ``--repeat`` each, CPU and wall time. On a shared
     machine their ratio moves by several percent from run to run either way, more than the
     reports cost, so it is printed for the record only.
2. **Size**: the HTML and JSON reports of those runs, and of a run with exactly 10 failing items
   (``-k`` picks three scenarios of the exhaustive catalog), target: HTML under 2 MB.

Exits 1 if a run does not end as expected (the reference driver passes, the broken one fails) or
the 10-failure run does not have 10 failing items.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

from _pytest_run import time_pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from pytest_sandbox_conformance.reports.claim import render_claim  # noqa: E402
from pytest_sandbox_conformance.reports.html_report import render  # noqa: E402

BROKEN = "broken_drivers:trusts_labels_last_wins"
#: Three scenarios with 6 + 2 + 2 failing exhaustive items for BROKEN.
TEN = "overlap-backup-first or churn-flapping-candidate or gap-missed"


def env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [str(ROOT / "tests"), str(ROOT), os.environ.get("PYTHONPATH", "")])))


def timed(driver: str, out: Path | None, extra: tuple[str, ...] = ()) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run; CPU time (user + system of the pytest process)
    moves far less than wall time while other work shares the machine."""
    args = [f"--sandbox-driver={driver}", "--sandbox-schedules=exhaustive", *extra]
    if out is not None:
        args += [f"--sandbox-report={out}.json", f"--sandbox-html={out}.html",
                 f"--sandbox-claim={out}.yaml"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time_pytest(args, 0, f"the exhaustive catalog ({driver})",
                       expect=(0,) if driver == "reference" else (1,), env=env())
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def inner(argv: list[str]) -> int:
    """Run pytest in this process with the reports' work timed; print the CPU seconds as JSON
    on stderr's last line."""
    import functools

    import pytest

    from pytest_sandbox_conformance.plugin import items, results

    spent: dict[str, float] = {}

    def timed(name: str, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            t = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name] = spent.get(name, 0.0) + time.process_time() - t
        return wrapper

    items.failure_to_json = timed("failure_to_json", items.failure_to_json)
    for name in ("pytest_runtest_logreport", "pytest_sessionfinish", "pytest_terminal_summary"):
        setattr(results.Results, name, timed(name, getattr(results.Results, name)))
    t0 = time.process_time()
    rc = pytest.main(argv)
    print(json.dumps({"total": time.process_time() - t0, "reports": sum(spent.values()),
                      "parts": spent, "rc": int(rc)}), file=sys.stderr)
    return 0


def inside(driver: str, out: Path) -> dict:
    """The reports' own CPU time inside one instrumented run."""
    import subprocess

    args = [sys.executable, __file__, "--inner", f"--sandbox-driver={driver}",
            "--sandbox-schedules=exhaustive", "-q", "-p", "no:cacheprovider",
            "-p", "no:hypothesispytest", f"--sandbox-report={out}.json",
            f"--sandbox-html={out}.html", f"--sandbox-claim={out}.yaml"]
    with tempfile.TemporaryDirectory() as folder:
        proc = subprocess.run(args, cwd=folder, capture_output=True, text=True, env=env())
    found = json.loads(proc.stderr.strip().splitlines()[-1])
    if found["rc"] != (0 if driver == "reference" else 1):
        raise SystemExit(f"{driver}: the instrumented run ended with {found['rc']}")
    return found


def render_seconds(report_path: Path) -> tuple[float, float, float]:
    """Seconds to write the JSON, render the HTML and the claim from a report (best of 5)."""
    report = json.loads(report_path.read_text())
    best = [float("inf")] * 3
    for _ in range(5):
        t0 = time.perf_counter()
        json.dumps(report, separators=(",", ":"), ensure_ascii=False)
        t1 = time.perf_counter()
        render(report)
        t2 = time.perf_counter()
        render_claim(report)
        t3 = time.perf_counter()
        best = [min(b, t) for b, t in zip(best, (t1 - t0, t2 - t1, t3 - t2))]
    return best[0], best[1], best[2]


def failing(report_path: Path) -> int:
    report = json.loads(report_path.read_text())
    return report["counts"]["failed"]


def mb(path: Path) -> str:
    return f"{path.stat().st_size / 1e6:.2f} MB"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args, rest = ap.parse_known_args()
    if args.inner:
        return inner(rest)
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for driver in ("reference", BROKEN):
            out = folder / driver.replace(":", "-")
            plain, reported = [], []
            for i in range(args.repeat):  # alternate which goes first: the machine drifts
                if i % 2:
                    reported.append(timed(driver, out))
                    plain.append(timed(driver, None))
                else:
                    plain.append(timed(driver, None))
                    reported.append(timed(driver, out))
            measured = [inside(driver, out) for _ in range(args.repeat)]
            json_s, html_s, claim_s = render_seconds(out.with_suffix(".json"))
            wall = min(w for w, _ in plain), min(w for w, _ in reported)
            cpu = min(c for _, c in plain), min(c for _, c in reported)
            worst = max(measured, key=lambda x: x["reports"] / x["total"])
            ratio = worst["total"] / (worst["total"] - worst["reports"])
            print(f"{driver}: exhaustive catalog, {failing(out.with_suffix('.json'))} failing "
                  "items")
            print(f"  inside the run (worst of {args.repeat}): the reports take "
                  f"{worst['reports']:.3f} s of {worst['total']:.2f} s CPU: ratio {ratio:.4f} "
                  "(target <= 1.05)")
            print("    " + ", ".join(f"{k} {v * 1000:.0f} ms"
                                     for k, v in sorted(worst["parts"].items())))
            print(f"  rendering from the report: JSON {json_s * 1000:.0f} ms, HTML "
                  f"{html_s * 1000:.0f} ms, claim {claim_s * 1000:.0f} ms")
            print(f"  A/B, best of {args.repeat}: without reports wall {wall[0]:.2f} s CPU "
                  f"{cpu[0]:.2f} s, with wall {wall[1]:.2f} s CPU {cpu[1]:.2f} s: ratio CPU "
                  f"{cpu[1] / cpu[0]:.3f}, wall {wall[1] / wall[0]:.3f} (noisy on a shared "
                  "machine: for the record)")
            print(f"  sizes: HTML {mb(out.with_suffix('.html'))}, JSON "
                  f"{mb(out.with_suffix('.json'))}, claim {mb(out.with_suffix('.yaml'))}")
            if ratio > 1.05:
                problems.append(f"{driver}: the reports add {ratio - 1:.1%} to the run")
        out = folder / "ten"
        timed(BROKEN, out, ("-k", TEN))
        n = failing(out.with_suffix(".json"))
        print(f"{BROKEN}, -k '{TEN}': {n} failing items: HTML {mb(out.with_suffix('.html'))} "
              f"(target < 2 MB), JSON {mb(out.with_suffix('.json'))}")
        if n != 10:
            problems.append(f"the 10-failure run has {n} failing items")
        if out.with_suffix(".html").stat().st_size >= 2_000_000:
            problems.append("the HTML of 10 failing items is 2 MB or more")
    for p in problems:
        print("PROBLEM:", p)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
