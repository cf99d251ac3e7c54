"""The project's Rust peer driver (``tests/peer_driver``, binary ``sbx-peer-driver``) for tests.

* :func:`peer_binary` builds it with ``tests/peer_driver/build.sh`` once per test session (each
  xdist worker is a session; cargo's own lock serialises concurrent builds) and returns the
  binary's path. Without cargo, or when the build fails, the calling test is **skipped** with the
  reason, unless ``SANDBOX_CONFORMANCE_REQUIRE_PEER=1`` is set: then it **fails**.
* :class:`PeerDriver` runs one driver process on a fresh socket (``--bind-socket``), waits for the
  socket, gives a gRPC stub on it and stops the process (SIGTERM) again, keeping its stderr.
* :func:`channel` is a grpcio channel to a tonic server on a Unix socket. grpcio derives the
  HTTP/2 ``:authority`` from the socket path, which tonic/h2 reject (``RST_STREAM`` with
  ``PROTOCOL_ERROR``); the channel sets ``grpc.default_authority`` to ``localhost``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

__all__ = ["BUILD_SCRIPT", "REQUIRE_PEER", "PeerDriver", "channel", "peer_binary"]

ROOT = Path(__file__).resolve().parent.parent
BUILD_SCRIPT = ROOT / "tests" / "peer_driver" / "build.sh"
#: ``SANDBOX_CONFORMANCE_REQUIRE_PEER=1``: a missing cargo or a failed build fails, not skips.
REQUIRE_PEER = os.environ.get("SANDBOX_CONFORMANCE_REQUIRE_PEER") == "1"
#: How long a cold build may take (dependencies included) on a slow machine.
BUILD_TIMEOUT = 1800.0
#: The authority grpcio must send to a tonic server on a Unix socket.
AUTHORITY_OPTION = ("grpc.default_authority", "localhost")

_built: tuple[Path | None, str] | None = None


def _unavailable(reason: str) -> None:
    if REQUIRE_PEER:
        pytest.fail(f"{reason} (SANDBOX_CONFORMANCE_REQUIRE_PEER=1 requires the peer driver)",
                    pytrace=False)
    pytest.skip(reason)


def _cargo() -> str | None:
    found = shutil.which("cargo")
    if found:
        return found
    home = Path.home() / ".cargo" / "bin" / "cargo"
    return str(home) if home.is_file() and os.access(home, os.X_OK) else None


def _build() -> tuple[Path | None, str]:
    if _cargo() is None:
        return None, "the Rust peer driver needs cargo, which is not installed"
    try:
        done = subprocess.run(["bash", str(BUILD_SCRIPT)], capture_output=True, text=True,
                              timeout=BUILD_TIMEOUT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return None, f"building the Rust peer driver took longer than {BUILD_TIMEOUT:g} s"
    if done.returncode != 0:
        tail = "\n".join((done.stderr or "").strip().splitlines()[-30:])
        return None, f"building the Rust peer driver failed (exit {done.returncode}):\n{tail}"
    lines = done.stdout.strip().splitlines()
    binary = Path(lines[-1]) if lines else None
    if binary is None or not binary.is_file():
        return None, f"build.sh printed no binary path that exists ({done.stdout.strip()!r})"
    return binary, ""


def peer_binary() -> Path:
    """The built ``sbx-peer-driver`` (built once per session); skip or fail the caller when it
    cannot be had."""
    global _built
    if _built is None:
        _built = _build()
    binary, reason = _built
    if binary is None:
        _unavailable(reason)
    assert binary is not None
    return binary


def channel(socket_path: str | os.PathLike[str]):
    """A grpcio channel to ``socket_path`` that a tonic server accepts."""
    import grpc

    return grpc.insecure_channel(f"unix:{os.fspath(socket_path)}", options=[AUTHORITY_OPTION])


class PeerDriver:
    """One ``sbx-peer-driver`` process: ``PeerDriver(binary, namespace, *flags)``, then
    :meth:`start`; :attr:`stub` is a ``ComputeDriverStub``; :meth:`stop` sends SIGTERM and returns
    how long the exit took; :meth:`log` is its stderr so far. Usable as a context manager."""

    def __init__(self, binary: Path, namespace: str, *flags: str, docker_host: str | None = None,
                 state_dir: Path | None = None, start_timeout: float = 15.0) -> None:
        self.binary = binary
        self.namespace = namespace
        self.folder = Path(tempfile.mkdtemp(prefix="sbx-peer-", dir="/tmp"))
        self.socket_path = self.folder / "driver.sock"
        self.state_dir = state_dir if state_dir is not None else self.folder / "state"
        self.log_path = self.folder / "driver.log"
        self.flags: list[str] = list(flags)
        self.docker_host = docker_host
        self.start_timeout = start_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self._channel = None
        self.stub = None

    def argv(self) -> list[str]:
        argv = [str(self.binary), "--bind-socket", str(self.socket_path), "--namespace",
                self.namespace, "--state-dir", str(self.state_dir)]
        if self.docker_host:
            argv += ["--docker-host", self.docker_host]
        return argv + self.flags

    def start(self) -> PeerDriver:
        from pytest_sandbox_conformance.grpc import compute_driver_pb2_grpc as pb_grpc

        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.argv(), stdout=log, stderr=log,
                                            stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + self.start_timeout
        while not self.socket_path.exists():
            if self.process.poll() is not None:
                raise AssertionError(f"sbx-peer-driver exited with {self.process.returncode} "
                                     f"before opening its socket:\n{self.log()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"sbx-peer-driver opened no socket within "
                                     f"{self.start_timeout:g} s:\n{self.log()}")
            time.sleep(0.02)
        self._channel = channel(self.socket_path)
        self.stub = pb_grpc.ComputeDriverStub(self._channel)
        return self

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_lines(self, needle: str) -> list[str]:
        return [line for line in self.log().splitlines() if needle in line]

    def stop(self, sig: int = signal.SIGTERM) -> float:
        """Signal the process and wait for it (killed after 10 s); seconds the exit took."""
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        if self.process is None or self.process.poll() is not None:
            return 0.0
        start = time.monotonic()
        self.process.send_signal(sig)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return time.monotonic() - start

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> PeerDriver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

