"""The image sandboxes run on a real engine: check it is there, or make it locally.

The suite needs an image with ``sleep`` (and a shell for debugging) and nothing else. Machines
without a registry cannot pull one, so :func:`make_busybox_image` builds it from a static busybox
on the host, the way ``docker import`` would (``sandbox-conformance make-image``)::

    apt-get install busybox-static          # Debian/Ubuntu: a static /bin/busybox
    sandbox-conformance make-image          # -> sbx-busybox:local on the current engine

Both functions take a :class:`~.docker.DockerEngine` (or a Docker SDK client) and raise only
:class:`~.base.EngineError` and its subclasses.
"""

from __future__ import annotations

import io
import shutil
import struct
import tarfile
from pathlib import Path
from typing import Any

from .base import EngineError, EngineNotFound

__all__ = ["APPLETS", "DEFAULT_IMAGE", "ImageMissing", "busybox_rootfs_tar", "ensure_image",
           "find_static_busybox", "is_static_elf", "make_busybox_image"]

#: The image the suite runs sandboxes from by default (the ``--sandbox-image`` option).
DEFAULT_IMAGE = "sbx-busybox:local"
#: The busybox applets linked into the image's ``/bin``.
APPLETS = ("sh", "sleep", "cat", "echo", "ls", "env", "head", "grep", "true")
#: The image's default command, so a bare ``docker run IMAGE`` stays up (drivers pass their own).
DEFAULT_COMMAND = ("sleep", "2147483647")
#: Where a static busybox usually lives (Debian's busybox-static, Alpine's busybox-static).
BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox", "/bin/busybox.static",
                      "/usr/bin/busybox.static")


class ImageMissing(EngineNotFound):
    """The image is not on the engine and could not be pulled; the message says how to make it."""


def _client(engine_or_client: Any) -> tuple[Any, Any]:
    """``(low-level APIClient, error-mapping context factory)`` for an engine or an SDK client."""
    from .docker import DockerEngine, map_docker_errors  # noqa: PLC0415

    if isinstance(engine_or_client, DockerEngine):
        engine = engine_or_client
        return engine.api, lambda op: engine._call(op)  # noqa: SLF001 - counted like the rest
    api = getattr(engine_or_client, "api", engine_or_client)  # docker.DockerClient -> .api
    if not hasattr(api, "inspect_image"):
        raise TypeError(f"expected a DockerEngine or a Docker SDK client, got {engine_or_client!r}")
    return api, lambda op: map_docker_errors(f"the Docker engine at {api.base_url}")


def how_to_make(ref: str) -> str:
    """The instructions an error about a missing image gives."""
    option = "" if ref == DEFAULT_IMAGE else f" --ref {ref}"
    return (f"create it on this engine with:\n"
            f"    apt-get install busybox-static   # or any static busybox: --busybox PATH\n"
            f"    sandbox-conformance make-image{option}\n"
            f"(same engine: DOCKER_HOST or the current docker context), or load an image that has "
            f"/bin/sleep under that name (docker load / docker tag)")


def ensure_image(engine_or_client: Any, ref: str = DEFAULT_IMAGE, *, pull: bool = True) -> str:
    """Make sure ``ref`` is on the engine; return its image ID.

    When it is absent, try to pull it (unless ``pull`` is false); when that fails too, raise
    :class:`ImageMissing` (an :class:`~.base.EngineError`) saying exactly how to create it.
    """
    api, mapped = _client(engine_or_client)
    try:
        with mapped("inspect_image"):
            return api.inspect_image(ref)["Id"]
    except EngineNotFound:
        pass
    why = "pulling was not tried"
    if pull:
        why = _pull(api, mapped, ref)
        if why is None:
            with mapped("inspect_image"):
                return api.inspect_image(ref)["Id"]
    raise ImageMissing(f"the image {ref} is not on the engine at {api.base_url} and could not be "
                       f"pulled ({why}); {how_to_make(ref)}")


def _pull(api: Any, mapped: Any, ref: str) -> str | None:
    """Pull ``ref``; ``None`` when the image is there afterwards, else why not."""
    from docker.utils import parse_repository_tag  # noqa: PLC0415

    repository, tag = parse_repository_tag(ref)
    errors: list[str] = []
    try:
        with mapped("pull"):
            for event in api.pull(repository, tag=tag or "latest", stream=True, decode=True):
                if isinstance(event, dict) and event.get("error"):
                    errors.append(str(event["error"]))
    except EngineError as exc:
        return str(exc)
    if errors:
        return "; ".join(errors)
    try:
        with mapped("inspect_image"):
            api.inspect_image(ref)
    except EngineNotFound:
        return "the pull ended without the image"
    return None


