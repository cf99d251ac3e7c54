"""Benchmark: an item's schedules played one at a time vs N at once (``--sandbox-concurrency``).

    python benchmarks/concurrency.py [--url URL] [--poll 2] [--workers 16]
        [--scenarios gap-missed,overlap-replacement-first] [--broken CLASS] [--skip-correct]
        [--live-workers 1,4] [--live-scenarios gap-missed] [--rate-seconds 3]

Everything runs in this process through the runner API the plugin uses
(``run/concurrent.py``'s :func:`play_schedules`, as ``plugin/items.py`` calls it), on a real Docker
engine, with the session's safety (labels, a session lock, cleanup at the end):

1. **gRPC + gate**: the exhaustive schedules of ``--scenarios`` (one item each, as pytest collects
   them with ``--sandbox-schedules=exhaustive``) against the reference driver served as a process
   per run (``python -m reference_driver.grpc_server ... --poll-interval 2``, OpenShell's Docker
   driver's poll) behind the observation gate: one schedule at a time, then ``--workers`` at
   once. Prints both wall times and their ratio (goal: >= 8), the engine API requests per second
   (the suite's own and the driver processes', which the gates count), and the driver processes'
   resident memory (the sum at the busiest moment and the largest one), sampled every 0.2 s.
2. **The same for a broken driver** served the same way (``--driver tests/broken_drivers.py``'s
   ``--broken`` class): the failures, schedule by schedule (check, requirements, message with
   container ids and run suffixes masked), and the smallest failing schedule per item must be the
   same both ways (the script exits 1 otherwise).
3. **In-process driver on the real engine** (the reference driver as a Python object, the live
   catalog's case): the exhaustive schedules of ``--live-scenarios`` at each of ``--live-workers``.
4. **The engine's own rate**: ``GET /containers/json`` from 1 and from ``--workers`` clients at
   once for ``--rate-seconds``: what the engine sustains, the limit of the plays above.

Run it alone on the machine: every figure is a wall time.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
# The served drivers (processes) import this checkout's reference driver and broken drivers.
os.environ["PYTHONPATH"] = os.pathsep.join(
    filter(None, [str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH")]))

from pytest_sandbox_conformance.adapters import grpc as grpc_adapter  # noqa: E402
from pytest_sandbox_conformance.adapters.reference import factory as reference_factory  # noqa: E402
from pytest_sandbox_conformance.engines.image import ensure_image  # noqa: E402
from pytest_sandbox_conformance.exploration.plan import Mode, plan  # noqa: E402
from pytest_sandbox_conformance.live import LiveSession, open_engine  # noqa: E402
from pytest_sandbox_conformance.plugin.collect import catalog_dir, scenario_files  # noqa: E402
from pytest_sandbox_conformance.run.concurrent import (  # noqa: E402
    EnginePool,
    play_schedules,
    step_timeout_at_once,
)
from pytest_sandbox_conformance.run.runner import RunConfig  # noqa: E402
from pytest_sandbox_conformance.scenario.loader import load_paths  # noqa: E402
from reference_driver.naming import LabelKeys  # noqa: E402

SERVED = (f"{shlex.quote(sys.executable)} -m reference_driver.grpc_server --socket {{socket}} "
          "--state-dir {state_dir} --namespace {namespace} --poll-interval {poll}")
#: Container ids (12 or 64 hex digits) and run suffixes (-8 hex digits) differ from run to run.
_IDS = re.compile(r"\b[0-9a-f]{64}\b|\b[0-9a-f]{12}\b|-[0-9a-f]{8}\b")


def items_of(names: list[str], list_orders: bool) -> list[tuple]:
    """(scenario, schedules) of each exhaustive item of the named scenarios."""
    scenarios, errors = load_paths(scenario_files(catalog_dir()))
    assert not errors, errors
    by_id = {sc.id: sc for sc in scenarios}
    missing = [n for n in names if n not in by_id]
    if missing:
        sys.exit(f"no such scenario in the catalog: {', '.join(missing)}")
    mode = Mode("exhaustive", restarts=True, list_orders=list_orders)
    out = []
    for name in names:
        for planned in plan(by_id[name], mode):
            if planned.label.startswith("exhaustive"):
                out.append((by_id[name], planned.schedules))
    return out


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class Sampler:
    """The driver processes' resident memory, every 0.2 s: the largest sum and the largest one."""

    def __init__(self, adapters: list) -> None:
        self.adapters = adapters
        self.peak_sum = self.peak_one = self.peak_count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            sizes = []
            for a in list(self.adapters):
                proc = getattr(getattr(a, "process", None), "proc", None)
                if proc is not None and proc.poll() is None:
                    sizes.append(rss_kib(proc.pid))
            if sizes:
                self.peak_sum = max(self.peak_sum, sum(sizes))
                self.peak_one = max(self.peak_one, max(sizes))
                self.peak_count = max(self.peak_count, len(sizes))

    def __enter__(self) -> "Sampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def signature(failure) -> tuple:
    return (failure.schedule.id, tuple((f.check, tuple(f.requirements), _IDS.sub("-ID", f.message))
                                       for f in failure.failures))


