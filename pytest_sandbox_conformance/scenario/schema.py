"""The JSON Schema of scenario files (documented field by field in ``docs/scenarios.md``).

The top-level schema checks the document's shape; each story step is then checked against the
schema of its action (``STEP_SCHEMAS``), which gives precise messages ("clone: 'gpu' must be one
of ...") where a single ``oneOf`` over all actions would only say "not valid under any".
"""

from __future__ import annotations

__all__ = [
    "OUTCOMES",
    "CAPABILITIES",
    "GPU_STYLE_CAPABILITIES",
    "MARKS",
    "FOREIGN_JOURNALS",
    "MAX_FAULT_TIMES",
    "MAX_REPEAT",
    "MAX_GAP_TOKENS",
    "MAX_STEPS",
    "PROFILES",
    "READY_REASONS",
    "REQUIREMENT_PATTERN",
    "SCENARIO_SCHEMA",
    "STEP_SCHEMAS",
    "WARNING_REASONS",
    "with_derived",
]

#: Every capability a scenario may need. A driver or engine that lacks one makes the scenario skip.
#: ``gpu-host`` is no one's declaration: the suite derives it from the engine's ``gpu-*`` ones.
CAPABILITIES = {
    "restart": "the driver can be restarted over its durable state (adapter.restart)",
    "journal-faults": "the driver lets the suite fail, crash or corrupt its journal writes",
    "power-loss": "the suite sees the in-process driver's fsyncs and can cut its power "
                  "(journal_fault: power-loss)",
    "list-order": "the engine returns each list in the order the schedule asks for",
    "engine-faults": "the engine can be told to fail its next list, create or remove call",
    "states": "the engine can put a container in any state (dead, paused, removing, ...)",
    "gpu": "the driver creates GPU sandboxes (a sandbox declared with gpu: true)",
    "gpu-gpus": "the engine puts --gpus style device requests (capabilities [[gpu]]) in effect",
    "gpu-cdi": "the engine puts CDI device requests (nvidia.com/gpu=all) in effect",
    "gpu-runtime": "the engine has the nvidia runtime (--runtime nvidia)",
    "gpu-host": "the engine puts every GPU request style in effect (--gpus, CDI and the nvidia "
                "runtime), so that a driver's own GPU request starts whatever its style",
    "live": "real containers on a real engine",
}
#: The GPU request styles whose capabilities together make ``gpu-host``.
GPU_STYLE_CAPABILITIES = frozenset({"gpu-gpus", "gpu-cdi", "gpu-runtime"})


def with_derived(capabilities: frozenset[str]) -> frozenset[str]:
    """``capabilities`` plus what follows from them (``gpu-host``)."""
    if GPU_STYLE_CAPABILITIES <= capabilities:
        return capabilities | {"gpu-host"}
    return capabilities


#: Marks a scenario may carry (registered with pytest by the plugin).
MARKS = ("gpu", "live", "slow")
#: Profiles: ``core`` decides conformance; ``extended`` is reported but does not.
PROFILES = ("core", "extended")
REQUIREMENT_PATTERN = r"^OWN-([1-9]|1[0-9]|20)$"
#: The Warning reasons of the contract (expectations may only count these).
WARNING_REASONS = (
    "ContainerIdentityConflict",
    "ContainerInstanceMissing",
    "ContainerOwnershipPersistFailed",
    "ContainerOwnershipUnresolved",
    "ContainerReplacementPending",
    "SandboxInstanceReplaced",
    "SandboxInstanceRollback",
    "SandboxReplacementIntentInvalidated",
    "SandboxReplacementIntentRecorded",
    "UnownedSandboxContainersIgnored",
)
#: The Ready reasons of the contract (docs/contract.md section 6), with their status; the phase
#: follows from the two (``api.phase_of``). Expectations may only name these.
READY_REASONS = {
    "ContainerRunning": "True",
    "ContainerCreated": "False",
    "Starting": "False",
    "ContainerExited": "False",
    "ContainerDead": "False",
    "ContainerPaused": "False",
    "ContainerRemoving": "False",
    "ContainerStateUnknown": "False",
    "ContainerStartFailed": "False",
    "ContainerReplacementPending": "False",
    "ContainerInstanceMissing": "False",
    "ContainerIdentityConflict": "False",
    "ContainerOwnershipUnresolved": "False",
    "ContainerOwnershipPersistFailed": "False",
}
#: The longest story (every step multiplies the exhaustive count; the catalog's longest has 7).
MAX_STEPS = 100
#: The most tokens a pinned schedule puts in one gap.
MAX_GAP_TOKENS = 20
#: The most calls one engine or journal fault may fail (a run makes a few dozen calls).
MAX_FAULT_TIMES = 100
#: The most observations one ``observe`` step makes (``repeat:``): a long quiet stretch, such
#: as a minute and more of a 2 s poll.
MAX_REPEAT = 200
#: The journal faults that put a well-formed journal of someone else in the sandbox's file:
#: its own record with one identity field changed (contract OWN-15: a journal is checked when
#: loaded, its version, sandbox id, name and namespace; a foreign one fails closed). The name has
#: no fault of its own: a restarted driver has nothing to check it against but the journal.
FOREIGN_JOURNALS = {
    "foreign-sandbox": "another sandbox's id",
    "foreign-namespace": "another driver namespace",
    "foreign-version": "a newer format version",
}

