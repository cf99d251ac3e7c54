"""Reference drivers that fail as processes (for the black-box adapter's bad-input tests).

Served with ``python -m reference_driver.grpc_server --driver grpc_faults:<Class>`` (with
``tests/`` on ``PYTHONPATH``): each one breaks the way a real driver process can, so the suite
must turn it into a clear, bounded failure of the scenario with the driver's output attached.
"""

from __future__ import annotations

import os
import sys
import time

from reference_driver import ReferenceDriver

__all__ = ["CrashesOnDelete", "FailsCreate", "HangsOnCreate"]


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
