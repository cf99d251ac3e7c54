"""YAML that remembers where every value came from, within bounds.

``load_documents(text, path)`` returns each YAML document as plain Python data plus a
:class:`Lines` table mapping a JSON-pointer-like path (a tuple of keys and indexes) to the 1-based
line it starts on, so that schema errors can name the line of the field at fault.

Untrusted files cannot make it grow or recurse without bound (``docs/reliability.md``): the
document is composed from the parser's events here, without recursion, refusing nesting deeper
than :data:`MAX_DEPTH` and recursive aliases; the data is then built with a budget of
:data:`MAX_NODES` nodes per file, every use of an alias counting its whole value again (an alias
bomb, "billion laughs", is refused at the node that goes over). A scalar that cannot be built
(an int of 5,000 digits, the 13th month) is an error naming its line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import yaml

from .errors import ScenarioError

__all__ = ["Lines", "MAX_BYTES", "MAX_DEPTH", "MAX_NODES", "load_documents"]

Path = tuple[Any, ...]

#: The deepest nesting of collections a scenario file may have (the catalog needs 7).
MAX_DEPTH = 64
#: The most nodes one file may expand to, counting every alias use in full (the catalog's
#: largest file has about 1,700).
MAX_NODES = 200_000
#: The largest scenario file read, in bytes (the catalog's largest is about 10 KB).
MAX_BYTES = 4 * 1024 * 1024

_MERGE = "tag:yaml.org,2002:merge"
_COLLECTION_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")


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


def _line(mark: Any) -> int | None:
    return mark.line + 1 if mark is not None else None


# -- composing: events -> nodes, iteratively --------------------------------------------------------


class _Frame:
    __slots__ = ("node", "anchor", "key")

    def __init__(self, node: yaml.Node, anchor: str | None) -> None:
        self.node = node
        self.anchor = anchor
        self.key: yaml.Node | None = None


def _compose(loader: yaml.SafeLoader, source: str) -> yaml.Node | None:
    """One document's node graph (aliases shared, never cyclic), from the parser's events."""
    start = loader.get_event()  # DocumentStartEvent
    anchors: dict[str, yaml.Node] = {}
    open_anchors: set[str] = set()
    stack: list[_Frame] = []
    root: yaml.Node | None = None
    composed = 0

    def error(event: Any, message: str) -> ScenarioError:
        return ScenarioError(source, _line(event.start_mark), "", message)

    def anchor(event: Any, node: yaml.Node) -> None:
        name = event.anchor
        if name is None:
            return
        if name in anchors:
            raise error(event, f"the anchor &{name} is defined twice (first on line "
                               f"{anchors[name].start_mark.line + 1})")
        anchors[name] = node

    def add(node: yaml.Node) -> None:
        nonlocal root
        if not stack:
            root = node
            return
        frame = stack[-1]
        if isinstance(frame.node, yaml.SequenceNode):
            frame.node.value.append(node)
        elif frame.key is None:
            frame.key = node
        else:
            frame.node.value.append((frame.key, node))
            frame.key = None

    while True:
        event = loader.get_event()
        if isinstance(event, yaml.DocumentEndEvent):
            return root
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in open_anchors:
                raise error(event, f"the alias *{event.anchor} refers to a value that contains "
                                   "it (a recursive alias)")
            if event.anchor not in anchors:
                raise error(event, f"the alias *{event.anchor} names no anchor defined before it")
            add(anchors[event.anchor])
            continue
        if isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            frame = stack.pop()
            frame.node.end_mark = event.end_mark
            if frame.anchor is not None:
                open_anchors.discard(frame.anchor)
            add(frame.node)
            continue
        composed += 1
        if composed > MAX_NODES:
            raise error(event, f"the document holds more than {MAX_NODES} values (the limit "
                               "of a scenario file)")
        tag = event.tag
        if isinstance(event, yaml.ScalarEvent):
            if tag is None or tag == "!":
                tag = loader.resolve(yaml.ScalarNode, event.value, event.implicit)
            node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark,
                                   style=event.style)
            anchor(event, node)
            add(node)
            continue
        if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            if len(stack) >= MAX_DEPTH:
                raise error(event, f"the YAML is nested deeper than {MAX_DEPTH} levels (the "
                                   "limit of a scenario file)")
            kind = yaml.SequenceNode if isinstance(event, yaml.SequenceStartEvent) \
                else yaml.MappingNode
            if tag is None or tag == "!":
                tag = loader.resolve(kind, None, event.implicit)
            node = kind(tag, [], event.start_mark, None, flow_style=event.flow_style)
            anchor(event, node)
            if event.anchor is not None:
                open_anchors.add(event.anchor)
            stack.append(_Frame(node, event.anchor))
            continue
        raise error(start, f"unexpected YAML event {type(event).__name__}")  # pragma: no cover


# -- building: nodes -> data, within the budget ------------------------------------------------------


class _Builder:
    """Builds one document's data and its lines, counting nodes against the file's budget."""

    def __init__(self, loader: yaml.SafeLoader, source: str, budget: list[int]) -> None:
        self.loader = loader
        self.source = source
        self.budget = budget  # [nodes left for the whole file], shared by its documents
        self.lines: dict[Path, int] = {}

    def error(self, node: yaml.Node, path: Path, message: str) -> ScenarioError:
        return ScenarioError(self.source, _line(node.start_mark), _dotted(path), message)

    def build(self, node: yaml.Node, path: Path, depth: int = 0) -> Any:
        self.budget[0] -= 1
        if self.budget[0] < 0:
            raise self.error(node, (), f"the file expands to more than {MAX_NODES} values "
                                       "(aliases count each time they are used): an alias bomb?")
        if depth > MAX_DEPTH:
            raise self.error(node, path, f"the YAML is nested deeper than {MAX_DEPTH} levels once "
                                         "its aliases are expanded")
        self.lines[path] = node.start_mark.line + 1
        if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) \
                and node.tag not in _COLLECTION_TAGS:
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            raise self.error(node, path, f"the tag {tag} is not allowed here (a scenario file is "
                                         "plain YAML: mappings, lists and scalars)")
        if isinstance(node, yaml.MappingNode):
            return self.mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, path + (i,), depth + 1) for i, item in enumerate(node.value)]
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.MarkedYAMLError as exc:
            raise self.error(node, path, f"cannot read this value: {exc.problem}") from None
        except (ValueError, OverflowError, TypeError) as exc:
            # yaml's int of 5,000 digits, a date in the 13th month, ...
            why = str(exc).split(";")[0]
            raise self.error(node, path, f"cannot read the value {_preview(node.value)}: "
                                         f"{why}") from None

    def key(self, node: yaml.Node, path: Path) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise self.error(node, path, "a mapping key must be a plain scalar, not a "
                                         + ("list" if isinstance(node, yaml.SequenceNode)
                                            else "mapping"))
        key = self.build(node, path + ("?",))
        self.lines.pop(path + ("?",), None)
        if not isinstance(key, (str, int, float, bool)) or key is None:
            raise self.error(node, path, f"a mapping key must be a plain scalar, not {key!r}")
        return key

    def mapping(self, node: yaml.MappingNode, path: Path, depth: int) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        merged: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                self.merge(value_node, path, depth, merged)
                continue
            key = self.key(key_node, path)
            if key in result:
                raise self.error(key_node, path + (key,),
                                 "duplicate key (the first value would be lost)")
            result[key] = self.build(value_node, path + (key,), depth + 1)
            self.lines[path + (key,)] = key_node.start_mark.line + 1
        for key, value in merged.items():
            result.setdefault(key, value)  # explicit keys win over merged ones (YAML's '<<')
        return result

    def merge(self, node: yaml.Node, path: Path, depth: int, into: dict[Any, Any]) -> None:
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        for src in sources:
            if not isinstance(src, yaml.MappingNode):
                raise self.error(src, path, "'<<' merges a mapping or a list of mappings")
            for key, value in self.build(src, path, depth + 1).items():
                into.setdefault(key, value)  # earlier sources win, as YAML's merge says


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _dotted(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load_documents(text: str, source: str) -> Iterator[tuple[Any, Lines]]:
    """Parse every document of ``text``; raise :class:`ScenarioError` on a YAML syntax error or
    a file over the limits."""
    if len(text) > MAX_BYTES:
        raise ScenarioError(source, None, "", f"the file is larger than {MAX_BYTES} bytes (the "
                                              "limit of a scenario file)")
    loader = _Loader(text)
    budget = [MAX_NODES]
    try:
        loader.get_event()  # StreamStartEvent
        while not loader.check_event(yaml.StreamEndEvent):
            node = _compose(loader, source)
            if node is None:
                continue
            builder = _Builder(loader, source, budget)
            data = builder.build(node, ())
            yield data, Lines(builder.lines, node.start_mark.line + 1)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        raise ScenarioError(source, _line(mark), "", f"YAML syntax error: {problem}") from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow, by position
        line = text.count("\n", 0, max(exc.position, 0)) + 1
        char = exc.character
        what = f"U+{char:04X}" if isinstance(char, int) else repr(char)
        raise ScenarioError(source, line, "", f"the character {what} is not allowed in YAML "
                                              f"({exc.reason})") from None
    except yaml.YAMLError as exc:
        raise ScenarioError(source, None, "", f"YAML error: {exc}") from None
    finally:
        loader.dispose()


dotted = _dotted
