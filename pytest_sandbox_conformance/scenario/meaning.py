"""The story's meaning: a symbolic run of the story over its containers, before anything runs.

The schema checks a file's shape and the loader its names; this module plays the story on a
model of the engine (each container's name, state, whose identity labels it carries, whether it
is in the run's namespace), with no engine and no driver, and refuses what would make a run
crash, or fail a correct driver, for reasons of the file alone (``docs/scenarios.md``, *What lint
checks*):

* a step the engine would refuse: a step on a container already removed, ``start`` of a paused,
  dead or removing container, ``kill`` of one that is not running, a name that is not a valid
  container name or is in use (``rename``, ``clone``, ``run`` and the driver's ``create`` of the
  canonical name), ``remove`` or ``delete`` of a container whose removal is in progress;
* a driver step out of order: ``create`` of a sandbox while another container already carries its
  identity labels (the suite could not tell which one the create made), ``delete`` or
  ``supervisor`` of a sandbox not created yet, ``journal_fault: corrupt`` of a journal that does
  not exist;
* a fault that would hit the wrong step (see :data:`FAULT_TARGETS`);
* ``expect_removed`` contrary to what is there to remove, and expectations no driver can meet
  (``expectations.py``: ``containers`` other than what the story leaves, ``deleted`` without a
  delete, ``tracked`` contrary to the story, ...).

Pure: no I/O, no engine, no driver. The names are the reference driver's (an engine in which a
literal name equals a sandbox's canonical name is modelled as the reference driver names it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from reference_driver.naming import canonical_name

from ..engines.base import ACTIVE_STATES, valid_container_name
from .model import Expect, Identity, Scenario, Step, made_identity
from .names import CANONICAL_PLACEHOLDER, is_relative, resolve
from .schema import FOREIGN_JOURNALS

__all__ = ["CANONICAL_PLACEHOLDER", "FAULT_TARGETS", "check_meaning"]


#: Which later steps an armed fault would hit, by fault: a fault is *armed* by its step and hits
#: the next calls of its operation, whoever makes them. ``list`` faults are consumed one per
#: driver poll (each ``observe`` step is one; a schedule's observations may consume them sooner,
#: and the settle observations take what is left); the other faults are consumed by nothing but
#: the steps named here, where they would fail a step of the story itself (the suite's own create
#: or remove, or a driver create or delete, which is no conformance question).
FAULT_TARGETS = {
    "engine_fault:list": ("delete",),
    "engine_fault:create": ("create", "clone", "run"),
    "engine_fault:remove": ("remove", "delete"),
    "journal_fault:write-fail": ("create",),
    "journal_fault:crash": ("create",),
    "journal_fault:power-loss": ("create",),
}

Err = Callable[[tuple, str], None]


@dataclass
class _Box:
    """One container of the model."""

    binding: str      # its ``as:`` name (``KEY-instance`` for a create without one)
    key: str          # the sandbox it is a candidate of ("" for none)
    ours: bool        # a candidate of sandbox ``key`` (its namespace, id and name labels)
    name: str
    state: str
    made: int         # the step that made it
    named: bool       # whether the file can name it (a create without ``as:`` cannot)
    gone: str = ""    # how it went ("removed at step 3"), "" while it exists
    #: What its identity labels say (whose names ``canonical`` and ``backup`` refer to).
    identity: Identity | None = None
    #: Made with ``fails: start``: its executable is missing, so no start ever succeeds.
    cannot_start: bool = False


@dataclass
class _Armed:
    kind: str         # "engine_fault:list", ...
    step: int
    left: int         # calls still to fail


class _Story:
    """The model, played step by step."""

    def __init__(self, sc: Scenario, err: Err) -> None:
        self.sc = sc
        self.err = err
        self.boxes: dict[str, _Box] = {}
        self.created: dict[str, int] = {}
        self.deleted: dict[str, int] = {}
        self.armed: list[_Armed] = []
        #: Sandboxes whose journal was corrupted and then read by a restarted driver.
        self.corrupt_then_restart: set[str] = set()
        self._corrupt: set[str] = set()

    def tracked(self, key: str) -> bool:
        """Whether a correct driver tracks sandbox ``key`` at the end."""
        return key in self.created and key not in self.deleted

    # -- names --------------------------------------------------------------------------------------

    def canonical(self, key: str) -> str:
        return canonical_name(self.sc.sandboxes[key].name, key)

    def resolve(self, expr: str, key: str, step: Step) -> str:
        if not key:  # no declared sandbox's id label: only literal names mean something
            return expr
        return resolve(expr, self.canonical(key), step.index)

    def holder(self, name: str) -> _Box | None:
        return next((b for b in self.boxes.values() if not b.gone and b.name == name), None)

    def name_ok(self, name: str, expr: str, path: tuple, what: str) -> bool:
        if expr not in ("canonical", "backup") and not valid_container_name(name):
            self.err(path, f"{name!r} is not a valid container name (Docker's rule: a letter "
                           "or digit, then at least one of [a-zA-Z0-9_.-]); use canonical, "
                           "backup or a name such as box-copy")
            return False
        other = self.holder(name)
        if other is not None:
            self.err(path, f"{what}: the container name {name} is in use by "
                           f"{self.describe(other)}; rename or remove it first (the engine "
                           "refuses a name in use)")
            return False
        return True

    def describe(self, box: _Box) -> str:
        if box.named:
            return f"{box.binding} (step {box.made + 1})"
        return f"the container of step {box.made + 1} ({box.binding})"

    # -- faults ----------------------------------------------------------------------------------------

    def hit(self, step: Step, path: tuple, what: str) -> None:
        """Refuse ``step`` if an armed fault would hit it."""
        for a in self.armed:
            if a.left > 0 and step.action in FAULT_TARGETS[a.kind]:
                kind, _, op = a.kind.partition(":")
                self.err(path, f"the {kind}: {op} of step {a.step + 1} may still be armed here "
                               f"and would fail {what}, an error of the story, not of the "
                               f"driver; {_fault_advice(a.kind)}")
                a.left = 0  # reported once

    def consume_list_fault(self) -> None:
        for a in self.armed:
            if a.kind == "engine_fault:list" and a.left > 0:
                a.left -= 1
                return

    # -- the play ---------------------------------------------------------------------------------------

    def box(self, step: Step, path: tuple) -> _Box | None:
        """The container an external step acts on, if it still exists."""
        b = self.boxes.get(step.target)
        if b is None:
            return None  # unbound: reported by the loader
        if b.gone:
            self.err(path, f"container {step.target} is gone ({b.gone}): the engine cannot "
                           f"{step.action} it")
            return None
        return b

    def play(self) -> None:
        for step in self.sc.story:
            path = ("story", step.index)
            handler = getattr(self, "do_" + step.action, None)
            if handler is not None:
                handler(step, path)

    def do_create(self, step: Step, path: tuple) -> None:
        key = step.target
        self.hit(step, path, "the driver's create")
        name = self.canonical(key)
        other = self.holder(name)
        if other is not None:
            self.err(path + ("create",), f"the driver's create of {key} needs its canonical name "
                                         f"{name}, which is in use by {self.describe(other)}")
        twins = [b for b in self.boxes.values() if not b.gone and b.key == key and b.ours]
        if twins:
            self.err(path + ("create",), f"create: {key} while {self.describe(twins[0])} "
                                         f"already carries sandbox {key}'s identity labels: the "
                                         "suite could not tell which container the create made")
        self.created.setdefault(key, step.index)
        binding = step.binds or f"{key}-instance"
        self.boxes[binding] = _Box(binding, key, True, name, "running", step.index,
                                   step.binds is not None,
                                   identity=made_identity("create", key, {}, None,
                                                          self.sc.sandboxes))

    def do_delete(self, step: Step, path: tuple) -> None:
        key = step.target
        if key not in self.created:
            self.err(path + ("delete",), f"sandbox {key} is deleted before any step creates it: "
                                         "the gateway can only delete a sandbox it created")
            return
        self.hit(step, path, "the driver's delete")
        matches = [b for b in self.boxes.values() if not b.gone and b.key == key and b.ours]
        for b in matches:
            if b.state == "removing":
                self.err(path + ("delete",), f"{self.describe(b)} is in state removing: the "
                                             "engine refuses to remove it again")
            b.gone = f"deleted with sandbox {key} at step {step.index + 1}"
        want = step.args.get("expect_removed")
        if want is not None and want != bool(matches):
            there = (", ".join(self.describe(b) for b in matches) if matches
                     else "no container with its identity labels")
            self.err(path + ("expect_removed",),
                     f"expect_removed: {str(want).lower()}, but the delete finds {there}: a "
                     f"correct driver returns deleted={str(bool(matches)).lower()}")
        self.deleted.setdefault(key, step.index)
        self._corrupt.discard(key)

    def do_observe(self, step: Step, path: tuple) -> None:
        for _ in range(step.repeat):
            self.consume_list_fault()

    def do_restart(self, step: Step, path: tuple) -> None:
        self.corrupt_then_restart |= self._corrupt

    def do_supervisor(self, step: Step, path: tuple) -> None:
        key = step.target
        if key not in self.created:
            self.err(path + ("supervisor",), f"sandbox {key} is not created yet: no supervisor "
                                             "can connect to it")
        elif key in self.deleted:
            self.err(path + ("supervisor",), f"sandbox {key} was deleted at step "
                                             f"{self.deleted[key] + 1}")

    def do_engine_fault(self, step: Step, path: tuple) -> None:
        self.armed.append(_Armed(f"engine_fault:{step.target}", step.index,
                                 step.args.get("times", 1)))

    def do_journal_fault(self, step: Step, path: tuple) -> None:
        kind = step.target
        for arg, allowed in (("times", ("write-fail",)), ("at", ("crash", "power-loss"))):
            if arg in step.args and kind not in allowed:
                self.err(path + (arg,), f"journal_fault: {kind} takes no {arg!r} (only "
                                        f"{' and '.join(allowed)} does); it would be ignored")
        if kind == "corrupt" or kind in FOREIGN_JOURNALS:
            key = step.args.get("sandbox")
            if key in self.sc.sandboxes and (key not in self.created or key in self.deleted):
                self.err(path + ("sandbox",), f"sandbox {key} has no journal to "
                                              f"{'corrupt' if kind == 'corrupt' else 'replace'} "
                                              "here "
                                              + ("(it is not created yet)"
                                                 if key not in self.created else
                                                 f"(it was deleted at step "
                                                 f"{self.deleted[key] + 1})"))
            elif key is not None:
                self._corrupt.add(key)
            return
        if kind == "power-loss" and "at" not in step.args:
            self.do_restart(step, path)  # the power goes now: the driver restarts, nothing armed
            return
        # A power loss at a write is armed like a crash, and meets the same write.
        others = ("crash", "power-loss") if kind == "write-fail" else ("write-fail",)
        earlier = next((a for a in self.armed
                        if a.kind in {f"journal_fault:{o}" for o in others}), None)
        if earlier is not None:
            other = earlier.kind.split(":", 1)[1]
            # Which one the next write meets is the adapter's choice (the reference adapter fails
            # the write before it can crash); when each was consumed depends on the schedule.
            self.err(path + ("journal_fault",), f"journal_fault: {kind} while the {other} of "
                                                f"step {earlier.step + 1} may still be armed: "
                                                "which one the driver's next write meets is "
                                                "not defined; put them in two scenarios")
        self.armed.append(_Armed(f"journal_fault:{kind}", step.index,
                                 step.args.get("times", 1) if kind == "write-fail" else 1))

    def do_stop(self, step: Step, path: tuple) -> None:
        b = self.box(step, path + ("stop",))
        if b is not None and b.state in ACTIVE_STATES:
            b.state = "exited"

    def do_start(self, step: Step, path: tuple) -> None:
        b = self.box(step, path + ("start",))
        if b is None:
            return
        if b.state in ("paused", "dead", "removing"):
            self.err(path + ("start",), f"container {step.target} is {b.state}: the engine "
                                        f"refuses to start a {b.state} container")
        elif b.cannot_start:
            self.err(path + ("start",), f"container {step.target} was made with fails: start "
                                        f"at step {b.made + 1}: its executable is missing, the "
                                        "engine refuses every start of it")
        else:
            b.state = "running"

    def do_kill(self, step: Step, path: tuple) -> None:
        b = self.box(step, path + ("kill",))
        if b is None:
            return
        if b.state not in ACTIVE_STATES:
            self.err(path + ("kill",), f"container {step.target} is {b.state}: the engine "
                                       "refuses to kill a container that is not running")
        else:
            b.state = "exited"

    def do_remove(self, step: Step, path: tuple) -> None:
        b = self.box(step, path + ("remove",))
        if b is None:
            return
        self.hit(step, path, "the suite's own remove")
        if b.state == "removing":
            self.err(path + ("remove",), f"container {step.target} is in state removing: the "
                                         "engine refuses to remove it again")
        b.gone = f"removed at step {step.index + 1}"

    def do_rename(self, step: Step, path: tuple) -> None:
        b = self.box(step, path + ("rename",))
        if b is None:
            return
        expr = step.args["to"]
        if not self.relative_ok(expr, b.identity, path + ("to",)):
            return
        name = self.resolve(expr, b.identity.key if b.identity else b.key, step)
        if name == b.name:
            self.err(path + ("to",), f"container {step.target} is already named {name}: the "
                                     "engine refuses a rename to the same name")
        elif self.name_ok(name, expr, path + ("to",), "rename"):
            b.name = name

    def do_set_state(self, step: Step, path: tuple) -> None:
        b = self.box(step, path + ("set_state",))
        if b is not None:
            b.state = step.args["state"]

    def do_clone(self, step: Step, path: tuple) -> None:
        src = self.box(step, path + ("clone",))
        if src is None:
            return
        if src.cannot_start and step.args.get("fails") != "start" \
                and step.args.get("state", "running") != "created":
            self.err(path + ("clone",), f"container {step.target} was made with fails: start: "
                                        "a clone copies its missing executable and cannot "
                                        "start either (give fails: start or state: created)")
            return
        self.make(step, path, src.identity, "the suite's own create of the clone")
        self.boxes[step.binds].cannot_start |= src.cannot_start

    def do_run(self, step: Step, path: tuple) -> None:
        self.make(step, path, None, "the suite's own create of the container")

    def relative_ok(self, expr: str, identity: Identity | None, path: tuple) -> bool:
        """A name relative to the canonical one needs a declared sandbox's id label to be
        relative to (the runner resolves it from the container's labels)."""
        if is_relative(expr) and identity is not None and not identity.key:
            self.err(path, f"{expr!r} is relative to a sandbox's canonical name, but this "
                           "container carries no declared sandbox's sandbox-id label (its "
                           "labels: dropped or changed it); give a literal name")
            return False
        return True

    def make(self, step: Step, path: tuple, source: Identity | None, what: str) -> None:
        self.hit(step, path, what)
        expr = step.args.get("name", "canonical")
        where = path + ("name",) if "name" in step.args else path
        # Names resolve against the labels the container is made from (a run's sandbox, the
        # clone's source), before the step's own label edits.
        naming = source if step.action == "clone" else Identity(step.target, None, True)
        if not self.relative_ok(expr, naming, where):
            return
        name = self.resolve(expr, naming.key if naming else "", step)
        self.name_ok(name, expr, where, step.action)
        state = ("created" if step.args.get("fails") == "start"
                 else step.args.get("state", "running"))
        identity = made_identity(step.action, step.target, step.args, source, self.sc.sandboxes)
        key = identity.candidate_of(self.sc.sandboxes)
        self.boxes[step.binds] = _Box(step.binds, key, bool(key), name, state, step.index,
                                      True, identity=identity,
                                      cannot_start=step.args.get("fails") == "start")

def _fault_advice(kind: str) -> str:
    if kind == "engine_fault:list":
        return ("put an observe step per failing poll (times) between them, or arm the fault "
                "after that step")
    return "arm the fault after that step (right before the step it is meant for)"


def check_meaning(sc: Scenario, sections: Sequence[tuple[tuple, Expect, Mapping[str, object]]],
                  err: Err) -> None:
    """Play ``sc``'s story on the model and report, through ``err(path, message)``, everything
    that would make it fail for reasons of the file alone. ``sections`` are its ``expect``
    sections: ``(path, parsed, raw mapping)``."""
    from .expectations import check_expect

    story = _Story(sc, err)
    story.play()
    for path, expect, raw in sections:
        check_expect(story, path, expect, raw)
