"""The watchdog: every call into an adapter runs with a deadline.

An in-process (Python) adapter's call cannot be interrupted: a driver whose ``observe()`` loops or
waits forever would hang the whole session. So each adapter gets an :class:`AdapterThread`, one
daemon thread of its own that makes all its calls, one at a time (an adapter sees a single thread,
as if it were called directly: thread-bound resources such as a SQLite connection work), while the
caller waits for each with a deadline. A call that outlasts it raises :class:`CallTimeout` in the
caller; the thread is *left behind*, still inside the call (Python cannot stop a thread), and the
adapter is considered stuck: later calls are refused at once, and :meth:`AdapterThread.close_with`
runs the adapter's ``close()`` on a helper thread (with its own short deadline), so that an adapter
of a driver process can still stop it. Threads left behind are daemon threads: they never keep
the interpreter from exiting, and :data:`LEFT_BEHIND` lists them for the session's summary.

Processes started by an adapter call (a driver process with ``PR_SET_PDEATHSIG``) are tied to the
*thread* that started them: Linux signals them when that thread exits. The adapter's thread lives
until the adapter is closed, so its processes live exactly as long as the adapter.

Standard library only.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any, Callable

__all__ = ["LEFT_BEHIND", "START_TIMEOUT", "AdapterThread", "CallTimeout", "Cancelled"]

#: One line per call that never returned in this process ("adapter reference: observe() of
#: scenario-id [label]"), oldest first.
LEFT_BEHIND: list[str] = []

#: The least time the factory, ``restart()`` and ``close()`` get: they start or stop a driver.
START_TIMEOUT = 60.0
#: What a call's deadline is, for messages.
STEP_LIMIT = "the step timeout, --sandbox-step-timeout"
START_LIMIT = "the limit for starting or stopping a driver"
#: How long ``close()`` of a stuck adapter may take on its helper thread.
STUCK_CLOSE_TIMEOUT = 5.0


#: How often a call that may be cancelled looks at its cancel event.
CANCEL_POLL = 0.1


class Cancelled(BaseException):
    """A call (or a whole play) ended early because its cancel event was set: Ctrl-C while
    several plays run at once, or an earlier schedule ended the item (``run/concurrent.py``). A
    ``BaseException``, like ``KeyboardInterrupt``: nothing that handles a driver's errors catches
    it."""


class CallTimeout(Exception):
    """An adapter call did not return within its deadline (or was not made: the adapter is stuck
    in an earlier call). ``what`` names the call."""

    def __init__(self, message: str, what: str) -> None:
        super().__init__(message)
        self.what = what


class _Job:
    __slots__ = ("fn", "args", "kwargs", "done", "value", "error")

    def __init__(self, fn: Callable[..., Any], args: tuple, kwargs: dict) -> None:
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.value = self.fn(*self.args, **self.kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, who re-raises it
            self.error = exc
        finally:
            self.done.set()


class AdapterThread:
    """The one thread that makes every call of one adapter, each with a deadline."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        #: The call that never returned (or was interrupted), once one did.
        self.stuck: str | None = None

    def call(self, what: str, fn: Callable[..., Any], *args: Any, timeout: float,
             limit: str = STEP_LIMIT, cancel: threading.Event | None = None,
             **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` on the adapter's thread; its result, or its exception
        re-raised here; :class:`CallTimeout` after ``timeout`` seconds (``limit`` says which
        limit that is, for the message); :class:`Cancelled` as soon as ``cancel`` is set (the
        call goes on without us, as after Ctrl-C in the calling thread)."""
        if self.stuck is not None:
            raise CallTimeout(f"{what} was not called: {self.stuck} never returned", what)
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name=f"sbx-adapter {self.name}",
                                            daemon=True)
            self._thread.start()
        job = _Job(fn, args, kwargs)
        self._jobs.put(job)
        try:
            finished = self._wait(job, timeout, cancel)
        except Cancelled:  # the play was cancelled: the call goes on without us, unreported
            self.stuck = what
            raise
        except BaseException:  # Ctrl-C while waiting: the call goes on without us
            self._leave(what, "interrupted")
            raise
        if not finished:
            self._leave(what, f"did not return within {timeout:g} s")
            raise CallTimeout(f"{what} did not return within {timeout:g} s ({limit}); its "
                              "thread is left behind", what)
        if job.error is not None:
            raise job.error
        return job.value

    @staticmethod
    def _wait(job: _Job, timeout: float, cancel: threading.Event | None) -> bool:
        if cancel is None:
            return job.done.wait(timeout)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if job.done.wait(max(0.0, min(CANCEL_POLL, left))):
                return True
            if left <= 0:
                return False
            if cancel.is_set():
                raise Cancelled()

    def _leave(self, what: str, why: str) -> None:
        self.stuck = what
        LEFT_BEHIND.append(f"{self.name}: {what} {why}")

    def close_with(self, close: Callable[[], Any] | None) -> None:
        """Call ``close`` (the adapter's ``close()``) and let the thread end. A stuck adapter's
        ``close`` runs on a helper thread for at most :data:`STUCK_CLOSE_TIMEOUT` seconds."""
        if self.stuck is None:
            try:
                if close is not None:
                    self.call("close()", close, timeout=START_TIMEOUT, limit=START_LIMIT)
            finally:
                if self.stuck is None and self._thread is not None:
                    self._jobs.put(None)
            return
        if close is not None:
            helper = AdapterThread(self.name + " (close)")
            helper.call("close()", close, timeout=STUCK_CLOSE_TIMEOUT,
                        limit="the limit for closing a stuck adapter")
            helper.close_with(None)

    def _loop(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            job.run()
