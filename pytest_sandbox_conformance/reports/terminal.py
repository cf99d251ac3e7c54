"""The end of a session in the terminal: the per-requirement table and the verdict line. Pure
text from the report's data (``json_report.build_report``); no pytest."""

from __future__ import annotations

from typing import Any, Mapping

__all__ = ["requirement_table", "summary_lines"]

_COLUMNS = (("passed", "passed"), ("failed", "failed"), ("skipped", "skipped"),
            ("not_run", "not run"))


def requirement_table(requirements: Mapping[str, Mapping[str, Any]], width: int = 80
                      ) -> list[str]:
    """One row per requirement: items where it held (passed), items whose failures broke it
    (failed), skipped and not-run items among those exercising it, and its title."""
    head = "requirement " + " ".join(f"{label:>7}" for _, label in _COLUMNS) + "  "
    lines = [head + "title"]
    for req, row in requirements.items():
        counts = row["counts"]
        cells = " ".join(f"{counts[key]:>7}" for key, _ in _COLUMNS)
        mark = {"failed": "BROKEN ", "incomplete": "partly ", "not-run": "unrun  "}.get(
            row["outcome"], "")
        title = (mark + row.get("title", "")).rstrip()
        room = max(10, width - len(head) - 1)
        if len(title) > room:
            title = title[:room - 3] + "..."
        lines.append(f"{req:<11} {cells}  {title}")
    return lines


def summary_lines(report: Mapping[str, Any]) -> list[str]:
    """The verdict and the counts, as the terminal summary prints them."""
    c = report["counts"]
    timing = ("; timing approximate (wall-clock observations)"
              if report["driver"]["timing"] == "approximate" else "")
    core = report["profiles"]["core"]
    lines = [f"driver {report['driver']['name']}: {report['verdict_text']}{timing}",
             f"items: {c['passed']} passed, {c['failed']} failed, {c['skipped']} skipped, "
             f"{c['error']} errors, {c['not_run']} not run (core: {core['result']}, "
             f"{sum(core['counts'].values())} items)"]
    errors = [(item, e) for s in report["scenarios"].values()
              for item, e in s["items"].items() if e["outcome"] == "error"]
    for item, e in errors[:5]:
        lines.append(f"error ({e.get('error_kind', '?')}): {item}: {e.get('error', '')}")
    if len(errors) > 5:
        lines.append(f"... and {len(errors) - 5} more errors (the report lists them)")
    return lines
