"""The one command that replays a (scenario, schedule), as a failure prints it.

It runs exactly that schedule from any folder: it names every setting the session had (from the
command line or the ini file), the scenario folders as absolute paths, ``PYTHONPATH`` when the
driver's module cannot be imported without it (a ``module:factory`` found through the session's
``PYTHONPATH`` or its current folder), the interpreter when ``pytest`` on ``PATH`` is another
one's, and ``-p no:cacheprovider`` so that it leaves nothing in that folder. With
``--sandbox-schedule`` the plugin collects nothing but that scenario's item (``Suite``'s
``pytest_ignore_collect``), so a project's own tests never run beside a replay.
"""

from __future__ import annotations

import functools
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from ..exploration.schedule import Schedule
from ..scenario.model import Scenario
from .options import DRIVER_OPTION_FLAGS, Settings

__all__ = ["pythonpath_for", "replay_command", "session_command"]


def replay_command(s: Settings, scenario: Scenario, schedule: Schedule) -> str:
    """The one command that runs ``scenario`` under ``schedule`` again, from any folder."""
    return (session_command(s)
            + f" '--sandbox-schedule={scenario.id}@{schedule.name or schedule.id}'")


def session_command(s: Settings) -> str:
    """The pytest command line of a session like this one (driver, engine, scenario folders,
    driver options), without what selects the items: :func:`replay_command` adds a schedule,
    a generated batch's command its ``--sandbox-schedules=generate:...`` and ``-k``."""
    parts = [*pythonpath_for(s.driver), *_pytest(), "-p", "no:cacheprovider",
             f"--sandbox-driver={s.driver}", f"--sandbox-engine={s.engine}"]
    if s.engine_url:
        parts.append(f"--sandbox-engine-url={s.engine_url}")
    if s.gpu != "auto":
        parts.append(f"--sandbox-gpu={s.gpu}")
    if s.image != "sbx-busybox:local":
        parts.append(f"--sandbox-image={s.image}")
    parts += [f"--sandbox-scenarios={d}" for d in s.scenario_dirs]
    flags = {key: name for name, key in DRIVER_OPTION_FLAGS.items()}
    for key, value in s.driver_options.items():
        if key == "gate" and key in s.flag_options:
            parts.append(f"--sandbox-gate={value}")
        elif key in s.flag_options:
            parts.append(f"--sandbox-{flags[key].replace('_', '-')}={value}")
        else:
            parts.append(f"--sandbox-driver-option={key}={value}")
    if not s.builtin:
        parts.append("--sandbox-no-builtin")
    return " ".join(p if p.startswith("PYTHONPATH=") else shlex.quote(p) for p in parts)


def _pytest() -> list[str]:
    """``pytest`` when the one on ``PATH`` is this interpreter's, else ``python -m pytest``."""
    found = shutil.which("pytest")
    if found and Path(found).resolve().parent == Path(sys.executable).resolve().parent:
        return ["pytest"]
    return [sys.executable, "-m", "pytest"]


def pythonpath_for(spec: str) -> list[str]:
    """``["PYTHONPATH=..."]`` when ``spec``'s module cannot be imported without it, else ``[]``."""
    module, sep, _ = spec.partition(":")
    if not sep or _importable_without_pythonpath(module):
        return []
    entries: list[str] = []
    root = _root_of(module)
    if root:
        entries.append(root)
    for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep):
        if entry:
            entry = os.path.abspath(entry)
            if entry not in entries:
                entries.append(entry)
    if not entries:
        return []
    return ["PYTHONPATH=" + shlex.quote(os.pathsep.join(entries))]


def _root_of(module: str) -> str | None:
    """The folder on ``sys.path`` the module's top-level package was found in."""
    top = sys.modules.get(module.split(".")[0])
    file = getattr(top, "__file__", None)
    if not file:
        return None
    path = Path(file).resolve()
    return str(path.parent.parent if path.name == "__init__.py" else path.parent)


@functools.lru_cache(maxsize=None)
def _importable_without_pythonpath(module: str) -> bool:
    """Whether a fresh interpreter in another folder, without ``PYTHONPATH``, finds ``module``."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    probe = "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec(sys.argv[1]) else 1)"
    try:
        done = subprocess.run([sys.executable, "-c", probe, module], env=env, cwd="/",
                              capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0
