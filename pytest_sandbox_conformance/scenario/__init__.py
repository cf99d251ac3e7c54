"""Scenarios: the YAML language, its schema, and the loader (pure: no pytest, no engine)."""

from .errors import ScenarioError, ScenarioErrors
from .loader import load_file, load_paths, load_text
from .model import Count, Expect, PinnedSchedule, SandboxDecl, SandboxExpect, Scenario, Step
from .schema import CAPABILITIES, MARKS, PROFILES, SCENARIO_SCHEMA, STEP_SCHEMAS

__all__ = [
    "CAPABILITIES",
    "Count",
    "Expect",
    "MARKS",
    "PROFILES",
    "PinnedSchedule",
    "SCENARIO_SCHEMA",
    "STEP_SCHEMAS",
    "SandboxDecl",
    "SandboxExpect",
    "Scenario",
    "ScenarioError",
    "ScenarioErrors",
    "Step",
    "load_file",
    "load_paths",
    "load_text",
]
