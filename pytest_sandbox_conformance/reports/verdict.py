"""The verdict of a session and what each requirement did: pure functions of the items.

An *item* here is a mapping with at least ``item`` (the node id), ``scenario``, ``profile``,
``requirements`` (the OWN-n its scenario lists) and ``outcome``, one of :data:`OUTCOMES`:

``passed``
    every schedule of the item played and every check held;
``failed``
    a check broke (the driver's failure); ``broken`` lists the OWN-n the failures named, over
    every failing schedule of the item (none when the driver itself failed: it crashed, hung,
    refused);
``skipped``
    not run, with a ``reason`` (a capability the driver or the engine lacks);
``error``
    the suite's environment failed (``error_kind``: ``engine`` when the engine became
    unavailable, ``story`` when the story could not be played as written): never the driver's
    failure;
``not-run``
    planned, but deselected (``-k``, ``-m``, ``--lf``, ``--deselect``, ``--sandbox-schedule``) or
    never reached (``-x``, an interrupt, a crashed worker), with a ``reason``.

The verdict (:func:`verdict`) covers the whole plan of the session's core profile:
``not conformant`` when a core item failed; ``incomplete (...)`` when nothing failed but a core
item did not run to its end (errors, skips, items not run, a replay of one schedule, the bundled
catalog left out); ``conformant`` only when every planned core item passed. No I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

__all__ = ["OUTCOMES", "REQUIREMENTS", "Verdict", "count", "merge", "profile_result",
           "requirement_rows", "verdict"]

OUTCOMES = ("passed", "failed", "skipped", "error", "not-run")

#: Every requirement of the contract, in order.
REQUIREMENTS = tuple(f"OWN-{n}" for n in range(1, 21))

#: Which outcome wins when outcomes are merged (a scenario's, from its items).
_WORST_FIRST = ("failed", "error", "not-run", "skipped", "passed")

Item = Mapping[str, Any]


def merge(outcomes: Iterable[str]) -> str:
    """The worst of ``outcomes`` (failed, error, not-run, skipped, passed); ``not-run`` if none."""
    seen = set(outcomes)
    for o in _WORST_FIRST:
        if o in seen:
            return o
    return "not-run"


def count(items: Iterable[Item]) -> dict[str, int]:
    """Items per outcome, every outcome present (``not-run`` as ``not_run``)."""
    out = {o.replace("-", "_"): 0 for o in OUTCOMES}
    for i in items:
        out[i["outcome"].replace("-", "_")] += 1
    return out


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


@dataclass(frozen=True)
class Verdict:
    """``verdict`` is ``conformant``, ``not conformant`` or ``incomplete``; ``reasons`` say why
    it is not ``conformant`` (``engine unavailable``, ``3 errors``, ``50 not run``, ...)."""

    verdict: str
    reasons: tuple[str, ...] = ()

    def __str__(self) -> str:
        return self.verdict + (f" ({'; '.join(self.reasons)})" if self.reasons else "")

    def to_json(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "reasons": list(self.reasons), "text": str(self)}


def verdict(items: Sequence[Item], *, replay: bool = False, catalog: bool = True,
            plan_known: bool = True, shard: tuple[int, int] | None = None) -> Verdict:
    """The session's verdict over its planned core items (see the module's docstring).

    ``replay``: the session replayed one schedule (``--sandbox-schedule``); ``catalog``: the
    bundled catalog was planned (not ``--sandbox-no-builtin``); ``plan_known``: the plan of items
    was received (an xdist run whose every worker crashed sends none); ``shard``: (K, N), the
    session ran part K of N of the items (``--sandbox-shard``): alone, never conformant (its
    report is one part of a run; ``sandbox-conformance merge-reports`` gives the whole's)."""
    core = [i for i in items if i["profile"] == "core"]
    c = count(core)
    incomplete: list[str] = []
    if any(i["outcome"] == "error" and i.get("error_kind") == "engine" for i in core):
        incomplete.append("engine unavailable")
    story_errors = sum(1 for i in core if i["outcome"] == "error"
                       and i.get("error_kind") != "engine")
    if story_errors:
        incomplete.append(_plural(story_errors, "error"))
    if c["not_run"]:
        incomplete.append(f"{c['not_run']} not run")
    if c["skipped"]:
        incomplete.append(f"{c['skipped']} skipped")
    if replay:
        incomplete.append("a replay of one schedule")
    if not catalog:
        incomplete.append("the bundled catalog was not run")
    if not plan_known:
        incomplete.append("the plan of items is unknown")
    if shard is not None and shard[1] > 1:
        incomplete.append(f"shard {shard[0]}/{shard[1]} alone: merge the shards' reports")
    if not core:
        incomplete.append("no core item planned")
    if c["failed"]:
        return Verdict("not conformant",
                       (f"{c['failed']} of {_plural(len(core), 'core item')} failed",
                        *incomplete))
    if incomplete:
        return Verdict("incomplete", tuple(incomplete))
    return Verdict("conformant")


def profile_result(items: Sequence[Item]) -> str:
    """A profile's result: ``failed``, ``incomplete`` (something did not run to its end),
    ``passed``, or ``none`` (no item of it was planned)."""
    if not items:
        return "none"
    outcomes = {i["outcome"] for i in items}
    if "failed" in outcomes:
        return "failed"
    return "passed" if outcomes == {"passed"} else "incomplete"


def _status(item: Item, requirement: str) -> str:
    """What ``item`` says about ``requirement``: failed (a failure of the item broke it),
    passed (it held: the item passed, or failed only on other requirements, the story played to
    its end), skipped, or not-run (not run, an environment error, or a driver failure that ended
    the story before the requirement was judged)."""
    o = item["outcome"]
    if o == "failed":
        broken = item.get("broken") or []
        if requirement in broken:
            return "failed"
        return "passed" if broken else "not-run"
    if o in ("passed", "skipped"):
        return o
    return "not-run"


def requirement_rows(items: Sequence[Item]) -> dict[str, dict[str, Any]]:
    """Per requirement (OWN-1..OWN-20, every one): its ``outcome`` (failed, passed, incomplete,
    not-run), ``counts`` of items (passed, failed, skipped, not_run) over the items that exercise
    it (their scenario lists it) or broke it, ``broken_by`` (the items whose failures broke it) and
    ``exercised_by`` (the scenarios that list it, each with the scenario's own outcome)."""
    scenario_outcomes: dict[str, list[str]] = {}
    for i in items:
        scenario_outcomes.setdefault(i["scenario"], []).append(i["outcome"])
    rows: dict[str, dict[str, Any]] = {}
    for req in REQUIREMENTS:
        counts = {"passed": 0, "failed": 0, "skipped": 0, "not_run": 0}
        broken_by: list[str] = []
        exercised: dict[str, str] = {}
        for i in items:
            lists_it = req in i["requirements"]
            status = _status(i, req)
            if not lists_it and status != "failed":
                continue
            counts[status.replace("-", "_")] += 1
            if status == "failed":
                broken_by.append(i["item"])
            if lists_it:
                exercised[i["scenario"]] = merge(scenario_outcomes[i["scenario"]])
        if counts["failed"]:
            outcome = "failed"
        elif counts["passed"] and not (counts["skipped"] or counts["not_run"]):
            outcome = "passed"
        elif counts["passed"]:
            outcome = "incomplete"
        else:
            outcome = "not-run"
        rows[req] = {"outcome": outcome, "counts": counts, "broken_by": sorted(broken_by),
                     "exercised_by": dict(sorted(exercised.items()))}
    return rows
