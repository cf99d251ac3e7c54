"""Checking an adapter: once at start-up, and what it returns at run time.

**At start-up** (:func:`validate_driver`) the suite checks the factory and the adapter it makes,
as a conformance check of the adapter itself, before any scenario runs: every problem found is
one line of a single usage error (``AdapterInvalid``), never a traceback. What it checks:

* the factory can be called with one argument (the :class:`~.base.DriverContext`); its optional
  ``probe(options, engine)`` with two, and returns a :class:`~.base.DriverProbe`;
* capabilities are a set of known names (``"restart"``, a string, is refused: it would read as
  seven letters), from the probe, the factory's attribute or the instance;
* without a probe or factory attributes, a throwaway instance made on the fake engine (with the
  step timeout as deadline): it is an instance, not None or a class; it has ``create``,
  ``delete``, ``observe``, ``snapshot`` and ``events``; ``restart()`` where it declares
  ``restart``, ``journal_fault()`` where it declares ``journal-faults``; ``labels`` (when given) is
  a ``LabelKeys``; ``name``/``version`` are strings; and what it answers before any create:
  ``events()`` a list, ``snapshot(<unknown id>)`` None or a ``Snapshot``, ``describe()`` and
  ``diagnostics()`` (when given) a string and a list of strings.

What ``docs/adapters.md`` calls optional is optional: a plain class that does not subclass
:class:`~.base.DriverAdapter` works; ``name`` defaults to the class name, ``labels`` to
OpenShell's keys, ``capabilities`` to none, and ``describe()``, ``diagnostics()`` and ``close()``
may be absent.

**At run time** :func:`result_problem` checks each value an adapter returns (the runner's guard,
``run/guard.py``, fails the scenario with check ``adapter`` naming the method and the value).
"""

from __future__ import annotations

import inspect
import os
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from reference_driver.naming import LabelKeys

from ..api import Condition, DeletedEvent, PlatformEvent, Snapshot, SnapshotEvent
from .base import (
    ADAPTER_CAPABILITIES,
    AdapterLoadError,
    DriverAdapter,
    DriverContext,
    DriverProbe,
)
from . import watchdog
from .watchdog import AdapterThread, CallTimeout

__all__ = ["AdapterInvalid", "REQUIRED", "Validated", "capabilities_of", "check_adapter",
           "default_description", "instance_problems", "location", "result_problem", "show", "validate_driver"]

#: The operations every adapter has.
REQUIRED = ("create", "delete", "observe", "snapshot", "events")
#: Operations needed only with a capability.
CONDITIONAL = {"restart": "restart", "journal_fault": "journal-faults"}
#: Optional members: callables that may be absent.
OPTIONAL_METHODS = ("describe", "diagnostics", "close")
STATUSES = ("True", "False", "Unknown")
#: The sandbox id the start-up check asks ``snapshot()`` about (no driver tracks it).
UNKNOWN_SANDBOX = "sbx-validate-unknown"


class AdapterInvalid(AdapterLoadError):
    """The adapter does not follow the protocol; ``problems`` has one line per problem."""

    def __init__(self, spec: str, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__(f"--sandbox-driver={spec}: the adapter does not follow the protocol "
                         "(docs/adapters.md):\n" + "\n".join(f"  - {p}" for p in self.problems))


@dataclass(frozen=True)
class Validated:
    """What start-up learnt about a driver: the probe's fields."""

    capabilities: frozenset[str]
    name: str
    timing: str = "exact"
    namespace: str | None = None


# -- showing values ------------------------------------------------------------------------------


def show(value: Any, limit: int = 120) -> str:
    """``repr(value)``, cut to ``limit`` characters."""
    try:
        text = repr(value)
    except Exception as exc:  # noqa: BLE001 - a broken __repr__ is the adapter's business
        text = f"<{type(value).__name__} whose repr raised {type(exc).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def location(exc: BaseException) -> str:
    """Where ``exc`` was raised: ``mymodule.py:42 in observe`` (the deepest frame outside the
    suite's own adapter plumbing), or ""."""
    here = os.path.dirname(__file__)
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if os.path.dirname(f.filename) != here]
    if not frames:
        return ""
    f = frames[-1]
    path = f.filename
    try:
        rel = os.path.relpath(path)
        path = rel if not rel.startswith("..") else path
    except ValueError:
        pass
    return f"{path}:{f.lineno} in {f.name}"


