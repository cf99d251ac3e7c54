"""Parsed scenarios: frozen data, built only by ``loader.py`` from validated YAML."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

__all__ = ["Count", "Expect", "PinnedSchedule", "SandboxDecl", "Scenario", "SandboxExpect", "Step"]


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
