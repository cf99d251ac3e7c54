"""Benchmark: what the suite adds on top of the engine, on real containers.

    python benchmarks/live_overhead.py [--engine docker] [--url URL] [--no-xdist]

Plays every pinned schedule of the bundled catalog that a real engine can run, in this process,
against the reference driver on a live engine, and prints the wall time, the time spent inside
engine API calls (``DockerEngine.api_seconds``), and their ratio (target <= 1.25: the suite adds
at most a quarter on top of what the engine itself costs). Then it times the whole live catalog
through pytest with -n 0 and -n 2 in the same run, so the two are comparable on a noisy machine.
"""

from __future__ import annotations

import argparse
import time

from _pytest_run import time_pytest
from pytest_sandbox_conformance.adapters.reference import factory
from pytest_sandbox_conformance.plugin.collect import catalog_dir, scenario_files
from pytest_sandbox_conformance.engines.image import ensure_image
from pytest_sandbox_conformance.live import LiveSession, open_engine
from pytest_sandbox_conformance.run.runner import RunConfig, play
from pytest_sandbox_conformance.scenario.loader import load_paths
from pytest_sandbox_conformance.exploration.schedule import pinned
from reference_driver.naming import LabelKeys

#: What a real engine offers (GPU styles depend on the engine; leave them out here).
LIVE_CAPS = {"restart", "journal-faults", "gpu", "live"}


def in_process(kind: str, url: str | None) -> tuple[int, float, float]:
    engine = open_engine(kind, url)
    ensure_image(engine, "sbx-busybox:local")
    live = LiveSession(engine, LabelKeys().namespace)
    cfg = RunConfig(driver=factory, engine=lambda: engine, ordered_lists=False,
                    cleanup_engine=True, unique_sandbox_ids=True,
                    extra_labels=live.labels(), namespace_prefix=live.namespace_prefix,
                    state_root=None)
    scenarios, errors = load_paths(scenario_files(catalog_dir()))
    assert not errors, errors
    runs = 0
    engine.api_seconds = 0.0
    start = time.perf_counter()
    try:
        for sc in scenarios:
            if not sc.needs <= LIVE_CAPS:
                continue
            for sched in pinned(sc):
                if sched.lists_oldest_first:
                    continue  # a real engine cannot be told a list order
                play(sc, sched, cfg)
                runs += 1
    finally:
        wall = time.perf_counter() - start
        live.cleanup()
        engine.close()
    return runs, wall, engine.api_seconds


def through_pytest(kind: str, url: str | None, workers: int) -> float:
    args = ["--sandbox-driver=reference", f"--sandbox-engine={kind}", "--sandbox-gpu=off"]
    if url:
        args.append(f"--sandbox-engine-url={url}")
    return time_pytest(args, workers, "the live catalog")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", default="docker", choices=("docker", "podman"))
    ap.add_argument("--url", default=None)
    ap.add_argument("--no-xdist", action="store_true")
    args = ap.parse_args()
    runs, wall, api = in_process(args.engine, args.url)
    print(f"engine: {args.engine}")
    print(f"scenario-schedule runs (pinned, live-capable): {runs}")
    print(f"wall time in process: {wall:.2f} s")
    print(f"time inside engine API calls: {api:.2f} s")
    print(f"wall / engine ratio: {wall / api:.2f}")
    if not args.no_xdist:
        serial = through_pytest(args.engine, args.url, 0)
        parallel = through_pytest(args.engine, args.url, 2)
        print(f"live catalog through pytest -n 0: {serial:.1f} s")
        print(f"live catalog through pytest -n 2: {parallel:.1f} s")
        print(f"speed-up -n 2 vs -n 0: {serial / parallel:.2f}")


if __name__ == "__main__":
    main()
