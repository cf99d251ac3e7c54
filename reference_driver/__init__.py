"""The reference driver: the sandbox instance ownership contract, executable.

Where to look:

* ``decision.py``: the decision procedure of contract §4, a pure function;
* ``journal.py``: the durable journal (OWN-15, OWN-16);
* ``events.py``: the event rules (OWN-10, OWN-17);
* ``driver.py``: create, delete, observe, snapshots, watchers and restart, wiring the three;
* ``state.py`` and ``naming.py``: the record it journals, the labels and container names.

It depends only on the engine interface (``pytest_sandbox_conformance.engines.base``) and the
report types (``pytest_sandbox_conformance.api``): no pytest, no plugin, no concrete engine.
"""

from .decision import Decision, Notice, Outcome, decide
from .driver import DriverError, ReferenceDriver, SandboxExists
from .journal import Journal, JournalWriteError
from .naming import LabelKeys, backup_name, canonical_name, is_backup_name
from .state import Intent, Record

__all__ = [
    "Decision",
    "DriverError",
    "Intent",
    "Journal",
    "JournalWriteError",
    "LabelKeys",
    "Notice",
    "Outcome",
    "Record",
    "ReferenceDriver",
    "SandboxExists",
    "backup_name",
    "canonical_name",
    "decide",
    "is_backup_name",
]
