"""What Podman's Docker-compatible API reports differently, and how it is read.

Podman 4.3 (Debian 12's) answers ``GET /containers/{id}/json`` in Docker's shape, but several
fields say something else than Docker would for the same container, and a clone made from them
as they stand either fails (an image volume reported as a bind of overlay storage is refused at
create: 500 "incorrect volume format") or differs from its source (capabilities, network,
environment). Each function here reads one such field back into the suite's model (what Docker
reports for the same container; for capabilities, what Podman's own create takes to make the
same container again); :func:`.dockerapi.from_inspect` applies them when the engine is Podman.
Each docstring quotes what Podman reported, seen with the containers of
``tests/test_engine_config.py`` and with containers made through Podman's own libpod API the way
OpenShell's Podman driver makes them (an image volume for its supervisor, a named volume, a
tmpfs, ``--cap-drop ALL`` and a few added, a network of its own).

Pure.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

from .spec import DOCKER_DEFAULT_CAPABILITIES, capability_name

__all__ = ["PODMAN_DEFAULT_CAPABILITIES", "capabilities", "environment", "init",
           "is_anonymous_volume", "is_image_overlay", "network_mode", "tmpfs_options"]

#: Podman's default capabilities (``default_capabilities`` in containers.conf since Podman 4.0):
#: Docker's without ``AUDIT_WRITE``, ``MKNOD`` and ``NET_RAW``.
PODMAN_DEFAULT_CAPABILITIES = DOCKER_DEFAULT_CAPABILITIES - {"AUDIT_WRITE", "MKNOD", "NET_RAW"}

#: The mount options Podman adds to every tmpfs it reports.
_TMPFS_ADDED = ("rw", "rprivate", "nosuid", "nodev", "tmpcopyup")

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def capabilities(cap_add: Iterable[str], cap_drop: Iterable[str]) -> tuple[list[str], list[str]]:
    """``cap_add``/``cap_drop`` relative to Podman's own default set.

    Podman reports both relative to *Docker's* default set, whatever its own: a container that
    asked for nothing reports ``CapDrop: [AUDIT_WRITE, MKNOD, NET_RAW]`` (the three Docker has by
    default and Podman does not), ``--cap-drop ALL --cap-add SYS_ADMIN`` reports
    ``CapAdd: [SYS_ADMIN]`` and all fourteen of Docker's defaults dropped, and an added
    ``NET_RAW`` is reported nowhere (Docker has it by default). Taken as they stand, a clone
    would lose that ``NET_RAW``. Read back: the effective set is Docker's defaults, less the
    dropped, plus the added (libpod's ``EffectiveCaps`` agrees); what is added to and dropped
    from :data:`PODMAN_DEFAULT_CAPABILITIES` to get it is what Podman's create takes. ``ALL``
    comes back as the list of Podman's defaults not kept.
    """
    add = {capability_name(c) for c in cap_add}
    drop = {capability_name(c) for c in cap_drop}
    effective = (DOCKER_DEFAULT_CAPABILITIES - drop) | add
    return sorted(effective - PODMAN_DEFAULT_CAPABILITIES), sorted(
        PODMAN_DEFAULT_CAPABILITIES - effective)


def environment(env: Mapping[str, str], hostname: str) -> dict[str, str]:
    """The environment without the ``HOSTNAME`` Podman adds: it reports ``HOSTNAME=<hostname>``
    in ``Config.Env`` of every container (``PATH``, ``TERM=xterm`` and ``container=podman`` too,
    which are harmless to copy and kept); a clone given that value would carry its source's
    hostname in its environment."""
    out = dict(env)
    if out.get("HOSTNAME") == hostname:
        del out["HOSTNAME"]
    return out


def is_image_overlay(mount: Mapping[str, Any], image_targets: set[Any]) -> bool:
    """Whether a reported bind is the overlay behind an image volume.

    An image volume (libpod's ``image_volumes``, ``--mount type=image``) is reported twice in
    ``Mounts``: as ``{"Type": "image", "Source": "<image>", ...}`` and as a bind of
    ``/var/lib/containers/storage/overlay-containers/<id>/userdata/overlay/<n>/merge`` at the same
    destination (also in ``HostConfig.Binds``, with ``lowerdir=...`` options). That bind exists
    only while the source runs, and Podman refuses it in a create. The image mount is kept.
    """
    source = str(mount.get("Source") or "")
    return mount.get("Destination") in image_targets and "/userdata/overlay/" in source


def is_anonymous_volume(name: str) -> bool:
    """Podman lists anonymous volumes in ``HostConfig.Binds`` like named ones
    (``<64 hex>:/data:rw,rprivate,nosuid,nodev,rbind``), so only the name tells them apart: it
    names them with 64 hex digits."""
    return bool(_HEX64.match(name))


def network_mode(mode: str, settings: Mapping[str, Any]) -> str:
    """The network a container is on. Podman reports ``NetworkMode: "bridge"`` for a container
    on *any* bridge network, its default network ``podman`` or one of its own (OpenShell's
    driver makes one); the name is only in ``NetworkSettings.Networks``. A clone on ``bridge``
    would join Podman's default network instead. Read back: the network's name, ``bridge`` for
    Podman's default one (which its compatible API calls ``bridge``)."""
    networks = list((settings.get("Networks") or {}).keys())
    if mode == "bridge" and len(networks) == 1 and networks[0] != "podman":
        return networks[0]
    return mode


def init(value: bool | None) -> bool | None:
    """Podman reports ``Init: null`` for ``--init=false``: read as the default."""
    return value or None


def tmpfs_options(options: str) -> str:
    """A tmpfs's options as given: Podman reports ``size=1m`` as
    ``size=1m,rw,rprivate,nosuid,nodev,tmpcopyup``."""
    return ",".join(o for o in options.split(",") if o and o not in _TMPFS_ADDED)
