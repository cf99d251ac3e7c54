"""Shared by the benchmarks: time one whole pytest run of the suite in a subprocess."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time


def time_pytest(args: list[str], workers: int, what: str, expect: tuple[int, ...] = (0,),
                env: dict[str, str] | None = None) -> float:
    """Wall seconds of ``pytest ARGS [-n WORKERS]`` from an empty folder; exit if its status is
    not in ``expect`` (0: it passes).

    Hypothesis (a dev dependency) registers a pytest plugin that imports all of Hypothesis
    (about 1 s) in every process, workers included; a driver author's environment does not have
    it, so it is left out of the figures.
    """
    with tempfile.TemporaryDirectory() as folder:
        cmd = [sys.executable, "-m", "pytest", *args, "-q", "-p", "no:cacheprovider",
               "-p", "no:hypothesispytest"]
        if workers:
            cmd += ["-n", str(workers)]
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, env=env)
        elapsed = time.perf_counter() - start
        if proc.returncode not in expect:
            print(proc.stdout[-3000:], proc.stderr[-2000:])
            raise SystemExit(f"{what} failed with -n {workers}")
        return elapsed
