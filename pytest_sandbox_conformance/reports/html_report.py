"""The HTML report (``--sandbox-html=PATH``): one self-contained file, readable offline as a CI
artifact (inline CSS and a few lines of JavaScript for the copy buttons; nothing fetched).

Drawn from the JSON report's data (``json_report.build_report``): a header (driver, engine,
schedules, timing, the verdict per profile and overall, counts), the requirement x scenario
matrix, every failed item's smallest failing schedule as swimlanes (``html_lanes.py``) with the
broken requirements' text from the contract and the replay command, and every scenario with its
items and schedule counts. Only failures are drawn in full, so a run of thousands of schedules
stays small. No pytest.
"""

from __future__ import annotations

import re
from html import escape
from typing import Any, Mapping

from .contract import requirement
from .html_assets import CSS, JS
from .html_lanes import first_divergence, lanes
from .verdict import REQUIREMENTS, merge

__all__ = ["render"]

_SYMBOL = {"passed": "&#10003;", "failed": "&#10007;", "held": "&#10003;", "skipped": "s",
           "error": "!", "not-run": "&middot;"}
_WORDS = {"passed": "passed", "failed": "broke it", "held": "held (the item failed on other "
          "requirements)", "skipped": "skipped", "error": "environment error",
          "not-run": "not run"}


def _badge(outcome: str, text: str | None = None) -> str:
    return f'<span class="badge o-{escape(outcome)}">{escape(text or outcome)}</span>'


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")


def _inline(text: str) -> str:
    t = escape(text)
    t = re.sub(r"`([^`]+)`", r"<code>\1</code>", t)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", t)


def _markdown(text: str) -> str:
    """The contract's paragraphs and lists (the little markdown it uses)."""
    out = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = block.splitlines()
        if all(line.startswith("- ") or line.startswith("  ") for line in lines):
            items, cur = [], ""
            for line in lines:
                if line.startswith("- "):
                    if cur:
                        items.append(cur)
                    cur = line[2:]
                else:
                    cur += " " + line.strip()
            items.append(cur)
            out.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in items) + "</ul>")
        else:
            out.append(f"<p>{_inline(' '.join(line.strip() for line in lines))}</p>")
    return "".join(out)


def _header(r: Mapping[str, Any]) -> str:
    d = r["driver"]
    vclass = "v-" + _slug(r["verdict"])
    facts = [("driver", f"{escape(d['name'])} <span class=mute>({escape(d['spec'])})</span>"),
             ("capabilities", escape(", ".join(d["capabilities"]) or "none")),
             ("engine", escape(r["engine"]) + (" (GPU emulated)" if r["gpu"]["emulated"]
                                               and r["gpu"]["styles"] else "")),
             ("schedules", escape(r["schedules"]) + (f" &middot; replay {escape(r['replay'])}"
                                                      if r.get("replay") else "")),
             ("timing", escape(d["timing"]) + ("" if d["timing"] == "exact" else
                                               " <b>(wall-clock observations: schedules are "
                                               "not exact)</b>")),
             ("suite", f"pytest-sandbox-conformance {escape(r['suite']['version'])} "
                       f"&middot; report format {r['format']}"),
             ("generated", escape(r["generated"])),
             ("command", f"<code>{escape(r.get('command', ''))}</code>")]
    if r.get("shard"):
        sh = r["shard"]
        facts.append(("shard", f"{sh['index']}/{sh['total']} <b>(one part of a run: "
                               f"{len(sh['deselected'])} items in other shards)</b>"))
    for m in r.get("merged") or ():
        facts.append((f"shard {escape(m['shard'])}",
                      f"{escape(m['file'])}: <code>{escape(m['command'])}</code>"))
    rows = []
    for name in ("core", "extended"):
        p = r["profiles"][name]
        c = p["counts"]
        rows.append(f"<tr><td>{name}</td><td>{_badge(p['result'])}</td>"
                    + "".join(f"<td>{c[k]}</td>" for k in ("passed", "failed", "skipped",
                                                             "error", "not_run")) + "</tr>")
    c = r["counts"]
    rows.append("<tr><td><b>all</b></td><td></td>" + "".join(
        f"<td><b>{c[k]}</b></td>" for k in ("passed", "failed", "skipped", "error", "not_run"))
        + "</tr>")
    return (f"<header><h1>Sandbox conformance of {escape(d['name'])}: "
            f'<span class="badge verdict {vclass}" id="verdict">{escape(r["verdict_text"])}'
            "</span></h1><dl class=facts>"
            + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts) + "</dl>"
            "<table class=counts><thead><tr><th>profile</th><th>result</th><th>passed</th>"
            "<th>failed</th><th>skipped</th><th>error</th><th>not run</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table></header>")


