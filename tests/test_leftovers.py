"""What a killed session leaves, and the later session that cleans it up (no engine needed: the
live session's bookkeeping runs on the fake engine; ``tests/test_live_outage.py`` does it for
real).

* state folders: each process keeps its runs' state under one session state folder holding a
  lock; a SIGKILLed process's folder is swept by the next process, a live one's never;
* lock files: a dead session's lock file goes at the next sweep of its engine (the file names
  it), also when it left no container (SIGKILL after its cleanup, SIGINT then SIGTERM); a
  session on another engine leaves it (and its containers there) alone; a session that could not
  remove its containers keeps its lock file, so the next sweep removes them.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
from pathlib import Path

from pytest_sandbox_conformance.engines.base import ContainerSpec
from pytest_sandbox_conformance.engines.fake import FakeEngine
from pytest_sandbox_conformance.live import SESSION_LABEL, LiveSession
from pytest_sandbox_conformance.live.state import PREFIX, SessionState, sweep_state
from reference_driver.naming import LabelKeys

ROOT = Path(__file__).resolve().parent.parent
NS = LabelKeys().namespace


def _killed_holder(code: str) -> str:
    """Run ``code`` in a process that prints one line, then SIGKILL it; return the line."""
    proc = subprocess.Popen([sys.executable, "-c", code + "\nimport time\ntime.sleep(60)"],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        line = proc.stdout.readline().strip()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        proc.stdout.close()
    return line


def test_a_killed_processs_state_folder_is_swept_and_a_live_ones_is_not(tmp_path):
    dead = Path(_killed_holder(
        "from pathlib import Path\nfrom pytest_sandbox_conformance.live.state import "
        f"SessionState\np = SessionState(Path({str(tmp_path)!r})).open()\n"
        "(p / 'sbx-state-run' / 'journal').mkdir(parents=True)\nprint(p, flush=True)"))
    assert dead.is_dir() and dead.name.startswith(PREFIX)
    mine = SessionState(tmp_path)
    alive = mine.open()
    (tmp_path / "sbx-state-from-an-older-version").mkdir()  # not ours to judge
    (tmp_path / "unrelated").mkdir()
    assert sweep_state(tmp_path) == [dead]
    assert not dead.exists() and alive.is_dir()
    assert {p.name for p in tmp_path.iterdir()} == {alive.name, "sbx-state-from-an-older-version",
                                                   "unrelated"}
    mine.close()
    assert not alive.exists()


def test_a_state_folder_being_made_is_never_swept(tmp_path):
    """It is made under another name and renamed once its lock is held."""
    state = SessionState(tmp_path)
    path = state.open()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".making-")]
    assert sweep_state(tmp_path) == [] and path.is_dir()
    state.close()


def _session(engine, lock_dir: Path, session: str) -> LiveSession:
    return LiveSession(engine, NS, session, lock_dir=lock_dir)


def _container(engine, session: str, name: str) -> str:
    return engine.create(ContainerSpec(name=name, image="img", labels={SESSION_LABEL: session}))


def test_lock_files_of_dead_sessions_go_with_or_without_containers(tmp_path):
    engine, locks = FakeEngine(), tmp_path / "locks"
    locks.mkdir()
    killed_after_cleanup = "aaaaaaaa"       # SIGKILL (or SIGINT then SIGTERM) after its cleanup
    killed_mid_run = "bbbbbbbb"             # left a container
    alive = "cccccccc"
    of_another_engine = "a0a0a0a0"          # dead, its containers are on another engine
    of_an_older_version = "b0b0b0b0"        # dead, no engine named, no container here
    (locks / f"{killed_after_cleanup}.lock").write_text("engine fake\n")
    (locks / f"{killed_mid_run}.lock").write_text("engine unix:///elsewhere.sock\n")
    (locks / f"{of_another_engine}.lock").write_text("engine unix:///elsewhere.sock\n")
    (locks / f"{of_an_older_version}.lock").touch()
    held = os.open(locks / f"{alive}.lock", os.O_CREAT | os.O_RDWR, 0o600)
    fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
    left = _container(engine, killed_mid_run, "left")
    theirs = _container(engine, alive, "theirs")
    try:
        me = _session(engine, locks, "dddddddd")
        me.acquire()
        swept = me.sweep()
        assert swept.removed == [left] and swept.foreign == 1
        assert sorted(swept.sessions) == [killed_after_cleanup, killed_mid_run]
        assert swept.locks == 2
        kept = [f"{of_another_engine}.lock", f"{of_an_older_version}.lock", f"{alive}.lock"]
        assert sorted(p.name for p in locks.iterdir()) == sorted(kept + ["dddddddd.lock"])
        assert (locks / "dddddddd.lock").read_text() == "engine fake\n"
        assert [c.id for c in engine.list()] == [theirs]
        me.release()
        assert sorted(p.name for p in locks.iterdir()) == sorted(kept)
    finally:
        os.close(held)


def test_a_session_that_could_not_clean_up_is_swept_by_the_next(tmp_path):
    engine, locks = FakeEngine(), tmp_path / "locks"
    first = _session(engine, locks, "eeeeeeee")
    first.acquire()
    left = _container(engine, "eeeeeeee", "left")
    first.release(keep_file=True)  # its engine did not answer at the end
    assert (locks / "eeeeeeee.lock").exists()
    second = _session(engine, locks, "ffffffff")
    second.acquire()
    swept = second.sweep()
    assert swept.removed == [left] and swept.sessions == ["eeeeeeee"]
    assert not (locks / "eeeeeeee.lock").exists()
    second.release()


def test_a_lock_file_swept_while_being_acquired_is_made_again(tmp_path, monkeypatch):
    """acquire opens the file, then locks it: a sweep may unlink it in between. The session then
    holds a lock on nothing, and would look dead; acquire notices and starts again."""
    locks = tmp_path / "locks"
    session = _session(FakeEngine(), locks, "abababab")
    real_flock, calls = fcntl.flock, []

    def flock(fd, op):
        calls.append(op)
        if len(calls) == 1:  # between our open and our lock, a sweep removes the file
            (locks / "abababab.lock").unlink()
        return real_flock(fd, op)

    monkeypatch.setattr(fcntl, "flock", flock)
    session.acquire()
    monkeypatch.setattr(fcntl, "flock", real_flock)
    assert len(calls) == 2
    other = _session(FakeEngine(), locks, "cdcdcdcd")
    assert not other._dead("abababab")  # held, on the file that is there
    session.release()
    assert not list(locks.iterdir())
