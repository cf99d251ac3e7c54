"""The pytest plugin (entry point ``pytest11``): a thin face over the runner.

Hooks only: options, markers, and the registration of a :class:`~.suite.Suite` (collection of
scenario files, the report header, the conformance report) when the suite is on. The suite is
*off* unless ``--sandbox-driver`` (or ini ``sandbox_driver``) or ``--sandbox-schedule`` is given,
so installing the package never changes another project's test run.

``options.py`` holds every option, ``collect.py`` the pytest items, ``suite.py`` the session
(``driver_setup.py`` and ``engine_setup.py`` open its driver and engine, ``header.py`` writes
its header lines).
"""

from __future__ import annotations

import pytest

from ..scenario.schema import MARKS, PROFILES
from .options import Settings, add_options
from .suite import Suite

__all__ = ["Suite"]

_MARK_DOCS = {
    "gpu": "gpu: a scenario with GPU device requests (select GPU jobs with -m gpu)",
    "live": "live: needs real containers on a real engine",
    "slow": "slow: a scenario whose exploration takes long",
    "core": "core: a core-profile conformance scenario (decides the verdict)",
    "extended": "extended: an extended-profile scenario (reported, does not decide the verdict)",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    for mark in MARKS + PROFILES:
        config.addinivalue_line("markers", _MARK_DOCS[mark])
    settings = Settings.from_config(config)  # eagerly validated, even when the suite is off
    if settings.active:
        config.pluginmanager.register(Suite(config, settings), "sandbox-conformance-suite")
    elif settings.shard is not None:
        raise pytest.UsageError("--sandbox-shard splits the conformance suite's items: give "
                                "--sandbox-driver too (or ini sandbox_driver)")
