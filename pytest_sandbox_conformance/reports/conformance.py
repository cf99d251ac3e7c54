"""The conformance report (``--sandbox-report=PATH``): one JSON document per run.

Per scenario and per requirement: passed, failed or skipped; per profile a verdict; overall,
``conformant`` only if no core scenario failed or was skipped. Written once, by the controller
(never by an xdist worker).
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .. import __version__

__all__ = ["build_report", "verdict", "write_report"]


def _merge(outcomes: list[str]) -> str:
    if "failed" in outcomes:
        return "failed"
    if "skipped" in outcomes:
        return "skipped"
    return "passed" if outcomes else "skipped"


def verdict(items: list[dict[str, Any]]) -> dict[str, Any]:
    counts = {k: sum(1 for i in items if i.get("outcome") == k)
              for k in ("passed", "failed", "skipped")}
    core = [i.get("outcome", "skipped") for i in items if i["profile"] == "core"]
    core_ok = bool(core) and all(o == "passed" for o in core)
    return {**counts, "core": _merge(core) if core else "none run",
            "verdict": "conformant" if core_ok else "not conformant"}


def build_report(suite, items: list[dict[str, Any]]) -> dict[str, Any]:
    items = sorted(items, key=lambda i: i["item"])
    timing = getattr(suite, "timing", "exact")
    scenarios: dict[str, dict[str, Any]] = {}
    for i in items:
        s = scenarios.setdefault(i["scenario"], {"profile": i["profile"],
                                                 "requirements": i["requirements"],
                                                 "items": {}})
        entry = {k: v for k, v in i.items()
                 if k in ("outcome", "reason", "failed_schedule", "broken")}
        if timing != "exact" and entry.get("outcome") != "skipped":
            entry["timing"] = timing  # where the driver polled was not controlled
        s["items"][i["item"]] = entry
    for s in scenarios.values():
        s["outcome"] = _merge([v.get("outcome", "skipped") for v in s["items"].values()])
    requirements: dict[str, dict[str, Any]] = {}
    for sid, s in sorted(scenarios.items()):
        for r in s["requirements"]:
            req = requirements.setdefault(r, {"scenarios": {}})
            req["scenarios"][sid] = s["outcome"]
    for r in requirements.values():
        r["outcome"] = _merge(list(r["scenarios"].values()))
    profiles = {}
    for p in sorted({s["profile"] for s in scenarios.values()}):
        profiles[p] = _merge([s["outcome"] for s in scenarios.values() if s["profile"] == p])
    v = verdict(items)
    return {
        "format": 1,
        "suite": {"name": "pytest-sandbox-conformance", "version": __version__},
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "driver": {"spec": suite.settings.driver, "name": suite.driver_label,
                   "capabilities": sorted(suite.driver_caps), "timing": timing},
        "engine": suite.settings.engine,
        "gpu": {"styles": sorted(getattr(suite, "gpu_styles", {}) or
                                 (c for c in suite.capabilities if c.startswith("gpu-"))),
                "emulated": bool(getattr(suite, "gpu_emulated", False))
                or suite.settings.engine == "fake"},
        "schedules": suite.settings.mode,
        "verdict": v["verdict"],
        "profiles": profiles,
        "requirements": dict(sorted(requirements.items(),
                                    key=lambda kv: int(kv[0].split("-")[1]))),
        "scenarios": scenarios,
        "counts": {k: v[k] for k in ("passed", "failed", "skipped")},
    }


def write_report(path: Path, report: dict[str, Any]) -> None:
    """Write atomically, so a reader never sees half a report."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, dir=path.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(report, f, indent=2, sort_keys=False)
        f.write("\n")
    os.replace(tmp, path)
