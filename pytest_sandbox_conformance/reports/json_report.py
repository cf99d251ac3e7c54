"""The conformance report (``--sandbox-report=PATH``): one JSON document per run, the data every
other output (HTML, the Gateway-API-shaped claim) is drawn from.

Per planned item its outcome (:data:`~.verdict.OUTCOMES`), per failed item the failure itself
(the one-line message, the broken requirements, the schedule, the replay command, the timeline's
moments, the driver's last snapshots), per scenario (in exhaustive mode with how its schedule
space was explored: whole, or a sample above ``--sandbox-max-schedules``), per requirement and
per profile a result, and the verdict over the whole core profile (:func:`~.verdict.verdict`).
Its shape is ``docs/report.schema.json`` (``format`` :data:`FORMAT`). Written once, by the
controller (never by an xdist worker), atomically. No pytest.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

from .. import __version__
from ..run.failure import ConformanceFailure
from .contract import requirement
from .verdict import count, merge, profile_result, requirement_rows, verdict

__all__ = ["FACTS", "FORMAT", "assemble", "build_report", "failure_to_json", "session_facts",
           "write_report"]

#: The report's format; bumped whenever a field changes meaning or goes away.
FORMAT = 2


def failure_to_json(exc: ConformanceFailure, *, failed: int = 1, total: int = 1
                    ) -> dict[str, Any]:
    """What a failed item carries into the report: small, plain JSON (it travels from an xdist
    worker to the controller)."""
    s = exc.schedule
    return {
        "message": exc.summary(),
        "schedule": s.id,
        "schedule_name": s.name,
        "requirements": exc.requirements,
        "failures": [{"check": f.check, "requirements": list(f.requirements),
                      "message": f.message, "at": f.at, "moment": f.moment}
                     for f in exc.failures],
        "replay": exc.replay,
        "driver": exc.driver,
        "timeline": exc.timeline.to_json(),
        "snapshots": [line.strip() for line in exc.snapshots.splitlines() if line.strip()],
        "notes": list(exc.notes),
        "failed_schedules": failed,
        "schedules": total,
        "source": f"{exc.scenario.path}:{exc.scenario.line}",
    }


def _item_entry(i: Mapping[str, Any], timing: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"outcome": i["outcome"], "label": i.get("label", ""),
                             "schedules": i.get("schedules", 1)}
    for key in ("reason", "failed_schedule", "broken", "crash", "error_kind", "error",
                "replay", "failure", "duration"):
        if key in i:
            entry[key] = i[key]
    if timing != "exact" and i["outcome"] in ("passed", "failed"):
        entry["timing"] = timing  # where the driver polled was not controlled
    return entry


def build_report(suite, items: Sequence[Mapping[str, Any]], *, plan_known: bool = True,
                 command: str = "", shard: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The report of a session. ``suite`` gives the session's facts (settings, driver, engine,
    timing, GPU styles); ``items`` every planned item, each with its outcome; ``shard`` the part
    of the items this session ran (``--sandbox-shard``: ``index``, ``total``, ``deselected``)."""
    return assemble(session_facts(suite, command), items, plan_known=plan_known, shard=shard)


def session_facts(suite, command: str = "") -> dict[str, Any]:
    """What a report says of its session, besides the items: the report's head."""
    settings = suite.settings
    return {
        "format": FORMAT,
        "suite": {"name": "pytest-sandbox-conformance", "version": __version__},
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "driver": {"spec": settings.driver, "name": suite.driver_label,
                   "capabilities": sorted(suite.driver_caps),
                   "timing": getattr(suite, "timing", "exact")},
        "engine": settings.engine,
        "gpu": {"styles": sorted(getattr(suite, "gpu_styles", {}) or
                                 (c for c in suite.capabilities if c.startswith("gpu-"))),
                "emulated": bool(getattr(suite, "gpu_emulated", False))
                or settings.engine == "fake"},
        "schedules": settings.mode,
        "catalog": settings.builtin,
        "replay": "@".join(settings.replay) if settings.replay else None,
    }


#: The keys :func:`session_facts` gives, in the report's order.
FACTS = ("format", "suite", "generated", "command", "driver", "engine", "gpu", "schedules",
         "catalog", "replay")


def assemble(facts: Mapping[str, Any], items: Sequence[Mapping[str, Any]], *,
             plan_known: bool = True, shard: Mapping[str, Any] | None = None,
             extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A report from its head (:func:`session_facts`) and its items: the verdict and every
    result drawn from them; ``extra`` fields go after the head (``merged``)."""
    items = sorted(items, key=lambda i: i["item"])
    timing = facts["driver"]["timing"]
    v = verdict(items, replay=facts["replay"] is not None, catalog=facts["catalog"],
                plan_known=plan_known,
                shard=(shard["index"], shard["total"]) if shard else None)
    scenarios: dict[str, dict[str, Any]] = {}
    for i in items:
        s = scenarios.setdefault(i["scenario"], {
            "title": i.get("title", ""), "profile": i["profile"],
            "requirements": list(i["requirements"]), "items": {}})
        s["items"][i["item"]] = _item_entry(i, timing)
        if i.get("exploration"):  # exhaustive mode: how the scenario's space was explored
            s["exploration"] = i["exploration"]
    for s in scenarios.values():
        s["outcome"] = merge(e["outcome"] for e in s["items"].values())
        s["schedules"] = sum(e["schedules"] for e in s["items"].values()
                             if e["outcome"] in ("passed", "failed"))
    requirements = requirement_rows(items)
    for req, row in requirements.items():
        row["title"] = requirement(req)["title"]
    profiles = {}
    for p in ("core", "extended"):
        mine = [i for i in items if i["profile"] == p]
        profiles[p] = {"result": profile_result(mine), "counts": count(mine)}
    report: dict[str, Any] = {k: facts[k] for k in FACTS}
    if shard:
        report["shard"] = {"index": shard["index"], "total": shard["total"],
                           "deselected": sorted(shard["deselected"])}
    report.update(extra or {})
    report.update({
        "plan_known": plan_known,
        "verdict": v.verdict,
        "verdict_reasons": list(v.reasons),
        "verdict_text": str(v),
        "profiles": profiles,
        "counts": count(items),
        "requirements": requirements,
        "scenarios": scenarios,
    })
    return report


def write_report(path: Path, report: Mapping[str, Any] | str) -> None:
    """Write atomically, so a reader never sees half a report; a mapping is written as compact
    JSON (one line, by the C encoder: an indented dump of a large report takes ten times longer;
    ``jq .`` pretty-prints it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = report if isinstance(report, str) else (
        json.dumps(report, separators=(",", ":"), ensure_ascii=False) + "\n")
    fd, tmp = tempfile.mkstemp(prefix=path.name, dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # as open() would make it, not mkstemp's 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
