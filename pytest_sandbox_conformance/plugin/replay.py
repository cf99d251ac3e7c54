"""The one command that replays a (scenario, schedule), as a failure prints it."""

from __future__ import annotations

import shlex

from ..exploration.schedule import Schedule
from ..scenario.model import Scenario
from .options import DRIVER_OPTION_FLAGS, Settings

__all__ = ["replay_command"]


def replay_command(s: Settings, scenario: Scenario, schedule: Schedule) -> str:
    parts = ["pytest", f"--sandbox-driver={s.driver}", f"--sandbox-engine={s.engine}"]
    if s.engine_url:
        parts.append(f"--sandbox-engine-url={s.engine_url}")
    if s.image != "sbx-busybox:local":
        parts.append(f"--sandbox-image={s.image}")
    parts += [f"--sandbox-scenarios={d}" for d in s.scenario_dirs]
    flags = {key: name for name, key in DRIVER_OPTION_FLAGS.items()}
    for key, value in s.driver_options.items():
        if key == "gate" and key in s.flag_options:
            parts.append(f"--sandbox-gate={value}")
        elif key in s.flag_options:
            parts.append(shlex.quote(f"--sandbox-{flags[key].replace('_', '-')}={value}"))
        else:
            parts.append(shlex.quote(f"--sandbox-driver-option={key}={value}"))
    if not s.builtin:
        parts.append("--sandbox-no-builtin")
    parts.append(f"'--sandbox-schedule={scenario.id}@{schedule.name or schedule.id}'")
    return " ".join(parts)
