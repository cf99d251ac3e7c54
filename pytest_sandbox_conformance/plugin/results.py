"""The session's results: what each scenario item did, the terminal summary and the JSON
conformance report (written once, by the controller, never by an xdist worker)."""

from __future__ import annotations

from typing import Any

import pytest

__all__ = ["Results"]


class Results:
    """A plugin object collecting every scenario item's outcome."""

    def __init__(self, suite) -> None:
        self.suite = suite
        self.items: dict[str, dict[str, Any]] = {}

    def values(self) -> list[dict[str, Any]]:
        return list(self.items.values())

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        props = dict(report.user_properties)
        if "sandbox_scenario" not in props:
            return
        if report.when != "call" and not (report.skipped or report.failed):
            return
        entry = self.items.setdefault(report.nodeid, {
            "scenario": props["sandbox_scenario"],
            "requirements": props["sandbox_requirements"].split(),
            "profile": props["sandbox_profile"],
            "item": report.nodeid,
        })
        outcome = "skipped" if report.skipped else ("failed" if report.failed else "passed")
        if entry.get("outcome") in (None, "passed") or outcome == "failed":
            entry["outcome"] = outcome
        if report.skipped and isinstance(report.longrepr, tuple):
            entry["reason"] = report.longrepr[2]
        if "sandbox_failed_schedule" in props:
            entry["failed_schedule"] = props["sandbox_failed_schedule"]
            entry["broken"] = props["sandbox_broken"].split()

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.suite._is_worker() or self.suite.settings.report is None:
            return
        from ..reports.conformance import build_report, write_report

        write_report(self.suite.settings.report, build_report(self.suite, self.values()))

    def pytest_terminal_summary(self, terminalreporter, exitstatus, config) -> None:
        if self.suite._is_worker() or not self.items:
            return
        from ..reports.conformance import verdict

        v = verdict(self.values())
        terminalreporter.write_sep("-", "sandbox conformance")
        terminalreporter.write_line(f"driver {self.suite.driver_label}: {v['verdict']} "
                                    f"({v['passed']} passed, {v['failed']} failed, "
                                    f"{v['skipped']} skipped items; core: {v['core']})"
                                    + ("; timing approximate (wall-clock observations)"
                                       if self.suite.timing == "approximate" else ""))
        if self.suite.settings.report is not None:
            terminalreporter.write_line(f"report: {self.suite.settings.report}")