def _cell_status(items: list[Mapping[str, Any]], req: str, lists_it: bool) -> str | None:
    """What a scenario's items say about ``req``: failed (one broke it), else, if the scenario
    lists it, the worst of passed, held, skipped, error, not-run; None for no cell."""
    if any(i["outcome"] == "failed" and req in (i.get("broken") or []) for i in items):
        return "failed"
    if not lists_it:
        return None
    statuses = []
    for i in items:
        o = i["outcome"]
        if o == "failed":
            statuses.append("held" if i.get("broken") else "not-run")
        else:
            statuses.append(o)
    if set(statuses) <= {"passed", "held"}:
        return "held" if "held" in statuses else "passed"
    return merge("passed" if x == "held" else x for x in statuses)


def _matrix(r: Mapping[str, Any], failure_ids: Mapping[str, str]) -> str:
    scenarios = sorted(r["scenarios"].items())
    head = "".join(f'<th class="sc"><div><a href="#scenario-{_slug(sid)}">{escape(sid)}</a>'
                   "</div></th>" for sid, _ in scenarios)
    rows = []
    for req in REQUIREMENTS:
        row = r["requirements"][req]
        cells = []
        for sid, s in scenarios:
            items = [{"item": k, **v} for k, v in s["items"].items()]
            status = _cell_status(items, req, req in s["requirements"])
            if status is None:
                cells.append("<td></td>")
                continue
            why = _WORDS[status]
            reasons = sorted({i["reason"] for i in items if i.get("reason")})
            if reasons and status in ("skipped", "not-run"):
                why += ": " + "; ".join(reasons)
            target = f"#scenario-{_slug(sid)}"
            if status == "failed":
                broke = [i["item"] for i in items if req in (i.get("broken") or [])]
                target = "#" + failure_ids.get(broke[0], f"scenario-{_slug(sid)}")
            cells.append(f'<td class="c-{status}"><a href="{target}" title="'
                         f'{escape(req)} in {escape(sid)}: {escape(why)}">{_SYMBOL[status]}</a>'
                         "</td>")
        rows.append(f'<tr><th class="req" title="{escape(row["outcome"])}">'
                    f'{_badge(row["outcome"], req)} {escape(row.get("title", ""))}</th>'
                    + "".join(cells) + "</tr>")
    legend = "".join(f'<span><span class="badge o-{k}">'
                     f"{_SYMBOL[k]}</span> {escape(v)}</span>" for k, v in _WORDS.items())
    return ('<section id="matrix"><h2>Requirements &times; scenarios</h2>'
            f'<p class="legend">{legend}</p><p class=mute>A cell is a scenario that lists the '
            "requirement, or whose failure broke it; hover for the reason, click for the "
            "scenario or the failure.</p>"
            f'<div style="overflow-x:auto"><table class="matrix"><thead><tr><th></th>{head}'
            "</tr></thead><tbody>" + "".join(rows) + "</tbody></table></div></section>")


def _failure(item: str, e: Mapping[str, Any], fid: str) -> str:
    f = e["failure"]
    sched = escape(f["schedule"]) + (f" (pinned: {escape(f['schedule_name'])})"
                                     if f.get("schedule_name") else "")
    reqs = []
    for n, req in enumerate(e.get("broken") or f["requirements"]):
        text = requirement(req)
        reqs.append(f'<details class="req"{" open" if n == 0 else ""}><summary><b>'
                    f'{escape(req)}</b> '
                    f"{escape(text['title'])}</summary><div class=contract>"
                    f"{_markdown(text['text'])}</div></details>")
    def finding(x: Mapping[str, Any]) -> str:
        name = f"[{escape(', '.join(x['requirements']))}] {escape(x['check'])}"
        if x.get("moment") is None:
            return name
        return f'<a href="#{fid}-m{x["moment"]}">{name}</a>'

    findings = "".join(
        f"<li>{finding(x)}: {escape(x['message'])}"
        + (f' <span class=mute>(at {escape(x["at"])})</span>' if x.get("at") else "") + "</li>"
        for x in f["failures"])
    div = first_divergence(f["timeline"])
    jump = (f' &middot; <a href="#{fid}-m{div}">jump to the first divergence</a>'
            if div is not None else "")
    many = (f"{f['failed_schedules']} of {f['schedules']} schedules of this item failed; "
            "drawn: the smallest" if f["schedules"] > 1 else "one schedule")
    snaps = "".join(f"<li><code>{escape(s)}</code></li>" for s in f["snapshots"]) or "<li>none</li>"
    return (f'<article class="failure" id="{fid}" data-item="{escape(item)}">'
            f"<h3>{escape(item.rpartition('::')[2])} {_badge('failed')}</h3>"
            f'<p class="message">{escape(f["message"])}</p>'
            f"<dl class=facts><dt>schedule</dt><dd><code>{sched}</code> <span class=mute>"
            f"({escape(many)})</span>{jump}</dd><dt>scenario file</dt><dd><code>"
            f"{escape(f.get('source', ''))}</code></dd><dt>driver</dt><dd>"
            f"{escape(f.get('driver', ''))}</dd></dl>"
            f'<div class="replay"><code id="{fid}-replay">{escape(f["replay"])}</code>'
            f'<button class="copy" data-target="{fid}-replay" type="button">Copy</button></div>'
            f"<div><b>Broken:</b>{''.join(reqs) or ' none judged (the driver failed)'}</div>"
            f'<ol class="findings">{findings}</ol>'
            f'<p class="caption">The smallest failing schedule, <code>{escape(f["schedule"])}'
            "</code>, one row per moment (hover a container for its id). The engine lane shows "
            "each container a step made or changed, and the engine's whole list at each "
            "observation in the order the driver got it.</p>"
            + lanes(f["timeline"], fid)
            + f"<p><b>The driver's snapshots at the end:</b></p><ul>{snaps}</ul>"
            + "".join(f"<p class=mute>{escape(n)}</p>" for n in f.get("notes", []))
            + "</article>")