def is_static_elf(path: str | Path) -> bool:
    """True for an ELF executable with no program interpreter (it runs in an empty image)."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if len(head) < 52 or head[:4] != b"\x7fELF":
                return False
            is64, endian = head[4] == 2, "<" if head[5] == 1 else ">"
            if is64:
                phoff, = struct.unpack_from(endian + "Q", head, 32)
                phentsize, phnum = struct.unpack_from(endian + "HH", head, 54)
            else:
                phoff, = struct.unpack_from(endian + "I", head, 28)
                phentsize, phnum = struct.unpack_from(endian + "HH", head, 42)
            f.seek(phoff)
            table = f.read(phentsize * phnum)
    except OSError:
        return False
    for i in range(phnum):
        p_type, = struct.unpack_from(endian + "I", table, i * phentsize)
        if p_type == 3:  # PT_INTERP: needs a dynamic loader the image does not have
            return False
    return True


def find_static_busybox(preferred: str | Path | None = None) -> Path:
    """A static busybox: ``preferred`` if given (it must be static), else the usual places."""
    if preferred is not None:
        path = Path(preferred)
        if not path.is_file():
            raise EngineError(f"no busybox at {path}: install busybox-static "
                              "(apt-get install busybox-static) or pass --busybox PATH", status=400)
        if not is_static_elf(path):
            raise EngineError(f"{path} is not a statically linked executable, so it cannot run in "
                              "an image with no libraries: install busybox-static (apt-get install "
                              "busybox-static gives a static /bin/busybox) or pass --busybox PATH",
                              status=400)
        return path
    found = [c for c in (*BUSYBOX_CANDIDATES, shutil.which("busybox")) if c]
    for candidate in dict.fromkeys(found):
        if Path(candidate).is_file() and is_static_elf(candidate):
            return Path(candidate)
    raise EngineError("no static busybox found (looked at " + ", ".join(dict.fromkeys(found))
                      + "): install busybox-static (apt-get install busybox-static) or pass "
                      "--busybox PATH", status=400)


def busybox_rootfs_tar(busybox: str | Path, applets: tuple[str, ...] = APPLETS) -> bytes:
    """A root file system as a tar: ``/bin/busybox``, a link per applet, and ``/tmp``."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add_dir(name: str, mode: int) -> None:
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, mode
            tar.addfile(info)

        add_dir("bin", 0o755)
        add_dir("tmp", 0o1777)
        data = Path(busybox).read_bytes()
        info = tarfile.TarInfo("bin/busybox")
        info.size, info.mode = len(data), 0o755
        tar.addfile(info, io.BytesIO(data))
        for applet in applets:
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname, link.mode = tarfile.SYMTYPE, "busybox", 0o777
            tar.addfile(link)
    return buf.getvalue()


def make_busybox_image(ref: str = DEFAULT_IMAGE, busybox: str | Path | None = "/bin/busybox", *,
                       engine: Any = None) -> str:
    """Build ``ref`` from a static busybox and import it into the engine; return its image ID.

    The equivalent of ``tar -C root -c . | docker import --change 'CMD [...]' - REF`` with
    ``root/bin`` holding busybox and a link per applet in :data:`APPLETS`. ``busybox`` is the
    binary to use (the default, ``/bin/busybox``, falls back to the other usual places when it
    is missing or dynamically linked; ``None`` searches them all). ``engine`` is a DockerEngine
    or a Docker SDK client; by default a :class:`~.docker.DockerEngine` on the current endpoint.
    The image has no labels and no environment, so containers carry only what they were given.
    """
    if busybox is None or (str(busybox) == "/bin/busybox" and not is_static_elf(busybox)):
        path = find_static_busybox()
    else:
        path = find_static_busybox(busybox)
    owned = engine is None
    if owned:
        from .docker import DockerEngine  # noqa: PLC0415

        engine = DockerEngine()
    try:
        api, mapped = _client(engine)
        from docker.utils import parse_repository_tag  # noqa: PLC0415

        repository, tag = parse_repository_tag(ref)
        command = ", ".join(f'"{part}"' for part in DEFAULT_COMMAND)
        # The tag travels inside ``repo`` (``repo=name:tag``, no ``tag`` parameter): Docker
        # accepts both forms, Podman 4.3's compatible API ignores a separate ``tag`` (it would
        # make ``name:latest``).
        with mapped("import_image"):
            api.import_image_from_data(busybox_rootfs_tar(path),
                                       repository=f"{repository}:{tag or 'latest'}",
                                       changes=[f"CMD [{command}]"])
        with mapped("inspect_image"):
            return api.inspect_image(ref)["Id"]
    finally:
        if owned:
            engine.close()
