"""The session's results: the plan of items, what each item did, the terminal summary and the
reports (JSON, HTML, the Gateway-API-shaped claim), written once, by the controller.

The plan is known at collection: every scenario item (before deselection), the items
``pytest_deselected`` names, and the scenarios a replay leaves out. An xdist worker collects the
same plan and sends it to the controller in ``workeroutput`` (the controller does not collect);
each item's failure travels on its report (``sandbox_failure``, plain JSON), so workers and the
controller see the same data. A planned item with no result is *not run*.
"""

from __future__ import annotations

import shlex
import sys
from typing import Any

import pytest

from ..run.failure import ENVIRONMENT_KINDS, ConformanceFailure
from .longrepr import FailureRepr
from .shard import reason as shard_reason

__all__ = ["ENVIRONMENT_KINDS", "Results"]


DESELECTED = "deselected (-k, -m, --lf or --deselect)"
NOT_REACHED = ("not reached: the session stopped before it (-x or --maxfail, an interrupt, "
               "a crashed worker)")


def _label(name: str) -> str:
    return name.partition("[")[2].rstrip("]") or name


class Results:
    """A plugin object collecting the plan and every scenario item's outcome."""

    def __init__(self, suite) -> None:
        self.suite = suite
        self.config = suite.config
        #: node id -> the item's facts (scenario, title, profile, requirements, label, schedules)
        self.plan: dict[str, dict[str, Any]] = {}
        self.plan_known = False
        self.deselected: set[str] = set()
        #: The items of other shards (--sandbox-shard), and this session's (K, N).
        self.other_shards: set[str] = set()
        self.shard: tuple[int, int] | None = suite.settings.shard
        #: node id -> what happened (outcome, reason, failure, ...)
        self.results: dict[str, dict[str, Any]] = {}
        self.report: dict[str, Any] | None = None

    # -- the plan ------------------------------------------------------------------------------

    def planned(self, items) -> None:
        """Every scenario item collected (called by the suite before any deselection)."""
        self.plan_known = True
        for item in items:
            sc = item.scenario
            self.plan[item.nodeid] = {
                "item": item.nodeid, "scenario": sc.id, "title": sc.title,
                "profile": sc.profile, "requirements": list(sc.requirements),
                "label": _label(item.name), "schedules": len(item.schedules)}
            if getattr(item, "exploration", None):
                self.plan[item.nodeid]["exploration"] = item.exploration

    def not_collected(self, parent: str, scenario, reason: str) -> None:
        """A scenario of the plan that collection left out (a replay of another one): one item
        not run."""
        nodeid = f"{parent}::{scenario.id}"
        self.plan[nodeid] = {
            "item": nodeid, "scenario": scenario.id, "title": scenario.title,
            "profile": scenario.profile, "requirements": list(scenario.requirements),
            "label": "", "schedules": 0, "not_collected": reason}

    def pytest_deselected(self, items) -> None:
        self.deselected.update(i.nodeid for i in items)

    def shard_deselected(self, nodeids) -> None:
        """The items ``--sandbox-shard`` left to other shards (also passed to
        ``pytest_deselected``)."""
        self.other_shards.update(nodeids)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node, error) -> None:
        plan = getattr(node, "workeroutput", {}).get("sandbox_plan")
        if not plan or not plan.get("known"):
            return
        self.plan_known = True
        for entry in plan["items"]:
            self.plan.setdefault(entry["item"], entry)
        self.deselected.update(plan["deselected"])
        self.other_shards.update(plan.get("other_shards", ()))

    # -- outcomes ------------------------------------------------------------------------------

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        rep = outcome.get_result()
        if call.excinfo is None or not hasattr(item, "scenario"):
            return
        exc = call.excinfo.value
        kind = getattr(exc, "kind", None)
        if kind in ENVIRONMENT_KINDS:
            summary = getattr(exc, "summary", None)
            lines = ([summary()] if callable(summary) else str(exc).strip().splitlines()) \
                or [type(exc).__name__]
            rep.sandbox_error = {"kind": kind, "message": lines[0][:500]}
            if isinstance(getattr(exc, "replay", None), str):
                rep.sandbox_error["replay"] = exc.replay
        elif isinstance(exc, ConformanceFailure):
            rep.sandbox_failure = getattr(item, "sandbox_failure", None)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        props = dict(report.user_properties)
        if "sandbox_scenario" not in props:
            return
        failure = getattr(report, "sandbox_failure", None)
        error = getattr(report, "sandbox_error", None)
        one_line = (failure or error or {}).get("message")
        if one_line and isinstance(report.longrepr, str):
            # Came from an xdist worker as text: give junitxml and -r the one-line message again.
            report.longrepr = FailureRepr(report.longrepr, one_line, report.location[0],
                                          report.location[1] or 0)
        if report.when != "call" and not (report.skipped or report.failed):
            return
        entry = self.results.setdefault(report.nodeid, {"props": props})
        if report.skipped:
            outcome = "skipped"
            if isinstance(report.longrepr, tuple):
                entry["reason"] = report.longrepr[2]
        elif report.failed and (error or report.when != "call"):
            outcome = "error"
            entry["error_kind"] = error["kind"] if error else report.when
            entry["error"] = error["message"] if error else (
                report.longreprtext.strip().splitlines() or ["?"])[-1][:500]
            if error and "replay" in error:
                entry["replay"] = error["replay"]
        elif report.failed:
            outcome = "failed"
            if failure:
                entry["failure"] = {k: v for k, v in failure.items() if k != "broken"}
                entry["broken"] = failure["broken"]
                entry["failed_schedule"] = failure["schedule"]
            else:  # an exception outside the checks (the adapter's): no requirement judged
                entry["broken"] = []
                entry["crash"] = (report.longreprtext.strip().splitlines() or ["?"])[-1][:500]
        else:
            outcome = "passed"
        if report.when == "call":
            entry["duration"] = round(report.duration, 3)
        rank = ("passed", "skipped", "failed", "error")
        if entry.get("outcome") is None or rank.index(outcome) > rank.index(entry["outcome"]):
            entry["outcome"] = outcome

    def items(self) -> list[dict[str, Any]]:
        """Every planned item with its outcome (``not-run`` where nothing was reported), and any
        reported item the plan lacks."""
        out = []
        for nodeid, planned in self.plan.items():
            entry = dict(planned)
            result = self.results.get(nodeid)
            if result is not None:
                entry.update({k: v for k, v in result.items() if k != "props"})
            else:
                entry["outcome"] = "not-run"
                entry["reason"] = (entry.pop("not_collected", None)
                                   or (shard_reason(*self.shard) if nodeid in self.other_shards
                                       and self.shard else None)
                                   or (DESELECTED if nodeid in self.deselected else NOT_REACHED))
            entry.pop("not_collected", None)
            out.append(entry)
        for nodeid, result in self.results.items():
            if nodeid not in self.plan:
                props = result["props"]
                out.append({"item": nodeid, "scenario": props["sandbox_scenario"],
                            "title": "", "profile": props["sandbox_profile"],
                            "requirements": props["sandbox_requirements"].split(),
                            "label": _label(nodeid.rpartition("::")[2]),
                            "schedules": int(props.get("sandbox_schedules", 1)),
                            **{k: v for k, v in result.items() if k != "props"}})
        return out

    # -- the end -------------------------------------------------------------------------------

    def build(self) -> dict[str, Any]:
        from ..reports.json_report import build_report

        if self.report is None:
            command = shlex.join(["pytest", *self.config.invocation_params.args])
            shard = None
            if self.shard is not None:
                plan = set(self.plan)
                shard = {"index": self.shard[0], "total": self.shard[1],
                         "deselected": sorted(n for n in self.other_shards if n in plan)}
            self.report = build_report(self.suite, self.items(), plan_known=self.plan_known,
                                       command=command, shard=shard)
        return self.report

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        worker_output = getattr(self.config, "workeroutput", None)
        if worker_output is not None:  # an xdist worker: hand the plan to the controller
            worker_output["sandbox_plan"] = {"items": list(self.plan.values()),
                                             "deselected": sorted(self.deselected),
                                             "other_shards": sorted(self.other_shards),
                                             "known": self.plan_known}
            return
        s = self.suite.settings
        outputs = [(s.report, "json"), (s.html, "html"), (s.claim, "claim")]
        if not any(path for path, _ in outputs):
            return
        from ..reports.json_report import write_report

        report = self.build()
        for path, what in outputs:
            if path is None:
                continue
            if what == "json":
                text: Any = report
            elif what == "html":
                from ..reports.html_report import render

                text = render(report)
            else:
                from ..reports.claim import render_claim

                text = render_claim(report, s.implementation)
            try:
                write_report(path, text)
            except OSError as exc:
                print(f"sandbox conformance: cannot write {path}: {exc}", file=sys.stderr)

    def pytest_terminal_summary(self, terminalreporter, exitstatus, config) -> None:
        if self.suite._is_worker() or not (self.results or self.plan) \
                or config.option.collectonly:
            return
        from ..reports.terminal import requirement_table, summary_lines

        report = self.build()
        tr = terminalreporter
        tr.write_sep("-", "sandbox conformance")
        troubled = report["counts"]["failed"] or report["counts"]["error"]
        if troubled or config.option.verbose >= 0:
            for line in requirement_table(report["requirements"], tr._tw.fullwidth):
                tr.write_line(line)
        for line in summary_lines(report):
            tr.write_line(line)
        for sid, sc in sorted(report["scenarios"].items()):
            ex = sc.get("exploration")
            if ex and ex["mode"] == "sample":  # never mistaken for the whole space
                tr.write_line(
                    f"sampled: {sid}: {ex['explored']} of {ex['space']} schedules (more than "
                    f"--sandbox-max-schedules={ex['bound']}): "
                    + (f"every schedule of at most K={ex['k']} interesting events, then "
                       if ex["k"] is not None else "")
                    + f"{ex['pct']['runs']} PCT-style runs (docs/scenarios.md, Above the bound)")
        s = self.suite.settings
        for path, what in ((s.report, "report"), (s.html, "html"), (s.claim, "claim")):
            if path is not None:
                tr.write_line(f"{what}: {path}")
