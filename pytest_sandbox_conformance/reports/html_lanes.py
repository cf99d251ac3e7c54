"""One failure's smallest failing schedule drawn as swimlanes (after Jepsen's timeline.html and
Porcupine's history view): one row per moment of the timeline (``run/timeline.py``), one lane
per actor:

* **story**: the outside actions (the story's steps);
* **engine**: the containers that exist, with name and state: each container a step made or
  changed, and the engine's whole list at each observation, in the order the driver got it;
* **poll**: the driver's polls (observation number and list order);
* **driver**: what the driver reported (per sandbox), its events and restarts;
* **contract**: what the contract expects beside it, and the findings (broken checks).

The **first divergence** (the first report that disagrees with the contract, or the first
finding, whichever comes first) is marked; the driver's diagnostics (gRPC calls, the gate's log,
its output) are folded (``<details>``) under the moment they belong to. No pytest.
"""

from __future__ import annotations

from html import escape
from typing import Any, Mapping, Sequence

__all__ = ["LANES", "first_divergence", "lanes"]

LANES = ("story", "engine", "poll", "driver", "contract")
_HEADS = {"story": "Story (outside actions)", "engine": "Engine (containers)",
          "poll": "Driver polls", "driver": "Driver reports", "contract": "Contract expects"}

Moment = Mapping[str, Any]


def first_divergence(moments: Sequence[Moment]) -> int | None:
    """The ``seq`` of the first report that disagrees with the contract or the first finding."""
    for m in moments:
        if (m["kind"] == "report" and m.get("data", {}).get("agrees") is False) \
                or m["kind"] == "finding":
            return m["seq"]
    return None


def _ctr(c: Mapping[str, Any]) -> str:
    state = escape(str(c.get("state", "")))
    gpu = ' <span class="gpu">GPU</span>' if c.get("gpu") else ""
    return (f'<span class="ctr" title="{escape(str(c.get("id", "")))}"><b>'
            f'{escape(str(c.get("binding") or str(c.get("id", ""))[:12]))}</b> '
            f'{escape(str(c.get("name", "")))} <span class="st st-{state}">{state}</span>'
            f'{gpu}</span>')


def _snap(r: Mapping[str, Any] | None) -> str:
    if not r:
        return "reports nothing"
    inst = r.get("instance") or (r.get("instance_id") or "")[:12] or "no instance"
    return (f"<b>{escape(str(inst))}</b> Ready={escape(str(r.get('status')))} "
            f"{escape(str(r.get('reason') or ''))} <span class=mute>({escape(str(r.get('phase')))})"
            "</span>")


def _cells(m: Moment) -> tuple[str, dict[str, str], dict[str, str]]:
    """(row class, lane -> cell html, lane -> extra cell class) of one moment."""
    kind, data = m["kind"], m.get("data", {})
    text = escape(m.get("text", ""))
    if kind == "step":
        return "step", {"story": text}, {}
    if kind == "container":
        return "container", {"engine": _ctr(data)}, {}
    if kind == "observe":
        listed = data.get("containers", [])
        order = escape(str(data.get("order", "")))
        poll = (f"poll {data.get('number', m.get('observation', ''))} &middot; {order} first"
                f"<br><span class=mute>lists "
                + (escape(", ".join(str(c.get("binding") or "?") for c in listed)) or "nothing")
                + "</span>")
        engine = "".join(_ctr(c) for c in listed) or '<span class="mute">no containers</span>'
        return "observe", {"engine": engine, "poll": poll}, {}
    if kind == "report":
        sandbox = escape(str(data.get("sandbox", "")))
        c = data.get("contract") or {}
        agrees = data.get("agrees")
        mark = ('<span class="eq">= agrees</span>' if agrees
                else '<br><b class="ne">&ne; the driver disagrees</b>')
        reqs = escape(", ".join(c.get("requirements", [])))
        contract = (f"{sandbox}: {_snap(c)}<br><span class=mute>{escape(str(c.get('outcome', '')))}"
                    f"{' &middot; ' + reqs if reqs else ''}</span> {mark}")
        extra = {} if agrees else {"driver": "disagree", "contract": "disagree"}
        if agrees:
            extra = {"contract": "agree"}
        return "report", {"driver": f"{sandbox}: {_snap(data.get('driver'))}",
                          "contract": contract}, extra
    if kind == "event":
        return "event", {"driver": text}, {}
    if kind == "restart":
        return "restart", {"driver": f"<b>{text}</b>"}, {}
    if kind == "finding":
        return "finding", {"contract": text}, {}
    if kind == "refused":  # a story step the engine refused: the story's lane
        return "refused", {"story": f"<b>{text}</b>"}, {}
    return kind, {}, {}


