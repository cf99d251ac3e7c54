"""Reference drivers that fail as processes (for the black-box adapter's bad-input tests), and
ones that start, stop and delete the way real drivers do (for its start-up and stop rules).

Served with ``python -m reference_driver.grpc_server --driver grpc_faults:<Class>`` (with
``tests/`` on ``PYTHONPATH``): each one breaks the way a real driver process can, so the suite
must turn it into a clear, bounded failure of the scenario with the driver's output attached.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

from reference_driver import ReferenceDriver

__all__ = ["CrashesOnDelete", "CreatesBehindTheGatesBack", "DeletesInTheBackground",
           "FailsCreate", "HangsOnCreate", "ListsLikeOpenShell", "WaitsForItsPollOnStop"]


class CrashesOnDelete(ReferenceDriver):
    """Dies (exit status 3) in the middle of DeleteSandbox."""

    def delete(self, sandbox_id, name=None):
        print("CrashesOnDelete: dying on purpose in delete", file=sys.stderr, flush=True)
        os._exit(3)


class HangsOnCreate(ReferenceDriver):
    """Never answers CreateSandbox."""

    def create(self, spec):
        print("HangsOnCreate: hanging on purpose in create", file=sys.stderr, flush=True)
        time.sleep(3600)


class FailsCreate(ReferenceDriver):
    """Answers CreateSandbox with an error code the suite does not expect (UNKNOWN)."""

    def create(self, spec):
        raise RuntimeError("FailsCreate: an unexpected failure on purpose")


# -- drivers that start up, stop and delete the way real drivers do -----------------------------


class ListsLikeOpenShell(ReferenceDriver):
    """Lists the engine as OpenShell's drivers do around their start: a reconcile seed before it
    opens its socket (in the constructor, which ``serve()`` runs first), and a list to build each
    ``WatchSandboxes`` stream's first snapshot, before the stream's headers go out. Neither is an
    observation: the suite must let them pass (its start-up), or the driver never serves."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        seeded = self.list_namespace()
        print(f"ListsLikeOpenShell: start-up reconcile saw {len(seeded)} container(s)",
              file=sys.stderr, flush=True)

    def watch(self):
        listed = self.list_namespace()
        print(f"ListsLikeOpenShell: WatchSandboxes lists {len(listed)} container(s) first",
              file=sys.stderr, flush=True)
        return super().watch()


class WaitsForItsPollOnStop(ReferenceDriver):
    """On SIGTERM, waits until its poll's engine list has come back before it exits (a driver
    that stops gracefully): a suite that stops it while the gate holds that list must answer the
    list first, or the driver is only killed after the stop timeout."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._not_listing = threading.Event()
        self._not_listing.set()
        signal.signal(signal.SIGTERM, self._stop)

    def list_namespace(self):
        self._not_listing.clear()
        try:
            return super().list_namespace()
        finally:
            self._not_listing.set()

    def _stop(self, *_: object) -> None:
        print("WaitsForItsPollOnStop: SIGTERM; waiting for my poll's list", file=sys.stderr,
              flush=True)
        self._not_listing.wait()
        print("WaitsForItsPollOnStop: my poll came back; exiting", file=sys.stderr, flush=True)
        os._exit(0)


class DeletesInTheBackground(ReferenceDriver):
    """Answers DeleteSandbox at once and deletes afterwards, in the background, after a list of
    its own: the ``deleted`` message follows that list. The suite's wait for it is part of the
    delete, so that list serves the delete (it must pass the gate, not wait for a poll)."""

    def delete(self, sandbox_id, name=None):
        if sandbox_id not in self._records:
            return super().delete(sandbox_id, name)

        def later() -> None:
            self.list_namespace()
            ReferenceDriver.delete(self, sandbox_id, name)

        threading.Thread(target=later, daemon=True).start()
        return True


class CreatesBehindTheGatesBack(ReferenceDriver):
    """Polls through ``DOCKER_HOST`` but creates its containers through another engine URL
    (``SBX_DIRECT_ENGINE``): what OpenShell main does when its engine-socket key is unset (it
    falls back to ``/var/run/docker.sock``)."""

    def create(self, spec):
        from pytest_sandbox_conformance.engines.docker import DockerEngine  # noqa: PLC0415

        mine, direct = self.engine, DockerEngine(os.environ["SBX_DIRECT_ENGINE"])
        self.engine = direct
        try:
            return super().create(spec)
        finally:
            self.engine = mine
            direct.close()