def raised(exc: BaseException) -> str:
    """``KeyError: 'x' (at mymodule.py:42 in observe)``."""
    where = location(exc)
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text + (f" (at {where})" if where else "")


# -- members ------------------------------------------------------------------------------------


def capabilities_problems(value: Any, where: str) -> list[str]:
    if isinstance(value, (str, bytes)):
        return [f"{where} is the string {value!r}, which would read as its letters: give a set "
                f"of names, e.g. frozenset({{{value!r}}})"]
    try:
        names = list(value)
    except TypeError:
        return [f"{where} is {show(value)}: give a set of names "
                f"(from {sorted(ADAPTER_CAPABILITIES)})"]
    bad = [n for n in names if not isinstance(n, str)]
    if bad:
        return [f"{where} holds {show(bad[0])}, not a name: give strings "
                f"(from {sorted(ADAPTER_CAPABILITIES)})"]
    unknown = sorted(set(names) - ADAPTER_CAPABILITIES)
    if unknown:
        return [f"{where}: unknown capabilities {unknown}; known: {sorted(ADAPTER_CAPABILITIES)}"]
    return []


def capabilities_of(obj: Any) -> frozenset[str]:
    """An object's declared capabilities (none when absent), assumed already checked."""
    value = getattr(obj, "capabilities", None)
    return frozenset(value) if value is not None and not isinstance(value, str) else frozenset()


def _overridden(adapter: Any, method: str) -> bool:
    """Whether ``adapter`` has ``method`` of its own (DriverAdapter's raise NotImplementedError)."""
    impl = getattr(type(adapter), method, None)
    if impl is None:
        return callable(getattr(adapter, method, None))
    return impl is not getattr(DriverAdapter, method, None)


def instance_problems(adapter: Any) -> list[str]:
    """What is wrong with the object a factory returned (empty: nothing)."""
    if adapter is None:
        return ["the factory returned None: it must return the adapter (an object with create, "
                "delete, observe, snapshot and events)"]
    if isinstance(adapter, type):
        return [f"the factory returned the class {adapter.__name__}, not an instance: call it "
                f"(return {adapter.__name__}(ctx))"]
    cls = type(adapter).__name__
    problems = []
    for method in REQUIRED:
        value = getattr(adapter, method, None)
        if value is None:
            problems.append(f"{cls} has no {method}() (required)")
        elif not callable(value):
            problems.append(f"{cls}.{method} is {show(value)}, not a method")
    caps_value = getattr(adapter, "capabilities", frozenset())
    cap_problems = capabilities_problems(caps_value, f"{cls}.capabilities")
    problems += cap_problems
    caps = capabilities_of(adapter) if not cap_problems else frozenset()
    for method, capability in CONDITIONAL.items():
        if capability in caps and not _overridden(adapter, method):
            problems.append(f"{cls} declares the {capability!r} capability but has no "
                            f"{method}() of its own")
    for method in OPTIONAL_METHODS:
        value = getattr(adapter, method, None)
        if value is not None and not callable(value):
            problems.append(f"{cls}.{method} is {show(value)}, not a method (it may be left "
                            "out)")
    labels = getattr(adapter, "labels", None)
    if labels is not None and not isinstance(labels, LabelKeys):
        problems.append(f"{cls}.labels is {show(labels)}: give a "
                        "reference_driver.naming.LabelKeys (or leave it out: OpenShell's keys)")
    for attr in ("name", "version"):
        value = getattr(adapter, attr, None)
        if value is not None and not isinstance(value, str):
            problems.append(f"{cls}.{attr} is {show(value)}, not a string")
    timing = getattr(adapter, "timing", "exact")
    if timing not in ("exact", "approximate"):
        problems.append(f"{cls}.timing is {show(timing)}: 'exact' or 'approximate'")
    return problems


def default_description(adapter: Any) -> str:
    """``name version`` (``name`` defaults to the class name), as ``DriverAdapter.describe``."""
    name = getattr(adapter, "name", None) or type(adapter).__name__
    version = getattr(adapter, "version", "") or ""
    return f"{name} {version}".strip()


