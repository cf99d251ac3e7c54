"""Parsed scenarios: frozen data, built only by ``loader.py`` from validated YAML."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

__all__ = ["LABEL_EDIT_KEYS", "Count", "Expect", "Identity", "PinnedSchedule", "SandboxDecl",
           "Scenario", "SandboxExpect", "Step", "made_identity"]

#: The identity labels a ``clone`` or ``run`` step may set or drop (``labels:``), by the
#: contract's short names (the driver's own keys are ``LabelKeys``' fields of the same meaning).
LABEL_EDIT_KEYS = ("managed-by", "sandbox-id", "sandbox-name")


@dataclass(frozen=True)
class SandboxDecl:
    key: str
    name: str
    gpu: bool = False
    durable: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    """One story step. ``action`` is its action key; ``args`` the rest of the mapping."""

    index: int
    action: str
    target: Any
    args: Mapping[str, Any]
    line: int
    label: str | None = None

    @property
    def repeat(self) -> int:
        """How many observations an ``observe`` step makes (``repeat:``, default 1)."""
        return int(self.args.get("repeat", 1)) if self.action == "observe" else 0

    @property
    def binds(self) -> str | None:
        """The container name this step introduces (``as:``), if any."""
        return self.args.get("as")

    def describe(self) -> str:
        extra = " ".join(f"{k}={v}" for k, v in self.args.items() if k != "label")
        return f"{self.action} {self.target}" + (f" {extra}" if extra else "")


@dataclass(frozen=True)
class Count:
    min: int
    max: int | None

    def accepts(self, n: int) -> bool:
        return n >= self.min and (self.max is None or n <= self.max)

    def __str__(self) -> str:
        if self.max == self.min:
            return str(self.min)
        return f"{self.min}..{self.max if self.max is not None else ''}"


@dataclass(frozen=True)
class SandboxExpect:
    instance: str | None = None
    instance_given: bool = False
    phase: str | None = None
    reason: str | None = None
    tracked: bool | None = None


@dataclass(frozen=True)
class Expect:
    sandboxes: Mapping[str, SandboxExpect] = field(default_factory=dict)
    containers: tuple[str, ...] | None = None
    warnings: Mapping[str, Count] = field(default_factory=dict)
    deleted: tuple[str, ...] = ()
    line: int = 0


@dataclass(frozen=True)
class PinnedSchedule:
    name: str
    #: Per gap (after each story step), the tokens: "newest", "oldest", "restart".
    gaps: tuple[tuple[str, ...], ...]
    expect: Expect
    line: int


@dataclass(frozen=True)
class Scenario:
    id: str
    title: str
    path: str
    line: int
    requirements: tuple[str, ...]
    profile: str
    needs: frozenset[str]
    marks: tuple[str, ...]
    #: ``anywhere`` (the default): exploration also restarts the driver at each gap, where the
    #: driver can restart (``Mode.restarts``); ``never``: only where the story says so.
    restart: str
    max_observations: int
    sandboxes: Mapping[str, SandboxDecl]
    story: tuple[Step, ...]
    expect: Expect
    pinned: tuple[PinnedSchedule, ...]
    description: str = ""
    #: Decision outcomes some exhaustively explored schedule must reach (``reaches:``).
    reaches: tuple[str, ...] = ()

    @property
    def needs_gpu(self) -> bool:
        """Whether the scenario involves GPUs (a GPU sandbox, or a GPU request style)."""
        return any(n == "gpu" or n.startswith("gpu-") for n in self.needs)

    @property
    def gaps(self) -> int:
        """How many places observations can fall: one after each story step."""
        return len(self.story)


@dataclass(frozen=True)
class Identity:
    """What a container's identity labels say, as the story knows them without an engine: the
    declared sandbox its sandbox-id label names (``""``: none, or no declared one), its
    sandbox-name label (None when dropped) and whether its namespace label is the run's."""

    key: str
    name: str | None
    ours: bool

    def candidate_of(self, sandboxes: Mapping[str, SandboxDecl]) -> str:
        """The sandbox this container is a candidate of (contract section 1: namespace, id and
        name labels all the sandbox's), or ``""``."""
        decl = sandboxes.get(self.key)
        return self.key if decl is not None and self.ours and self.name == decl.name else ""


def made_identity(action: str, target: str, args: Mapping[str, Any],
                  source: Identity | None, sandboxes: Mapping[str, SandboxDecl]) -> Identity:
    """The identity labels of the container a ``create``, ``run`` or ``clone`` step makes:
    the sandbox's own (``create``, ``run``: ``namespace:`` another namespace), or the source's
    (``clone``), then the step's ``labels:`` edits (a value sets the label, null drops it;
    ``sandbox-id`` names a declared sandbox, whose id it writes)."""
    if action == "clone":
        base = source if source is not None else Identity("", None, True)
    else:
        decl = sandboxes.get(target)
        base = Identity(target, decl.name if decl is not None else None,
                        action == "create" or "namespace" not in args)
    edits = args.get("labels") or {}
    key, name = base.key, base.name
    if "sandbox-id" in edits:
        key = edits["sandbox-id"] or ""
    if "sandbox-name" in edits:
        name = edits["sandbox-name"]
    return Identity(key, name, base.ours)
