"""The ownership journal (contract OWN-15, OWN-16): one small JSON file per sandbox.

* **Owner-only**: the folder is 0700, every file 0600 (created with that mode, never widened).
* **Atomic**: write a temporary file in the same folder, fsync it, ``os.replace`` it over the
  journal, fsync the folder. A crash at any point leaves the old or the new journal, never a torn
  one; leftover temporary files are ignored and swept on load.
* **Versioned and identity-checked**: ``{"version": 1, "sandbox_id", "name", "namespace", ...}``;
  a file whose version, sandbox id (it must match the file name) or namespace is wrong is
  *foreign*, one that does not parse is *corrupt*: both load as an untrusted record, which the
  decision procedure fails closed on (``ContainerOwnershipUnresolved``).
* **Write failures** raise :class:`JournalWriteError`; the driver reports
  ``ContainerOwnershipPersistFailed`` and changes nothing in memory.

Crash injection: every step of a write calls ``self.crash_hook(step)`` first, with ``step`` one of
:data:`WRITE_STEPS`; a test installs a hook that raises at the step it wants to crash at.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import quote, unquote

from .state import Intent, Record

__all__ = ["FORMAT_VERSION", "WRITE_STEPS", "Journal", "JournalWriteError"]

FORMAT_VERSION = 1
SUFFIX = ".json"
TMP_MARK = ".tmp-"

#: The points of a write a crash can be injected at, in order.
WRITE_STEPS = (
    "open-temp",        # nothing written yet
    "write-partial",    # half of the bytes are in the temporary file
    "fsync-temp",       # the temporary file is complete but not yet synced
    "rename",           # the temporary file is synced; the journal is still the old one
    "fsync-dir",        # renamed: the journal is the new one, the folder not yet synced
)


class JournalWriteError(OSError):
    """Persisting a journal change failed; the caller must not act on the change."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Journal:
    """The journal folder of one driver namespace."""

    def __init__(self, folder: str | os.PathLike[str], namespace: str) -> None:
        self.folder = Path(folder)
        self.namespace = namespace
        self.crash_hook: Callable[[str], None] = lambda step: None
        #: How many journal files were written (benchmarks check that idle passes write nothing).
        self.writes = 0
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        mode = stat.S_IMODE(self.folder.stat().st_mode)
        if mode & 0o077:
            os.chmod(self.folder, 0o700)

    # -- paths ---------------------------------------------------------------------------------

    def path_for(self, sandbox_id: str) -> Path:
        return self.folder / (quote(sandbox_id, safe="") + SUFFIX)

    @staticmethod
    def _sandbox_id_of(path: Path) -> str:
        return unquote(path.name[: -len(SUFFIX)])

    # -- reading -------------------------------------------------------------------------------

    def load_all(self) -> Iterator[Record]:
        """Every journaled sandbox, sorted by sandbox id; untrusted ones marked as such."""
        # A temporary file is ``<journal>.tmp-<pid>``: it never ends with SUFFIX, while every
        # journal does, even one whose sandbox id contains TMP_MARK (quote() keeps "." and "-").
        for tmp in self.folder.glob("*" + TMP_MARK + "*"):
            if tmp.name.endswith(SUFFIX):
                continue
            try:
                tmp.unlink()  # an interrupted write: the journal beside it is intact
            except OSError:
                pass
        paths = sorted(p for p in self.folder.iterdir() if p.name.endswith(SUFFIX))
        for path in paths:
            yield self.load(path)

    def load(self, path: Path) -> Record:
        sandbox_id = self._sandbox_id_of(path)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            return Record(sandbox_id, "", self.namespace,
                          untrusted=f"journal {path} is unreadable: {exc.strerror or exc}")
        try:
            data = json.loads(raw)
            return self._parse(data, sandbox_id, path)
        except (ValueError, KeyError, TypeError) as exc:
            return Record(sandbox_id, "", self.namespace,
                          untrusted=f"journal {path} is corrupt or foreign: {exc}")

    def _parse(self, data: object, sandbox_id: str, path: Path) -> Record:
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        # type() check: JSON true (and 1.0) compare equal to 1 but are not this format's version.
        if type(data.get("version")) is not int or data["version"] != FORMAT_VERSION:
            raise ValueError(f"version {data.get('version')!r}, expected {FORMAT_VERSION}")
        if data["sandbox_id"] != sandbox_id:
            raise ValueError(f"it belongs to sandbox {data['sandbox_id']!r}, not {sandbox_id!r}")
        if data["namespace"] != self.namespace:
            raise ValueError(f"it belongs to namespace {data['namespace']!r}, "
                             f"not {self.namespace!r}")
        name = data["name"]
        authority, generation = data["authority"], data["generation"]
        retired = data["retired"]
        if not isinstance(name, str) or not name:
            raise ValueError("name must be a non-empty string")
        for value, field_name in ((authority, "authority"), (generation, "generation")):
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"{field_name} must be a non-empty string or null")
        if not isinstance(retired, list) or not all(isinstance(r, str) and r for r in retired):
            raise ValueError("retired must be a list of container IDs")
        intent = data["intent"]
        return Record(sandbox_id, name, self.namespace, authority, generation, tuple(retired),
                      Intent.from_json(intent) if intent is not None else None)

    # -- writing -------------------------------------------------------------------------------

    @staticmethod
    def encode(record: Record) -> bytes:
        body = {
            "version": FORMAT_VERSION,
            "sandbox_id": record.sandbox_id,
            "name": record.name,
            "namespace": record.namespace,
            "authority": record.authority,
            "generation": record.generation,
            "retired": list(record.retired),
            "intent": record.intent.to_json() if record.intent else None,
        }
        return json.dumps(body, sort_keys=True, indent=1).encode() + b"\n"

    def write(self, record: Record) -> None:
        """Persist ``record`` atomically; raise :class:`JournalWriteError` if that failed."""
        if record.untrusted:
            raise JournalWriteError(errno.EPERM, "refusing to overwrite an untrusted journal")
        final = self.path_for(record.sandbox_id)
        tmp = final.with_name(f"{final.name}{TMP_MARK}{os.getpid()}")
        data = self.encode(record)
        hook = self.crash_hook
        try:
            hook("open-temp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                half = len(data) // 2
                os.write(fd, data[:half])
                hook("write-partial")
                _write_all(fd, data[half:])
                hook("fsync-temp")
                os.fsync(fd)
            finally:
                os.close(fd)
            hook("rename")
            os.replace(tmp, final)
            hook("fsync-dir")
            _fsync_dir(self.folder)
        except OSError as exc:
            _unlink_quietly(tmp)
            raise JournalWriteError(exc.errno, f"cannot persist journal {final}: "
                                               f"{exc.strerror or exc}") from exc
        self.writes += 1

    def forget(self, sandbox_id: str) -> None:
        """Remove a sandbox's journal (after an explicit delete). Missing is fine."""
        path = self.path_for(sandbox_id)
        try:
            path.unlink()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise JournalWriteError(exc.errno, f"cannot remove journal {path}: "
                                               f"{exc.strerror or exc}") from exc
        _fsync_dir(self.folder)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass
