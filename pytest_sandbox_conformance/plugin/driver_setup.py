"""Opening the driver of a session (for :class:`~.suite.Suite`): its adapter loaded and checked
(``adapters/validate.py``), its capabilities probed, and what follows from them: the watchdog's
step timeout, how many schedules of an item play at once (``--sandbox-concurrency``) and the
options the factory gets. Every problem is one line of a usage error."""

from __future__ import annotations

import pytest

from .option_checks import check_factory
from .options import Settings

__all__ = ["AUTO_CONCURRENCY", "DEFAULT_STEP_TIMEOUT", "concurrency", "concurrency_kind",
           "driver_options", "is_worker", "load_driver", "probe_driver", "step_timeout"]

#: The watchdog's deadline for one call of an in-process adapter without --sandbox-step-timeout.
DEFAULT_STEP_TIMEOUT = 30.0

#: ``--sandbox-concurrency=auto``: schedules of one item played at once, by what the plays wait on
#: (measured: docs/performance.md, *Concurrent schedules*). The fake engine and in-process
#: drivers are CPU bound (the GIL: threads would only add switching); a driver process per play
#: (openshell-grpc with --sandbox-driver-cmd) mostly waits for its polls.
AUTO_CONCURRENCY = {"fake": 1, "in-process": 1, "driver-process": 16}


def is_worker(config: pytest.Config) -> bool:
    """Whether this process is an xdist worker."""
    return hasattr(config, "workerinput")


def load_driver(settings: Settings):
    """The factory of ``--sandbox-driver``, loaded and its shape checked."""
    from ..adapters.base import AdapterLoadError, load_factory

    try:
        factory = load_factory(settings.driver)
    except AdapterLoadError as exc:
        raise pytest.UsageError(str(exc)) from None
    except Exception as exc:  # the module's own import failed (a SyntaxError, ...)
        raise pytest.UsageError(f"--sandbox-driver={settings.driver}: importing it failed: "
                                f"{type(exc).__name__}: {exc}") from None
    check_factory(factory, settings.driver)
    return factory


def probe_driver(config: pytest.Config, settings: Settings, factory):
    """The driver's capabilities, name, timing and fixed namespace (``adapters/validate.py``'s
    ``Validated``), once its adapter is checked: from the factory's ``probe(options, engine)``,
    its ``capabilities`` attribute, or a throwaway instance on the fake engine."""
    from ..adapters.base import AdapterLoadError
    from ..adapters.validate import validate_driver

    s = settings
    try:
        found = validate_driver(factory, s.driver, dict(s.driver_options), s.engine,
                                s.image, step_timeout(s))
    except AdapterLoadError as exc:
        raise pytest.UsageError(str(exc)) from None
    if found.namespace and (getattr(config.option, "numprocesses", None) or is_worker(config)):
        raise pytest.UsageError(
            f"--sandbox-driver={s.driver}: a running driver works in one namespace "
            f"({found.namespace}), so scenarios must run one at a time: drop -n")
    return found


def step_timeout(settings: Settings) -> float:
    """The watchdog's deadline for one adapter call (``--sandbox-step-timeout``)."""
    value = settings.driver_options.get("step_timeout")
    try:
        return float(value) if value else DEFAULT_STEP_TIMEOUT
    except ValueError:
        return DEFAULT_STEP_TIMEOUT


def concurrency_kind(settings: Settings) -> str:
    """``fake``, ``in-process`` (a driver object on a real engine) or ``driver-process``."""
    if settings.engine == "fake":
        return "fake"
    return "driver-process" if "cmd" in settings.driver_options else "in-process"


def concurrency(settings: Settings, fixed_namespace: str | None) -> int:
    """``--sandbox-concurrency``, or what ``auto`` means for this engine and driver."""
    s = settings
    if fixed_namespace and (s.concurrency or 1) > 1:
        raise pytest.UsageError(
            f"--sandbox-concurrency={s.concurrency}: a running driver works in one namespace "
            f"({fixed_namespace}), so its schedules must play one at a time: drop it")
    if s.concurrency is not None:
        return s.concurrency
    if fixed_namespace:
        return 1
    return AUTO_CONCURRENCY[concurrency_kind(s)]


def driver_options(settings: Settings, at_once: int) -> dict[str, str]:
    """The factory's options; with driver processes played at once and no
    --sandbox-step-timeout, a step timeout that allows for the shared engine
    (``run/concurrent.py``'s :func:`step_timeout_at_once`)."""
    options = dict(settings.driver_options)
    if at_once > 1 and "cmd" in options and "step_timeout" not in options:
        from ..run.concurrent import step_timeout_at_once

        poll = float(options.get("poll_interval", 2.0))
        options["step_timeout"] = f"{step_timeout_at_once(poll, at_once):g}"
    return options
