"""Faults of a live engine, on a private dockerd of the test's own: the engine killed (SIGKILL)
and stopped (SIGSTOP: it stops answering) mid-run, and the suite itself killed (SIGKILL) or
cancelled (SIGINT, then SIGTERM) mid-run.

Each test starts a dockerd as ``.ci/engines.sh`` starts the emulated GPU engine: its own socket,
data root, exec root (so its own containerd) and pidfile, no bridge, no iptables, vfs storage;
the image is imported from the static busybox. It runs the bundled catalog on it in a subprocess
(the reference driver, ``--sandbox-engine-timeout=4``), injects the fault, and checks:

* an engine outage: the run ends within the timeout with exit status 2 (interrupted), the
  verdict is ``incomplete (engine unavailable; ...)``, the terminal prints the ``docker rm`` hint, no item
  *failed* (errors only, each of kind ``engine``), no traceback, and the output is short;
* then (engine back) the next session's sweep removes every container the run left, its lock
  file and its state folders, and says so in its header; nothing of the run is left.

Without root, dockerd or a static busybox they skip with the reason (fail under
``SANDBOX_CONFORMANCE_REQUIRE_ENGINE=1``). Every test is marked ``live``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from pytest_sandbox_conformance.live import NAMESPACE_PREFIX, SESSION_LABEL, default_lock_dir
from pytest_sandbox_conformance.live.state import PREFIX as STATE_PREFIX
from reference_driver.naming import LabelKeys

pytestmark = pytest.mark.live

ROOT = Path(__file__).resolve().parent.parent
REQUIRE_ENGINE = os.environ.get("SANDBOX_CONFORMANCE_REQUIRE_ENGINE") == "1"
ENGINE_TIMEOUT = 4
NS = LabelKeys().namespace

#: Records each item's exception kind (``kind`` of what its setup or call raised; skips aside).
KINDS_PLUGIN = '''
import json, os

import pytest

def pytest_runtest_makereport(item, call):
    if (call.excinfo is not None and call.when != "teardown"
            and not call.excinfo.errisinstance(pytest.skip.Exception)):
        with open(os.environ["SCT_KINDS"], "a") as f:
            f.write(json.dumps([item.nodeid, call.when, type(call.excinfo.value).__name__,
                                getattr(call.excinfo.value, "kind", None)]) + "\\n")
'''


def _unavailable(reason: str):
    if REQUIRE_ENGINE:
        pytest.fail(f"{reason} (SANDBOX_CONFORMANCE_REQUIRE_ENGINE=1 requires it)", pytrace=False)
    pytest.skip(reason)


class PrivateDockerd:
    """A dockerd of the test's own (see the module docstring)."""

    def __init__(self) -> None:
        # Short: unix socket paths are limited to ~107 bytes.
        self.dir = Path(tempfile.mkdtemp(prefix="sbxd-", dir="/tmp"))
        self.sock = self.dir / "d.sock"
        self.url = f"unix://{self.sock}"
        self.pidfile = self.dir / "d.pid"
        self.log = self.dir / "dockerd.log"
        (self.dir / "daemon.json").write_text(json.dumps(
            {"storage-driver": "vfs", "log-driver": "json-file"}))
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30) -> None:
        for stale in (self.sock, self.pidfile):
            stale.unlink(missing_ok=True)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                ["dockerd", "--config-file", str(self.dir / "daemon.json"), "-H", self.url,
                 "--data-root", str(self.dir / "data"), "--exec-root", str(self.dir / "exec"),
                 "--pidfile", str(self.pidfile), "--bridge=none", "--iptables=false",
                 "--ip-masq=false", "--log-level=warn"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.answers():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-15:])
        self.stop()
        _unavailable(f"the private dockerd did not answer within {timeout:.0f} s:\n{tail}")

    def answers(self) -> bool:
        import socket

        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(1)
                s.connect(str(self.sock))
                s.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
                return b"OK" in s.recv(1024)
        except OSError:
            return False

    def engine(self):
        from pytest_sandbox_conformance.engines.docker import DockerEngine

        return DockerEngine(self.url, timeout=10)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, sig)
        if sig == signal.SIGKILL:
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        """Remove every container, stop the daemon, end what it left running, unmount and
        remove its folder."""
        if self.proc is not None:
            try:
                os.kill(self.proc.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
            if self.proc.poll() is None and self.answers():
                with self.engine() as engine:
                    engine.remove_all([c.id for c in engine.list()], force=True)
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=10)
            self.proc = None
        release(self.dir)
        shutil.rmtree(self.dir, ignore_errors=True)


