"""Container name expressions (``docs/scenarios.md``, *Container name expressions*): the one
resolver that lint (``meaning.py``), the story grammar (``exploration/stories.py``) and the run
(``run/steps.py``) share, so that the name a file means is the same name everywhere.

Pure: no I/O.
"""

from __future__ import annotations

from reference_driver.naming import backup_name

__all__ = ["BACKUP_EPOCH_MS", "CANONICAL_PLACEHOLDER", "is_relative", "resolve"]

#: In a literal name expression, the sandbox's canonical name (``{canonical}-old``): a name
#: relative to the canonical one, so that a near-miss is the same on every engine (a live run
#: adds a suffix to sandbox ids, and so to canonical names). Braces are never part of a valid
#: container name, so no literal name meant anything else before.
CANONICAL_PLACEHOLDER = "{canonical}"
#: The fixed "milliseconds" of backup names, plus the step index, so names are reproducible.
BACKUP_EPOCH_MS = 1_760_000_000_000


def is_relative(expr: str) -> bool:
    """Whether ``expr`` means a name relative to a sandbox's canonical name."""
    return expr in ("canonical", "backup") or CANONICAL_PLACEHOLDER in expr


def resolve(expr: str, canonical: str, index: int) -> str:
    """The container name ``expr`` means at story step ``index`` (0-based) for a sandbox whose
    canonical name is ``canonical``: ``canonical``, the GPU tool's ``backup`` name (its digits
    :data:`BACKUP_EPOCH_MS` plus the index), a name with ``{canonical}`` in it, or a literal
    name, returned as it is (the run adds its per-run suffix to literal names itself)."""
    if expr == "canonical":
        return canonical
    if expr == "backup":
        return backup_name(canonical, BACKUP_EPOCH_MS + index)
    return expr.replace(CANONICAL_PLACEHOLDER, canonical)
