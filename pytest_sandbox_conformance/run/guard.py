"""The runner's view of an adapter: every call on the adapter's own thread with a deadline, and
every value it returns checked.

:class:`GuardedAdapter` offers the runner the adapter protocol (``docs/adapters.md``) whatever the
adapter is: a :class:`~..adapters.base.DriverAdapter` subclass or a plain class with the required
methods. What the docs call optional is filled in (``labels``: OpenShell's keys, ``name``: the
class name, ``capabilities``: none, ``describe()``: ``name version``, ``diagnostics()``: nothing,
``close()``: nothing to release).

What a call can end in, for the runner:

* a value of the right type: returned;
* a value of the wrong type: :class:`AdapterFault` with check ``adapter``, naming the method and
  the value (``snapshot('s1') returned {'instance': ...}: ... is not a Snapshot``);
* no answer within the step timeout (the :mod:`~..adapters.watchdog`): :class:`AdapterFault` with
  check ``driver``; the call's thread is left behind and the session goes on;
* :class:`~..adapters.base.DriverUnavailable` (a driver process failed) and
  :class:`~..engines.base.EngineError`: passed on, as is any exception raised *because* of an
  engine error (a driver's own error with the engine's as its cause), for the runner to tell an
  engine outage, an engine refusal and a driver failure apart;
* an exception whose ``kind`` is ``engine`` or ``story`` (an environment error, as the suite's
  own :class:`~.failure.EngineOutage` and :class:`~.failure.StoryError`): passed on;
* any other exception: :class:`AdapterFault` with check ``driver``, its type, message and where
  it was raised.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from reference_driver.naming import LabelKeys

from ..adapters.base import DriverContext, DriverUnavailable
from ..adapters.validate import (
    capabilities_of,
    default_description,
    instance_problems,
    raised,
    result_problem,
)
from ..adapters import watchdog
from ..adapters.watchdog import AdapterThread, CallTimeout
from ..api import Event, SandboxSpec, Snapshot
from ..engines.base import EngineError, cause_in
from .failure import ENVIRONMENT_KINDS

__all__ = ["AdapterFault", "GuardedAdapter"]


class AdapterFault(DriverUnavailable):
    """A call into the adapter went wrong: ``check`` is ``adapter`` (it broke the protocol: a
    wrong type, a missing method) or ``driver`` (it raised, or never returned)."""

    def __init__(self, message: str, check: str = "driver") -> None:
        super().__init__(message)
        self.check = check


class GuardedAdapter:
    """One adapter, made by ``factory(ctx)`` on its own thread; see the module docstring."""

    def __init__(self, factory: Callable[[DriverContext], Any], ctx: DriverContext, *,
                 step_timeout: float, name: str = "driver",
                 cancel: threading.Event | None = None) -> None:
        self.thread = AdapterThread(f"adapter {name}")
        self.step_timeout = step_timeout
        #: Set when the play is cancelled: a call in progress is abandoned at once.
        self.cancel = cancel
        self.adapter: Any = None
        try:
            adapter = self._call("the factory", factory, ctx,
                                 timeout=self._start_timeout(factory))
        except BaseException:
            self.thread.close_with(None)  # let the thread end (unless it is stuck in there)
            raise
        problems = instance_problems(adapter)
        if problems:
            self.thread.close_with(getattr(adapter, "close", None)
                                   if not isinstance(adapter, type) else None)
            raise AdapterFault("; ".join(problems), "adapter")
        self.adapter = adapter
        own = getattr(adapter, "call_timeout", None)
        if isinstance(own, (int, float)) and own > 0:
            self.step_timeout = float(own)
        self.capabilities = capabilities_of(adapter)
        self.labels: LabelKeys = getattr(adapter, "labels", None) or LabelKeys()
        self.name = getattr(adapter, "name", None) or type(adapter).__name__

    def _start_timeout(self, obj: Any = None) -> float:
        own = getattr(obj, "call_timeout", None)
        if isinstance(own, (int, float)) and own > 0:
            return max(float(own), self.step_timeout)
        return max(watchdog.START_TIMEOUT, self.step_timeout)

    @property
    def stuck(self) -> str | None:
        """The call that never returned, if one did not."""
        return self.thread.stuck

    # -- calling ------------------------------------------------------------------------------

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, timeout: float | None = None,
              **kwargs: Any) -> Any:
        limit = watchdog.STEP_LIMIT if timeout is None else watchdog.START_LIMIT
        try:
            return self.thread.call(what, fn, *args, timeout=timeout or self.step_timeout,
                                    limit=limit, cancel=self.cancel, **kwargs)
        except CallTimeout as exc:
            raise AdapterFault(str(exc), "driver") from None
        except (DriverUnavailable, EngineError):
            raise
        except Exception as exc:
            if getattr(exc, "kind", None) in ENVIRONMENT_KINDS:
                raise  # the environment's error, not the driver's
            if cause_in(exc, EngineError) is not None:
                raise  # the runner tells an outage or a refusal from the driver's own failure
            raise AdapterFault(f"{what} raised {raised(exc)}", "driver") from exc

    def _checked(self, method: str, what: str, *args: Any, sandbox_id: str | None = None,
                 **kwargs: Any) -> Any:
        fn = getattr(self.adapter, method)
        value = self._call(what, fn, *args, **kwargs)
        problem = result_problem(method, value, sandbox_id)
        if problem:
            raise AdapterFault(f"{what} {problem}", "adapter")
        return value

    # -- the protocol -------------------------------------------------------------------------

    def create(self, spec: SandboxSpec) -> Snapshot | None:
        return self._checked("create", f"create({spec.id!r})", spec, sandbox_id=spec.id)

    def delete(self, sandbox_id: str, name: str) -> bool:
        return self._checked("delete", f"delete({sandbox_id!r}, {name!r})", sandbox_id, name)

    def observe(self, order: str | None = None) -> None:
        if order is not None and "list-order" in self.capabilities:
            self._call(f"observe(order={order!r})", self.adapter.observe, order=order)
        else:
            self._call("observe()", self.adapter.observe)

    def snapshot(self, sandbox_id: str) -> Snapshot | None:
        return self._checked("snapshot", f"snapshot({sandbox_id!r})", sandbox_id,
                             sandbox_id=sandbox_id)

    def events(self) -> list[Event]:
        return list(self._checked("events", "events()"))

    def restart(self) -> None:
        self._call("restart()", self.adapter.restart, timeout=self._start_timeout())

    def journal_fault(self, kind: str, sandbox_id: str | None, at: str | None,
                      times: int) -> None:
        self._call(f"journal_fault({kind!r})", self.adapter.journal_fault, kind, sandbox_id, at,
                   times)

    def describe(self) -> str:
        if self.adapter is None:
            return "?"
        if getattr(self.adapter, "describe", None) is None or self.stuck:
            return default_description(self.adapter)
        return self._checked("describe", "describe()")

    def diagnostics(self) -> list[str]:
        if getattr(self.adapter, "diagnostics", None) is None:
            return []
        return list(self._checked("diagnostics", "diagnostics()"))

    def close(self) -> None:
        close = getattr(self.adapter, "close", None) if self.adapter is not None else None
        try:
            self.thread.close_with(close)
        except CallTimeout as exc:
            raise AdapterFault(str(exc), "driver") from None
        except Exception as exc:
            raise AdapterFault(f"close() raised {raised(exc)}", "driver") from exc

    def __getattr__(self, name: str) -> Any:
        """Anything else (``timing``, an adapter's own attributes) from the adapter."""
        adapter = self.__dict__.get("adapter")
        if adapter is None:
            raise AttributeError(name)
        return getattr(adapter, name)