def _scenarios(r: Mapping[str, Any], failure_ids: Mapping[str, str]) -> str:
    rows = []
    for sid, s in sorted(r["scenarios"].items()):
        items = []
        for item, e in sorted(s["items"].items()):
            label = e.get("label") or item.rpartition("::")[2]
            extra = ""
            if item in failure_ids:
                extra = f' &middot; <a href="#{failure_ids[item]}">the failure</a>'
            elif e.get("reason") or e.get("error"):
                extra = f" &middot; {escape(e.get('reason') or e.get('error'))}"
            items.append(f"<li>{_badge(e['outcome'])} {escape(label)} <span class=mute>"
                         f"({e['schedules']} schedule{'s' if e['schedules'] != 1 else ''})"
                         f"</span>{extra}</li>")
        rows.append(f'<tr id="scenario-{_slug(sid)}"><td><b>{escape(sid)}</b><br>'
                    f"<span class=mute>{escape(s.get('title', ''))}</span></td>"
                    f"<td>{escape(s['profile'])}</td><td>{_badge(s['outcome'])}</td>"
                    f"<td>{s['schedules']}</td><td>{escape(', '.join(s['requirements']))}</td>"
                    f'<td><ul class="items">{"".join(items)}</ul></td></tr>')
    return ('<section id="scenarios"><h2>Scenarios</h2><table class="scenarios"><thead><tr>'
            "<th>scenario</th><th>profile</th><th>outcome</th><th>schedules played</th>"
            "<th>requirements</th><th>items</th></tr></thead><tbody>" + "".join(rows)
            + "</tbody></table></section>")


def render(report: Mapping[str, Any]) -> str:
    """The whole page of ``report`` (the JSON report's data)."""
    failed = [(item, e) for _, s in sorted(report["scenarios"].items())
              for item, e in sorted(s["items"].items())
              if e["outcome"] == "failed" and e.get("failure")]
    failure_ids = {item: f"failure-{n}" for n, (item, _) in enumerate(failed, 1)}
    failures = "".join(_failure(item, e, failure_ids[item]) for item, e in failed)
    errors = [(item, e) for s in report["scenarios"].values() for item, e in s["items"].items()
              if e["outcome"] == "error"]
    err_html = ""
    if errors:
        err_html = ('<section id="errors"><h2>Environment errors</h2><p class=mute>Failures of '
                    "the suite's environment (the engine, the story), not of the driver.</p><ul>"
                    + "".join(f"<li><code>{escape(i)}</code> ({escape(e.get('error_kind', ''))})"
                              f": {escape(e.get('error', ''))}"
                              + (f"<br>replay: <code>{escape(e['replay'])}</code>"
                                 if e.get("replay") else "") + "</li>"
                              for i, e in sorted(errors))
                    + "</ul></section>")
    nav = ('<nav><a href="#matrix">Requirements &times; scenarios</a>'
           f'<a href="#failures">Failures ({len(failed)})</a>'
           + (f'<a href="#errors">Environment errors ({len(errors)})</a>' if errors else "")
           + '<a href="#scenarios">Scenarios</a></nav>')
    title = f"Sandbox conformance: {report['driver']['name']}: {report['verdict_text']}"
    return ("<!doctype html><html lang=en><head><meta charset=utf-8>"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
            + _header(report) + nav + _matrix(report, failure_ids)
            + '<section id="failures"><h2>Failures</h2>'
            + (failures or "<p>No failure.</p>") + "</section>" + err_html
            + _scenarios(report, failure_ids) + f"<script>{JS}</script></body></html>\n")
