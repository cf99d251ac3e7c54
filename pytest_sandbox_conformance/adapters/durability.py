"""Which of an in-process driver's changes to its state folder would survive a power loss.

A process crash keeps everything the kernel accepted; a power loss keeps only what was made
durable. POSIX makes a file's data durable with ``fsync`` of the file, and a change of a folder's
entries (a create, a rename, an unlink) durable with ``fsync`` of the folder. A driver that skips
either (``os.replace`` without the folder's fsync, a rename of an unsynced temporary file) passes
every crash test and loses its journal at the first power cut.

:class:`FolderWatch` follows one flat state folder (the journal's) and keeps its *durable image*:
the folder's entries as of its last fsync (name -> inode) and, per inode, the data and mode as
of the file's last fsync. :meth:`FolderWatch.power_loss` rewrites the folder to that image, the
worst case a power loss can leave: every rename, create or unlink since the folder's last fsync
is undone, and every file gets back the data of its last fsync (a file never fsynced comes back
empty, as delayed allocation leaves it).

How the watch learns of fsyncs: while at least one watch is open, :func:`os.fsync`,
:func:`os.fdatasync`, :func:`os.sync`, :func:`os.rename` and :func:`os.replace` are wrapped,
process-wide. An fsync wrapper calls the real function first and, only when it succeeded, tells
every open watch, which looks at the file descriptor's device and inode and ignores what is not
its folder's; a rename wrapper tells the watches of the attempt first (a rename into the folder
from outside it is noted even when it fails, across filesystems), then renames. Nothing a
driver calls behaves differently. ``pathlib`` and ``shutil`` call
these functions too. The last watch closed puts the originals back. A driver in another process,
or one that syncs through other means (``O_SYNC``, ``O_DSYNC``, ``msync``), cannot be watched:
``docs/scenarios.md`` (Checks, ``power-loss``) says what that leaves unchecked.

The watch also notes files renamed into the folder from outside it (a temporary file made in the
system's temp folder): the state-folder audit reports them (OWN-15: the journal's temporary file
lives beside it). Standard library only.
"""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

__all__ = ["FolderWatch"]

_LOCK = threading.Lock()
_WATCHES: list["FolderWatch"] = []
_ORIGINALS: dict[str, object] = {}


def _notify(method: str, *args: object) -> None:
    for watch in list(_WATCHES):
        try:
            getattr(watch, method)(*args)
        except OSError:
            pass  # a watch never makes the driver's call fail


def _install() -> None:
    real_fsync, real_fdatasync = os.fsync, os.fdatasync
    real_sync, real_rename, real_replace = os.sync, os.rename, os.replace
    _ORIGINALS.update(fsync=real_fsync, fdatasync=real_fdatasync, sync=real_sync,
                      rename=real_rename, replace=real_replace)

    def fsync(fd):
        real_fsync(fd)
        _notify("_synced", fd)

    def fdatasync(fd):
        real_fdatasync(fd)
        _notify("_synced", fd)

    def sync():
        real_sync()
        _notify("baseline")

    def rename(src, dst, *args, **kwargs):
        _notify("_renaming", src, dst)
        real_rename(src, dst, *args, **kwargs)

    def replace(src, dst, *args, **kwargs):
        _notify("_renaming", src, dst)
        real_replace(src, dst, *args, **kwargs)

    os.fsync, os.fdatasync, os.sync = fsync, fdatasync, sync
    os.rename, os.replace = rename, replace


def _uninstall() -> None:
    for name, fn in _ORIGINALS.items():
        setattr(os, name, fn)
    _ORIGINALS.clear()


