"""Identity labels, canonical container names and the GPU handoff's backup name (contract §1)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

__all__ = ["LabelKeys", "backup_name", "canonical_name", "is_backup_name", "sanitize"]

_UNSAFE = re.compile(r"[^a-z0-9_.-]")


@dataclass(frozen=True)
class LabelKeys:
    """The identity label keys. OpenShell's by default; a driver may rename them."""

    managed_by: str = "openshell.ai/managed-by"
    sandbox_id: str = "openshell.ai/sandbox-id"
    sandbox_name: str = "openshell.ai/sandbox-name"
    namespace: str = "openshell.ai/sandbox-namespace"
    generation: str = "openshell.ai/docker-instance-generation"
    managed_by_value: str = "openshell"

    def identity(self, namespace: str, sandbox_id: str, name: str) -> dict[str, str]:
        """The labels every container of this sandbox carries (generation excluded)."""
        return {
            self.managed_by: self.managed_by_value,
            self.sandbox_id: sandbox_id,
            self.sandbox_name: name,
            self.namespace: namespace,
        }

    def exact(self, namespace: str, sandbox_id: str, name: str) -> dict[str, str]:
        """The label filter of a sandbox's exact matches (candidates, and what delete removes)."""
        return {self.sandbox_id: sandbox_id, self.sandbox_name: name, self.namespace: namespace}

    def matches(self, labels: Mapping[str, str], namespace: str, sandbox_id: str, name: str) -> bool:
        """The candidate rule (contract §4): namespace, sandbox id and name labels all match."""
        return (labels.get(self.sandbox_id) == sandbox_id
                and labels.get(self.namespace) == namespace
                and labels.get(self.sandbox_name) == name)


def sanitize(text: str) -> str:
    """Lower-case, and replace every character outside ``[a-z0-9_.-]`` with ``-``."""
    return _UNSAFE.sub("-", text.lower())


def canonical_name(name: str, sandbox_id: str) -> str:
    """``openshell-<name>-<id>``, sanitised."""
    return sanitize(f"openshell-{name}-{sandbox_id}")


def backup_name(canonical: str, millis: int) -> str:
    """The name the GPU tool renames the incumbent to: ``<canonical>-nemoclaw-gpu-backup-<ms>``."""
    return f"{canonical}-nemoclaw-gpu-backup-{millis}"


def is_backup_name(name: str, canonical: str) -> bool:
    """True when ``name`` is ``<canonical>-nemoclaw-gpu-backup-<digits>``."""
    prefix = f"{canonical}-nemoclaw-gpu-backup-"
    rest = name[len(prefix):]
    return name.startswith(prefix) and rest.isdigit() and rest.isascii()
