"""What Docker refuses in a container's configuration, for the fake engine.

Docker checks a create request's host configuration before it makes anything (moby's
``verifyContainerSettings`` and the mount parser) and answers 400 (a malformed security option:
500). The fake refuses the same configurations with Docker's messages, so that a story step or a
driver that asks for something impossible fails on the fake as it would on Docker. Checked
against Docker 20.10 (``tests/test_engine_config.py`` runs the same tests on both).

Pure: the only question asked of the world is whether a bind's source exists, through the
function the fake engine is given.
"""

from __future__ import annotations

from typing import Callable

from .base import EngineError, EngineInvalid
from .spec import RESTART_POLICIES, ContainerSpec

__all__ = ["DEFAULT_NETWORKS", "LINUX_CAPABILITIES", "check_config"]

#: The networks every Docker engine has (``docker network ls`` on a fresh engine; ``default``
#: is what Docker 20.10 reports for a container created without a network mode).
DEFAULT_NETWORKS = frozenset({"none", "host", "bridge", "default"})

#: Every Linux capability Docker knows (``capability.List()``), without ``CAP_``.
LINUX_CAPABILITIES = frozenset({
    "AUDIT_CONTROL", "AUDIT_READ", "AUDIT_WRITE", "BLOCK_SUSPEND", "BPF", "CHECKPOINT_RESTORE",
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "IPC_LOCK", "IPC_OWNER",
    "KILL", "LEASE", "LINUX_IMMUTABLE", "MAC_ADMIN", "MAC_OVERRIDE", "MKNOD", "NET_ADMIN",
    "NET_BIND_SERVICE", "NET_BROADCAST", "NET_RAW", "PERFMON", "SETFCAP", "SETGID", "SETPCAP",
    "SETUID", "SYS_ADMIN", "SYS_BOOT", "SYS_CHROOT", "SYS_MODULE", "SYS_NICE", "SYS_PACCT",
    "SYS_PTRACE", "SYS_RAWIO", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "SYSLOG",
    "WAKE_ALARM"})

#: The keys of ``--security-opt key=value`` Docker knows (``no-new-privileges`` may stand alone).
_SECURITY_KEYS = frozenset({"label", "apparmor", "seccomp", "no-new-privileges", "systempaths",
                            "writable-cgroups"})
#: Docker's smallest memory limit (``--memory``).
_MIN_MEMORY = 6 * 1024 * 1024


def check_config(spec: ContainerSpec, path_exists: Callable[[str], bool]) -> None:
    """Raise what Docker answers a create with ``spec``'s configuration; nothing if it accepts."""
    _check_mounts(spec, path_exists)
    for which, names in (("CapAdd", spec.cap_add), ("CapDrop", spec.cap_drop)):
        for cap in names:
            if cap != "ALL" and cap not in LINUX_CAPABILITIES:
                raise EngineInvalid(f'invalid {which}: unknown capability: "CAP_{cap}"')
    for opt in spec.security_opt:
        if opt == "no-new-privileges":
            continue
        key, sep, _ = opt.replace(":", "=", 1).partition("=")
        if not sep:
            raise EngineError(f'invalid --security-opt 1: "{opt}"', status=500)
        if key not in _SECURITY_KEYS:
            raise EngineError(f'invalid --security-opt 2: "{opt}"', status=500)
    policy = spec.restart_policy or "no"
    if policy not in RESTART_POLICIES:
        raise EngineInvalid(f"invalid restart policy '{policy}'")
    if spec.restart_retries < 0:
        raise EngineInvalid("maximum retry count cannot be negative")
    if spec.restart_retries and policy != "on-failure":
        raise EngineInvalid(f"maximum retry count cannot be used with restart policy '{policy}'")
    if 0 < spec.memory < _MIN_MEMORY:
        raise EngineInvalid("Minimum memory limit allowed is 6MB")


def _check_mounts(spec: ContainerSpec, path_exists: Callable[[str], bool]) -> None:
    seen: set[str] = set()
    for m in spec.mounts:
        prefix = f'invalid mount config for type "{m.type}": '
        if not m.target.startswith("/"):
            raise EngineInvalid(prefix + f"invalid mount path: '{m.target}' mount path must be "
                                "absolute")
        if m.type == "bind":
            if not m.source.startswith("/"):
                raise EngineInvalid(prefix + f"invalid mount path: '{m.source}' mount path must "
                                    "be absolute")
            if not path_exists(m.source):
                raise EngineInvalid(prefix + f"bind source path does not exist: {m.source}")
        if m.target in seen:
            raise EngineInvalid(f"Duplicate mount point: {m.target}")
        seen.add(m.target)
