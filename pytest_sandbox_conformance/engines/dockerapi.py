"""Docker's Engine API JSON, both ways: a create request from a spec, a container from inspect.

:func:`create_body` writes the body of ``POST /containers/create`` for a
:class:`~.spec.ContainerSpec`, every field of its configuration included; :func:`from_inspect`
reads ``GET /containers/{id}/json`` back into a :class:`~.spec.Container`. On Podman's
Docker-compatible API both go through the quirks in :mod:`.podman`, so a container reads the
same from either engine wherever the engines agree on what it is.

Pure: dictionaries in, dictionaries or values out; :class:`~.docker.DockerEngine` sends them.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Mapping

from . import podman
from .spec import Container, ContainerSpec, DeviceRequest, Mount

__all__ = ["create_body", "from_inspect", "parse_env"]

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def parse_env(entries: list[str] | None) -> dict[str, str]:
    env: dict[str, str] = {}
    for entry in entries or ():
        key, _, value = entry.partition("=")
        env[key] = value
    return env


def _device_request(raw: Mapping[str, Any]) -> DeviceRequest:
    return DeviceRequest(
        driver=raw.get("Driver") or "",
        count=raw.get("Count") or 0,
        device_ids=tuple(raw.get("DeviceIDs") or ()),
        capabilities=tuple(tuple(c) for c in raw.get("Capabilities") or ()),
        options=dict(raw.get("Options") or {}),
    )


# -- spec -> create request ----------------------------------------------------------------------


def _mount_json(m: Mount, *, is_podman: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"Type": m.type, "Target": m.target}
    if m.source:
        out["Source"] = m.source
    if m.read_only and not (is_podman and m.type == "image"):
        # Podman: an image mount is read-only already, and "ReadOnly" is refused for it
        # (500 "fill out specgen: ro: invalid mount option").
        out["ReadOnly"] = True
    return out


def create_body(spec: ContainerSpec, *, is_podman: bool = False) -> dict[str, Any]:
    """The JSON body of ``POST /containers/create?name=...`` for ``spec``.

    Bind, volume and image mounts go in ``HostConfig.Mounts`` (``--mount``: a missing bind source
    is refused, not created), tmpfs mounts in ``HostConfig.Tmpfs`` (``--tmpfs``, where both
    engines report them); a ``network_mode`` of ``""`` is ``none``.
    """
    host: dict[str, Any] = {
        "NetworkMode": spec.network_mode or "none",
        "Privileged": spec.privileged,
        "RestartPolicy": {"Name": spec.restart_policy or "no",
                          "MaximumRetryCount": spec.restart_retries},
    }
    mounts = [_mount_json(m, is_podman=is_podman) for m in spec.mounts if m.type != "tmpfs"]
    if mounts:
        host["Mounts"] = mounts
    tmpfs = {m.target: m.options for m in spec.mounts if m.type == "tmpfs"}
    if tmpfs:
        host["Tmpfs"] = tmpfs
    optional = {
        "CapAdd": list(spec.cap_add), "CapDrop": list(spec.cap_drop),
        "SecurityOpt": list(spec.security_opt), "ExtraHosts": list(spec.extra_hosts),
        "Runtime": spec.runtime, "NanoCpus": spec.nano_cpus, "Memory": spec.memory,
        "DeviceRequests": [
            {"Driver": r.driver, "Count": r.count, "DeviceIDs": list(r.device_ids),
             "Capabilities": [list(c) for c in r.capabilities], "Options": dict(r.options)}
            for r in spec.device_requests],
    }
    host.update({key: value for key, value in optional.items() if value})
    if spec.init is not None:
        host["Init"] = spec.init
    body: dict[str, Any] = {
        "Image": spec.image,
        "Labels": dict(spec.labels),
        "Tty": spec.tty,
        "OpenStdin": spec.stdin_open,
        "HostConfig": host,
    }
    optional = {
        "Cmd": list(spec.command), "Entrypoint": list(spec.entrypoint),
        "Env": [f"{k}={v}" for k, v in spec.env.items()], "User": spec.user,
        "WorkingDir": spec.working_dir, "Hostname": spec.hostname,
    }
    body.update({key: value for key, value in optional.items() if value})
    return body


# -- inspect -> container ------------------------------------------------------------------------


def _explicit_volumes(host: Mapping[str, Any]) -> set[str]:
    """The volume names a create request named (``-v name:/path``, ``--mount source=name``):
    the volumes in inspect's ``Mounts`` that are not among them are anonymous."""
    names = {str(entry).split(":", 1)[0] for entry in host.get("Binds") or ()}
    names |= {m.get("Source") or "" for m in host.get("Mounts") or ()}
    return {n for n in names if n and not n.startswith("/")}


