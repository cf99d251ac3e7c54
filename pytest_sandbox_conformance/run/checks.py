"""Checks: the invariants and expectations, each naming the requirement(s) it enforces.

A check is a function decorated with :func:`check`, which attaches a frozen :class:`CheckSpec`
(name, requirements, when it runs) and registers it; a misdeclared check (unknown ``when``, a
malformed requirement ID, a duplicate name) fails at import, as Hypothesis rejects a misdeclared
rule. The runner calls every check registered for a moment (``observation``: after each
observation; ``step``: after each story step; ``final``: after the settle phase) with a read-only
:class:`View` of the run, and stops at the first failure. Pure: no pytest, no engine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Sequence

from ..api import CONFLICT_REASONS, PENDING_REASONS, Snapshot, gate_open, phase_of
from ..engines.base import Container, ids_match
from .gateway import Gateway
from ..live.gpu import gpu_seen_inside
from .oracle import EXPECTATION_REQUIREMENTS, Expected
from .rules import RULES, broken_rule
from ..scenario.model import Count, Expect, Scenario

__all__ = ["CheckSpec", "Failure", "View", "check", "checks_for", "requirement_checks",
           "REGISTRY", "RUNNER_CHECKS"]

WHEN = ("observation", "step", "final")
_REQ = re.compile(r"^OWN-([1-9]|1[0-9]|20)$")


@dataclass(frozen=True)
class Failure:
    """A broken requirement: which check saw it, which OWN-n it breaks, and what it saw.

    ``at`` and ``moment`` say where in the play it was first seen (set by the runner: a phrase
    such as ``observation 3, after step 4`` and the timeline moment's ``seq``); they take no part
    in equality, so the same finding seen again later is one finding."""

    check: str
    requirements: tuple[str, ...]
    message: str
    at: str = field(default="", compare=False)
    moment: int | None = field(default=None, compare=False)

    def __str__(self) -> str:
        return f"[{', '.join(self.requirements)}] {self.check}: {self.message}"


@dataclass(frozen=True)
class CheckSpec:
    name: str
    when: str
    requirements: tuple[str, ...]
    doc: str
    fn: Callable[["View"], Iterable[Failure]]
    #: Requirements it may name besides ``requirements`` (the contract's outcome's, the rule a
    #: report broke, a Warning reason's); ``scenario``: also the scenario's own ``requirements``.
    names: tuple[str, ...] = ()
    scenario: bool = False

    @property
    def reads(self) -> tuple[str, ...]:
        """Every requirement a failure of this check can name (the scenario's aside)."""
        return tuple(sorted(set(self.requirements) | set(self.names),
                            key=lambda r: int(r.split("-")[1])))


REGISTRY: dict[str, CheckSpec] = {}


def check(name: str, *, when: str, requirements: Sequence[str] = (), names: Sequence[str] = (),
          scenario: bool = False):
    """Register a check. ``requirements`` are the OWN-n it always enforces; ``names`` those it
    may name besides; ``scenario``: it names the scenario's own requirements."""
    if when not in WHEN:
        raise ValueError(f"check {name!r}: when={when!r} is not one of {WHEN}")
    for r in (*requirements, *names):
        if not _REQ.match(r):
            raise ValueError(f"check {name!r}: {r!r} is not a requirement ID (OWN-1..OWN-20)")
    if name in REGISTRY:
        raise ValueError(f"check {name!r} is declared twice")

    def decorate(fn: Callable[["View"], Iterable[Failure]]):
        if not fn.__doc__:
            raise ValueError(f"check {name!r} needs a docstring: it is printed in docs/checks")
        REGISTRY[name] = CheckSpec(name, when, tuple(requirements), fn.__doc__.strip(), fn,
                                   tuple(names), scenario)
        return fn

    return decorate


#: The runner's own checks (``runner.py``: failures it records itself, not registered
#: functions): name -> the requirements they name.
RUNNER_CHECKS: dict[str, tuple[str, ...]] = {
    "create": ("OWN-1", "OWN-19"),
    "delete": ("OWN-14",),
    "containers-only-on-request": ("OWN-6", "OWN-9"),
}


def requirement_checks() -> dict[str, list[str]]:
    """OWN-n -> the checks whose failures can name it (registered and the runner's), by name;
    the checks that name the scenario's own requirements are not listed under each."""
    out: dict[str, list[str]] = {f"OWN-{n}": [] for n in range(1, 21)}
    named = [(c.name, c.reads) for c in REGISTRY.values()] + list(RUNNER_CHECKS.items())
    for name, reads in sorted(named):
        for r in reads:
            out[r].append(name)
    return out


def checks_for(when: str) -> list[CheckSpec]:
    return [c for c in REGISTRY.values() if c.when == when]


@dataclass
class View:
    """What checks may look at. Filled in by the runner; checks only read it."""

    scenario: Scenario
    expect: Expect
    gateway: Gateway
    #: Container binding name -> container ID, and back.
    bindings: Mapping[str, str]
    #: sandbox key -> sandbox ID.
    sandbox_ids: Mapping[str, str]
    #: The oracle's expectations for the observation just made (observation checks).
    expected: Mapping[str, Expected] = field(default_factory=dict)
    #: The driver's snapshots, by sandbox ID, right after that observation.
    snapshots: Mapping[str, Snapshot | None] = field(default_factory=dict)
    #: Containers the engine holds in the run's namespace (step checks); for the final checks
    #: also the bound containers outside it (``run:`` with ``namespace:``).
    containers: Sequence[Container] = ()
    #: Set by a delete step: (sandbox key, what delete returned, whether anything matched).
    deleted: tuple[str, bool, bool] | None = None
    #: Final: the snapshots after each of the settle observations.
    settle: Sequence[Mapping[str, Snapshot | None]] = ()
    #: Final: per Warning reason, (fewest, most) a conforming driver may have emitted.
    warning_bounds: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    #: Final: per Warning reason, how many the restarts the schedule added may announce again
    #: beyond the story as written (``Oracle.reannounced``), and the gaps of those restarts.
    reannounced: Mapping[str, int] = field(default_factory=dict)
    added_restarts: Sequence[int] = ()
    #: Sandboxes deleted on request during the run (keys).
    deleted_keys: Sequence[str] = ()
    identity_matches: Callable[[str], list[Container]] = lambda key: []
    #: Containers the story gave a GPU (clone/run with ``gpu:``), and how to inspect one.
    gpu_containers: frozenset[str] = frozenset()
    inspect: Callable[[str], Container | None] = lambda cid: None
    #: What a container's main process sees of its GPU (None where the engine cannot exec).
    look_inside: Callable[[str], str | None] = lambda cid: None
    #: The state-folder audit, run when a check asks (``state_audit.py``; nothing where the
    #: driver's folder is not audited): what it finds now.
    audit_state: Callable[[], Sequence[str]] = lambda: ()
    #: Per (sandbox id, reason): the Warning notices the contract raised so far (the oracle's).
    notices: Mapping[tuple[str, str], Sequence[object]] = field(default_factory=dict)

    def name_of(self, container_id: str | None) -> str:
        if container_id is None:
            return "none"
        for name, cid in self.bindings.items():
            if ids_match(container_id, cid):
                return f"{name} ({container_id[:12]})"
        return container_id[:12] or "''"


_WARNING_REQUIREMENT = {
    "ContainerIdentityConflict": "OWN-3",
    "ContainerInstanceMissing": "OWN-6",
    "ContainerOwnershipPersistFailed": "OWN-15",
    "ContainerOwnershipUnresolved": "OWN-7",
    "ContainerReplacementPending": "OWN-7",
    "SandboxInstanceReplaced": "OWN-4",
    "SandboxInstanceRollback": "OWN-13",
    "SandboxReplacementIntentInvalidated": "OWN-8",
    "SandboxReplacementIntentRecorded": "OWN-4",
    "UnownedSandboxContainersIgnored": "OWN-18",
}


def _warning_requirement(reason: str) -> tuple[str, ...]:
    r = _WARNING_REQUIREMENT.get(reason)
    return (r,) if r else ()


# -- after every observation ---------------------------------------------------------------------


_COMPARED = tuple(sorted(set(EXPECTATION_REQUIREMENTS) | set(RULES)))


@check("instance-matches-contract", when="observation", names=_COMPARED)
def _instance(view: View) -> Iterable[Failure]:
    """The snapshot names the container the contract makes authoritative, no other (OWN-2..8, 13).
    A failure names the rule the driver's report broke (``run/rules.py``), with the contract's
    outcome and its requirement as context."""
    for sid, exp in sorted(view.expected.items()):
        snap = view.snapshots.get(sid)
        got = snap.instance_id if snap is not None else None
        if snap is None:
            yield Failure("instance-matches-contract", exp.requirements,
                          f"sandbox {sid}: the driver reports no snapshot; expected instance "
                          f"{view.name_of(exp.instance_id)} ({exp.outcome})")
        elif not ids_match(got, exp.instance_id):
            reqs, why = _rule(exp, snap)
            yield Failure("instance-matches-contract", reqs,
                          f"sandbox {sid}: the driver reports instance {view.name_of(got)}; the "
                          f"contract says {view.name_of(exp.instance_id)} ({exp.outcome})" + why)


def _rule(exp: Expected, snap: Snapshot, reqs: tuple[str, ...] | None = None
          ) -> tuple[tuple[str, ...], str]:
    """The requirements a differing report is reported under, and the words that say why: the
    rule the driver's branch broke where ``run/rules.py`` recognises it (the contract's
    outcome and requirement then in the words), else the contract's outcome's requirement."""
    reqs = exp.requirements if reqs is None else reqs
    found = broken_rule(exp.outcome, exp.situation, snap)
    if found is None:
        return reqs, ""
    rule, what = found
    keep = tuple(r for r in reqs if r == "OWN-12")  # promotion while unresolved stays named
    reported = next((c for c in exp.situation.candidates
                     if ids_match(snap.instance_id, c.id)), None)
    gpu = ("OWN-19",) if reported is not None and (reported.device_requests
                                                  or reported.runtime) else ()
    # A GPU container adopted or refused by other rules than any container's breaks OWN-19 too.
    return (tuple(dict.fromkeys(keep + (rule,) + gpu)),
            f"; {what} ({rule}; the contract's outcome here is {exp.outcome}, "
            f"{', '.join(exp.requirements)})")


@check("readiness-matches-contract", when="observation", names=_COMPARED + ("OWN-12",))
def _readiness(view: View) -> Iterable[Failure]:
    """Ready status and phase match; pending and conflict states carry the contract's reason.
    Where the contract says Ready, a driver may still report a readiness gate open (a health
    check starting, its supervisor not connected: ``api.READINESS_GATE_REASONS``). A failure
    names the rule the driver's report broke, as ``instance-matches-contract`` does."""
    for sid, exp in sorted(view.expected.items()):
        snap = view.snapshots.get(sid)
        if snap is None:
            continue
        want, got = exp.ready, snap.ready
        if want.ready and gate_open(got):
            continue
        reqs = exp.requirements
        if got.ready and not want.ready and (want.reason in PENDING_REASONS
                                             or want.reason in CONFLICT_REASONS):
            reqs = tuple(dict.fromkeys(("OWN-12",) + reqs))
        if phase_of(got) != phase_of(want) or got.status != want.status:
            reqs, why = _rule(exp, snap, reqs)
            yield Failure("readiness-matches-contract", reqs,
                          f"sandbox {sid}: the driver reports Ready={got.status} "
                          f"{got.reason!r} (phase {phase_of(got)}); the contract says "
                          f"Ready={want.status} {want.reason!r} (phase {phase_of(want)})" + why)
        elif (want.reason in PENDING_REASONS or want.reason in CONFLICT_REASONS
              or want.reason == "ContainerOwnershipPersistFailed") and got.reason != want.reason:
            reqs, why = _rule(exp, snap, reqs)
            yield Failure("readiness-matches-contract", reqs,
                          f"sandbox {sid}: reason {got.reason!r}; the contract says "
                          f"{want.reason!r}" + why)


@check("gateway-invariants", when="observation", requirements=("OWN-10", "OWN-11", "OWN-12"))
def _gateway_obs(view: View) -> Iterable[Failure]:
    """No Deleted without a delete request, durable state kept, no Ready while unresolved."""
    yield from _gateway_failures(view)


@check("gateway-invariants-after-step", when="step", requirements=("OWN-10", "OWN-11", "OWN-12"))
def _gateway_step(view: View) -> Iterable[Failure]:
    """The same invariants after every story step (a driver may report outside observations)."""
    yield from _gateway_failures(view)


def _gateway_failures(view: View) -> Iterable[Failure]:
    for v in view.gateway.violations:
        yield Failure("gateway-invariants", (v.requirement,), str(v))
    for v in view.gateway.durable_violations():
        yield Failure("gateway-invariants", ("OWN-11",), str(v))


@check("state-folder-owner-only", when="step", requirements=("OWN-15",))
def _state_folder_step(view: View) -> Iterable[Failure]:
    """The driver's state folder (where the adapter declares one) holds only owner-only files
    and folders (no group or other bits: 0600 and 0700), nothing was written beside it, and
    (in-process) no file was renamed into it from outside it."""
    yield from _state_failures(view)


@check("state-folder-owner-only-after-observation", when="observation",
       requirements=("OWN-15",))
def _state_folder_obs(view: View) -> Iterable[Failure]:
    """The same audit after every observation (journal writes happen there)."""
    yield from _state_failures(view)


def _state_failures(view: View) -> Iterable[Failure]:
    for problem in view.audit_state():
        yield Failure("state-folder-owner-only", ("OWN-15",), problem)


# -- after a delete step -------------------------------------------------------------------------


@check("delete-removes-every-exact-match", when="step", requirements=("OWN-14",))
def _delete(view: View) -> Iterable[Failure]:
    """After a delete, no container with the sandbox's exact identity labels is left, and the
    delete said ``deleted=true`` iff it removed something."""
    if view.deleted is None:
        return
    key, returned, had_any = view.deleted
    left = view.identity_matches(key)
    if left:
        yield Failure("delete-removes-every-exact-match", ("OWN-14",),
                      f"sandbox {key}: after delete, {len(left)} container(s) with its identity "
                      f"labels remain: {', '.join(view.name_of(c.id) for c in left)}")
    if returned != had_any:
        yield Failure("delete-removes-every-exact-match", ("OWN-14",),
                      f"sandbox {key}: delete returned deleted={returned} but "
                      f"{'containers were' if had_any else 'nothing was'} there to remove")


# -- after the settle phase ----------------------------------------------------------------------


@check("converges", when="final", requirements=("OWN-20",))
def _converges(view: View) -> Iterable[Failure]:
    """Quiet observations at the end change nothing: the driver has converged."""
    if len(view.settle) >= 2 and view.settle[-1] != view.settle[-2]:
        before, after = view.settle[-2], view.settle[-1]
        changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        yield Failure("converges", ("OWN-20",),
                      f"the snapshot of {', '.join(changed)} still changes between two quiet "
                      "observations")


@check("final-expectations", when="final", scenario=True)
def _final(view: View) -> Iterable[Failure]:
    """The scenario's ``expect``: instances, phases, reasons, tracked sandboxes, containers,
    Deleted events."""
    from ..api import DeletedEvent

    reqs = view.scenario.requirements
    got_deleted = {e.sandbox_id for e in view.gateway.events if isinstance(e, DeletedEvent)}
    for key in view.expect.deleted:
        if view.sandbox_ids[key] not in got_deleted:
            yield Failure("final-expectations", reqs,
                          f"sandbox {key}: expected a Deleted event, the driver emitted none")
    for key, e in sorted(view.expect.sandboxes.items()):
        sid = view.sandbox_ids[key]
        snap = view.settle[-1].get(sid) if view.settle else None
        if e.tracked is not None and (snap is not None) != e.tracked:
            yield Failure("final-expectations", reqs,
                          f"sandbox {key}: expected {'tracked' if e.tracked else 'not tracked'}, "
                          f"the driver {'tracks' if snap is not None else 'does not track'} it")
            continue
        if snap is None:
            if e.instance_given or e.phase or e.reason:
                yield Failure("final-expectations", reqs, f"sandbox {key}: no snapshot at the end")
            continue
        if e.instance_given:
            want = view.bindings.get(e.instance) if e.instance else None
            if snap.instance_id != want:
                yield Failure("final-expectations", reqs,
                              f"sandbox {key}: instance {view.name_of(snap.instance_id)}, "
                              f"expected {e.instance or 'none'}")
        if e.phase and phase_of(snap.ready) != e.phase and not (
                e.phase == "Ready" and gate_open(snap.ready)):
            yield Failure("final-expectations", reqs,
                          f"sandbox {key}: phase {phase_of(snap.ready)} ({snap.reason}), "
                          f"expected {e.phase}")
        if e.reason and snap.reason != e.reason:
            yield Failure("final-expectations", reqs,
                          f"sandbox {key}: reason {snap.reason!r}, expected {e.reason!r}")
    if view.expect.containers is not None:
        present = {c.id for c in view.containers}
        bound_present = sorted(n for n, cid in view.bindings.items() if cid in present)
        if bound_present != sorted(view.expect.containers):
            yield Failure("final-expectations", reqs,
                          f"containers at the end: {bound_present}, expected "
                          f"{sorted(view.expect.containers)}")


@check("gpu-instance-has-its-gpu", when="final", requirements=("OWN-19",))
def _gpu(view: View) -> Iterable[Failure]:
    """A sandbox whose instance is a container given a GPU reports that container, and the engine
    shows its GPU request in effect (device requests or the nvidia runtime) on it."""
    for sid, snap in sorted((view.settle[-1] if view.settle else {}).items()):
        if snap is None or snap.instance_id not in view.gpu_containers:
            continue
        c = view.inspect(snap.instance_id)
        if c is None:
            continue  # a missing instance (OWN-6): the oracle's checks judge it, not this one
        if not (any(r.is_gpu for r in c.device_requests) or c.runtime == "nvidia"):
            yield Failure("gpu-instance-has-its-gpu", ("OWN-19",),
                          f"sandbox {sid}: its instance {view.name_of(snap.instance_id)} was "
                          "given a GPU, but the engine shows no GPU request in effect on it")
            continue
        inside = view.look_inside(snap.instance_id)
        if inside is not None and not gpu_seen_inside(inside):
            yield Failure("gpu-instance-has-its-gpu", ("OWN-19",),
                          f"sandbox {sid}: inside its instance {view.name_of(snap.instance_id)} "
                          "there is no GPU: no nvidia-smi GPU, no /dev/nvidia* device, no "
                          f"NVIDIA_VISIBLE_DEVICES in its main process ({inside.strip()!r})")



@check("warnings-deduplicated", when="final", requirements=("OWN-17",),
       names=tuple(_WARNING_REQUIREMENT.values()), scenario=True)
def _warnings(view: View) -> Iterable[Failure]:
    """One Warning per distinct condition: as many as the contract's conditions, no more."""
    got: dict[str, int] = {}
    for w in view.gateway.warnings():
        got[w.reason] = got.get(w.reason, 0) + 1
    for reason in sorted(set(got) | set(view.warning_bounds)):
        lo, hi = view.warning_bounds.get(reason, (0, 0))
        n = got.get(reason, 0)
        if n > hi == 0:
            yield Failure("warnings-deduplicated", _warning_requirement(reason) or ("OWN-17",),
                          f"{n} Warning(s) {reason}, but the contract's conditions for it never "
                          "arose")
        elif n > hi:
            yield Failure("warnings-deduplicated", ("OWN-17",),
                          f"{n} Warning(s) {reason}; the conditions behind them arose {hi} "
                          "time(s): warnings must be deduplicated")
        elif n < lo:
            yield Failure("warnings-deduplicated", ("OWN-17",) + _warning_requirement(reason),
                          f"{n} Warning(s) {reason}; the contract asks for {lo}")
    for reason, count in sorted(view.expect.warnings.items()):
        n = got.get(reason, 0)
        again = view.reannounced.get(reason, 0)
        if again and count.max is not None:
            widened = Count(count.min, count.max + again)
            if not widened.accepts(n):
                gaps = ", ".join(str(g + 1) for g in view.added_restarts)
                yield Failure("warnings-deduplicated", view.scenario.requirements,
                              f"{n} Warning(s) {reason}; the scenario expects {count}, widened "
                              f"to {widened}: the schedule adds restart(s) the story does not "
                              f"have (after step {gaps}), and a restarted driver may announce "
                              f"again the {again} condition(s) still active there (OWN-17)")
        elif not count.accepts(n):
            yield Failure("warnings-deduplicated", view.scenario.requirements,
                          f"{n} Warning(s) {reason}; the scenario expects {count}")


@check("warnings-name-their-containers", when="final",
       names=tuple(_WARNING_REQUIREMENT.values()) + ("OWN-17",))
def _warnings_named(view: View) -> Iterable[Failure]:
    """Every Warning the driver emitted names the containers of a condition the contract raised
    with that reason for that sandbox: each container ID of the condition's dedupe key (the
    authority, the duplicates, the candidates, the replaced or revived instance; docs/contract.md
    section 6), in the Warning's metadata or message, in full or as its 12-character short ID (OWN-3: "one
    Warning ContainerIdentityConflict that names the other candidates")."""
    for w in view.gateway.warnings():
        raised = view.notices.get((w.sandbox_id, w.reason))
        if not raised:
            continue  # a condition that never arose: warnings-deduplicated reports it
        named = " ".join([w.message, *w.metadata.values()])
        best = None
        for notice in raised:
            ids = _ids_of(notice)
            missing = [i for i in ids if i not in named and i[:12] not in named]
            if not missing:
                best = None
                break
            if best is None or len(missing) < len(best[1]):
                best = (ids, missing)
        if best is not None:
            ids, missing = best
            where = f"sandbox {w.sandbox_id}" if w.sandbox_id else "the driver"
            yield Failure("warnings-name-their-containers",
                          _warning_requirement(w.reason) or ("OWN-17",),
                          f"Warning {w.reason} ({where}) does not name "
                          f"{', '.join(view.name_of(i) for i in missing)}; the contract's "
                          f"condition names {', '.join(view.name_of(i) for i in ids)}")


_ID = re.compile(r"^[0-9a-f]{12,}$")


def _ids_of(notice) -> list[str]:
    """The container IDs a contract notice's condition names: those of its dedupe key
    (``identity-conflict:A:<ids>``, docs/contract.md section 6)."""
    out: list[str] = []
    for part in re.split("[:,]", notice.key):
        if _ID.match(part) and part not in out:
            out.append(part)
    return out


@check("deleted-only-on-request", when="final", requirements=("OWN-10", "OWN-14"))
def _deleted(view: View) -> Iterable[Failure]:
    """Deleted events exactly for the sandboxes the story deleted."""
    from ..api import DeletedEvent

    got = sorted({e.sandbox_id for e in view.gateway.events if isinstance(e, DeletedEvent)})
    want = sorted(view.sandbox_ids[k] for k in view.deleted_keys)
    missing = sorted(set(want) - set(got))
    if missing:
        yield Failure("deleted-only-on-request", ("OWN-14",),
                      f"no Deleted event for deleted sandbox(es) {', '.join(missing)}")
