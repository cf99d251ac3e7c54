"""The timeline of one play: every action, observation, report and finding, in order.

A :class:`Timeline` is a list of :class:`Moment` objects. Each has the line a person reads (its
``text`` and ``indent``: :meth:`Timeline.render` prints them exactly as the terminal shows a
failure), and the same facts as structured data for machine reports and the HTML report: its
``kind``, the story step and the observation it belongs to, and a ``data`` mapping whose keys
depend on the kind:

============== ============================================================================
kind           data
============== ============================================================================
``run``        ``driver``, ``engine``, ``namespace``
``step``       ``index`` (0-based), ``action``, ``target``, ``args``
``container``  ``binding``, ``id``, ``name``, ``state``, ``gpu`` (a container a step made)
``observe``    ``number``, ``order``, ``containers``: the engine's list at that observation,
               each ``{binding, id, name, state, gpu}`` in the order the driver got it
``report``     ``sandbox``, ``driver`` (``{instance, status, reason, phase}`` or None when it
               reports nothing) and ``contract`` (``{outcome, instance, status, reason, phase,
               requirements}``), ``agrees`` (bool)
``event``      ``type``, ``reason``, ``sandbox``, ``metadata``
``restart``    (nothing)
``diagnostic`` ``source``: what crossed an out-of-process driver's boundary (``docker API``,
               ``grpc``, ``driver output``)
``finding``    ``check``, ``requirements``, ``message``: a broken check, where it was seen
``refused``    ``index``, ``action``, ``target``, ``status``, ``message``, ``context``: a story step
               the engine refused (the play ends with a ``StoryError``)
``settle``     (nothing): the quiet observations after the story begin
``note``       (nothing)
============== ============================================================================

Pure data: no I/O, no pytest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

__all__ = ["KINDS", "Moment", "Timeline"]

KINDS = ("run", "step", "container", "observe", "report", "event", "restart", "diagnostic",
         "finding", "refused", "settle", "note")


@dataclass(frozen=True)
class Moment:
    """One line of the timeline, with what it says as data."""

    seq: int
    kind: str
    text: str
    indent: int = 0
    #: The story step (0-based) the moment happened in or after; None before the first step and
    #: in the settle phase.
    step: int | None = None
    #: The observation (1-based, counted over the whole play) the moment belongs to, if any.
    observation: int | None = None
    data: Mapping[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        return "  " * self.indent + self.text

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"seq": self.seq, "kind": self.kind, "text": self.text,
                               "indent": self.indent}
        if self.step is not None:
            out["step"] = self.step
        if self.observation is not None:
            out["observation"] = self.observation
        if self.data:
            out["data"] = dict(self.data)
        return out


class Timeline:
    """What happened, in order: lines for people, moments for reports."""

    def __init__(self) -> None:
        self.moments: list[Moment] = []
        self._step: int | None = None
        self._observation: int | None = None

    # -- where we are -----------------------------------------------------------------------

    def at_step(self, index: int | None) -> None:
        """Moments from now on belong to story step ``index`` (None: the settle phase)."""
        self._step = index
        self._observation = None

    def at_observation(self, number: int | None) -> None:
        """Moments from now on belong to observation ``number`` (None: outside observations)."""
        self._observation = number

    # -- writing ----------------------------------------------------------------------------

    def add(self, text: str, indent: int = 0, kind: str = "note", **data: Any) -> Moment:
        if kind not in KINDS:
            raise ValueError(f"unknown moment kind {kind!r}; known: {KINDS}")
        moment = Moment(len(self.moments), kind, text, indent, self._step, self._observation,
                        data)
        self.moments.append(moment)
        return moment

    # -- reading ----------------------------------------------------------------------------

    @property
    def lines(self) -> list[str]:
        return [m.line() for m in self.moments]

    def __iter__(self) -> Iterator[Moment]:
        return iter(self.moments)

    def __len__(self) -> int:
        return len(self.moments)

    def render(self) -> str:
        return "\n".join(self.lines)

    def to_json(self) -> list[dict[str, Any]]:
        return [m.to_json() for m in self.moments]
