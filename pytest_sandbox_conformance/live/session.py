"""Safety on a real engine: the suite only ever touches containers it created.

Every run of a scenario gets a driver namespace ``sbxc-<session>-<run>`` (the value of the
namespace label on every container the driver creates) and every container the suite itself
creates carries the label ``sandbox-conformance.session=<session>``. A session holds an exclusive
lock on ``<lock dir>/<session>.lock`` while it lives.

* At start the controller **sweeps** leftovers of earlier sessions that died (crashed, killed):
  containers whose session's lock file exists in the lock folder but is no longer held, and those
  lock files themselves (also the ones of dead sessions that left no container). Sessions it
  knows nothing about (another machine's, on a shared remote engine) are left alone, and so is
  every container without one of the suite's labels.
* Each run removes its containers when it ends (pass, failure or Ctrl-C), and the session removes
  whatever is left of it at the end, unless ``--sandbox-keep``. A session that cannot (its engine
  stopped answering) keeps its lock *file* when it ends (the lock itself is released with the
  process), so it is a dead session to the next one, whose sweep removes its containers.

Parallel workers (pytest-xdist) share the session id (from xdist's ``testrun_uid``) and use
distinct run namespaces, so they never see each other's containers. No pytest here.
"""

from __future__ import annotations

import fcntl
import os
import re
import secrets
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..engines.base import Container, Engine
from .state import lock_held

__all__ = ["SESSION_LABEL", "LiveSession", "SweepResult", "default_lock_dir"]

SESSION_LABEL = "sandbox-conformance.session"
NAMESPACE_PREFIX = "sbxc"
_NAMESPACE_RE = re.compile(rf"^{NAMESPACE_PREFIX}-([0-9a-f]{{8}})-[0-9a-f]{{8}}$")


def default_lock_dir() -> Path:
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(base) / f"sandbox-conformance-{os.getuid()}"


@dataclass
class SweepResult:
    removed: list[str] = field(default_factory=list)
    #: Containers of sessions this machine knows nothing about (left alone).
    foreign: int = 0
    #: The dead sessions whose containers or lock files were removed.
    sessions: list[str] = field(default_factory=list)
    #: Lock files of dead sessions removed.
    locks: int = 0


