"""``sandbox-conformance merge-reports``: the report of a whole run from its shards' reports.

Each shard of a run (``--sandbox-shard=K/N`` on N machines) writes its own JSON report: every
planned item, those of other shards ``not-run`` with the shard's reason, and the shard's
``shard`` field (index, total, the items of other shards). :func:`merge_reports` checks that the
reports are the shards of one run, then takes each item's entry from the shard that ran it and
draws the whole report again (``json_report.assemble``): the verdict, the counts, every
requirement and scenario, as one session running every item would have.

One run means: the same report format, suite version, driver (spec, name, capabilities,
timing), engine, GPU request styles, schedules mode, catalog and no replay; every report a shard
of the same N, the shards 1..N each exactly once; the same plan of items in every report; and
every item run (or judged not to run) by exactly the shard it belongs to. Anything else is a
:class:`MergeError` naming the file. No pytest, no I/O beyond reading the files.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any, Mapping, Sequence

from .json_report import FORMAT, assemble

__all__ = ["MergeError", "load_report", "merge_reports", "report_items"]

#: What must be equal in the shards' reports, and what a person calls it.
SAME = (("format", "the report format"), ("suite", "the suite's version"),
        ("driver", "the driver"), ("engine", "the engine"), ("gpu", "the GPU request styles"),
        ("schedules", "the schedules mode"), ("catalog", "whether the bundled catalog ran"),
        ("replay", "the replay"))


class MergeError(Exception):
    """The reports cannot be merged: the message names the file and what is wrong."""


def load_report(path: str | Path) -> dict[str, Any]:
    """A JSON report from ``path``; :class:`MergeError` when it cannot be read or is none."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise MergeError(f"{p}: cannot read it: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MergeError(f"{p}: not JSON ({exc})") from None
    if not isinstance(data, dict) or "scenarios" not in data or "format" not in data:
        raise MergeError(f"{p}: not a conformance report (--sandbox-report): no format or "
                         "scenarios")
    if data["format"] != FORMAT:
        raise MergeError(f"{p}: report format {data['format']!r}; this version reads format "
                         f"{FORMAT}")
    return data


def report_items(report: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The report's items again, as ``json_report.assemble`` takes them (node id -> item)."""
    out: dict[str, dict[str, Any]] = {}
    for scenario, s in report["scenarios"].items():
        for nodeid, entry in s["items"].items():
            item = {"item": nodeid, "scenario": scenario, "title": s.get("title", ""),
                    "profile": s["profile"], "requirements": list(s["requirements"])}
            item.update({k: v for k, v in entry.items() if k != "timing"})
            out[nodeid] = item
    return out


def _facts(report: Mapping[str, Any], key: str) -> Any:
    value = report.get(key)
    if key == "suite" and isinstance(value, Mapping):
        return value.get("version")
    return value


def merge_reports(reports: Sequence[tuple[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """The whole run's report from ``(file name, report)`` of each of its shards."""
    if not reports:
        raise MergeError("no report to merge")
    first_name, first = reports[0]
    for name, report in reports:
        shard = report.get("shard")
        if not isinstance(shard, Mapping):
            raise MergeError(f"{name}: not a shard's report (its run had no --sandbox-shard=K/N); "
                             "merge-reports joins the reports of one run's shards")
        for key, what in SAME:
            if _facts(report, key) != _facts(first, key):
                raise MergeError(f"{name}: {what} is {_facts(report, key)!r}, but {first_name} "
                                 f"has {_facts(first, key)!r}: merge only the shards of one run "
                                 "(the same options on every machine)")
    total = first["shard"]["total"]
    seen: dict[int, str] = {}
    for name, report in reports:
        shard = report["shard"]
        if shard["total"] != total:
            raise MergeError(f"{name}: shard {shard['index']}/{shard['total']}, but "
                             f"{first_name} is a shard of {total}: merge the shards of one split")
        if shard["index"] in seen:
            raise MergeError(f"{name}: shard {shard['index']}/{total} again (also "
                             f"{seen[shard['index']]})")
        seen[shard["index"]] = name
    missing = sorted(set(range(1, total + 1)) - set(seen))
    if missing:
        raise MergeError(f"shard(s) {', '.join(f'{k}/{total}' for k in missing)} missing: "
                         f"got {', '.join(f'{k}/{total} ({seen[k]})' for k in sorted(seen))}")
    items_of = [(name, report, report_items(report)) for name, report in reports]
    plan = set(items_of[0][2])
    for name, _, items in items_of[1:]:
        if set(items) != plan:
            only_here = sorted(set(items) - plan)
            only_there = sorted(plan - set(items))
            raise MergeError(
                f"{name}: its plan of items differs from {first_name}'s (collected differently: "
                "other scenarios, options or suite version?): "
                + "; ".join(part for part in (
                    f"{len(only_here)} only here ({', '.join(only_here[:3])}"
                    f"{', ...' if len(only_here) > 3 else ''})" if only_here else "",
                    f"{len(only_there)} only in {first_name} ({', '.join(only_there[:3])}"
                    f"{', ...' if len(only_there) > 3 else ''})" if only_there else "")
                    if part))
    merged: dict[str, dict[str, Any]] = {}
    owner: dict[str, str] = {}
    for name, report, items in items_of:
        elsewhere = set(report["shard"].get("deselected", ()))
        for nodeid, item in items.items():
            if nodeid in elsewhere:
                continue
            if nodeid in owner:
                # Items deselected before the split (-k, -m) are in every shard, not run: fine.
                if item["outcome"] == "not-run" and merged[nodeid]["outcome"] == "not-run":
                    continue
                raise MergeError(f"{name}: item {nodeid} belongs to this shard and to "
                                 f"{owner[nodeid]}'s: the shards overlap (collected differently?)")
            owner[nodeid] = name
            merged[nodeid] = item
    unowned = sorted(plan - set(owner))
    if unowned:
        raise MergeError(f"{len(unowned)} item(s) in no shard ({', '.join(unowned[:3])}"
                         f"{', ...' if len(unowned) > 3 else ''}): every report says another "
                         "shard has it (collected differently?)")
    plan_known = all(_plan_known(r) for _, r in reports)
    facts = {k: first[k] for k in ("format", "suite", "driver", "engine", "gpu", "schedules",
                                   "catalog", "replay")}
    facts["generated"] = max(r.get("generated", "") for _, r in reports)
    facts["command"] = shlex.join(["sandbox-conformance", "merge-reports",
                                   *[name for name, _ in reports]])
    extra = {"merged": [{"file": name, "shard": f"{r['shard']['index']}/{total}",
                         "command": r.get("command", ""), "generated": r.get("generated", ""),
                         "verdict": r.get("verdict_text", "")}
                        for name, r in sorted(reports, key=lambda nr: nr[1]["shard"]["index"])]}
    return assemble(facts, list(merged.values()), plan_known=plan_known, extra=extra)


def _plan_known(report: Mapping[str, Any]) -> bool:
    """Whether a shard knew its plan of items (``plan_known``; a report written before the
    field existed says so only in its verdict's reasons)."""
    if "plan_known" in report:
        return bool(report["plan_known"])
    return not any("the plan of items is unknown" in reason
                   for reason in report.get("verdict_reasons", ()))
