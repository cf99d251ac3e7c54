"""The story's meaning, its end: what each ``expect`` section may state, given the story
``meaning.py`` has played on its model of the containers (part of ``sandbox-conformance lint``
and of loading; see ``meaning.py``).

An expectation no correct driver can meet is refused: ``containers`` other than the bound
containers the story leaves (a correct driver removes containers only on delete), ``deleted``
without a delete step, ``tracked`` contrary to the story, fields of a sandbox that is not
tracked, an instance carrying another sandbox's labels or another namespace's, ``instance:
null`` without a corrupt journal read by a restarted driver, a reason with another phase than
the one stated, a warning count with ``min`` above ``max``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

from ..api import Condition, phase_of
from .model import Expect
from .schema import READY_REASONS

if TYPE_CHECKING:
    from .meaning import _Story

__all__ = ["check_expect"]


def check_expect(story: "_Story", path: tuple, e: Expect, given: Mapping[str, object]) -> None:
    """One ``expect`` section (the base one or a pinned schedule's) against the ``story``
    played: ``given`` is its raw mapping, to tell which fields the file states."""
    if e.containers is not None:
        left = sorted(b.binding for b in story.boxes.values() if not b.gone)
        unnamed = [b for b in story.boxes.values() if not b.gone and not b.named]
        if unnamed:
            story.err(path + ("containers",),
                      f"{story.describe(unnamed[0])} is still there at the end but has no "
                      "'as:' name, so 'containers' cannot list it: give that create an 'as:'")
        elif sorted(e.containers) != left:
            story.err(path + ("containers",),
                      f"the story leaves {left or 'no bound container'} at the end (a "
                      "correct driver removes containers only on delete); expected "
                      f"{sorted(e.containers) or 'none'}")
    for i, key in enumerate(e.deleted):
        if key in story.sc.sandboxes and key not in story.deleted:
            story.err(path + ("deleted", i), f"no step deletes sandbox {key}: a correct "
                                            "driver emits Deleted only on request (OWN-10)")
    raw_sandboxes = given.get("sandboxes") or {}
    for key, se in sorted(e.sandboxes.items()):
        if key not in raw_sandboxes or key not in story.sc.sandboxes:
            continue
        p = path + ("sandboxes", key)
        tracked = story.tracked(key)
        why = ("it is never created" if key not in story.created
               else f"it is deleted at step {story.deleted[key] + 1}" if not tracked
               else f"it is created at step {story.created[key] + 1} and never deleted")
        if se.tracked is not None and se.tracked != tracked:
            story.err(p + ("tracked",), f"tracked: {str(se.tracked).lower()}, but {why}")
            continue
        if not tracked:
            stated = [f for f, v in (("instance", se.instance_given), ("phase", se.phase),
                                     ("reason", se.reason)) if v]
            if stated:
                story.err(p + (stated[0],), f"sandbox {key} is not tracked at the end ({why}),"
                                           f" so it has no {stated[0]}: expect "
                                           "{tracked: false}")
            continue
        if se.instance_given and se.instance is not None:
            b = story.boxes.get(se.instance)
            if b is not None and (b.key != key or not b.ours):
                ident = b.identity
                if ident is not None and ident.key == key and not ident.ours:
                    whose = "another namespace's label"
                elif ident is not None and ident.key == key:
                    whose = (f"the sandbox-name label {ident.name!r}" if ident.name is not None
                             else "no sandbox-name label")
                elif ident is not None and ident.key:
                    whose = f"sandbox {ident.key}'s identity labels"
                else:
                    whose = "no declared sandbox's sandbox-id label"
                story.err(p + ("instance",), f"{se.instance} carries {whose}: it can never "
                                            f"be sandbox {key}'s instance")
        if se.instance_given and se.instance is None and key not in story.corrupt_then_restart:
            story.err(p + ("instance",), f"instance: null, but sandbox {key} always has an "
                                        "authoritative container after its create (only a "
                                        "journal_fault: corrupt or foreign-* followed by a "
                                        "restart takes it away)")
        if se.reason and se.phase and se.reason in READY_REASONS:
            phase = phase_of(Condition(READY_REASONS[se.reason], se.reason, ""))
            if phase != se.phase:
                story.err(p + ("phase",), f"reason {se.reason} comes with phase {phase}, "
                                         f"not {se.phase}")
    for reason, count in sorted(e.warnings.items()):
        if count.max is not None and count.min > count.max:
            story.err(path + ("warnings", reason),
                      f"min {count.min} is above max {count.max}: no count is accepted")
