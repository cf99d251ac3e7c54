"""Errors in scenario files: always the file, the line, the field, and one sentence."""

from __future__ import annotations

__all__ = ["ScenarioError", "ScenarioErrors"]


class ScenarioError(Exception):
    """One problem in a scenario file, printed as ``path:line: field: message``."""

    def __init__(self, path: str, line: int | None, field: str, message: str) -> None:
        self.path = str(path)
        self.line = line
        self.field = field
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{field} {self.message}"


class ScenarioErrors(Exception):
    """Every problem found in one file (the loader reports all of them, not just the first)."""

    def __init__(self, errors: list[ScenarioError]) -> None:
        self.errors = sorted(errors, key=lambda e: (e.path, e.line or 0, e.field))
        super().__init__("\n".join(str(e) for e in self.errors))
