"""The spec of a clone: ``docker run`` again with every flag of an inspected container.

A GPU tool (NemoClaw) replaces a sandbox's container by stopping it and running a copy of it,
with a GPU added. A copy that is really a copy must start like the original: a driver's
container has its supervisor as entrypoint, bind mounts, an environment, capabilities, security
options, a network. :func:`clone_spec` turns what ``inspect`` reported (engines report it in one
shape, Podman's differences already smoothed by the engine) into the spec of such a copy, with
only the edits asked for. Every engine shares it; the runner's ``clone`` step uses it.

Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, Iterable, Mapping

from .spec import Container, ContainerConfig, ContainerSpec, DeviceRequest

__all__ = ["clone_spec"]


def _edited(base: Mapping[str, str], edits: Mapping[str, str | None] | None) -> dict[str, str]:
    out = dict(base)
    for key, value in (edits or {}).items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def _own_hostname(source: Container) -> str:
    """The hostname to copy: ``""`` (the engine's default) when the source has the default one
    (its short id, as Docker and Podman name a container's host) or shares another's."""
    mode = source.network_mode
    if mode == "host" or mode.startswith("container:"):
        return ""
    if source.hostname == source.short_id:
        return ""
    return source.hostname


def clone_spec(source: Container, *, name: str,
               labels: Mapping[str, str | None] | None = None,
               env: Mapping[str, str | None] | None = None,
               add_device_requests: Iterable[DeviceRequest] = (),
               **changes: Any) -> ContainerSpec:
    """The spec that recreates ``source`` (an *inspected* container, not a ``list`` summary)
    under ``name``, as ``docker run`` would with every flag of the original.

    Copied as they are: the image, labels, and every :class:`~.spec.ContainerConfig` field
    (entrypoint, command, environment, user, working directory, tty and stdin, mounts,
    capabilities, security options, privileged, network mode, extra hosts, restart policy,
    init, device requests, runtime, CPU and memory limits). Two are copied as ``docker run``
    would see them: the hostname only when the source had one of its own (not the engine's
    default, its short id, and not in a network mode that shares another's), and anonymous
    volumes stay anonymous, so the clone gets fresh ones (named volumes and binds are shared).

    The edits: ``labels`` and ``env`` set each key to its value, or remove it where the value
    is ``None``; ``add_device_requests`` are appended to the source's (a GPU added, each request
    once); ``changes`` set any other :class:`~.spec.ContainerConfig` field outright (for example
    ``runtime="nvidia"``). Nothing else differs from the source.
    """
    if not source.id:
        raise ValueError("clone_spec needs an inspected container")
    known = {f.name for f in fields(ContainerConfig)}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise TypeError(f"clone_spec: not container fields: {', '.join(unknown)}")
    config = source.config()
    config["hostname"] = _own_hostname(source)
    requests = list(source.device_requests)
    for request in add_device_requests:
        if request not in requests:
            requests.append(request)
    config["device_requests"] = tuple(requests)
    config["env"] = _edited(source.env, env)
    config.update(changes)
    return ContainerSpec(name=name, image=source.image, labels=_edited(source.labels, labels),
                         **config)