class LiveSession:
    """One pytest session's claim on a real engine."""

    def __init__(self, engine: Engine, namespace_key: str, session: str | None = None,
                 lock_dir: Path | None = None) -> None:
        self.engine = engine
        self.namespace_key = namespace_key
        self.session = (session or secrets.token_hex(4))[:8].lower()
        if not re.fullmatch(r"[0-9a-f]{8}", self.session):
            self.session = secrets.token_hex(4)
        self.lock_dir = lock_dir or default_lock_dir()
        self._lock_fd: int | None = None
        #: Which engine the session plays on, written into its lock file: the lock folder is
        #: the machine's, shared by sessions on other engines.
        self.engine_id = getattr(engine, "base_url", None) or engine.name

    @property
    def namespace_prefix(self) -> str:
        """What the runner prefixes each run's namespace with (``sbxc-<session>``)."""
        return f"{NAMESPACE_PREFIX}-{self.session}"

    def labels(self) -> dict[str, str]:
        """Labels the suite puts on every container it creates itself."""
        return {SESSION_LABEL: self.session}

    # -- the lock ---------------------------------------------------------------------------------

    def acquire(self) -> None:
        """Hold this session's lock (the controller does, for the whole session)."""
        self.lock_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.lock_dir / f"{self.session}.lock"
        while True:
            fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # a sweep removed the file between our open and our lock: again
        os.ftruncate(fd, 0)
        os.write(fd, f"engine {self.engine_id}\n".encode())
        self._lock_fd = fd

    def release(self, keep_file: bool = False) -> None:
        """Release the lock; remove the lock file unless ``keep_file`` (containers are left:
        the next session must see this one as dead and sweep them)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
            if not keep_file:
                try:
                    (self.lock_dir / f"{self.session}.lock").unlink()
                except OSError:
                    pass

    def _dead(self, session: str) -> bool:
        """True iff ``session`` ran on this machine and no process holds its lock any more."""
        return lock_held(self.lock_dir / f"{session}.lock") is False

    def _engine_of(self, session: str) -> str | None:
        """The engine a session's lock file names (None: an empty file, of an older version)."""
        try:
            text = (self.lock_dir / f"{session}.lock").read_text(errors="replace")
        except OSError:
            return None
        first = text.partition("\n")[0]
        return first[len("engine "):] if first.startswith("engine ") else None

    def _remove_lock_if_dead(self, session: str) -> bool:
        """Remove ``session``'s lock file if nobody holds it (unlinked while we hold it)."""
        path = self.lock_dir / f"{session}.lock"
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            path.unlink()
            return True
        except OSError:
            return False
        finally:
            os.close(fd)

    # -- what belongs to whom ---------------------------------------------------------------------

    def session_of(self, c: Container) -> str | None:
        if SESSION_LABEL in c.labels:
            return c.labels[SESSION_LABEL]
        m = _NAMESPACE_RE.match(c.labels.get(self.namespace_key, ""))
        return m.group(1) if m else None

    def _ours_or_suite(self) -> list[Container]:
        found = {c.id: c for c in self.engine.list({SESSION_LABEL: None})}
        for c in self.engine.list({self.namespace_key: None}):
            if _NAMESPACE_RE.match(c.labels.get(self.namespace_key, "")):
                found.setdefault(c.id, c)
        return list(found.values())

    def sweep(self) -> SweepResult:
        """Remove leftovers of dead sessions of this machine; count the others."""
        result = SweepResult()
        dead: dict[str, bool] = {}
        for c in self._ours_or_suite():
            session = self.session_of(c)
            if session is None or session == self.session:
                continue
            if session not in dead:
                dead[session] = self._dead(session)
            if dead[session]:
                result.removed.extend(self.engine.remove_all([c.id], force=True))
            else:
                result.foreign += 1
        # The lock files of the dead sessions swept here go, and those of dead sessions of this
        # engine that left no container (killed after their cleanup, or before they made any).
        # A dead session of another engine keeps its lock file: its containers are there, and a
        # session on that engine sweeps them.
        try:
            locks = sorted(p.stem for p in self.lock_dir.glob("*.lock"))
        except OSError:
            locks = []
        for session in locks:
            if session == self.session or not re.fullmatch(r"[0-9a-f]{8}", session):
                continue
            ours = dead.get(session) or (session not in dead
                                         and self._engine_of(session) == self.engine_id)
            if ours and self._remove_lock_if_dead(session):
                result.locks += 1
                if session not in result.sessions:
                    result.sessions.append(session)
        for session, was_dead in dead.items():
            if was_dead and session not in result.sessions:
                result.sessions.append(session)
        return result

    def leftovers(self) -> list[Container]:
        return [c for c in self._ours_or_suite() if self.session_of(c) == self.session]

    def cleanup(self) -> list[str]:
        """Remove every container of this session still there; :class:`EngineError` when the
        engine cannot be asked or refuses (then some may be left)."""
        return self.engine.remove_all([c.id for c in self.leftovers()], force=True)


# -- opening a real engine -------------------------------------------------------------------------

PODMAN_SOCKET = "unix:///run/podman/podman.sock"


def open_engine(kind: str, url: str | None, timeout: float = 60.0) -> Engine:
    """A real engine: ``docker`` (``url`` or DOCKER_HOST/context/default) or ``podman``
    (``url``, else ``CONTAINER_HOST``, else the rootful Podman API socket); ``timeout`` is the
    per-call timeout."""
    from ..engines.docker import DockerEngine

    if kind == "podman" and url is None:
        url = os.environ.get("CONTAINER_HOST") or PODMAN_SOCKET
    return DockerEngine(url, name=kind, timeout=timeout)