def check_adapter(adapter: object, spec: str) -> DriverAdapter:
    """The adapter, or :class:`AdapterInvalid` naming every problem of its members."""
    problems = instance_problems(adapter)
    if problems:
        raise AdapterInvalid(spec, problems)
    return adapter  # type: ignore[return-value]


# -- values -------------------------------------------------------------------------------------


def snapshot_problem(value: Any, sandbox_id: str | None = None) -> str | None:
    """What is wrong with a value given as a Snapshot (None: nothing)."""
    if not isinstance(value, Snapshot):
        return (f"{show(value)}, which is not a Snapshot (pytest_sandbox_conformance.api."
                "Snapshot(sandbox_id, name, namespace, instance_id, ready=Condition(...)))")
    if sandbox_id is not None and value.sandbox_id != sandbox_id:
        return f"it is the snapshot of sandbox {value.sandbox_id!r}, not of {sandbox_id!r}"
    if value.instance_id is not None and not isinstance(value.instance_id, str):
        return f"its instance_id is {show(value.instance_id)}: a container id (str) or None"
    ready = value.ready
    if not isinstance(ready, Condition):
        return f"its ready is {show(ready)}, not a Condition(status, reason, message)"
    if ready.status not in STATUSES:
        return (f"its Ready condition has status {ready.status!r}: one of "
                f"{', '.join(map(repr, STATUSES))}")
    if not isinstance(ready.reason, str) or not isinstance(ready.message, str):
        return f"its Ready condition's reason and message must be strings: {show(ready)}"
    return None


def event_problem(value: Any) -> str | None:
    if isinstance(value, SnapshotEvent):
        problem = snapshot_problem(value.snapshot)
        return f"a SnapshotEvent whose snapshot: {problem}" if problem else None
    if isinstance(value, DeletedEvent):
        return None if isinstance(value.sandbox_id, str) else (
            f"a DeletedEvent with sandbox_id {show(value.sandbox_id)}")
    if isinstance(value, PlatformEvent):
        if not all(isinstance(x, str) for x in (value.sandbox_id, value.type, value.reason,
                                                value.message)):
            return f"a PlatformEvent whose fields are not all strings: {show(value)}"
        return None
    return (f"{show(value)} is not an event (SnapshotEvent, DeletedEvent or PlatformEvent from "
            "pytest_sandbox_conformance.api)")


def result_problem(method: str, value: Any, sandbox_id: str | None = None) -> str | None:
    """What is wrong with ``value`` as the result of ``method`` (None: nothing)."""
    if method in ("create", "snapshot"):
        if value is None:
            return None
        problem = snapshot_problem(value, sandbox_id)
        if problem is None:
            return None
        return (f"returned a Snapshot: {problem}" if isinstance(value, Snapshot)
                else f"returned {problem}")
    if method == "delete":
        return None if isinstance(value, bool) else f"returned {show(value)}: True or False"
    if method == "events":
        if not isinstance(value, (list, tuple)):
            return f"returned {show(value)}: a list of events (an empty list when there are none)"
        for i, e in enumerate(value):
            problem = event_problem(e)
            if problem:
                return f"returned a list whose item {i} is wrong: {problem}"
        return None
    if method == "describe":
        return None if isinstance(value, str) else f"returned {show(value)}: a string"
    if method == "diagnostics":
        if isinstance(value, (list, tuple)) and all(isinstance(x, str) for x in value):
            return None
        return f"returned {show(value)}: a list of strings (lines)"
    return None


# -- start-up -----------------------------------------------------------------------------------


def _signature_problem(fn: Callable[..., Any], what: str, args: tuple, wanted: str) -> str | None:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None  # a builtin or C callable: nothing to tell
    try:
        sig.bind(*args)
    except TypeError:
        return f"{what} has the signature {sig}; it must take {wanted}"
    return None