def _mounts(raw: Mapping[str, Any], *, is_podman: bool) -> tuple[Mount, ...]:
    host = raw.get("HostConfig") or {}
    entries = list(raw.get("Mounts") or ())
    named = _explicit_volumes(host)
    image_targets = {m.get("Destination") for m in entries if m.get("Type") == "image"}
    out: dict[str, Mount] = {}
    for m in entries:
        kind, target = m.get("Type"), m.get("Destination") or ""
        read_only = not m.get("RW", True)
        if kind == "bind":
            if is_podman and podman.is_image_overlay(m, image_targets):
                continue
            out[target] = Mount(target, "bind", m.get("Source") or "", read_only)
        elif kind == "volume":
            name = m.get("Name") or ""
            anonymous = (podman.is_anonymous_volume(name) if is_podman
                         else name not in named and bool(_HEX64.match(name)))
            out[target] = Mount(target, "volume", "" if anonymous else name, read_only)
        elif kind == "image":
            out[target] = Mount(target, "image", m.get("Source") or "", read_only)
        elif kind == "tmpfs":
            out[target] = Mount(target, "tmpfs", "", read_only)
    for target, options in (host.get("Tmpfs") or {}).items():
        if is_podman:
            options = podman.tmpfs_options(options)
        out[target] = Mount(target, "tmpfs", "", False, options or "")
    return tuple(out.values())


def from_inspect(raw: Mapping[str, Any], *, parse_created: Callable[[str], int],
                 runtime: Callable[[str | None], str | None],
                 is_podman: bool = False) -> Container:
    """A :class:`Container` from an inspect answer, through :mod:`.podman`'s readings on Podman.
    ``parse_created`` reads the creation time; ``runtime`` maps the reported runtime to ``None``
    for the engine's default."""
    config = raw.get("Config") or {}
    host = raw.get("HostConfig") or {}
    hostname = config.get("Hostname") or ""
    env = parse_env(config.get("Env"))
    cap_add = [str(c) for c in host.get("CapAdd") or ()]
    cap_drop = [str(c) for c in host.get("CapDrop") or ()]
    network_mode = host.get("NetworkMode") or ""
    init = host.get("Init")
    if is_podman:
        env = podman.environment(env, hostname)
        cap_add, cap_drop = podman.capabilities(cap_add, cap_drop)
        network_mode = podman.network_mode(network_mode, raw.get("NetworkSettings") or {})
        init = podman.init(init)
    policy = host.get("RestartPolicy") or {}
    return Container(
        id=raw["Id"],
        name=(raw.get("Name") or "").lstrip("/"),
        image=config.get("Image") or raw.get("Image", ""),
        state=(raw.get("State") or {}).get("Status", ""),
        labels=config.get("Labels") or {},
        created=parse_created(raw["Created"]),
        command=tuple(config.get("Cmd") or ()),
        entrypoint=tuple(config.get("Entrypoint") or ()),
        env=env,
        user=config.get("User") or "",
        working_dir=config.get("WorkingDir") or "",
        hostname=hostname,
        tty=bool(config.get("Tty")),
        stdin_open=bool(config.get("OpenStdin")),
        mounts=_mounts(raw, is_podman=is_podman),
        cap_add=tuple(cap_add),
        cap_drop=tuple(cap_drop),
        security_opt=tuple(host.get("SecurityOpt") or ()),
        privileged=bool(host.get("Privileged")),
        network_mode=network_mode,
        extra_hosts=tuple(host.get("ExtraHosts") or ()),
        restart_policy=policy.get("Name") or "no",
        restart_retries=int(policy.get("MaximumRetryCount") or 0),
        init=init,
        device_requests=tuple(_device_request(r) for r in host.get("DeviceRequests") or ()),
        runtime=runtime(host.get("Runtime")),
        nano_cpus=int(host.get("NanoCpus") or 0),
        memory=int(host.get("Memory") or 0),
    )
