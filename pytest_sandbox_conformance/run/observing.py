"""What a play sees: the run's containers on the engine, the driver's observations and restarts,
its events and diagnostics, each on the timeline as it happens.

:class:`Observer` works on the state of one play (``runner._Run``, which owns it): it reads the
engine as the suite does (never through the driver's view, so no armed fault is consumed), has
the driver observe (or restart), sets every report beside the contract's expectation
(``oracle.py``) and runs the ``observation`` checks after each observation.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from ..api import DeletedEvent, Event, PlatformEvent, Snapshot, phase_of
from ..engines.base import Container, EngineError, EngineUnavailable, ids_match
from .checks import Failure
from .guard import AdapterFault

if TYPE_CHECKING:
    from .runner import _Run

#: Where an out-of-process driver's diagnostic lines come from (their first words).
_DIAGNOSTIC_SOURCES = ("docker API", "grpc", "driver output")


def _short(c: Container) -> str:
    extra = ""
    if c.device_requests or c.runtime:
        extra = " gpu"
    return f"{c.short_id} {c.name} {c.state}{extra}"


def _gpu(c: Container) -> bool:
    return bool(c.device_requests or c.runtime)


class Observer:
    """The play's view of the engine and of the driver's observations (``run``: the play)."""

    def __init__(self, run: _Run) -> None:
        self.run = run

    def names(self, cid: str | None) -> str:
        if cid is None:
            return "none"
        return self.binding_of(cid) or cid[:12]

    def binding_of(self, cid: str | None) -> str | None:
        for n, i in self.run.bindings.items():
            if ids_match(cid, i):
                return n
        return None

    def container_data(self, c: Container) -> dict:
        return {"binding": self.binding_of(c.id), "id": c.id, "name": c.name, "state": c.state,
                "gpu": _gpu(c)}

    def listed(self) -> list[Container]:
        """The run's containers, without going through the driver's view (no faults consumed)."""
        snap = getattr(self.run.engine, "snapshot", None)
        if snap is not None:
            all_containers = snap()  # oldest first
        else:  # oldest first, as the fake's snapshot: by creation (Docker lists newest first,
            # Podman oldest first); a list's Created counts whole seconds, so containers made in
            # the same second are ordered by their inspect's nanoseconds
            all_containers = self.run.engine.list(
                {self.run.adapter.labels.namespace: self.run.namespace})
            per_second = Counter(c.created for c in all_containers)
            precise: dict[str, int] = {}
            for c in all_containers:
                if per_second[c.created] > 1:
                    try:
                        precise[c.id] = self.run.engine.inspect(c.id).created
                    except EngineError:
                        pass  # gone meanwhile: its second decides
            all_containers.sort(key=lambda c: (c.created, precise.get(c.id, 0)))
        ns_key = self.run.adapter.labels.namespace
        return [c for c in all_containers if c.labels.get(ns_key) == self.run.namespace]

    def present(self) -> list[Container]:
        """The run's containers plus the bound ones outside its namespace (``run:`` with
        ``namespace:``), which the final ``containers`` expectation and the cleanup must see."""
        found = self.listed()
        seen = {c.id for c in found}
        for cid in self.run.bindings.values():
            if cid not in seen:
                try:
                    found.append(self.run.engine.inspect(cid))
                except EngineUnavailable:
                    raise
                except EngineError:
                    continue  # gone
                seen.add(cid)
        return found

    def identity_matches(self, key: str) -> list[Container]:
        labels = self.run.adapter.labels
        sid, name = self.run.sandbox_ids[key], self.run.sc.sandboxes[key].name
        return [c for c in self.listed() if labels.matches(c.labels, self.run.namespace, sid, name)]

    def look_inside(self, cid: str) -> str | None:
        """What a GPU container's main process sees (OWN-19), where the engine can exec."""
        from ..live.gpu import LOOK_INSIDE

        try:
            code, output = self.run.engine.exec(cid, LOOK_INSIDE)
        except NotImplementedError:
            return None
        except EngineUnavailable:
            raise
        except EngineError as exc:
            return f"(cannot run a command inside: {exc})"
        self.run.tl.add(f"inside {self.names(cid)}: " + " | ".join(
            line.strip() for line in output.splitlines() if line.strip()), 1)
        return output

    def inspect(self, cid: str) -> Container | None:
        try:
            return self.run.engine.inspect(cid)
        except EngineUnavailable:
            raise
        except EngineError:
            return None

    def describe_snapshot(self, sid: str, snap: Snapshot | None) -> str:
        if snap is None:
            return f"{sid}: not tracked"
        r = snap.ready
        return f"{sid}: instance={self.names(snap.instance_id)} Ready={r.status} {r.reason}"

    def adapter_notes(self, indent: int, prefix: str = "") -> None:
        """What crossed an out-of-process driver's boundary (its Docker API requests, RPCs,
        output), on the timeline where it happened."""
        try:
            notes = self.run.adapter.diagnostics()
        except AdapterFault as exc:  # recorded, and the story goes on
            self.run.found(Failure(exc.check, (), str(exc)))
            notes = []
        except Exception as exc:  # diagnostics must never hide the failure being reported
            notes = [f"(diagnostics failed: {exc})"]
        for line in notes:
            source = next((s for s in _DIAGNOSTIC_SOURCES if line.startswith(s)), "")
            self.run.tl.add(prefix + line, indent, "diagnostic", source=source)

    def consume_events(self, indent: int) -> list[Event]:
        self.adapter_notes(indent)
        events = self.run.adapter.events()
        self.run.gateway.consume(events)
        for e in events:
            if isinstance(e, PlatformEvent):
                meta = ""
                if e.metadata:
                    meta = " {" + ", ".join(f"{k}={self.names(v) if len(v) == 64 else v}"
                                            for k, v in sorted(e.metadata.items())) + "}"
                self.run.tl.add(f"event: {e.type} {e.reason} ({e.sandbox_id or 'driver'}){meta}",
                                indent, "event", type=e.type, reason=e.reason,
                                sandbox=e.sandbox_id, metadata=dict(e.metadata))
            elif isinstance(e, DeletedEvent):
                self.run.tl.add(f"event: Deleted {e.sandbox_id}", indent, "event", type="Deleted",
                                reason="", sandbox=e.sandbox_id, metadata={})
        return events

    def restart(self, added_at: int | None = None) -> None:
        """Restart the driver; ``added_at``: the gap of a restart the schedule adds to the
        story (an explored schedule's ``R``), which may announce active conditions again."""
        self.run.tl.at_observation(None)
        self.run.tl.add("restart the driver" + ("" if added_at is None else
                                                " (added by the schedule)"), 1, "restart")
        self.run.adapter.restart()
        self.run.restarts_done += 1
        self.run.oracle.restarted(added_at)
        self.consume_events(2)

    def observe(self, order: str, indent: int) -> bool:
        """One observation, then the observation checks. True iff it was a fixpoint of the
        contract's state (the poll worked, nothing crashed, no ownership record changed)."""
        self.run.check_cancel()
        self.run.observations += 1
        self.run.tl.at_observation(self.run.observations)
        engine = self.run.engine
        previous = getattr(engine, "list_order", None)
        if self.run.cfg.ordered_lists and previous is not None:
            engine.list_order = order  # type: ignore[attr-defined]
        try:
            self.run.adapter.observe(order=order)
        except EngineError as exc:
            self.run.raise_if_outage(exc, driver_poll=True)
            self.run.tl.add(f"observe ({order}): the driver's poll failed: {exc}", indent)
            self.consume_events(indent + 1)
            self.run.run_checks("step", self.run.view())
            return False
        finally:
            if self.run.cfg.ordered_lists and previous is not None:
                engine.list_order = previous  # type: ignore[attr-defined]
        listed = self.listed()
        shown = listed if order == "oldest" else list(reversed(listed))
        self.run.tl.add(f"observe ({order}): engine lists "
                        + ("; ".join(f"{self.names(c.id)}={_short(c)}" for c in shown)
                           or "nothing"),
                        indent, "observe", number=self.run.observations, order=order,
                        containers=[self.container_data(c) for c in shown])
        expected, crashed = self.run.oracle.observe(listed)
        self.consume_events(indent + 1)
        if crashed:
            self.run.tl.add("the driver crashed during a journal write (injected) and restarted",
                            indent + 1)
            self.run.oracle.restarted_after_crash()
            self.consume_events(indent + 1)
            self.run.run_checks("step", self.run.view())
            return False
        snaps = {sid: self.run.adapter.snapshot(sid) for sid in expected}
        for sid in sorted(expected):
            exp = expected[sid]
            snap = snaps[sid]
            reported = None if snap is None else {
                "instance": self.names(snap.instance_id), "instance_id": snap.instance_id,
                "status": snap.ready.status, "reason": snap.ready.reason,
                "phase": phase_of(snap.ready)}
            contract = {"outcome": exp.outcome, "instance": self.names(exp.instance_id),
                        "instance_id": exp.instance_id, "status": exp.ready.status,
                        "reason": exp.ready.reason, "phase": phase_of(exp.ready),
                        "requirements": list(exp.requirements)}
            agrees = (reported is not None and ids_match(snap.instance_id, exp.instance_id)
                      and snap.ready.status == exp.ready.status
                      and phase_of(snap.ready) == phase_of(exp.ready))
            self.run.tl.add(f"driver: {self.describe_snapshot(sid, snap)}"
                            f"   [contract: {exp.outcome}, instance={self.names(exp.instance_id)}, "
                            f"Ready={exp.ready.status} {exp.ready.reason}]", indent + 1, "report",
                            sandbox=sid, driver=reported, contract=contract, agrees=agrees)
        self.run.run_checks("observation", self.run.view(expected=expected, snapshots=snaps))
        return self.run.oracle.quiet
