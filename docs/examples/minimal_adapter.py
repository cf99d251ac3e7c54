"""A complete, minimal driver adapter (docs/adapters.md walks through it).

Run the conformance suite against it with:

    PYTHONPATH=docs/examples pytest --sandbox-driver=minimal_adapter:factory scenarios

"Your driver" here is the bundled reference driver, standing in for any Python driver object
that can create, delete and poll sandboxes and report snapshots and events. Replace the four
marked lines with calls into your own driver.
"""

from __future__ import annotations

from pytest_sandbox_conformance.adapters import DriverAdapter, DriverContext
from pytest_sandbox_conformance.api import Event, SandboxSpec, Snapshot
from reference_driver import ReferenceDriver


class MinimalAdapter(DriverAdapter):
    name = "minimal-example"
    version = "0.1"
    # Declare only what the driver really supports; scenarios needing more are skipped.
    capabilities = frozenset({"restart"})

    def __init__(self, ctx: DriverContext) -> None:
        self.ctx = ctx
        self.driver = self._start()                       # <- start your driver
        self.labels = self.driver.labels                  # its identity label keys
        self.watcher = self.driver.watch()                # <- subscribe to its events

    def _start(self) -> ReferenceDriver:
        # The driver must use ctx.engine (the suite's engine), keep its durable state under
        # ctx.state_dir, and label its containers with ctx.namespace.
        return ReferenceDriver(self.ctx.engine, self.ctx.state_dir,
                               namespace=self.ctx.namespace, image=self.ctx.image)

    def create(self, spec: SandboxSpec) -> Snapshot | None:
        return self.driver.create(spec)                   # <- your create

    def delete(self, sandbox_id: str, name: str) -> bool:
        return self.driver.delete(sandbox_id, name)       # <- your delete

    def observe(self) -> None:
        self.driver.observe()                             # exactly one poll

    def snapshot(self, sandbox_id: str) -> Snapshot | None:
        return self.driver.snapshot(sandbox_id)

    def events(self) -> list[Event]:
        return self.watcher.drain()

    def restart(self) -> None:
        # A restart throws the driver object away and starts a new one over the same state.
        self.watcher.close()
        self.driver = self._start()
        self.watcher = self.driver.watch()


def factory(ctx: DriverContext) -> MinimalAdapter:
    return MinimalAdapter(ctx)
