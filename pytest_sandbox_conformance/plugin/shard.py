"""``--sandbox-shard=K/N``: this session runs part K of N of the items, the same part on every
machine that collects the same items, so N machines (a CI matrix) run the whole between them.

The split (:func:`split`) is a pure function of the items' node ids and weights: each item weighs
its number of schedules (a test that is no scenario item weighs 1); the items are taken heaviest
first (ties by node id) and each goes to the part that weighs least so far (ties: the lowest K),
the greedy "longest processing time first" rule, which keeps every part within the heaviest
item of the ideal. It runs after every other deselection (``-k``, ``-m``, ``--lf``), so the parts
split what is really run.

The items of other parts are deselected (``pytest_deselected``: pytest says ``N deselected``)
and recorded: the reports say ``not-run`` with the reason :func:`reason` and carry the part
(``shard``: index, total, the items of other parts), so a part's verdict alone is
``incomplete``; ``sandbox-conformance merge-reports`` joins the parts' reports
(``reports/merge.py``).
"""

from __future__ import annotations

import heapq
from typing import Sequence

import pytest

__all__ = ["Shard", "reason", "split"]


def reason(index: int, total: int) -> str:
    """Why an item of another part is not run here."""
    return f"in another shard (this session ran --sandbox-shard={index}/{total})"


def split(weights: Sequence[tuple[str, int]], total: int) -> list[int]:
    """The part (0-based) of each ``(node id, weight)``, in the order given."""
    order = sorted(range(len(weights)), key=lambda i: (-weights[i][1], weights[i][0]))
    parts = [(0, k) for k in range(total)]  # (weight so far, part)
    heapq.heapify(parts)
    out = [0] * len(weights)
    for i in order:
        load, k = heapq.heappop(parts)
        out[i] = k
        heapq.heappush(parts, (load + max(1, weights[i][1]), k))
    return out


class Shard:
    """The plugin object that keeps part ``index`` (1-based) of ``total``."""

    def __init__(self, index: int, total: int, results) -> None:
        self.index = index
        self.total = total
        self.results = results
        #: Node ids of the items of other parts.
        self.deselected: list[str] = []

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, session: pytest.Session, config: pytest.Config,
                                      items: list[pytest.Item]) -> None:
        weights = [(i.nodeid, len(getattr(i, "schedules", ())) or 1) for i in items]
        parts = split(weights, self.total)
        keep = [i for i, k in zip(items, parts) if k == self.index - 1]
        drop = [i for i, k in zip(items, parts) if k != self.index - 1]
        self.deselected = [i.nodeid for i in drop]
        self.results.shard_deselected(self.deselected)
        if drop:
            config.hook.pytest_deselected(items=drop)
        items[:] = keep

    def pytest_report_collectionfinish(self, config: pytest.Config, items) -> str:
        return (f"sandbox conformance: shard {self.index}/{self.total}: {len(items)} item(s) "
                f"here, {len(self.deselected)} in the other shard(s)")
