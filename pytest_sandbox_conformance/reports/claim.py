"""The conformance claim (``--sandbox-claim=PATH``): YAML in the shape of the Gateway API's
``ConformanceReport`` (``conformance/apis/v1`` of kubernetes-sigs/gateway-api), so a driver
project can publish its result the way Kubernetes Gateway implementations do.

Drawn from the JSON report's data (``json_report.build_report``); the implementation's fields
come from ``--sandbox-implementation KEY=VALUE``. The profile is ``SANDBOX-OWNERSHIP`` (the
contract, OWN-1..OWN-20) with its ``core`` and ``extended`` results: ``success`` only where
every planned item passed (for core: the verdict is ``conformant``), ``failure`` where one
failed, else ``partial``; ``Skipped`` counts skipped, not-run and environment-error items. The
``reproduce`` section gives the command line and, per failed item, its replay command. No pytest.
"""

from __future__ import annotations

from typing import Any, Mapping

import yaml

__all__ = ["API_VERSION", "IMPLEMENTATION_KEYS", "PROFILE", "build_claim",
           "parse_implementation", "render_claim"]

#: The keys of the claim's implementation (the Gateway API's Implementation); ``contact`` repeats.
IMPLEMENTATION_KEYS = ("organization", "project", "url", "version", "contact")


def parse_implementation(values: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """The implementation from ``KEY=VALUE`` items (``--sandbox-implementation``,
    ``merge-reports --implementation``); raises ``ValueError(item)`` for an item that is not
    ``KEY=VALUE`` with a known key and a value."""
    out: dict[str, Any] = {"contact": []}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or key not in IMPLEMENTATION_KEYS or not value:
            raise ValueError(item)
        if key == "contact":
            out["contact"].append(value)
        else:
            out[key] = value
    return out

API_VERSION = "sandbox-conformance/v1"
PROFILE = "SANDBOX-OWNERSHIP"


def _name(item: str) -> str:
    """The test's name in the claim: ``scenario[label]`` (the node id without its file)."""
    return item.rpartition("::")[2]


def _status(entries: list[tuple[str, Mapping[str, Any]]], conformant: bool | None
            ) -> dict[str, Any]:
    passed = [n for n, e in entries if e["outcome"] == "passed"]
    failed = [n for n, e in entries if e["outcome"] == "failed"]
    skipped = [n for n, e in entries if e["outcome"] in ("skipped", "not-run", "error")]
    if failed:
        result = "failure"
    elif skipped or conformant is False or not entries:
        result = "partial"
    else:
        result = "success"
    status: dict[str, Any] = {
        "result": result,
        "statistics": {"Failed": len(failed), "Passed": len(passed), "Skipped": len(skipped)}}
    if skipped:
        status["skippedTests"] = sorted(_name(n) for n in skipped)
    if failed:
        status["failedTests"] = sorted(_name(n) for n in failed)
    return status


def _summary(core: Mapping[str, Any], report: Mapping[str, Any]) -> str:
    why = "; ".join(report["verdict_reasons"])
    if core["result"] == "success":
        return "Core tests succeeded."
    if core["result"] == "failure":
        return f"Core tests failed with {core['statistics']['Failed']} test failures ({why})."
    return f"Core tests partially succeeded ({why})."


def build_claim(report: Mapping[str, Any], implementation: Mapping[str, Any] | None = None
                ) -> dict[str, Any]:
    impl = dict(implementation or {})
    by_profile: dict[str, list[tuple[str, Mapping[str, Any]]]] = {"core": [], "extended": []}
    failures = []
    for s in report["scenarios"].values():
        for item, e in s["items"].items():
            by_profile.setdefault(s["profile"], []).append((item, e))
            if e["outcome"] == "failed" and e.get("failure"):
                failures.append({"test": _name(item), "broken": e.get("broken", []),
                                 "replay": e["failure"]["replay"]})
    core = _status(by_profile["core"], report["verdict"] == "conformant")
    profile: dict[str, Any] = {"name": PROFILE, "summary": _summary(core, report), "core": core}
    if by_profile["extended"]:
        profile["extended"] = _status(by_profile["extended"], None)
    return {
        "apiVersion": API_VERSION,
        "kind": "ConformanceReport",
        "date": report["generated"],
        "suiteVersion": report["suite"]["version"],
        "mode": report["schedules"],
        "implementation": {
            "organization": impl.get("organization", ""),
            "project": impl.get("project", report["driver"]["name"]),
            "url": impl.get("url", ""),
            "version": impl.get("version", ""),
            "contact": list(impl.get("contact", [])),
        },
        "environment": {"driver": report["driver"]["spec"], "engine": report["engine"],
                        "timing": report["driver"]["timing"],
                        "gpuEmulated": report["gpu"]["emulated"]},
        "verdict": report["verdict_text"],
        "profiles": [profile],
        "reproduce": {"command": report["command"],
                      # A merged report (merge-reports): each shard's own command line.
                      **({"shards": [m["command"] for m in report["merged"]]}
                         if report.get("merged") else {}),
                      **({"failures": sorted(failures, key=lambda f: f["test"])}
                         if failures else {})},
    }


def render_claim(report: Mapping[str, Any], implementation: Mapping[str, Any] | None = None
                 ) -> str:
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml's, where PyYAML has it
    return yaml.dump(build_claim(report, implementation), Dumper=dumper, sort_keys=False,
                     default_flow_style=False, width=100, allow_unicode=True)
