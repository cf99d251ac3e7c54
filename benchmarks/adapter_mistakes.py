"""Figures: what an adapter author gets for each mistake of ``tests/test_adapter_mistakes.py``.

    python benchmarks/adapter_mistakes.py [--code DIR] [--timeout 30]

Runs the suite (a subprocess, the fake engine, three small scenarios, ``--sandbox-step-timeout=1``)
against each mistake and classifies what came out:

* ``clear``: a usage error (exit 4), or failures with the timeline and the replay command
  (exit 1), without a traceback or INTERNALERROR;
* ``traceback``: a Python traceback or an INTERNALERROR in the output;
* ``accepted``: exit 0 although the case is a mistake (the suite said nothing);
* ``hang``: no end within ``--timeout`` seconds;
* ``passes``: exit 0 for what the docs call optional (expected); ``refused``: not.

``--code DIR`` runs another checkout's package (``DIR`` first on ``PYTHONPATH``), for the figures
before a change (``git archive <commit> | tar -x -C /tmp/before``); ``--subclass`` builds the
cases on a ``DriverAdapter`` subclass instead of a plain class (before the change a plain class
was refused outright, which hid every other mistake). Prints one line per case and the totals;
docs/reliability.md records them.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import test_adapter_mistakes as mistakes  # noqa: E402
from test_plugin import BASIC, NEEDS_RESTART  # noqa: E402


def classify(expect: str, rc: int | None, text: str) -> str:
    if rc is None:
        return "hang"
    if "Traceback" in text or "INTERNALERROR" in text:
        return "traceback"
    if expect == "passes":
        return "passes" if rc == 0 else "refused"  # an optional member taken as required
    if rc == 0:
        return "accepted"
    if rc == 4:
        return "clear"  # a usage error before anything ran
    if rc == 1 and "timeline:" in text and "replay:" in text:
        return "clear"  # failures with the timeline and the replay command
    return f"exit {rc}"


def run(source: str, code: Path | None, timeout: float,
        subclass: bool = False) -> tuple[int | None, str]:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        good = mistakes.GOOD
        if subclass:
            good = ("from pytest_sandbox_conformance.adapters import DriverAdapter\n"
                    + good.replace("class Good:", "class Good(DriverAdapter):"))
        (root / "good.py").write_text(good)
        (root / "mistake.py").write_text(source)
        (root / "scen").mkdir()
        for name, text in (("basic", BASIC), ("delete", mistakes.DELETE),
                           ("restart", NEEDS_RESTART)):
            (root / "scen" / f"{name}.yaml").write_text(text)
        path = [folder] + ([str(code)] if code else []) + [os.environ.get("PYTHONPATH", "")]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in path if p)}
        cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p",
               "no:hypothesispytest", "--sandbox-driver=mistake:factory",
               "--sandbox-scenarios=scen", "--sandbox-no-builtin", "--sandbox-step-timeout=1"]
        try:
            done = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            return None, ""
        return done.returncode, done.stdout + done.stderr


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--code", type=Path, help="a checkout whose package to run")
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--subclass", action="store_true", help="cases built on DriverAdapter")
    args = ap.parse_args()
    totals: Counter[str] = Counter()
    for name, source, expect, _ in mistakes.CASES:
        rc, text = run(source, args.code, args.timeout, args.subclass)
        kind = classify(expect, rc, text)
        totals[kind] += 1
        lines = text.count("\n")
        print(f"{name:40} expected {expect:7} -> {kind:9} ({lines} lines)")
    print(f"cases: {len(mistakes.CASES)}; " + ", ".join(f"{k}: {v}" for k, v in
                                                      sorted(totals.items())))


if __name__ == "__main__":
    main()