def smallest(failures: list):
    if not failures:
        return None
    return min(failures, key=lambda f: (f.schedule.observations + f.schedule.restarts,
                                        f.schedule.id)).schedule.id


class Bench:
    def __init__(self, args) -> None:
        self.args = args
        self.engine = open_engine("docker", args.url)
        ensure_image(self.engine, "sbx-busybox:local")
        self.live = LiveSession(self.engine, LabelKeys().namespace)
        self.live.acquire()
        self.base = dict(ordered_lists=False, cleanup_engine=True, unique_sandbox_ids=True,
                         extra_labels=self.live.labels(),
                         namespace_prefix=self.live.namespace_prefix)
        self.problems: list[str] = []

    def close(self) -> None:
        try:
            self.live.cleanup()
        finally:
            self.live.release()
            self.engine.close()

    def play(self, items, factory, workers: int, options: dict | None = None):
        """Play every item with ``workers`` at once; (wall s, failures per item, API requests,
        sampler, errors)."""
        adapters: list = []

        def made(ctx):
            adapters.append(factory(ctx))
            return adapters[-1]

        pool = EnginePool(lambda: open_engine("docker", self.args.url), where="docker")
        cfg = RunConfig(driver=made, engine=lambda: self.engine, driver_options=options or {},
                        **self.base)
        results, errors = [], []
        before = sum(self.engine.calls.values())  # the session's client serves every run
        started = time.perf_counter()
        with Sampler(adapters) as sampler:
            for sc, schedules in items:
                try:
                    results.append(play_schedules(sc, schedules, cfg, workers=workers,
                                                  engines=pool if workers > 1 else None))
                except Exception as exc:  # an item's error is a finding, not a crash
                    errors.append(f"{sc.id}: {type(exc).__name__}: {exc}")
                    results.append(None)
        wall = time.perf_counter() - started
        requests = sum(self.engine.calls.values()) - before
        if workers > 1:
            requests += sum(sum(e.calls.values()) for e in pool.clients())
        requests += sum(a.gate.requests_seen() for a in adapters
                        if getattr(a, "gate", None) is not None)
        pool.close()
        return wall, results, requests, sampler, errors, len(adapters)

    def gated(self, label: str, driver_cmd: str, items, expect_pass: bool):
        runs = {}
        for workers in (1, self.args.workers):
            # As the plugin does: the default step timeout allows for plays at once.
            options = {"cmd": driver_cmd, "poll_interval": self.args.poll, "step_timeout":
                       f"{step_timeout_at_once(float(self.args.poll), workers):g}"}
            wall, results, requests, sampler, errors, plays = self.play(
                items, grpc_adapter.factory, workers, options)
            runs[workers] = results
            failed = sum(len(r or ()) for r in results)
            print(f"{label} workers={workers:>2}: {wall:7.1f} s, {plays} plays, {failed} failed, "
                  f"{len(errors)} item errors; engine API {requests} requests = "
                  f"{requests / wall:.0f}/s; driver RSS peak {sampler.peak_sum / 1024:.0f} MiB "
                  f"over {sampler.peak_count} processes (largest {sampler.peak_one / 1024:.0f} "
                  "MiB)", flush=True)
            for e in errors:
                self.problems.append(f"{label} workers={workers}: {e}")
            if expect_pass and failed:
                first = [f"{f.schedule.id}: {f.failures[0].check}: {f.failures[0].message[:160]}"
                         for r in results for f in (r or ())][:3]
                self.problems.append(f"{label} workers={workers}: {failed} schedules failed "
                                     f"for the reference driver: {'; '.join(first)}")
            runs[f"wall{workers}"] = wall
        ratio = runs["wall1"] / runs[f"wall{self.args.workers}"]
        print(f"{label}: one at a time / {self.args.workers} at once: {ratio:.2f}x "
              "(goal >= 8)", flush=True)
        return runs, ratio

    def compare(self, runs, items) -> None:
        seq, conc = runs[1], runs[self.args.workers]
        for (sc, _), a, b in zip(items, seq, conc):
            if a is None or b is None:
                continue
            same = [signature(f) for f in a] == [signature(f) for f in b]
            print(f"  {sc.id}: {len(a)} / {len(b)} failing schedules, smallest "
                  f"{smallest(a)} / {smallest(b)}: {'same' if same else 'DIFFERENT'}")
            if not same or smallest(a) != smallest(b):
                self.problems.append(f"broken {sc.id}: failures differ one at a time vs "
                                     "at once")

    def in_process(self, items) -> None:
        base = None
        for workers in self.args.live_workers:
            wall, results, requests, _, errors, plays = self.play(items, reference_factory,
                                                                  workers)
            base = base or wall
            failed = sum(len(r or ()) for r in results)
            print(f"in-process reference on docker workers={workers:>2}: {wall:6.1f} s, "
                  f"{plays} plays, {failed} failed; engine API {requests / wall:.0f} requests/s; "
                  f"speed-up {base / wall:.2f}x", flush=True)
            if failed or errors:
                self.problems.append(f"in-process workers={workers}: {failed} failed, {errors}")

    def rate(self) -> None:
        labels = {LabelKeys().namespace: f"{self.live.namespace_prefix}-rate"}  # lists nothing
        for clients in (1, self.args.workers):
            engines = [open_engine("docker", self.args.url) for _ in range(clients)]
            count = [0] * clients
            stop = time.monotonic() + self.args.rate_seconds

            def loop(i: int) -> None:
                while time.monotonic() < stop:
                    engines[i].list(labels)
                    count[i] += 1

            threads = [threading.Thread(target=loop, args=(i,)) for i in range(clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            for e in engines:
                e.close()
            print(f"engine list rate, {clients:>2} client(s): "
                  f"{sum(count) / self.args.rate_seconds:.0f} requests/s", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=None)
    parser.add_argument("--poll", default="2", help="the served driver's poll interval (s)")
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--scenarios", default="gap-missed,overlap-replacement-first")
    parser.add_argument("--broken", default="TrustsLabelsLastWins",
                        help="a class of tests/broken_drivers.py to serve ('' to skip)")
    parser.add_argument("--broken-scenarios", default=None,
                        help="scenarios of the broken run (default: --scenarios)")
    parser.add_argument("--skip-correct", action="store_true",
                        help="skip the reference driver's gated run")
    parser.add_argument("--live-workers", default="1,4",
                        help="workers of the in-process runs ('' to skip)")
    parser.add_argument("--live-scenarios", default="gap-missed")
    parser.add_argument("--rate-seconds", type=float, default=3.0)
    args = parser.parse_args()
    args.live_workers = [int(w) for w in args.live_workers.split(",") if w]
    bench = Bench(args)
    cmd = SERVED.replace("{poll}", args.poll)
    print(f"driver: {cmd}", flush=True)
    try:
        bench.rate()
        if not args.skip_correct:
            items = items_of(args.scenarios.split(","), list_orders=True)
            print(f"reference, gated: {sum(len(s) for _, s in items)} exhaustive schedules of "
                  f"{args.scenarios}", flush=True)
            bench.gated("reference, gated", cmd, items, expect_pass=True)
        if args.broken:
            items = items_of((args.broken_scenarios or args.scenarios).split(","),
                             list_orders=True)
            print(f"{args.broken}, gated: {sum(len(s) for _, s in items)} schedules", flush=True)
            runs, _ = bench.gated(f"{args.broken}, gated",
                                  cmd + f" --driver broken_drivers:{args.broken}", items,
                                  expect_pass=False)
            bench.compare(runs, items)
        if args.live_workers:
            items = items_of(args.live_scenarios.split(","), list_orders=False)
            print(f"in-process: {sum(len(s) for _, s in items)} exhaustive schedules of "
                  f"{args.live_scenarios} (no list orders: a plain engine has none)", flush=True)
            bench.in_process(items)
    finally:
        bench.close()
    for p in bench.problems:
        print("PROBLEM:", p)
    return 1 if bench.problems else 0


if __name__ == "__main__":
    sys.exit(main())
