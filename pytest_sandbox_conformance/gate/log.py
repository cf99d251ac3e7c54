"""The observation gate's log: one :class:`GateRecord` per request it served, and one per batch
of engine events it delivered to a driver. Standard library only."""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass

__all__ = ["GateRecord", "short_target"]


@dataclass(frozen=True)
class GateRecord:
    """One request that went through the gate, once it is complete; or one batch of events of an
    engine event stream that the gate delivered to its client.

    ``seq`` is the request's arrival order (from 1), ``at`` the :func:`time.monotonic` time its head
    arrived (for an event stream's batches and its end: when they happened), ``path`` the target as forwarded
    (origin form: path and query). ``kind`` is ``"list"`` (a container-list request),
    ``"events"`` (an engine event stream: its opening, each batch of events, its end) or
    ``"other"``. ``disposition``: ``"released"`` (held, then released; for events: released by an
    observation), ``"passed"`` (forwarded at once), ``"opened"`` (an event stream's head went to
    the client; its events follow in batches), ``"abandoned"`` (the client went away first),
    ``"refused"`` (answered by the gate itself: gate closed, malformed request) or ``"error"``
    (the engine could not be reached). ``status`` is the HTTP status the client got (None if
    none), ``held_s`` the seconds it was held (for an event batch: how long its oldest event
    waited), ``duration_s`` the seconds from arrival until the answer was fully written (or the
    pipe closed), ``ids`` the container IDs of a list answer in the order the client got them (or
    of a batch's events), ``events`` a batch's events as ``"action id12"``, in the order the client
    got them.
    """

    seq: int
    at: float
    method: str
    path: str
    kind: str
    disposition: str
    status: int | None
    note: str
    held_s: float
    duration_s: float
    ids: tuple[str, ...] = ()
    events: tuple[str, ...] = ()

    def describe(self) -> str:
        """One short line for a person, e.g. ``GET /v1.41/containers/json?all=1 filters:
        label=app=x -> 200, 2 containers [ab12cd34ef56, 9f8e7d6c5b4a], released as observation 3
        (oldest first) after 0.120s held``, or ``GET /v1.41/events filters: type=container ->
        2 events [die ab12cd34ef56, stop ab12cd34ef56], released as observation 4 after 0.300s
        held``."""
        head = f"{self.method or '?'} {short_target(self.path)}"
        if self.kind == "events" and self.disposition in ("released", "passed") and self.events:
            return f"{head} -> {self._event_batch()}"
        if self.kind == "events" and self.disposition == "released":
            return f"{head} -> no events to release as {self.note}"
        answer = "no answer" if self.status is None else str(self.status)
        line = f"{head} -> {answer}"
        if self.kind == "list" and self.status == 200:
            line += f", {count(len(self.ids), 'container')}"
            if self.ids:
                line += f" [{_shown(self.ids)}]"
        held = f"after {self.held_s:.3f}s held"
        if self.disposition == "released":
            if self.note.startswith("observation"):
                first, _, rest = self.note.partition(", ")
                line += f", released as {first}" + (f" ({rest})" if rest else "") + f" {held}"
            else:
                line += f", released ({self.note}) {held}"
        elif self.disposition == "opened":
            line += ", event stream open" + (f" ({self.note})" if self.note else "")
        elif self.disposition == "passed":
            line += (f", passed ({self.note})" if self.note else "") + f" in {self.duration_s:.3f}s"
        elif self.disposition == "abandoned":
            line += ", abandoned by the client" + (f" {held}" if self.held_s else "")
            if self.note:
                line += f" ({self.note})"
        else:
            line += f", {self.disposition}" + (f": {self.note}" if self.note else "")
        return line

    def _event_batch(self) -> str:
        shown = ", ".join(self.events[:4]) + (f", +{len(self.events) - 4} more"
                                              if len(self.events) > 4 else "")
        text = f"{count(len(self.events), 'event')} [{shown}]"
        if self.disposition == "released":
            first, _, rest = self.note.partition(", ")
            text += f", released as {first}" + (f" ({rest})" if rest else "")
            return text + f" after {self.held_s:.3f}s held"
        return text + (f", passed ({self.note})" if self.note else ", passed")


def count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _shown(ids: tuple[str, ...]) -> str:
    shown = [i[:12] for i in ids[:4]]
    return ", ".join(shown) + (f", +{len(ids) - 4} more" if len(ids) > 4 else "")


def short_target(target: str, limit: int = 160) -> str:
    """A request target for people: the query URL-decoded, label filters as ``label=k=v``."""
    path, sep, query = target.partition("?")
    if not sep:
        return _cut(path, limit)
    parts: list[str] = []
    filters = ""
    for key, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
        if key == "filters":
            filters = _short_filters(value)
        else:
            parts.append(f"{key}={value}")
    text = path + ("?" + "&".join(parts) if parts else "")
    if filters:
        text += f" filters: {filters}"
    return _cut(text, limit)


def _short_filters(raw: str) -> str:
    """Docker's ``filters`` JSON (``{"label": ["k=v"]}`` or ``{"label": {"k=v": true}}``)."""
    try:
        parsed = json.loads(raw)
    except ValueError:
        return raw
    if not isinstance(parsed, dict):
        return raw
    items: list[str] = []
    for key, values in parsed.items():
        if isinstance(values, dict):
            values = [v for v, on in values.items() if on]
        elif not isinstance(values, list):
            values = [values]
        items.extend(f"{key}={v}" for v in values)
    return ", ".join(items)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
