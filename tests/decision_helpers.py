"""Plain-value builders for the tests of the pure decision procedure (no fixtures, no engine).

One sandbox (``SANDBOX_ID``/``SANDBOX_NAME`` in ``NAMESPACE``), its canonical container name, a
backup name as the GPU handoff makes it, a journaled generation and a few container IDs. The
builders only fill in what a test does not care about.
"""

from __future__ import annotations

from pytest_sandbox_conformance.engines.base import Container
from reference_driver.decision import Decision, decide
from reference_driver.naming import LabelKeys, backup_name, canonical_name
from reference_driver.state import Intent, Record

__all__ = [
    "A", "B", "BACKUP", "C", "CANONICAL", "D", "E", "GEN", "GEN_LABEL", "KEYS", "NAMESPACE",
    "OTHER_BACKUP", "OTHER_GEN", "OTHER_NAME", "SANDBOX_ID", "SANDBOX_NAME", "container",
    "decide_for", "intent", "record",
]

KEYS = LabelKeys()
GEN_LABEL = KEYS.generation
NAMESPACE = "default"
SANDBOX_ID = "sbx-0001"
SANDBOX_NAME = "demo"
CANONICAL = canonical_name(SANDBOX_NAME, SANDBOX_ID)
#: The name the GPU handoff renames the incumbent to.
BACKUP = backup_name(CANONICAL, 1718000000000)
#: A second, different backup name (a later handoff, or a rename between two observations).
OTHER_BACKUP = backup_name(CANONICAL, 1718000099999)
#: A name that is neither canonical nor a backup name.
OTHER_NAME = "hand-made-clone"
#: The generation the journal holds (the driver's generation label value).
GEN = "6f1c2b9e-0a4d-4c1e-9a57-1d2f3e4a5b6c"
OTHER_GEN = "0b9a8c7d-6e5f-4a3b-8c2d-1e0f9a8b7c6d"

#: Container IDs (64 hex digits, as Docker's; short IDs differ).
A, B, C, D, E = (ch * 64 for ch in "abcde")


def container(id: str, name: str = CANONICAL, state: str = "running",
              generation: str | None = GEN, *, created: int = 0) -> Container:
    """A container carrying this sandbox's identity labels and, unless ``None``, ``generation``."""
    labels = KEYS.identity(NAMESPACE, SANDBOX_ID, SANDBOX_NAME)
    if generation is not None:
        labels[GEN_LABEL] = generation
    return Container(id=id, name=name, image="sandbox:latest", state=state, labels=labels,
                     created=created)


def record(authority: str | None = A, generation: str | None = GEN,
           retired: tuple[str, ...] = (), intent: Intent | None = None,
           untrusted: str = "") -> Record:
    """This sandbox's ownership record."""
    return Record(SANDBOX_ID, SANDBOX_NAME, NAMESPACE, authority=authority, generation=generation,
                  retired=tuple(retired), intent=intent, untrusted=untrusted)


def intent(incumbent: str | None, replacement: str, backup: str | None = BACKUP) -> Intent:
    """A replacement intent; a gap intent is ``intent(None, B, None)``."""
    return Intent(incumbent, replacement, backup)


def decide_for(rec: Record, candidates) -> Decision:
    """``decide`` for this sandbox's canonical name and the default generation label key."""
    return decide(rec, list(candidates), CANONICAL, GEN_LABEL)