class FolderWatch:
    """The durable image of one flat folder; see the module docstring."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder).resolve()
        st = os.stat(self.folder)
        self._dev = st.st_dev
        self._ino = st.st_ino
        #: The folder's entries as of its last fsync: name -> inode.
        self.entries: dict[str, int] = {}
        #: Per inode: (data, mode) as of the file's last fsync.
        self.data: dict[int, tuple[bytes, int]] = {}
        #: Files renamed into the folder from outside it, as "source -> name" (oldest first).
        self.foreign: list[str] = []
        self._open = True
        self.baseline()
        with _LOCK:
            if not _WATCHES:
                _install()
            _WATCHES.append(self)

    def close(self) -> None:
        if not self._open:
            return
        self._open = False
        with _LOCK:
            if self in _WATCHES:
                _WATCHES.remove(self)
            if not _WATCHES:
                _uninstall()

    # -- what the folder holds now ---------------------------------------------------------------

    def _listing(self) -> dict[str, os.stat_result]:
        out = {}
        for name in os.listdir(self.folder):
            try:
                out[name] = os.lstat(self.folder / name)
            except FileNotFoundError:
                continue
        return out

    def _read(self, path: Path) -> bytes:
        with open(path, "rb") as f:
            return f.read()

    def baseline(self) -> None:
        """Everything the folder holds now is durable (the suite's own writes, ``os.sync``)."""
        self.entries, self.data = {}, {}
        for name, st in self._listing().items():
            if stat.S_ISREG(st.st_mode):
                self.entries[name] = st.st_ino
                self.data[st.st_ino] = (self._read(self.folder / name), stat.S_IMODE(st.st_mode))

    # -- what the wrappers report ----------------------------------------------------------------

    def _synced(self, fd: int) -> None:
        st = os.fstat(fd)
        if st.st_dev != self._dev:
            return
        if stat.S_ISDIR(st.st_mode):
            if st.st_ino == self._ino:
                self.entries = {name: s.st_ino for name, s in self._listing().items()
                                if stat.S_ISREG(s.st_mode)}
            return
        if not stat.S_ISREG(st.st_mode):
            return
        path = self._path_of(fd, st.st_ino)
        if path is not None:
            self.data[st.st_ino] = (self._read(path), stat.S_IMODE(st.st_mode))

    def _path_of(self, fd: int, ino: int) -> Path | None:
        try:  # Linux: the descriptor's path
            path = Path(os.readlink(f"/proc/self/fd/{fd}"))
            if path.exists() and os.stat(path).st_ino == ino:
                return path
        except OSError:
            pass
        for name, st in self._listing().items():
            if st.st_ino == ino:
                return self.folder / name
        return None

    def _renaming(self, src: object, dst: object) -> None:
        """A rename into the folder is about to be tried (noted even if it then fails: the
        file was made outside the folder either way)."""
        try:
            src_path = Path(os.fsdecode(src)).absolute()
            dst_path = Path(os.fsdecode(dst)).absolute()
        except TypeError:
            return  # a descriptor-relative call: not this folder's
        inside = dst_path.parent.resolve() == self.folder
        if inside and src_path.parent.resolve() != self.folder:
            self.foreign.append(f"{src_path} -> {dst_path.name}")

    # -- the power goes ------------------------------------------------------------------------

    def power_loss(self) -> list[str]:
        """Rewrite the folder to its durable image; one line per change it undid."""
        undone: list[str] = []
        now = self._listing()
        for name, st in sorted(now.items()):
            if not stat.S_ISREG(st.st_mode):
                continue
            if name not in self.entries:
                os.unlink(self.folder / name)
                undone.append(f"{name}: gone (its folder was not fsynced after it appeared)")
        for name, ino in sorted(self.entries.items()):
            data, mode = self.data.get(ino, (b"", 0o600))
            path = self.folder / name
            current = now.get(name)
            same = (current is not None and current.st_ino == ino
                    and self._read(path) == data)
            if same:
                continue
            if current is None:
                why = "back (its unlink was not followed by an fsync of the folder)"
            elif current.st_ino != ino:
                why = ("the old file is back (the rename over it was not followed by an "
                       "fsync of the folder)")
            else:
                why = "its last fsynced data is back (later writes were not fsynced)"
            if ino not in self.data:
                why += "; empty: its data was never fsynced"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
            os.chmod(path, mode)
            undone.append(f"{name}: {why}")
        self.baseline()
        return undone
