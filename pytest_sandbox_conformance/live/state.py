"""Where the runs of one pytest process keep drivers' state, and the sweep of dead processes'.

Each run gets a fresh state folder (its driver's journal); a process that is killed (SIGKILL, the
OOM killer, a CI cancel) cannot remove them. So the runs of one process put their folders inside
one **session state folder**, ``<root>/sbx-session-<pid>-<random>/``, holding an exclusive lock
on its ``.lock`` file while the process lives; a later process (any engine, any session) removes
every session state folder under the same root whose lock nobody holds. Folders of other
processes that are alive are left alone, and so is everything else under the root (``/dev/shm``
is shared).

Standard library only; no pytest.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
import time
from pathlib import Path

__all__ = ["PREFIX", "SessionState", "sweep_state"]

PREFIX = "sbx-session-"
LOCK = ".lock"
#: A folder without a lock file this old was left by a process killed while making it.
UNLOCKED_GRACE = 60.0


def lock_held(lock: Path) -> bool | None:
    """Whether a live process holds the ``flock`` of ``lock``: None when the file cannot be
    opened (gone, or never made). Taking the lock to find out releases it at once."""
    try:
        fd = os.open(lock, os.O_RDWR)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing the descriptor releases a lock taken above
    return False


def sweep_state(root: Path) -> list[Path]:
    """Remove the session state folders under ``root`` whose process is gone; return them."""
    removed = []
    try:
        entries = list(Path(root).glob(PREFIX + "*"))
        entries += [p for p in Path(root).glob(".making-*")
                    if time.time() - p.stat().st_mtime >= UNLOCKED_GRACE]
    except OSError:
        return removed
    for folder in entries:
        lock = folder / LOCK
        try:
            if not folder.is_dir() or folder.is_symlink():
                continue
            if lock.exists():
                if lock_held(lock):
                    continue
            elif time.time() - folder.stat().st_mtime < UNLOCKED_GRACE:
                continue  # not ours to judge yet (made by hand, or by another version)
        except OSError:
            continue
        shutil.rmtree(folder, ignore_errors=True)
        if not folder.exists():
            removed.append(folder)
    return removed


class SessionState:
    """This process's session state folder under ``root`` (made on first use)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.path: Path | None = None
        self._fd: int | None = None

    def open(self) -> Path:
        if self.path is None:
            self.root.mkdir(parents=True, exist_ok=True)
            name = f"{os.getpid()}-{secrets.token_hex(4)}"
            # Made under another name and renamed once locked: a sweep never sees it unlocked.
            making = self.root / f".making-{name}"
            making.mkdir(mode=0o700)
            fd = os.open(making / LOCK, os.O_CREAT | os.O_RDWR, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            path = self.root / f"{PREFIX}{name}"
            os.rename(making, path)
            self.path, self._fd = path, fd
        return self.path

    def close(self) -> None:
        """Remove the folder (and every run's state in it) and release the lock."""
        if self.path is not None:
            shutil.rmtree(self.path, ignore_errors=True)
            self.path = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
