"""The broken-driver matrix: which scenarios catch which deliberately broken driver.

    python benchmarks/broken_matrix.py                      # print the markdown
    python benchmarks/broken_matrix.py --write docs/broken-drivers.md

Runs the bundled catalog against every driver of ``tests/broken_drivers.py`` (and the reference
driver, which must pass), once with ``--sandbox-schedules=pinned`` and once with ``exhaustive``,
each a full pytest run in a subprocess with ``--sandbox-report``, and prints a markdown page: a
summary per driver (caught under pinned schedules, or only under exhaustive exploration, and the
requirements the failures name), the matrix scenario x driver, and per driver the failing items
with the smallest failing schedule and the OWN-n it reports. Exits 1 if a broken driver is not
caught at all or the reference driver fails anything.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
MODES = ("pinned", "exhaustive")


def run(driver: str, mode: str) -> dict:
    """One pytest run of the catalog; the JSON report it wrote."""
    with tempfile.TemporaryDirectory(prefix="sbx-matrix-") as folder:
        state = Path(folder) / "state"
        if Path("/dev/shm").is_dir() and os.access("/dev/shm", os.W_OK):
            state = Path(tempfile.mkdtemp(prefix="sbx-matrix-", dir="/dev/shm"))
        state.mkdir(exist_ok=True)
        report = Path(folder) / "report.json"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), str(ROOT),
                                                          env.get("PYTHONPATH", "")]))
        cmd = [sys.executable, "-m", "pytest", "-p", "sandbox_conformance",
               "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-q",
               f"--sandbox-driver={driver}", f"--sandbox-schedules={mode}",
               f"--sandbox-report={report}", f"--sandbox-state-dir={state}"]
        try:
            proc = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True)
        finally:
            if state.parent != Path(folder):
                import shutil

                shutil.rmtree(state, ignore_errors=True)
        if not report.exists():
            sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-2000:])
            raise SystemExit(f"{driver} ({mode}): no report (exit status {proc.returncode})")
        return json.loads(report.read_text())


def label(item: str) -> str:
    m = re.search(r"\[(.*)\]$", item)
    return m.group(1) if m else item


def failures(report: dict) -> dict[str, list[tuple[str, str, list[str]]]]:
    """scenario id -> [(item label, smallest failing schedule, requirements)] of failed items."""
    out: dict[str, list[tuple[str, str, list[str]]]] = {}
    for sid, scenario in report["scenarios"].items():
        for item, result in sorted(scenario["items"].items()):
            if result.get("outcome") == "failed":
                out.setdefault(sid, []).append((label(item), result.get("failed_schedule", "?"),
                                                result.get("broken", [])))
    return out


def markdown(doc: str) -> str:
    """A docstring's reST inline markup as markdown, on one line."""
    doc = re.sub(r":\w+:`([^`]*)`", r"`\1`", doc)
    return " ".join(doc.replace("``", "`").split())