def _source(m: Moment) -> str:
    """Where a diagnostic line came from: the gate's Docker API log, a gRPC call, the driver's
    output, or the driver (the adapter's own lines)."""
    text = str(m.get("data", {}).get("source") or m.get("text", ""))
    for source in ("docker API", "grpc", "driver output"):
        if text.startswith(source):
            return source
    return "driver"


def _where(m: Moment) -> str:
    """The moment's number, and where it falls: its observation, after which step."""
    obs, step = m.get("observation"), m.get("step")
    if m["kind"] == "step":
        return f"#{m['seq']}"
    where = [f"obs {obs}"] if obs is not None else []
    if step is not None:
        where.append(f"after step {step + 1}")
    elif obs is not None:
        where.append("settling")
    return f"#{m['seq']}" + (f'<br><span class="where">{", ".join(where)}</span>'
                             if where else "")


def lanes(moments: Sequence[Moment], slug: str) -> str:
    """The swimlane table of a failure's ``moments`` (``Moment.to_json()`` dicts)."""
    div = first_divergence(moments)
    out = ['<table class="lanes" data-swimlanes="1"><colgroup><col class="n">'
           + "".join(f'<col class="{lane}">' for lane in LANES) + "</colgroup>",
           "<thead><tr><th>moment</th>"
           + "".join(f"<th>{_HEADS[lane]}</th>" for lane in LANES) + "</tr></thead><tbody>"]
    pending: list[Moment] = []

    def flush() -> None:
        if not pending:
            return
        counts: dict[str, int] = {}
        for p in pending:
            counts[_source(p)] = counts.get(_source(p), 0) + 1
        what = ", ".join(f"{k} {n}" for k, n in sorted(counts.items()))
        body = escape("\n".join(p.get("text", "") for p in pending))
        out.append(f'<tr class="diag"><td></td><td colspan="{len(LANES)}"><details><summary>'
                   f'{len(pending)} diagnostic line{"s" if len(pending) != 1 else ""} '
                   f'({escape(what)})</summary><pre>{body}</pre></details></td></tr>')
        pending.clear()

    for m in moments:
        if m["kind"] == "diagnostic":
            pending.append(m)
            continue
        flush()
        row_id = f"{slug}-m{m['seq']}"
        is_div = m["seq"] == div
        attrs = f' id="{row_id}"'
        if is_div:
            attrs += ' data-first-divergence="1"'
        if m["kind"] in ("run", "settle", "note"):
            cls = m["kind"] + (" divergence" if is_div else "")
            out.append(f'<tr class="{cls}"{attrs}><td class="n">{_where(m)}</td>'
                       f'<td colspan="{len(LANES)}">{escape(m.get("text", ""))}</td></tr>')
            continue
        cls, cells, extra = _cells(m)
        if is_div:
            cls += " divergence"
        mark = (f'<span class="divmark" id="{slug}-divergence">first divergence</span>'
                if is_div else "")
        row = [f'<tr class="{cls}"{attrs}><td class="n">{_where(m)}{mark}</td>']
        if cls.startswith("finding"):
            row.append("".join(f'<td class="l-{lane}"></td>' for lane in LANES[:3]))
            row.append(f'<td class="f" colspan="2">{cells["contract"]}</td>')
        else:
            for lane in LANES:
                klass = f"l-{lane}" + (f" {extra[lane]}" if lane in extra else "")
                row.append(f'<td class="{klass}">{cells.get(lane, "")}</td>')
        out.append("".join(row) + "</tr>")
    flush()
    out.append("</tbody></table>")
    return "\n".join(out)