def _probe(factory: Any, spec: str, options: dict[str, str], engine: str) -> Validated:
    probe = factory.probe
    problem = _signature_problem(probe, "probe", (options, engine), "(options, engine)")
    if problem:
        raise AdapterInvalid(spec, [problem])
    try:
        found = probe(dict(options), engine)
    except ValueError as exc:  # the documented way to refuse options
        raise AdapterLoadError(f"--sandbox-driver={spec}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - any mistake of the author's
        raise AdapterInvalid(spec, [f"probe(options, {engine!r}) raised {raised(exc)}"]) from None
    if not isinstance(found, DriverProbe):
        raise AdapterInvalid(spec, [f"probe(options, engine) returned {show(found)}: it must "
                                    "return a DriverProbe(capabilities, name, timing)"])
    problems = capabilities_problems(found.capabilities, "the probe's capabilities")
    if not isinstance(found.name, str):
        problems.append(f"the probe's name is {show(found.name)}, not a string")
    if found.timing not in ("exact", "approximate"):
        problems.append(f"the probe's timing is {show(found.timing)}: 'exact' or 'approximate'")
    if problems:
        raise AdapterInvalid(spec, problems)
    return Validated(frozenset(found.capabilities), found.name, found.timing, found.namespace)


def _throwaway(factory: Any, spec: str, image: str, options: dict[str, str],
               timeout: float) -> Validated:
    """Make an instance on the fake engine, check it and what it answers, close it."""
    from ..engines.fake import FakeEngine

    thread = AdapterThread(f"start-up check of {spec}")
    with tempfile.TemporaryDirectory(prefix="sbx-probe-") as tmp:
        ctx = DriverContext(FakeEngine(), Path(tmp), "probe", image, dict(options))
        try:
            adapter = thread.call("the factory (on the fake engine)", factory, ctx,
                                  timeout=max(timeout, watchdog.START_TIMEOUT),
                                  limit=watchdog.START_LIMIT)
        except CallTimeout as exc:
            raise AdapterInvalid(spec, [str(exc)]) from None
        except Exception as exc:  # noqa: BLE001
            raise AdapterInvalid(spec, [f"the factory raised {raised(exc)}"]) from None
        problems = instance_problems(adapter)
        if problems:
            raise AdapterInvalid(spec, problems)
        answers: dict[str, Any] = {}
        problems += _answers(adapter, thread, timeout, answers)
        try:
            thread.close_with(getattr(adapter, "close", None))
        except CallTimeout as exc:
            problems.append(str(exc))
        except Exception as exc:  # noqa: BLE001
            problems.append(f"close() raised {raised(exc)}")
        if problems:
            raise AdapterInvalid(spec, problems)
        label = answers.get("describe") or default_description(adapter)
        return Validated(capabilities_of(adapter), label, getattr(adapter, "timing", "exact"))


def _answers(adapter: Any, thread: AdapterThread, timeout: float,
             answers: dict[str, Any]) -> list[str]:
    """What the fresh instance answers (into ``answers``): each call checked like at run
    time."""
    problems = []
    calls: list[tuple[str, str, tuple]] = [("events", "events()", ()),
                                            ("snapshot", f"snapshot({UNKNOWN_SANDBOX!r})",
                                             (UNKNOWN_SANDBOX,))]
    for method in ("describe", "diagnostics"):
        if getattr(adapter, method, None) is not None:
            calls.append((method, f"{method}()", ()))
    for method, what, args in calls:
        try:
            value = thread.call(what, getattr(adapter, method), *args, timeout=timeout)
        except CallTimeout as exc:
            return problems + [str(exc)]
        except Exception as exc:  # noqa: BLE001
            problems.append(f"{what} raised {raised(exc)}")
            continue
        problem = result_problem(method, value, args[0] if args else None)
        if problem:
            problems.append(f"{what} {problem}")
        else:
            answers[method] = value
    return problems


def validate_driver(factory: Any, spec: str, options: dict[str, str], engine: str, image: str,
                    timeout: float) -> Validated:
    """Check ``factory`` once, before anything runs; :class:`AdapterInvalid` (or
    :class:`AdapterLoadError` for options the probe refused) with every problem found."""
    problem = _signature_problem(factory, f"the factory {getattr(factory, '__name__', spec)}",
                                 (object(),), "one argument (the DriverContext)")
    if problem:
        raise AdapterInvalid(spec, [problem])
    if callable(getattr(factory, "probe", None)):
        return _probe(factory, spec, options, engine)
    caps = getattr(factory, "capabilities", None)
    if caps is not None:
        problems = capabilities_problems(caps, "the factory's capabilities")
        name = getattr(factory, "name", spec)
        if not isinstance(name, str):
            problems.append(f"the factory's name is {show(name)}, not a string")
        if problems:
            raise AdapterInvalid(spec, problems)
        return Validated(frozenset(caps), name)
    return _throwaway(factory, spec, image, options, timeout)
