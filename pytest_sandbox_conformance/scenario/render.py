"""A generated story as a ready-to-commit scenario file: YAML a person can read, that
``sandbox-conformance lint`` accepts and ``--sandbox-scenarios=DIR`` runs.

The story's steps are written one per line (``- {stop: A}``), its schedule as a pinned schedule
(``after: {4: [newest, oldest]}``, steps by number), with the ``expect`` the oracle computed
for that schedule; a comment on top says where it came from and how to run it. Pure: a function
of the scenario's mapping (the inverse of the loader, for generated stories).
"""

from __future__ import annotations

from typing import Any, Sequence

import yaml

__all__ = ["PINNED_NAME", "pinned_after", "render_scenario"]

#: The name of the pinned schedule that reproduces a generated failure.
PINNED_NAME = "found"
_TOKENS = {"n": "newest", "o": "oldest", "R": "restart"}


def pinned_after(gaps: Sequence[str]) -> dict[int, list[str]]:
    """A schedule's gaps as a pinned schedule's ``after:`` (1-based step numbers, gaps with
    nothing left out)."""
    return {i + 1: [_TOKENS[t] for t in gap] for i, gap in enumerate(gaps) if gap}


class _Dumper(yaml.SafeDumper):
    """Block style for the document, flow style for each step and small mapping."""


def _represent_dict(dumper: yaml.SafeDumper, data: dict) -> yaml.Node:
    flow = all(not isinstance(v, (dict, list)) or (isinstance(v, list) and all(
        not isinstance(x, (dict, list)) for x in v)) for v in data.values()) and len(data) <= 6
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=flow)


def _represent_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    flow = all(not isinstance(x, (dict, list)) for x in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(dict, _represent_dict)
_Dumper.add_representer(list, _represent_list)


def render_scenario(document: dict[str, Any], header: Sequence[str] = ()) -> str:
    """The scenario file: ``header`` as ``#`` comments, then the document."""
    body = yaml.dump(document, Dumper=_Dumper, sort_keys=False, width=100,
                     allow_unicode=False)
    comments = "".join(f"# {line}".rstrip() + "\n" for line in header)
    return comments + body
