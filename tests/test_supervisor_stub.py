"""The supervisor stub the suite ships for OpenShell-family drivers (docs/openshell.md): a static
ELF that OpenShell's Docker driver accepts as ``supervisor_bin``, runs as a container's entrypoint
and stops promptly."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import time

import pytest

from pytest_sandbox_conformance.adapters.supervisor_stub import supervisor_stub
from pytest_sandbox_conformance.cli import main
from pytest_sandbox_conformance.engines.base import ContainerSpec, Mount

from test_engine_fake import _make_engine


def test_the_stub_is_a_static_x86_64_elf_executable():
    data = supervisor_stub()
    assert data[:4] == b"\x7fELF" and data[4] == 2 and data[5] == 1  # ELF64, little-endian
    e_type, e_machine = struct.unpack_from("<HH", data, 16)
    assert (e_type, e_machine) == (2, 0x3E)  # an executable for x86-64
    assert struct.unpack_from("<I", data, 64)[0] == 1  # one PT_LOAD segment, no interpreter
    assert len(data) < 1024


def test_the_cli_writes_it_executable(tmp_path, capsys):
    out = tmp_path / "bin" / "openshell-sandbox"
    assert main(["supervisor-stub", str(out)]) == 0
    assert out.read_bytes() == supervisor_stub()
    assert os.stat(out).st_mode & 0o777 == 0o755
    assert capsys.readouterr().out.strip() == str(out)


@pytest.mark.skipif(not sys.platform.startswith("linux") or os.uname().machine != "x86_64",
                    reason="the stub is a Linux x86-64 executable")
def test_it_runs_a_shell_until_it_is_sent_sigterm(tmp_path):
    stub = tmp_path / "openshell-sandbox"
    stub.write_bytes(supervisor_stub(script="trap 'exit 0' TERM; echo started; "
                                            "while :; do sleep 3600 & wait $!; done",
                                     shell="/bin/sh"))
    stub.chmod(0o755)
    proc = subprocess.Popen([str(stub), "--workdir", "/sandbox"], stdout=subprocess.PIPE,
                            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, text=True)
    try:
        assert proc.stdout.readline().strip() == "started"
        assert proc.poll() is None
        proc.terminate()
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()


@pytest.mark.live
def test_as_a_containers_bind_mounted_entrypoint_it_runs_and_stops_at_once(tmp_path):
    """As OpenShell's Docker driver uses its supervisor: bind-mounted read-only, the entrypoint,
    with its own arguments (``--workdir /sandbox``) ignored."""
    engine = _make_engine("docker")
    stub = tmp_path / "openshell-sandbox"
    stub.write_bytes(supervisor_stub())
    stub.chmod(0o755)
    target = "/opt/openshell/bin/openshell-sandbox"
    try:
        cid = engine.create(ContainerSpec(
            name=f"sbx-stub-test-{os.getpid()}", image="sbx-busybox:local",
            labels={"sandbox-conformance.test": "supervisor-stub"},
            entrypoint=(target,), command=("--workdir", "/sandbox"), network_mode="none",
            mounts=(Mount(target, "bind", str(stub), read_only=True),)))
        try:
            engine.start(cid)
            time.sleep(0.5)
            assert engine.inspect(cid).state == "running"
            started = time.monotonic()
            engine.stop(cid, timeout=10)
            assert time.monotonic() - started < 5  # SIGTERM ends it: no 10 s kill timeout
            assert engine.inspect(cid).state == "exited"
        finally:
            engine.remove(cid, force=True)
    finally:
        engine.close()
