"""The durable ownership record of one sandbox: what the journal stores (contract OWN-1, OWN-15).

Immutable values: every change makes a new :class:`Record`, which the driver persists before it
replaces the one it holds in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = ["Intent", "Record"]


@dataclass(frozen=True)
class Intent:
    """A replacement intent (OWN-4/OWN-5): adopt ``replacement`` if the next observation agrees.

    ``incumbent`` is the authority being replaced (``None`` in a gap handoff) and ``backup_name``
    the name it had been renamed to when the intent was recorded.
    """

    incumbent: str | None
    replacement: str
    backup_name: str | None = None

    def to_json(self) -> dict:
        return {"incumbent": self.incumbent, "replacement": self.replacement,
                "backup_name": self.backup_name}

    @classmethod
    def from_json(cls, data: dict) -> "Intent":
        incumbent, replacement, backup = data["incumbent"], data["replacement"], data["backup_name"]
        if not isinstance(replacement, str) or not replacement:
            raise ValueError("intent.replacement must be a non-empty string")
        for value, field_name in ((incumbent, "incumbent"), (backup, "backup_name")):
            if value is not None and not isinstance(value, str):
                raise ValueError(f"intent.{field_name} must be a string or null")
        return cls(incumbent, replacement, backup)


@dataclass(frozen=True)
class Record:
    """One sandbox's ownership state.

    ``authority`` is the authoritative container ID (``None`` until the engine returned one, or
    when the journal could not be trusted); ``generation`` the value of the generation label the
    driver put on it; ``retired`` the former instances, oldest first.
    """

    sandbox_id: str
    name: str
    namespace: str
    authority: str | None = None
    generation: str | None = None
    retired: tuple[str, ...] = ()
    intent: Intent | None = None
    #: Why the record cannot be trusted ("" when it can): set for corrupt or foreign journals.
    untrusted: str = ""

    def with_intent(self, intent: Intent | None) -> "Record":
        return replace(self, intent=intent)

    def adopt(self, new_authority: str) -> "Record":
        """``new_authority`` becomes authoritative; the old one is retired; the intent is done."""
        retired = [r for r in self.retired if r != new_authority]
        if self.authority is not None and self.authority not in retired:
            retired.append(self.authority)
        return replace(self, authority=new_authority, retired=tuple(retired), intent=None)
