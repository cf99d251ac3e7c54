"""Benchmark: one run vs the same run cut into shards (``--sandbox-shard=K/N``) and merged.

    python benchmarks/shards.py [--shards 2] [--driver broken_drivers:trusts_labels_last_wins]
        [--schedules exhaustive]

Runs the bundled catalog on the fake engine (each a whole pytest run in a subprocess from an
empty folder, one after the other): once whole, then once per shard, and merges the shards'
reports with ``sandbox-conformance merge-reports``. Prints each run's wall time, the slowest
shard's (what a CI matrix of N machines waits for), the schedules each shard played (the
balance), and checks what does not depend on the machine (exit 1 otherwise): the merged report's
verdict, counts, requirements and items equal the whole run's, and each shard alone is
``incomplete`` or ``not conformant``, never ``conformant``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(args: list[str], folder: Path) -> float:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH")])))
    cmd = [sys.executable, "-m", "pytest", *args, "-q", "-p", "no:cacheprovider",
           "-p", "no:hypothesispytest"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, env=env)
    took = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        print(proc.stdout[-3000:], proc.stderr[-2000:])
        raise SystemExit(f"pytest {' '.join(args)} ended with status {proc.returncode}")
    return took


def items(report: dict) -> dict:
    return {k: {kk: vv for kk, vv in v.items() if kk != "duration"}
            for s in report["scenarios"].values() for k, v in s["items"].items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--driver", default="broken_drivers:trusts_labels_last_wins")
    parser.add_argument("--schedules", default="exhaustive")
    a = parser.parse_args()
    base = [f"--sandbox-driver={a.driver}", f"--sandbox-schedules={a.schedules}"]
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        whole_s = run(base + ["--sandbox-report=whole.json"], folder)
        whole = json.loads((folder / "whole.json").read_text())
        print(f"whole run: {whole_s:.1f} s, {whole['verdict_text']}")
        walls = []
        for k in range(1, a.shards + 1):
            walls.append(run(base + [f"--sandbox-shard={k}/{a.shards}",
                                     f"--sandbox-report=s{k}.json"], folder))
            part = json.loads((folder / f"s{k}.json").read_text())
            played = sum(s["schedules"] for s in part["scenarios"].values())
            print(f"shard {k}/{a.shards}: {walls[-1]:.1f} s, {played} schedules, "
                  f"{part['verdict_text']}")
            if part["verdict"] == "conformant":
                problems.append(f"shard {k} alone is conformant")
        merge = subprocess.run(
            [sys.executable, "-m", "pytest_sandbox_conformance.cli", "merge-reports",
             *(str(folder / f"s{k}.json") for k in range(1, a.shards + 1)),
             "-o", str(folder / "merged.json")],
            capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
        print(merge.stdout.strip().splitlines()[0] if merge.stdout else merge.stderr)
        merged = json.loads((folder / "merged.json").read_text())
        for key in ("verdict_text", "counts", "profiles", "requirements"):
            if merged[key] != whole[key]:
                problems.append(f"merged {key} differs from the whole run's")
        if items(merged) != items(whole):
            problems.append("merged items differ from the whole run's")
    print(f"slowest shard / whole run: {max(walls) / whole_s:.2f} "
          f"(a matrix of {a.shards} machines waits for its slowest shard)")
    print("merged vs whole: " + ("same verdict, counts, requirements and items"
                                 if not problems else "DIFFERENT"))
    for p in problems:
        print("PROBLEM:", p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
