"""YAML that remembers where every value came from.

``load_documents(text, path)`` returns each YAML document as plain Python data plus a
:class:`Lines` table mapping a JSON-pointer-like path (a tuple of keys and indexes) to the 1-based
line it starts on, so that schema errors can name the line of the field at fault.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import yaml

from .errors import ScenarioError

__all__ = ["Lines", "load_documents"]

Path = tuple[Any, ...]


@dataclass
class Lines:
    """Lines of a document's nodes, by path."""

    by_path: dict[Path, int]
    start: int

    def line_of(self, path: Path) -> int:
        """The line of ``path``, or of its nearest ancestor that has one."""
        path = tuple(path)
        while path:
            if path in self.by_path:
                return self.by_path[path]
            path = path[:-1]
        return self.by_path.get((), self.start)


# libyaml's parser when PyYAML has it (about ten times faster), else the pure-Python one.
class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    pass


def _construct(loader: yaml.SafeLoader, node: yaml.Node, path: Path, lines: dict[Path, int],
               source: str) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)) or key is None:
                raise ScenarioError(source, key_node.start_mark.line + 1, _dotted(path),
                                    f"a mapping key must be a plain scalar, not {key!r}")
            if key in result:
                raise ScenarioError(source, key_node.start_mark.line + 1, _dotted(path + (key,)),
                                    "duplicate key (the first value would be lost)")
            result[key] = _construct(loader, value_node, path + (key,), lines, source)
            lines[path + (key,)] = key_node.start_mark.line + 1
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_construct(loader, item, path + (i,), lines, source)
                for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def _dotted(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load_documents(text: str, source: str) -> Iterator[tuple[Any, Lines]]:
    """Parse every document of ``text``; raise :class:`ScenarioError` on a YAML syntax error."""
    loader = _Loader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            lines: dict[Path, int] = {}
            data = _construct(loader, node, (), lines, source)
            yield data, Lines(lines, node.start_mark.line + 1)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise ScenarioError(source, line, "", f"YAML syntax error: {problem}") from None
    except yaml.YAMLError as exc:
        raise ScenarioError(source, None, "", f"YAML error: {exc}") from None
    finally:
        loader.dispose()


dotted = _dotted