def own_sorted(reqs) -> list[str]:
    return sorted(set(reqs), key=lambda r: int(r.split("-")[1]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--write", type=Path, help="write the markdown to this file too")
    ap.add_argument("--driver", action="append", help="only these broken drivers")
    args = ap.parse_args()

    sys.path[:0] = [str(TESTS), str(ROOT)]
    import broken_drivers

    names = args.driver or list(broken_drivers.BROKEN)
    started = time.perf_counter()
    reference = {m: run("reference", m) for m in MODES}
    results = {n: {m: run(f"broken_drivers:{n}", m) for m in MODES} for n in names}
    elapsed = time.perf_counter() - started

    scenario_ids = sorted(reference["exhaustive"]["scenarios"])
    catalog_files = sorted(p.name for p in (ROOT / "scenarios").glob("*.yaml"))
    problems: list[str] = []
    for m in MODES:
        if reference[m]["verdict"] != "conformant" or reference[m]["counts"]["failed"]:
            problems.append(f"the reference driver is not conformant under {m} schedules")

    out: list[str] = []
    w = out.append
    w("# Broken drivers: what catches them")
    w("")
    w("`tests/broken_drivers.py` holds deliberately broken drivers, each a small variation of the")
    w("reference driver with one bug. This page is the matrix *broken driver x scenario*: which")
    w("scenarios of the bundled catalog catch each one, under which schedules, and which")
    w("requirements the failures name. `tests/test_broken_drivers.py` asserts the same facts")
    w("(each driver fails under the schedules named here, naming its requirement).")
    w("")
    w("Generated by `python benchmarks/broken_matrix.py --write docs/broken-drivers.md` "
      f"({len(scenario_ids)} scenarios in {len(catalog_files)} files; every driver run twice, "
      f"pinned and exhaustive, {elapsed:.0f} s in all). Regenerate it when the catalog or the "
      "broken drivers change.")
    w("")
    w("- **pinned**: `--sandbox-schedules=pinned`, the scenarios' named schedules only (the "
      "default run).")
    w("- **exhaustive**: `--sandbox-schedules=exhaustive`, every schedule of observations, list "
      "orders and restarts (the pinned ones included). *exhaustive only* means no pinned "
      "schedule catches the bug: only exploration does.")
    w("- Run one yourself: `PYTHONPATH=tests pytest --sandbox-driver=broken_drivers:<name> "
      "scenarios` from a checkout's root (the `scenarios` path keeps the project's own tests "
      "out; from elsewhere give `PYTHONPATH` the `tests` folder's full path and no path) "
      "(add `--sandbox-schedules=exhaustive` to explore).")
    w("- The reference driver passes every scenario under both: "
      + ", ".join(f"{m} {reference[m]['counts']['passed']} items passed, "
                  f"{reference[m]['counts']['failed']} failed" for m in MODES) + ".")
    w("")
    w("## Summary")
    w("")
    w("| broken driver | what it gets wrong | caught under | scenarios that catch it (pinned / "
      "exhaustive) | requirements the failures name | broken (says its docstring) but never "
      "named |")
    w("|---|---|---|---|---|---|")
    for n in names:
        cls = broken_drivers.BROKEN[n]
        doc = inspect.getdoc(cls) or ""
        first = markdown(doc.split("\n\n")[0])
        first = re.sub(r"\s*\(.*?\)", "", first.split(". ")[0]).rstrip(".") + "."
        pin, exh = failures(results[n]["pinned"]), failures(results[n]["exhaustive"])
        if pin:
            where = "pinned"
        elif exh:
            where = "exhaustive only"
        else:
            where = "**not caught**"
            problems.append(f"{n} is not caught by the catalog")
        reqs = own_sorted(r for f in list(pin.values()) + list(exh.values())
                          for _, _, rs in f for r in rs)
        claimed = own_sorted(re.findall(r"\bOWN-\d+\b", doc))
        unnamed = [r for r in claimed if r not in reqs]
        w(f"| `{n}` | {first} | {where} | {len(pin)} / {len(exh)} | "
          f"{', '.join(reqs) or '-'} | {', '.join(unnamed) or '-'} |")
    w("")
    w("## Matrix")
    w("")
    w("`P`: a pinned schedule of the scenario fails (so does exhaustive); `E`: only exhaustive "
      "exploration fails it; `.`: the scenario passes with this driver.")
    w("")
    w("| scenario | " + " | ".join(f"`{n}`" for n in names) + " |")
    w("|---|" + "---|" * len(names))
    for sid in scenario_ids:
        cells = []
        for n in names:
            if sid in failures(results[n]["pinned"]):
                cells.append("P")
            elif sid in failures(results[n]["exhaustive"]):
                cells.append("E")
            else:
                cells.append(".")
        w(f"| `{sid}` | " + " | ".join(cells) + " |")
    w("")
    w("## Per driver")
    for n in names:
        cls = broken_drivers.BROKEN[n]
        w("")
        w(f"### `{n}` ({cls.__name__})")
        w("")
        w(markdown(inspect.getdoc(cls) or ""))
        w("")
        pin, exh = failures(results[n]["pinned"]), failures(results[n]["exhaustive"])
        if not pin and not exh:
            w("Not caught by any scenario yet.")
            continue
        w("| scenario | schedules | failing item | smallest failing schedule | requirements "
          "named |")
        w("|---|---|---|---|---|")
        for sid in sorted(set(pin) | set(exh)):
            rows = [("pinned", f) for f in pin.get(sid, [])]
            if sid not in pin:
                rows = [("exhaustive only", f) for f in exh[sid]
                        if f[0].startswith("exhaustive")] or [("exhaustive only", f)
                                                              for f in exh[sid]]
            for mode, (item, sched, reqs) in rows:
                w(f"| `{sid}` | {mode} | `{item}` | `{sched}` | {', '.join(reqs)} |")
    w("")
    text = "\n".join(out)
    print(text)
    if args.write:
        args.write.write_text(text)
    for p in problems:
        print(f"PROBLEM: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