#: The contract's decision outcomes (``reference_driver.decision.Outcome``): what ``reaches:``
#: may name, what the oracle says of each sandbox after each observation.
OUTCOMES = ("authoritative", "record-intent", "adopt", "rollback", "invalidate", "pending",
            "missing", "conflict", "unresolved", "persist-failed")
_NAME = {"type": "string", "pattern": r"^[A-Za-z][A-Za-z0-9_]*$"}
_SANDBOX_KEY = {"type": "string", "pattern": r"^[a-z0-9][a-z0-9._:-]*$"}
_CONTAINER_NAME = {"type": "string", "minLength": 1,
                   "description": "canonical, backup, or a literal container name"}
_STATE = {"enum": ["created", "running", "exited", "dead", "paused", "restarting", "removing"]}
_ORDER_TOKENS = {"enum": ["observe", "newest", "oldest", "restart"]}
_LABEL = {"type": "string", "pattern": r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$"}

_COUNT = {
    "oneOf": [
        {"type": "integer", "minimum": 0},
        {"type": "object", "additionalProperties": False, "minProperties": 1,
         "properties": {"min": {"type": "integer", "minimum": 0},
                        "max": {"type": "integer", "minimum": 0}}},
    ]
}

_EXPECT = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "sandboxes": {
            "type": "object",
            "propertyNames": _SANDBOX_KEY,
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "instance": {"oneOf": [_NAME, {"type": "null"}]},
                    "phase": {"enum": ["Ready", "Provisioning", "Error"]},
                    "reason": {"enum": list(READY_REASONS)},
                    "tracked": {"type": "boolean"},
                },
            },
        },
        "containers": {"type": "array", "items": _NAME, "uniqueItems": True},
        "warnings": {
            "type": "object",
            "propertyNames": {"enum": list(WARNING_REASONS)},
            "additionalProperties": _COUNT,
        },
        "deleted": {"type": "array", "items": _SANDBOX_KEY, "uniqueItems": True},
    },
}

_DURABLE = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "spec": {"type": "object"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "policy_version": {"type": "integer", "minimum": 0},
        "settings": {"type": "object"},
    },
}

SCENARIO_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "sandbox conformance scenario",
    "type": "object",
    "additionalProperties": False,
    "required": ["id", "title", "requirements", "sandboxes", "story", "expect"],
    "properties": {
        "id": {"type": "string", "pattern": r"^[a-z0-9][a-z0-9-]*$", "maxLength": 80},
        "title": {"type": "string", "minLength": 1},
        "description": {"type": "string"},
        "requirements": {"type": "array", "minItems": 1, "uniqueItems": True,
                         "items": {"type": "string", "pattern": REQUIREMENT_PATTERN}},
        "profile": {"enum": list(PROFILES)},
        "needs": {"type": "array", "uniqueItems": True, "items": {"type": "string"}},
        "marks": {"type": "array", "uniqueItems": True, "items": {"type": "string"}},
        "restart": {"enum": ["anywhere", "never"]},
        "max_observations": {"type": "integer", "minimum": 1, "maximum": 3},
        "reaches": {"type": "array", "uniqueItems": True, "items": {"enum": list(OUTCOMES)},
                    "description": "decision outcomes the exhaustive exploration must reach "
                                   "at least once (tests/test_catalog_reaches.py)"},
        "sandboxes": {
            "type": "object",
            "minProperties": 1,
            "propertyNames": _SANDBOX_KEY,
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name"],
                "properties": {
                    # Any name a person types: the driver sanitises it into the canonical name.
                    "name": {"type": "string", "pattern": r"^[^\x00-\x1f\x7f]{1,63}$"},
                    "gpu": {"type": "boolean"},
                    "durable": _DURABLE,
                },
            },
        },
        "story": {"type": "array", "minItems": 1, "maxItems": MAX_STEPS,
                  "items": {"type": "object"}},
        "expect": _EXPECT,
        "schedules": {
            "type": "object",
            "propertyNames": {"type": "string", "pattern": r"^[a-z0-9][a-z0-9-]*$"},
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "after": {
                        "type": "object",
                        "additionalProperties": {"type": "array", "items": _ORDER_TOKENS,
                                                 "maxItems": MAX_GAP_TOKENS},
                    },
                    "expect": _EXPECT,
                },
            },
        },
    },
}


