"""Running one item: every schedule it holds, and the smallest failure.

An item *plays* in pytest's setup phase and is *judged* in its call phase: :func:`play_item` plays
every schedule and keeps the smallest conformance failure on the item; :func:`run_item` raises
it. So what keeps an item from being judged (the suite's engine gone, a story step the engine
refused) is an **error** of the item, and only the driver's conformance failures are
**failures**. (``--setup-only`` and ``--setup-plan`` play nothing.)
"""

from __future__ import annotations

import time
from typing import Callable

from ..reports.json_report import failure_to_json
from ..run.concurrent import EnginePool, play_schedules
from ..run.runner import RunConfig

__all__ = ["PROGRESS_EVERY", "Progress", "play_item", "progress_for", "run_item"]

#: Seconds between two progress lines of a long item (with ``-v``).
PROGRESS_EVERY = 3.0


class Progress:
    """``progress(done, failed)`` after each schedule; writes ``done / total`` at most once per
    ``every`` seconds (the first after ``every`` seconds), so short items print nothing and long
    ones cost one clock read per schedule."""

    def __init__(self, write: Callable[[str], None], name: str, total: int,
                 every: float | None = None) -> None:
        self.write = write
        self.name = name
        self.total = total
        self.every = PROGRESS_EVERY if every is None else every
        self.next = time.monotonic() + self.every

    def __call__(self, done: int, failed: int) -> None:
        now = time.monotonic()
        if now < self.next or done >= self.total:
            return
        self.next = now + self.every
        self.write(f"  {self.name}: {done} / {self.total} schedules"
                   + (f", {failed} failed" if failed else ""))


def progress_for(config, item) -> Progress | None:
    """With -v, a line every few seconds inside an item of many schedules; nothing on xdist
    workers, whose output nobody sees."""
    tr = config.pluginmanager.get_plugin("terminalreporter")
    if (len(item.schedules) < 2 or config.option.verbose < 1 or tr is None
            or hasattr(config, "workerinput")):
        return None
    capman = config.pluginmanager.get_plugin("capturemanager")

    def write(line: str) -> None:
        if capman is None:
            tr.write_line(line)
            return
        with capman.global_and_fixture_disabled():  # past the test's output capture
            tr.write_line(line)

    return Progress(write, item.name, len(item.schedules))


def play_item(item, cfg: RunConfig, progress: Callable[[int, int], None] | None = None, *,
              workers: int = 1, engines: EnginePool | None = None, reduce: bool = False) -> None:
    """Play each of the item's schedules (up to ``workers`` at once: ``run/concurrent.py``, the
    same result as one by one); keep the smallest failing one (fewest observations and
    restarts, then by id, as Hypothesis shows its smallest example) for :func:`run_item`, and its
    data for the reports on ``item.sandbox_failure``. An engine outage or a story error ends the
    item at once (it propagates: an error of the item's setup)."""
    item.sandbox_conformance_failure = None
    failures = play_schedules(item.scenario, item.schedules, cfg, workers=workers,
                              engines=engines, progress=progress)
    if failures:
        smallest = min(failures, key=lambda f: (f.schedule.observations + f.schedule.restarts,
                                                f.schedule.id))
        broken: list[str] = []
        for f in [smallest, *failures]:
            broken += [r for r in f.requirements if r not in broken]
        if len(item.schedules) > 1:
            smallest.notes.append(f"({len(failures)} of {len(item.schedules)} schedules of "
                                  "this item failed; shown: the smallest)")
        if reduce:
            smallest = _reduced(item, smallest, cfg)
        keep_failure(item, smallest, broken, failed=len(failures), total=len(item.schedules))


def _reduced(item, failure, cfg: RunConfig):
    """``failure`` with its schedule reduced (``run/reduce.py``), saying so."""
    from ..run.reduce import reduce_schedule

    reduced, plays = reduce_schedule(item.scenario, failure, cfg)
    if reduced is failure:
        return failure
    was, now, first = failure.schedule, reduced.schedule, reduced.first
    reduced.notes += [n for n in failure.notes if n not in reduced.notes]
    reduced.notes.append(
        f"(reduced in {plays} plays from schedule {was.id}"
        + (f" (pinned {was.name})" if was.name else "")
        + f", {was.observations} observations and {was.restarts} restarts, to "
        f"{now.observations} and {now.restarts}: the fewest that still fail {first.check} "
        f"({', '.join(first.requirements[:1]) or '-'}), judged by the scenario's base expect)")
    return reduced


def keep_failure(item, failure, broken: list[str], *, failed: int, total: int) -> None:
    """What :func:`run_item` raises and the reports show of a failing item (a scenario's or a
    generated batch's): the failure, its schedule and the requirements broken, ``failed`` of
    ``total`` plays failing."""
    item.user_properties.append(("sandbox_failed_schedule", failure.schedule.id))
    item.user_properties.append(("sandbox_broken", " ".join(broken)))
    item.sandbox_failure = {**failure_to_json(failure, failed=failed, total=total),
                            "broken": broken}
    item.sandbox_conformance_failure = failure


def run_item(item) -> None:
    """The item's verdict: raise the failure its play kept, if any."""
    failure = getattr(item, "sandbox_conformance_failure", None)
    if failure is not None:
        raise failure
