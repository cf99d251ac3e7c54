"""JSON Schema validation of scenario data, with messages that name the field and its line.

The validator is the schema's own draft, with one change: ``integer`` refuses ``2.0`` (JSON
Schema accepts it; the suite counts with Python ints). A huge value is shown abbreviated, never
printed whole (a 5,000-step story is said once, in a line).
"""

from __future__ import annotations

import functools
from typing import Any

import jsonschema

from .errors import ScenarioError
from .schema import SCENARIO_SCHEMA, STEP_SCHEMAS
from .yamlsource import Lines, dotted

__all__ = ["preview", "schema_errors"]


@functools.lru_cache(maxsize=None)
def _validator(schema_id: str) -> jsonschema.protocols.Validator:
    schema = SCENARIO_SCHEMA if schema_id == "" else STEP_SCHEMAS[schema_id]
    base = jsonschema.validators.validator_for(SCENARIO_SCHEMA)
    # JSON Schema's "integer" accepts 2.0; the suite counts with Python ints, so it must not.
    strict = base.TYPE_CHECKER.redefine(
        "integer", lambda _, v: isinstance(v, int) and not isinstance(v, bool))
    return jsonschema.validators.extend(base, type_checker=strict)(schema)


def schema_errors(data: Any, schema_id: str, base: tuple, lines: Lines, source: str,
                  out: list[ScenarioError]) -> None:
    """Append to ``out`` every error of ``data`` against the scenario schema (``schema_id`` "")
    or a step's (an action name); ``base`` is the path of ``data`` in the document."""
    validator = _validator(schema_id)
    for err in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        path = base + tuple(err.absolute_path)
        field = dotted(path)
        if err.validator == "additionalProperties" and isinstance(err.instance, dict):
            allowed = set(err.schema.get("properties", {}))
            extra = sorted((k for k in err.instance if k not in allowed), key=str)
            for key in extra:
                out.append(ScenarioError(source, lines.line_of(path + (key,)),
                                         dotted(path + (key,)),
                                         f"unknown field; expected one of {sorted(allowed)}"))
            continue
        message = err.message
        shown = repr(err.instance)
        if len(shown) > 80 and message.startswith(shown):  # a 5,000-step story, said once
            message = preview(err.instance) + message[len(shown):]
        if err.validator == "oneOf":
            message = f"{preview(err.instance)} is not valid here"
            if err.context:
                message += f" ({min(err.context, key=lambda e: len(e.message)).message})"
        out.append(ScenarioError(source, lines.line_of(path), field, message))


def preview(value: Any) -> str:
    """``repr(value)``, cut to about 80 characters."""
    text = repr(value)
    if len(text) <= 80:
        return text
    size = f" ({len(value)} items)" if isinstance(value, (list, dict)) else ""
    return text[:60] + "..." + size


