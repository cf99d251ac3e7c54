"""A driver process the ``openshell-grpc`` adapter starts: its command line, its environment,
its output, its death, and how it is stopped.

The command is split like a shell would split it (placeholder values are quoted) but is not run
by a shell. The process gets its own process group (Ctrl-C reaches the suite, which stops it)
and, on Linux, SIGTERM when the suite itself dies (``PR_SET_PDEATHSIG``). Its stdout and stderr
go to one log file in the adapter's private folder. :meth:`DriverProcess.stop` sends SIGTERM to
the group and SIGKILL after :data:`STOP_WAIT` seconds.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from typing import Callable, Mapping

__all__ = ["OUTPUT_TAIL", "STOP_WAIT", "DriverProcess"]

#: How many lines of the driver's output a failure shows.
OUTPUT_TAIL = 40
#: How long a stopped driver may take to exit before it is killed.
STOP_WAIT = 10.0


class DriverProcess:
    """One driver command: started with :meth:`start` (again after :meth:`stop`, for a
    restart), over the same log file."""

    def __init__(self, cmd: str, values: Mapping[str, str], env: Mapping[str, str],
                 log: Path) -> None:
        self.cmd = cmd
        self.values = dict(values)
        self.env = dict(env)
        self.log = log
        self.proc: subprocess.Popen | None = None
        self._offset = 0

    def command(self) -> list[str]:
        line = self.cmd
        for key, value in self.values.items():
            line = line.replace("{" + key + "}", shlex.quote(value))
        return shlex.split(line)

    def describe(self) -> str:
        return shlex.join(self.command())

    def start(self) -> None:
        """Start the command (``OSError`` when it cannot be started)."""
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.command(), env=self.env, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log, start_new_session=True,
                                         preexec_fn=_DIE_WITH_PARENT)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def dead(self) -> str | None:
        """A sentence saying the process exited (with its status and output), or None."""
        if self.proc is not None and self.proc.poll() is not None:
            return (f"the driver process ({self.describe()}) exited with status "
                    f"{self.proc.returncode}; its output ends with:\n{self.output_tail()}")
        return None

    def settle(self, seconds: float = 1.0) -> None:
        """Give a process that may be dying a moment to finish (a broken connection often is
        one)."""
        if self.proc is not None:
            try:
                self.proc.wait(timeout=seconds)
            except subprocess.TimeoutExpired:
                pass

    def stop(self) -> None:
        """SIGTERM to the process group; SIGKILL when it has not exited after
        :data:`STOP_WAIT` seconds."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=STOP_WAIT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=STOP_WAIT)

    def output_tail(self) -> str:
        """The last lines of the driver's output (stdout and stderr), indented."""
        if not self.log.exists():
            return "  (no output captured)"
        lines = self.log.read_text(errors="replace").splitlines()[-OUTPUT_TAIL:]
        return "\n".join("  | " + line for line in lines) or "  (empty)"

    def new_output(self) -> list[str]:
        """The lines the driver printed since the last call (at most :data:`OUTPUT_TAIL`)."""
        if not self.log.exists():
            return []
        with open(self.log, "rb") as f:
            f.seek(self._offset)
            data = f.read()
            self._offset += len(data)
        return data.decode(errors="replace").splitlines()[-OUTPUT_TAIL:]


def _parent_death_signal() -> Callable[[], None] | None:
    """On Linux, a function for the driver's process to run before it starts: be sent SIGTERM
    if the suite dies (a SIGKILLed pytest must not leave drivers behind; Ctrl-C is handled by
    the adapter's ``close()``). Resolved here, in the parent: the child, forked from a process
    with threads, must run as little Python as possible (no imports)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    term = int(signal.SIGTERM)
    return lambda: prctl(1, term)  # PR_SET_PDEATHSIG


_DIE_WITH_PARENT = _parent_death_signal()
