"""How a scenario failure is shown by pytest: the whole rendering (scenario, failures, timeline,
snapshots, replay) as the failure's text, and its one-line summary as the failure's *message*
(what ``--junitxml`` writes in ``<failure message=...>`` and ``-r`` in the short summary)."""

from __future__ import annotations

from _pytest._code.code import ReprFileLocation, TerminalRepr

__all__ = ["FailureRepr"]


class FailureRepr(TerminalRepr):
    """A failure's text with its one-line ``reprcrash.message``."""

    def __init__(self, text: str, message: str, path: str, lineno: int) -> None:
        self.text = text
        self.reprcrash = ReprFileLocation(str(path), lineno, message)

    def toterminal(self, tw) -> None:
        for line in self.text.splitlines():
            tw.line(line)

    def __str__(self) -> str:
        return self.text