def _step(action: str, value: dict, required: tuple[str, ...] = (), **extra: dict) -> dict:
    props = {action: value, "label": _LABEL}
    props.update(extra)
    return {"type": "object", "additionalProperties": False, "required": [action, *required],
            "properties": props}


_TIMES = {"type": "integer", "minimum": 1, "maximum": MAX_FAULT_TIMES}


_GENERATION = {"enum": ["keep", "wrong", "missing", "empty", "truncated"]}
#: ``labels:`` of ``clone`` and ``run``: identity labels set (a string) or dropped (null).
_LABEL_EDITS = {
    "type": "object", "additionalProperties": False, "minProperties": 1,
    "properties": {
        "managed-by": {"type": ["string", "null"]},
        "sandbox-name": {"oneOf": [{"type": "null"},
                                   {"type": "string", "pattern": r"^[^\x00-\x1f\x7f]{1,63}$"}]},
        "sandbox-id": {"oneOf": [{"type": "null"}, _SANDBOX_KEY]},
    },
}
#: ``fails: start``: the engine refuses to start the container (its executable is missing).
_FAILS = {"enum": ["start"]}
_GPU_STYLE = {"enum": ["gpus", "cdi", "runtime"]}

#: One schema per story action. Every step is a mapping with exactly one action key.
STEP_SCHEMAS = {
    "create": _step("create", _SANDBOX_KEY, **{"as": _NAME}),
    "delete": _step("delete", _SANDBOX_KEY, expect_removed={"type": "boolean"}),
    "restart": _step("restart", {"const": True}),
    "observe": _step("observe", {"enum": ["newest", "oldest"]},
                     repeat={"type": "integer", "minimum": 1, "maximum": MAX_REPEAT}),
    "supervisor": _step("supervisor", _SANDBOX_KEY, connected={"type": "boolean"}),
    "stop": _step("stop", _NAME),
    "start": _step("start", _NAME),
    "kill": _step("kill", _NAME),
    "remove": _step("remove", _NAME),
    "rename": _step("rename", _NAME, ("to",), to=_CONTAINER_NAME),
    "set_state": _step("set_state", _NAME, ("state",), state=_STATE),
    "clone": _step("clone", _NAME, **{"as": _NAME, "name": _CONTAINER_NAME,
                                       "generation": _GENERATION, "gpu": _GPU_STYLE,
                                       "labels": _LABEL_EDITS, "fails": _FAILS,
                                       "state": {"enum": ["running", "created", "exited"]}}),
    "run": _step("run", _SANDBOX_KEY, **{"as": _NAME, "name": _CONTAINER_NAME,
                                          "generation": _GENERATION, "gpu": _GPU_STYLE,
                                          "labels": _LABEL_EDITS, "fails": _FAILS,
                                          "namespace": {"type": "string", "minLength": 1},
                                          "state": {"enum": ["running", "created", "exited"]}}),
    "engine_fault": _step("engine_fault", {"enum": ["list", "create", "remove"]},
                          times=_TIMES),
    "journal_fault": _step("journal_fault", {"enum": ["write-fail", "crash", "corrupt",
                                                           "power-loss", *FOREIGN_JOURNALS]},
                           sandbox=_SANDBOX_KEY,
                           at={"enum": ["open-temp", "write-partial", "fsync-temp", "rename",
                                        "fsync-dir"]},
                           times=_TIMES),
}
ACTIONS = tuple(STEP_SCHEMAS)
#: Steps the suite performs as another client of the engine (observations may fall around them).
EXTERNAL_ACTIONS = frozenset({"stop", "start", "kill", "remove", "rename", "set_state", "clone",
                              "run"})