def release(folder: Path) -> None:
    """End the processes a private dockerd left under ``folder`` and unmount what it mounted
    there. A daemon killed mid-call leaves containerd shims (and their containers) that it no
    longer knows, which no ``docker rm`` reaches, and its data root stays bind-mounted."""
    mark = str(folder).encode()
    for pid in [int(p) for p in os.listdir("/proc") if p.isdigit()]:
        try:
            if mark not in Path(f"/proc/{pid}/cmdline").read_bytes():
                continue
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            continue
        for victim in [*map(int, children), pid]:  # the container's init, then its shim
            try:
                os.kill(victim, signal.SIGKILL)
            except ProcessLookupError:
                pass
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4]
        if point == str(folder) or point.startswith(str(folder) + "/"):
            mounts.append(point)
    for point in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, timeout=30)


@pytest.fixture
def dockerd():
    if os.geteuid() != 0:
        _unavailable("a private dockerd needs root")
    if shutil.which("dockerd") is None:
        _unavailable("no dockerd on PATH (apt-get install docker.io)")
    pytest.importorskip("docker", reason="the Docker SDK is not installed ([live] extra)")
    from pytest_sandbox_conformance.engines.image import find_static_busybox, make_busybox_image

    try:
        busybox = find_static_busybox()
    except Exception as exc:  # noqa: BLE001 - its message says what to install
        _unavailable(str(exc))
    daemon = PrivateDockerd()
    try:
        daemon.start()
        with daemon.engine() as engine:
            make_busybox_image(busybox=busybox, engine=engine)
        yield daemon
    finally:
        daemon.stop()


def _suite(folder: Path, daemon: PrivateDockerd, *args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "-p", "sandbox_conformance", "-p", "kinds",
            "-p", "no:cacheprovider", "--sandbox-driver=reference", "--sandbox-engine=docker",
            f"--sandbox-engine-url={daemon.url}", "--sandbox-gpu=off",
            f"--sandbox-engine-timeout={ENGINE_TIMEOUT}", f"--sandbox-state-dir={folder / 'state'}",
            *args]


def _env(folder: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), str(ROOT)]),
            "SCT_KINDS": str(folder / "kinds.jsonl")}


def _start_run(folder: Path, daemon: PrivateDockerd, *args: str):
    (folder / "kinds.py").write_text(KINDS_PLUGIN)
    out = (folder / "out.txt").open("w")
    proc = subprocess.Popen(_suite(folder, daemon, *args), cwd=folder, env=_env(folder),
                            stdout=out, stderr=subprocess.STDOUT)
    return proc, out


def _session_of(text: str) -> str:
    m = re.search(r"^live engine docker at \S+, image \S+, session ([0-9a-f]{8});", text, re.M)
    assert m, text
    return m.group(1)


