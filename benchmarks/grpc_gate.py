"""Benchmark: a black-box driver through gRPC and the observation gate vs the same driver in-process.

    python benchmarks/grpc_gate.py [--url URL] [--poll 0.05] [--repeat 1]

Plays every pinned schedule of the bundled catalog that both paths can run on a real Docker
engine (no journal faults, which need an in-process driver; no oldest-first lists, which need the
gate), one after the other in this process:

* in-process: the reference driver as a Python object (``--sandbox-driver=reference``);
* gated: the same reference driver as a process (``python -m reference_driver.grpc_server``,
  polling every ``--poll`` seconds) behind the observation gate, through ``GrpcAdapter``.

It prints the wall time of each path, their ratio (target <= 3: a gated scenario waits for the
driver's poll no more often than it observes), the observations made, and what wall-clock mode
would have waited at the OpenShell Docker driver's 2 s poll for the same observations. It checks
what does not depend on the machine and exits 1 if it fails: every run passes, and every gated
run released exactly one driver poll per observation the runner made.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time

from pytest_sandbox_conformance.adapters import grpc as grpc_adapter
from pytest_sandbox_conformance.adapters.reference import factory as reference_factory
from pytest_sandbox_conformance.plugin.collect import catalog_dir, scenario_files
from pytest_sandbox_conformance.engines.image import ensure_image
from pytest_sandbox_conformance.live import LiveSession, open_engine
from pytest_sandbox_conformance.run.runner import RunConfig, play
from pytest_sandbox_conformance.scenario.loader import load_paths
from pytest_sandbox_conformance.exploration.schedule import pinned
from reference_driver.naming import LabelKeys

#: What both paths offer on a plain Docker engine.
COMMON_CAPS = {"restart", "gpu", "live"}
SERVED = (f"{shlex.quote(sys.executable)} -m reference_driver.grpc_server --socket {{socket}} "
          "--state-dir {state_dir} --namespace {namespace} --poll-interval {poll}")
OPENSHELL_POLL = 2.0


def runs():
    scenarios, errors = load_paths(scenario_files(catalog_dir()))
    assert not errors, errors
    for sc in sorted(scenarios, key=lambda s: s.id):
        if not sc.needs <= COMMON_CAPS:
            continue
        for sched in pinned(sc):
            if not sched.lists_oldest_first:
                yield sc, sched


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=None, help="the Docker engine (default: DOCKER_HOST...)")
    parser.add_argument("--poll", default="0.01", help="the served driver's poll interval")
    parser.add_argument("--repeat", type=int, default=1, help="rounds (each times both paths)")
    args = parser.parse_args()

    engine = open_engine("docker", args.url)
    ensure_image(engine, "sbx-busybox:local")
    live = LiveSession(engine, LabelKeys().namespace)
    gated_adapters: list = []

    def gated_factory(ctx):
        gated_adapters.append(grpc_adapter.factory(ctx))
        return gated_adapters[-1]

    base = dict(engine=lambda: engine, ordered_lists=False, cleanup_engine=True,
                unique_sandbox_ids=True, extra_labels=live.labels(),
                namespace_prefix=live.namespace_prefix)
    in_process = RunConfig(driver=reference_factory, **base)
    gated = RunConfig(driver=gated_factory, driver_options={
        "cmd": SERVED.replace("{poll}", args.poll), "poll_interval": args.poll}, **base)
    plan = list(runs())
    print(f"{len(plan)} pinned schedules both paths run; driver poll {args.poll}s behind the gate")
    problems: list[str] = []
    totals = {"in-process": 0.0, "gated": 0.0}
    observations = 0
    try:
        for round_ in range(args.repeat):
            for label, cfg in (("in-process", in_process), ("gated", gated)):
                start = time.perf_counter()
                for sc, sched in plan:
                    try:
                        result = play(sc, sched, cfg)
                    except Exception as exc:  # a failure is a finding, not a crash
                        problems.append(f"{label} {sc.id}@{sched.label}: {exc}")
                        continue
                    if label == "gated":
                        observations += result.observations
                        released = gated_adapters[-1].gate.observations
                        if released != result.observations:
                            problems.append(f"gated {sc.id}@{sched.label}: {released} polls "
                                            f"released for {result.observations} observations")
                took = time.perf_counter() - start
                totals[label] += took
                print(f"round {round_ + 1} {label:>10}: {took:6.1f} s")
    finally:
        live.cleanup()
        engine.close()
    observations //= max(1, args.repeat)
    ratio = totals["gated"] / totals["in-process"]
    per_obs = (totals["gated"] - totals["in-process"]) / args.repeat / max(1, observations)
    print(f"observations per round (gated): {observations}; extra per observation: "
          f"{per_obs * 1000:.0f} ms")
    print(f"wall-clock mode at a {OPENSHELL_POLL:.0f} s poll would wait at least "
          f"{observations * OPENSHELL_POLL:.0f} s per round for the same observations")
    for p in problems:
        print("PROBLEM:", p)
    print(f"gated / in-process wall-time ratio: {ratio:.2f} (target <= 3)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
