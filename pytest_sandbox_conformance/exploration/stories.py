"""Generated stories: a grammar of what real tools do to a driver's containers, drawn with
Hypothesis, each story with the schedule it is played under.

A *story* is what a scenario file's ``story:`` is, written by no one: a few sandboxes are
created, then *moves* follow, each the steps one real actor takes:

* the NemoClaw GPU swap (stop the original, rename it to ``backup``, clone it with every label
  and a GPU request under the canonical name; now and then a tool that changes or drops the
  generation label on the way) and how it ends: the backup removed, kept, or the
  rollback (the clone removed, the backup renamed back and started), also after a clone that
  exits (``state: exited``) or cannot start (``fails: start``); a backup stamped in seconds;
* Docker Compose's recreate (a clone under a temporary ``<hash>_<canonical>`` name, the old
  container stopped and removed, the new one renamed);
* Watchtower's stop, remove and re-create (``run`` with the same labels, or a clone made first);
* a person's ``docker run --label ...`` copy (any name, a kept, wrong, missing, empty or
  truncated generation, running, created, exited or unable to start, sometimes in another
  namespace, sometimes without ``managed-by`` or with another ``sandbox-name``), and a copy of a
  sandbox the driver does not track;
* ``docker rm -f``, ``docker restart``, a container that exits, is killed, dies, pauses or
  restarts on its own, one started again, a copy with its generation label changed or dropped;
* near-miss names (``{canonical}-nemoclaw-gpu-backup-`` with an empty or another suffix,
  another tool's ``{canonical}-backup-<digits>``, ``{canonical}-old``) and renames back;
* driver restarts anywhere (a story step, or ``R`` in a gap: right after an adoption, after a
  delete, after the last step), deletes, supervisor (dis)connects, list faults, journal faults
  (a failed write, a crash at any point, a corrupt or foreign journal then a restart, a power
  loss) and long quiet stretches (a gap of 8 to 20 observations, an ``observe`` step with
  ``repeat:`` 8 to 40);
* a sandbox name that the canonical name sanitises (``GPU Box``).

Only what the driver and the engine offer is drawn (``capabilities``): no ``R`` and no
``restart`` without ``restart``, no ``o`` without ``list-order``, no ``set_state`` without
``states``, no GPU style the engine lacks, no journal or engine fault without the capability.

The grammar keeps a model of the containers (:class:`_Model`, the same facts
``scenario/meaning.py`` plays) so that it draws only steps the engine accepts; every story is
then loaded by the scenario loader itself (:func:`scenario_of`: schema, names, the story's
meaning), and a story the loader refuses is rejected (``hypothesis.reject``), so every story
played is one ``sandbox-conformance lint`` accepts. The expectation is the contract's own: the
oracle checks every observation (the settle observations included, so the final state is the
oracle's), convergence (OWN-20) and the invariants; the file's ``expect`` states only what the
story itself decides (:func:`story_expect`: which bound containers are left, what was deleted,
what is tracked).

Pure: no I/O, no engine, no driver, no pytest.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

import yaml
from hypothesis import strategies as st

from reference_driver.naming import canonical_name

from ..scenario.loader import load_text
from ..scenario.names import CANONICAL_PLACEHOLDER, resolve
from ..scenario.model import SandboxDecl, Scenario, made_identity
from ..scenario.schema import FOREIGN_JOURNALS
from .schedule import Schedule

__all__ = ["BATCH", "GENERATED_REQUIREMENTS", "MAX_MOVES", "SANDBOXES", "Batch", "Story", "batches",
           "scenario_of", "stories", "story_document", "story_expect"]

#: The most moves after the creates (each is one to five steps).
MAX_MOVES = 12
#: The sandboxes a story may declare: key -> name. ``s1`` is always created; ``s2`` is created,
#: or declared only (its containers are then a sandbox the driver does not track).
SANDBOXES = {"s1": "box", "s2": "cup"}
#: Now and then ``s1`` has a name a person types, which the canonical name sanitises.
TYPED_NAME = "GPU Box"
#: What a generated scenario's own expectations (``story_expect``) check, besides the
#: contract's checks of every observation: bound containers are left alone but on delete
#: (OWN-3, OWN-14), what is tracked and deleted (OWN-10), convergence (OWN-20).
GENERATED_REQUIREMENTS = ("OWN-3", "OWN-10", "OWN-14", "OWN-20")

#: Near-miss names: like the GPU tool's backup name, or another tool's, but none of them it.
NEAR_MISSES = (
    CANONICAL_PLACEHOLDER + "-nemoclaw-gpu-backup-",            # empty suffix
    CANONICAL_PLACEHOLDER + "-nemoclaw-gpu-backup-17600000x",   # another suffix
    CANONICAL_PLACEHOLDER + "-backup-1760000000001",            # another tool's pattern
    CANONICAL_PLACEHOLDER + "-old",
    CANONICAL_PLACEHOLDER + "-nemoclaw-gpu-backup-1760000000000-1",
)
#: Backup names of the handoff shape other than ``backup`` (13 digits): a tool that stamps
#: seconds (10 digits).
OTHER_BACKUPS = (CANONICAL_PLACEHOLDER + "-nemoclaw-gpu-backup-1760000000",)
#: ``labels:`` edits of a hand-made copy: without ``managed-by`` or with another value (still a
#: candidate), another or no ``sandbox-name`` (none).
LABEL_EDITS = ({"managed-by": None}, {"managed-by": "compose"}, {"sandbox-name": "web"},
               {"sandbox-name": None})
GENERATIONS = ("keep", "wrong", "missing", "empty", "truncated")
#: Docker Compose's temporary name while it recreates a service's container.
COMPOSE_TEMP = "3f2a9b1c0d4e_" + CANONICAL_PLACEHOLDER
GPU_CAPABILITIES = {"cdi": "gpu-cdi", "gpus": "gpu-gpus", "runtime": "gpu-runtime"}
CRASH_POINTS = ("open-temp", "write-partial", "fsync-temp", "rename", "fsync-dir")
_ACTIVE = ("running", "paused", "restarting")


@dataclass(frozen=True)
class Story:
    """A drawn story: its sandboxes (key -> (name, gpu)), its steps (the mappings a scenario
    file's ``story:`` holds) and the tokens of the gap after each step (a schedule)."""

    sandboxes: tuple[tuple[str, str, bool], ...]
    steps: tuple[dict[str, Any], ...]
    gaps: tuple[str, ...]
    #: The moves it was drawn from, for people ("gpu-swap/rollback", "compose-recreate", ...).
    moves: tuple[str, ...] = ()

    @property
    def schedule(self) -> Schedule:
        return Schedule(self.gaps)

    @property
    def observations(self) -> int:
        return self.schedule.observations + sum(s.get("repeat", 1) for s in self.steps
                                                if "observe" in s)

    @property
    def restarts(self) -> int:
        return self.schedule.restarts + sum(1 for s in self.steps if "restart" in s)

    def size(self) -> tuple[int, int, int]:
        """How big it is, as shrinking orders stories: steps, then observations, restarts."""
        return len(self.steps), self.observations, self.restarts


@dataclass
class _Box:
    binding: str
    key: str
    ours: bool
    name: str
    state: str
    alive: bool = True
    cannot_start: bool = False   # made with fails: start (and clones of it)


@dataclass
class _Model:
    """The containers so far, as ``scenario/meaning.py`` models them."""

    caps: frozenset[str]
    names: dict[str, str]
    boxes: list[_Box] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    created: set[str] = field(default_factory=set)
    deleted: set[str] = field(default_factory=set)
    journal: str | None = None     # the journal fault kind armed in this story
    list_fault: bool = False       # a list fault was armed: no delete after it
    moves: list[str] = field(default_factory=list)

    def canonical(self, key: str) -> str:
        return canonical_name(self.names[key], key)

    def resolve(self, expr: str, key: str) -> str:
        """The name ``expr`` means at the next step (the one about to be added)."""
        return resolve(expr, self.canonical(key), len(self.steps))

    def free(self, name: str) -> bool:
        return not any(b.alive and b.name == name for b in self.boxes)

    def binding(self) -> str:
        n = len(self.boxes)
        return chr(ord("A") + n) if n < 26 else f"X{n}"

    def tracked(self, key: str) -> bool:
        return key in self.created and key not in self.deleted

    def live(self, *states: str) -> list[_Box]:
        return [b for b in self.boxes if b.alive and (not states or b.state in states)]

    def startable(self, *states: str) -> list[_Box]:
        return [b for b in self.live(*states) if not b.cannot_start]

    def owned(self, *states: str) -> list[_Box]:
        """Live containers in the run's namespace of a tracked sandbox."""
        return [b for b in self.live(*states) if b.ours and self.tracked(b.key)]

    def holders(self, *states: str) -> list[_Box]:
        """The sandboxes' containers under their canonical names that can run (what the GPU
        tool, Compose and Watchtower act on and clone)."""
        return [b for b in self.owned(*states)
                if b.name == self.canonical(b.key) and not b.cannot_start]

    # -- steps -----------------------------------------------------------------------------------

    def add(self, step: dict[str, Any]) -> None:
        self.steps.append(step)

    def create(self, key: str) -> None:
        b = _Box(self.binding(), key, True, self.canonical(key), "running")
        self.add({"create": key, "as": b.binding})
        self.boxes.append(b)
        self.created.add(key)

    def decls(self) -> dict[str, SandboxDecl]:
        return {k: SandboxDecl(k, n) for k, n in self.names.items()}

    def make(self, action: str, target: str, key: str, name: str, *, ours: bool = True,
             source: _Box | None = None, **args: Any) -> _Box:
        """A ``run`` or ``clone`` step; the new box's key is its sandbox-id label's sandbox
        (what its names are relative to), ``ours`` whether it is that sandbox's candidate."""
        state = "created" if args.get("fails") else args.get("state", "running")
        b = _Box(self.binding(), key, ours, self.resolve(name, key), state,
                 cannot_start=bool(args.get("fails")) or bool(source and source.cannot_start))
        if args.get("labels"):
            src = None if source is None else made_identity(
                "run", source.key, {} if source.ours else {"namespace": "x"}, None,
                self.decls())
            given = {k: v for k, v in args.items() if v is not None}
            ident = made_identity(action, target, given, src, self.decls())
            b.key, b.ours = ident.key, bool(ident.candidate_of(self.decls()))
        step: dict[str, Any] = {action: target, "as": b.binding}
        if name != "canonical":
            step["name"] = name
        step.update({k: v for k, v in args.items() if v is not None})
        if step.get("state") == "running":
            del step["state"]
        if step.get("generation") == "keep":
            del step["generation"]
        self.add(step)
        self.boxes.append(b)
        return b

    def stop(self, b: _Box) -> None:
        self.add({"stop": b.binding})
        if b.state in _ACTIVE:
            b.state = "exited"

    def start(self, b: _Box) -> None:
        self.add({"start": b.binding})
        b.state = "running"

    def remove(self, b: _Box) -> None:
        self.add({"remove": b.binding})
        b.alive = False

    def rename(self, b: _Box, expr: str) -> None:
        b.name = self.resolve(expr, b.key)  # before the step: a backup name has its index
        self.add({"rename": b.binding, "to": expr})

    def delete(self, key: str) -> None:
        self.add({"delete": key})
        self.deleted.add(key)
        for b in self.live():
            if b.key == key and b.ours:
                b.alive = False


# -- the moves ---------------------------------------------------------------------------------------


def _gpu_style(draw, m: _Model) -> str | None:
    styles = [s for s, cap in GPU_CAPABILITIES.items() if cap in m.caps]
    return draw(st.sampled_from([None, *styles]))


def _gpu_swap(draw, m: _Model) -> str:
    """NemoClaw's Docker GPU patch on a running sandbox, and how it ends."""
    a = draw(st.sampled_from(m.holders("running")))
    m.stop(a)
    backup = draw(st.sampled_from(("backup",) * 3 + OTHER_BACKUPS))
    if backup != "backup" and not m.free(m.resolve(backup, a.key)):
        backup = "backup"
    m.rename(a, backup)
    ending = draw(st.sampled_from(["commit", "rollback", "keep", "clone-fails",
                                   "clone-cannot-start"]))
    b = m.make("clone", a.binding, a.key, "canonical", gpu=_gpu_style(draw, m),
               state="exited" if ending == "clone-fails" else "running",
               fails="start" if ending == "clone-cannot-start" else None,
               generation=draw(st.sampled_from(GENERATIONS)))
    if ending == "commit":
        m.remove(a)
    elif ending in ("rollback", "clone-fails", "clone-cannot-start"):
        if ending == "rollback" and draw(st.booleans()):
            m.stop(b)
        m.remove(b)
        m.rename(a, "canonical")
        if draw(st.integers(0, 3)):  # a rollback whose start never happens, now and then
            m.start(a)
    return f"gpu-swap/{ending}"


def _compose_recreate(draw, m: _Model) -> str:
    """``docker compose up`` recreating the service: new container under a temporary name,
    stop and remove the old one, rename the new one."""
    a = draw(st.sampled_from(m.holders()))
    temp = m.resolve(COMPOSE_TEMP, a.key)
    if not m.free(temp):
        return ""
    b = m.make("clone", a.binding, a.key, COMPOSE_TEMP)
    m.stop(a)
    m.remove(a)
    m.rename(b, "canonical")
    return "compose-recreate"


def _watchtower(draw, m: _Model) -> str:
    """Watchtower's update: stop, remove, re-create with the same labels (and name)."""
    a = draw(st.sampled_from(m.holders()))
    if draw(st.booleans()):
        m.stop(a)
        m.remove(a)
        m.make("run", a.key, a.key, "canonical")
        return "watchtower/run"
    temp = CANONICAL_PLACEHOLDER + "-watchtower"
    if not m.free(m.resolve(temp, a.key)):
        return ""
    b = m.make("clone", a.binding, a.key, temp, state="created")
    m.stop(a)
    m.remove(a)
    m.rename(b, "canonical")
    m.start(b)
    return "watchtower/clone"


def _run_copy(draw, m: _Model) -> str:
    """A person's ``docker run --label ...`` with a sandbox's labels."""
    key = draw(st.sampled_from(sorted(m.names)))
    choices = [CANONICAL_PLACEHOLDER + "-copy", "canonical", *NEAR_MISSES]
    name = draw(st.sampled_from(choices))
    if not m.free(m.resolve(name, key)):
        return ""
    other_ns = draw(st.integers(0, 7)) == 0
    edits = None if other_ns or draw(st.integers(0, 2)) else draw(st.sampled_from(LABEL_EDITS))
    fails = draw(st.integers(0, 9)) == 0
    m.make("run", key, key, name, ours=not other_ns,
           generation=draw(st.sampled_from(GENERATIONS)),
           state=None if fails else draw(st.sampled_from(["running", "exited", "created"])),
           namespace="someone-else" if other_ns else None, labels=edits,
           fails="start" if fails else None)
    return ("docker-run-copy" + ("/other-namespace" if other_ns else "")
            + ("/labels:" + ",".join(sorted(edits)) if edits else "")
            + ("/cannot-start" if fails else ""))


def _label_copy(draw, m: _Model) -> str:
    """A copy of a container (all its labels) with the generation label changed or dropped."""
    a = draw(st.sampled_from(m.startable()))
    name = draw(st.sampled_from(["canonical", CANONICAL_PLACEHOLDER + "-edited"]))
    if not m.free(m.resolve(name, a.key)):
        return ""
    m.make("clone", a.binding, a.key, name, ours=a.ours,
           generation=draw(st.sampled_from(GENERATIONS[1:])),
           state=draw(st.sampled_from(["running", "exited"])))
    return "label-edit"


def _remove(draw, m: _Model) -> str:
    m.remove(draw(st.sampled_from(m.live())))
    return "docker-rm-f"


def _restart_container(draw, m: _Model) -> str:
    b = draw(st.sampled_from(m.startable("running", "exited", "created", "paused",
                                         "restarting")))
    m.stop(b)
    m.start(b)
    return "docker-restart"


def _exits(draw, m: _Model) -> str:
    """A container that exits, is killed, dies, pauses or restarts on its own."""
    b = draw(st.sampled_from(m.live(*_ACTIVE)))
    how = ["stop", "kill"] + (["dead", "paused", "restarting", "exited"]
                              if "states" in m.caps else [])
    how = [h for h in how if h != b.state]
    h = draw(st.sampled_from(how))
    if h == "stop":
        m.stop(b)
    elif h == "kill":
        m.add({"kill": b.binding})
        b.state = "exited"
    else:
        m.add({"set_state": b.binding, "state": h})
        b.state = h
    return f"exits/{h}"


def _start_again(draw, m: _Model) -> str:
    m.start(draw(st.sampled_from(m.startable("exited", "created"))))
    return "start"


def _near_miss(draw, m: _Model) -> str:
    b = draw(st.sampled_from(m.live()))
    expr = draw(st.sampled_from(NEAR_MISSES))
    name = m.resolve(expr, b.key)
    if name == b.name or not m.free(name):
        return ""
    m.rename(b, expr)
    return "near-miss-rename"


def _rename_back(draw, m: _Model) -> str:
    options = [b for b in m.live() if b.name != m.canonical(b.key)
               and m.free(m.canonical(b.key))]
    b = draw(st.sampled_from(options))
    m.rename(b, "canonical")
    return "rename-to-canonical"


def _driver_restart(draw, m: _Model) -> str:
    m.add({"restart": True})
    return "driver-restart"


def _delete(draw, m: _Model) -> str:
    key = draw(st.sampled_from(sorted(k for k in m.names if m.tracked(k))))
    m.delete(key)
    if "restart" in m.caps and draw(st.booleans()):
        m.add({"restart": True})
        return "delete/restart"
    return "delete"


def _supervisor(draw, m: _Model) -> str:
    key = draw(st.sampled_from(sorted(k for k in m.names if m.tracked(k))))
    connected = draw(st.booleans())
    m.add({"supervisor": key, **({} if connected else {"connected": False})})
    return "supervisor"


def _observe(draw, m: _Model) -> str:
    """An observation of the story, now and then a long quiet stretch of them (``repeat:``:
    8 to 40, over a minute of a 2 s poll)."""
    orders = ["newest", "oldest"] if "list-order" in m.caps else ["newest"]
    step: dict[str, Any] = {"observe": draw(st.sampled_from(orders))}
    if draw(st.integers(0, 3)) == 0:
        step["repeat"] = draw(st.integers(8, 40))
    m.add(step)
    return "observe" + ("/quiet" if "repeat" in step else "")


def _journal_fault(draw, m: _Model) -> str:
    kinds = []
    if m.journal in (None, "write-fail"):
        kinds.append("write-fail")
    if m.journal is None:
        kinds.append("crash")
    tracked = sorted(k for k in m.names if m.tracked(k))
    if "restart" in m.caps and tracked:
        kinds += ["corrupt", *FOREIGN_JOURNALS]
    if "power-loss" in m.caps:
        kinds.append("power-loss")
    kind = draw(st.sampled_from(kinds))
    if kind == "write-fail":
        m.add({"journal_fault": "write-fail", **({"times": 2} if draw(st.booleans()) else {})})
    elif kind == "crash":
        m.add({"journal_fault": "crash", "at": draw(st.sampled_from(CRASH_POINTS))})
    elif kind == "power-loss":
        at = draw(st.sampled_from((None,) + CRASH_POINTS)) if m.journal is None else None
        m.add({"journal_fault": "power-loss", **({"at": at} if at else {})})
        if not at:
            return "journal/power-loss"
        m.journal = "crash"  # armed like a crash: it meets the driver's next write
        return "journal/power-loss-at-write"
    else:
        m.add({"journal_fault": kind, "sandbox": draw(st.sampled_from(tracked))})
        m.add({"restart": True})
        return f"journal/{kind}"
    m.journal = kind
    return f"journal/{kind}"


def _list_fault(draw, m: _Model) -> str:
    m.add({"engine_fault": "list", **({"times": 2} if draw(st.booleans()) else {})})
    m.list_fault = True
    return "engine-fault/list"


def _applicable(m: _Model) -> list:
    """The moves that can be made now, the commonest real ones first (shrinking goes there)."""
    moves = []
    if m.holders("running"):
        moves.append(_gpu_swap)
    if m.holders():
        moves += [_compose_recreate, _watchtower]
    moves.append(_run_copy)
    if m.live():
        moves += [_remove, _near_miss]
    if m.startable():
        moves.append(_label_copy)
    if m.startable("running", "exited", "created", "paused", "restarting"):
        moves.append(_restart_container)
    if m.live(*_ACTIVE):
        moves.append(_exits)
    if m.startable("exited", "created"):
        moves.append(_start_again)
    if any(b.name != m.canonical(b.key) and m.free(m.canonical(b.key)) for b in m.live()):
        moves.append(_rename_back)
    if "restart" in m.caps:
        moves.append(_driver_restart)
    tracked = [k for k in m.names if m.tracked(k)]
    if tracked and not m.list_fault:
        moves.append(_delete)
    if tracked:
        moves.append(_supervisor)
    moves.append(_observe)
    if "journal-faults" in m.caps and (m.journal != "crash"):
        moves.append(_journal_fault)
    if "engine-faults" in m.caps and not m.list_fault:
        moves.append(_list_fault)
    return moves


# -- schedules ---------------------------------------------------------------------------------------


def _gap(draw, caps: frozenset[str]) -> str:
    """The tokens after one step: mostly none or a few, now and then a long quiet stretch."""
    obs = ["n", "o"] if "list-order" in caps else ["n"]
    tokens = obs + (["R"] if "restart" in caps else [])
    kind = draw(st.integers(0, 9))
    if kind <= 4:
        return ""
    if kind <= 8:
        return "".join(draw(st.lists(st.sampled_from(tokens), min_size=1, max_size=4)))
    length = draw(st.integers(8, 20))
    return "".join(obs[i % len(obs)] for i in range(length))


@st.composite
def stories(draw, capabilities: frozenset[str] = frozenset()) -> Story:
    """A Hypothesis strategy of :class:`Story`, drawing only what ``capabilities`` (the
    driver's and the engine's) offer."""
    caps = frozenset(capabilities)
    two = draw(st.booleans())
    names = dict(SANDBOXES) if two else {"s1": SANDBOXES["s1"]}
    if draw(st.integers(0, 5)) == 0:
        names["s1"] = TYPED_NAME
    gpu = {"gpu", "gpu-host"} <= caps and draw(st.integers(0, 4)) == 0
    m = _Model(caps, names)
    m.create("s1")
    if two and draw(st.integers(0, 2)):
        m.create("s2")
    while len(m.moves) < MAX_MOVES and draw(st.integers(0, 5)):
        move = draw(st.sampled_from(_applicable(m)))
        said = move(draw, m)
        if said:
            m.moves.append(said)
    gaps = tuple(_gap(draw, caps) for _ in m.steps)
    decls = tuple((k, names[k], gpu and k == "s1") for k in names)
    return Story(decls, tuple(m.steps), gaps, tuple(m.moves))


# -- the story as a scenario ---------------------------------------------------------------------------


def story_expect(story: Story) -> dict[str, Any]:
    """What the story itself decides, whatever the driver: the bound containers left (a
    correct driver removes containers only on delete), the sandboxes deleted (each must have
    had its Deleted event), and which sandboxes are tracked at the end."""
    decls = {k: SandboxDecl(k, n) for k, n, _ in story.sandboxes}
    alive: dict[str, bool] = {}
    whose: dict[str, Any] = {}   # binding -> its Identity
    deleted: list[str] = []
    created: list[str] = []
    for step in story.steps:
        action = next(iter(step))
        if action in ("create", "clone", "run"):
            src = step[action]
            whose[step["as"]] = made_identity(action, src, step, whose.get(src), decls)
            alive[step["as"]] = True
            if action == "create":
                created.append(src)
        elif action == "remove":
            alive[step["remove"]] = False
        elif action == "delete":
            key = step["delete"]
            deleted.append(key)
            for b, ident in whose.items():
                if ident.candidate_of(decls) == key:
                    alive[b] = False
    sandboxes = {k: {"tracked": k in created and k not in deleted}
                 for k, _, _ in story.sandboxes}
    out: dict[str, Any] = {"sandboxes": sandboxes,
                           "containers": sorted(b for b, on in alive.items() if on)}
    if deleted:
        out["deleted"] = sorted(set(deleted))
    return out


def story_document(story: Story, scenario_id: str, title: str, *, description: str = "",
                   requirements: tuple[str, ...] = GENERATED_REQUIREMENTS,
                   expect: dict[str, Any] | None = None,
                   schedules: dict[str, Any] | None = None) -> dict[str, Any]:
    """The story as a scenario file's mapping (what ``yaml.safe_dump`` writes and the loader
    reads): ``max_observations: 1`` keeps its exhaustive exploration small."""
    doc: dict[str, Any] = {"id": scenario_id, "title": title}
    if description:
        doc["description"] = description
    doc["requirements"] = list(requirements)
    doc["max_observations"] = 1
    doc["sandboxes"] = {k: ({"name": n, "gpu": True} if g else {"name": n})
                        for k, n, g in story.sandboxes}
    doc["story"] = [dict(s) for s in story.steps]
    doc["expect"] = story_expect(story) if expect is None else expect
    if schedules:
        doc["schedules"] = schedules
    return doc


def scenario_of(story: Story, scenario_id: str = "generated", title: str = "a generated story",
                source: str = "<generated>", **kw: Any) -> Scenario:
    """The story loaded by the scenario loader (schema, names, meaning), exactly as a file
    holding :func:`story_document` loads; raises ``ScenarioErrors`` when it refuses it."""
    text = yaml.safe_dump(story_document(story, scenario_id, title, **kw), sort_keys=False)
    (scenario,) = load_text(text, source)
    return scenario


# -- batches -----------------------------------------------------------------------------------------

#: Stories per pytest item of ``--sandbox-schedules=generate:N[:SEED]``.
BATCH = 50


@dataclass(frozen=True)
class Batch:
    """One item's share of ``generate:N:SEED``: ``size`` stories drawn from their own seed, so
    that any batch replays alone (``-k``) exactly as it ran among the others."""

    seed: int
    index: int
    size: int
    total: int

    @property
    def label(self) -> str:
        return f"seed{self.seed}-batch{self.index}"

    @property
    def hypothesis_seed(self) -> int:
        return zlib.crc32(f"sandbox-conformance generate {self.seed} {self.index}".encode())


def batches(n: int, seed: int = 0, size: int = BATCH) -> list[Batch]:
    """The batches of ``generate:n:seed``, in order: ``ceil(n / size)`` of them, the last one
    holding what is left."""
    count = max(1, -(-n // size))
    return [Batch(seed, i + 1, min(size, n - i * size), n) for i in range(count)]