def _until_items_ran(proc, out_path: Path, items: int = 4, timeout: float = 60) -> None:
    """Wait until ``items`` results are on the progress lines (the run is well under way)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        text = out_path.read_text(errors="replace")
        progress = "".join(line.split(" ", 1)[1] for line in text.splitlines()
                           if line.startswith("sandbox-catalog/") and " " in line)
        if sum(progress.count(c) for c in ".FEs") >= items:
            return
        time.sleep(0.05)
    raise AssertionError(f"the run did not get going:\n{out_path.read_text()}")


def _left(daemon: PrivateDockerd, session: str) -> list[str]:
    with daemon.engine() as engine:
        found = {c.id for c in engine.list({SESSION_LABEL: session})}
        found |= {c.id for c in engine.list({NS: None})
                  if c.labels[NS].startswith(f"{NAMESPACE_PREFIX}-{session}-")}
    return sorted(found)


def _sweep(folder: Path, daemon: PrivateDockerd) -> str:
    """The next session (``--collect-only``: it runs nothing, it sweeps)."""
    done = subprocess.run(_suite(folder, daemon, "--collect-only"), cwd=folder,
                          env=_env(folder), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _state_folders(folder: Path) -> list[Path]:
    return sorted((folder / "state").glob(STATE_PREFIX + "*"))


@pytest.mark.parametrize("fault", ["SIGKILL", "SIGSTOP"])
def test_an_engine_that_dies_or_stops_answering_mid_run(dockerd, tmp_path, fault):
    proc, out = _start_run(tmp_path, dockerd)
    try:
        _until_items_ran(proc, tmp_path / "out.txt")
        dockerd.signal(getattr(signal, fault))
        faulted = time.monotonic()
        rc = proc.wait(timeout=60)
        took = time.monotonic() - faulted
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        out.close()
    text = (tmp_path / "out.txt").read_text()
    lines = text.splitlines()
    # Ends once the engine has not answered for the timeout (the session says how long it
    # waited), not after the SDK's 60 s per call; the wall-time bound leaves room for a loaded
    # machine (pytest's own start and end).
    assert rc == 2, text  # interrupted: the session stopped
    gone = re.search(r"has not answered for (\d+) s \(--sandbox-engine-timeout", text)
    assert gone and ENGINE_TIMEOUT <= int(gone.group(1)) <= ENGINE_TIMEOUT + 3, text
    assert took < ENGINE_TIMEOUT + 40, f"{took:.1f} s\n{text}"
    assert len(lines) < 80, text
    assert "Traceback" not in text and "INTERNALERROR" not in text, text
    assert not [line for line in lines if line.startswith("FAILED")], text  # the driver: blameless
    errors = [line for line in lines if line.startswith("ERROR sandbox-catalog/")]
    assert errors, text
    assert re.search(r"^driver reference \S+: incomplete \(engine unavailable", text, re.M), text
    assert re.search(r"^sandbox conformance: the engine did not answer: \d+ item\(s\) not "
                     r"judged \(last: cannot reach the docker engine at ", text, re.M), text
    assert re.search(r"^! Interrupted: sandbox conformance: the engine \(docker at "
                     rf"{re.escape(dockerd.url)}\) has not answered for \d+ s "
                     rf"\(--sandbox-engine-timeout={ENGINE_TIMEOUT}\)", text, re.M), text
    assert ("cannot reach the docker engine at " + dockerd.url) in text
    kinds = [json.loads(line) for line in (tmp_path / "kinds.jsonl").read_text().splitlines()]
    assert kinds and all(k[1:] == ["setup", "NotJudgedError", "engine"] for k in kinds), kinds
    assert len(kinds) == len(errors)
    session = _session_of(text)
    assert f"docker rm -f $(docker ps -aq --filter label={SESSION_LABEL}={session})" in text
    assert (default_lock_dir() / f"{session}.lock").exists()  # kept: the session is dead now

    # The engine comes back; the next session removes everything the run left, and says so.
    if fault == "SIGSTOP":
        dockerd.signal(signal.SIGCONT)
    else:
        dockerd.start()
    left = _left(dockerd, session)
    header = _sweep(tmp_path, dockerd)
    live = next((line for line in header.splitlines() if line.startswith("live engine")), header)
    # A stopped engine still runs the requests it had queued once it resumes (a create the
    # suite gave up on), so the sweep may find more than was there a moment before.
    swept = re.search(rf"swept (\d+) leftover container\(s\) of dead sessions \({session}; ",
                      live)
    assert swept and int(swept.group(1)) >= len(left), (left, live)
    assert _left(dockerd, session) == []
    assert not (default_lock_dir() / f"{session}.lock").exists()
    assert not _state_folders(tmp_path)


@pytest.mark.parametrize("how", ["SIGKILL", "SIGINT then SIGTERM"])
def test_a_killed_or_cancelled_run_is_cleaned_up_by_the_next(dockerd, tmp_path, how):
    proc, out = _start_run(tmp_path, dockerd)
    try:
        _until_items_ran(proc, tmp_path / "out.txt")
        if how == "SIGKILL":
            proc.send_signal(signal.SIGKILL)
        else:  # a CI cancel: SIGINT, then SIGTERM before the cleanup is done
            proc.send_signal(signal.SIGINT)
            time.sleep(0.2)
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        out.close()
    text = (tmp_path / "out.txt").read_text()
    session = _session_of(text)
    lock = default_lock_dir() / f"{session}.lock"
    locked = lock.exists()
    if how == "SIGKILL":
        assert locked and _state_folders(tmp_path)
    header = _sweep(tmp_path, dockerd)
    # Nothing of the run is left: containers (also those whose requests the engine finished
    # after the run died), lock file, state folders; and the header names the dead session.
    assert _left(dockerd, session) == [], header
    assert not lock.exists(), header
    assert not _state_folders(tmp_path), header
    if locked:
        assert re.search(rf"swept \d+ leftover container\(s\) of dead sessions \({session}; "
                         r"1 lock file\(s\)\)", header), header
    if how == "SIGKILL":
        assert "swept 1 state folder(s) of dead processes" in header, header
